//! The probes the harness runs in-process. Each is invoked from an argv
//! exactly like its binary, so a profile's options map 1:1 to the probe's
//! CLI flags, whatever flags the probe defines.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use clap::{Args, CommandFactory, FromArgMatches, Parser};
use probes::checks;
use probes::cli::{Common, Probe};
use probes::ctx::Recorder;
use probes::model::{ProbeResult, Status};

pub const NAMES: [&str; 6] = [
    "check_token_auth",
    "check_vm_lifecycle",
    "check_image_upload",
    "check_usage",
    "check_glue",
    crate::grade::HARNESS_PROBE,
];

pub type Cancel = Pin<Box<dyn Future<Output = String> + Send>>;
pub type Running = Pin<Box<dyn Future<Output = ProbeResult> + Send>>;
/// Filled with the probe's recorder once it starts, so a progress display
/// can show the stage it is in.
pub type StageSlot = Arc<Mutex<Option<Arc<Recorder>>>>;

#[derive(Parser, Debug)]
struct Invocation<A: Args> {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    args: A,
}

/// A runnable probe: its name and how to start it from an argv.
#[derive(Clone, Copy)]
pub struct Entry {
    pub name: &'static str,
    pub label: &'static str,
    /// Long flag names the probe accepts (common options included).
    pub flags: fn() -> Vec<String>,
    pub start: fn(Vec<String>, Cancel, StageSlot) -> Running,
}

fn entry<P: Probe>() -> Entry {
    Entry {
        name: P::BIN,
        label: P::LABEL,
        flags: flags::<P>,
        start: start::<P>,
    }
}

pub fn find(name: &str) -> Option<Entry> {
    Some(match name {
        "check_token_auth" => entry::<checks::token_auth::TokenAuth>(),
        "check_vm_lifecycle" => entry::<checks::vm_lifecycle::VmLifecycle>(),
        "check_image_upload" => entry::<checks::image_upload::ImageUpload>(),
        "check_usage" => entry::<checks::usage::Usage>(),
        "check_glue" => entry::<checks::glue::Glue>(),
        _ => return None,
    })
}

fn flags<P: Probe>() -> Vec<String> {
    long_flags(&Invocation::<P::Args>::command())
}

/// Long names and their aliases (`--vo` is an alias of `--project`).
fn long_flags(cmd: &clap::Command) -> Vec<String> {
    let mut out = Vec::new();
    for a in cmd.get_arguments() {
        out.extend(a.get_long().map(str::to_string));
        out.extend(
            a.get_all_aliases()
                .unwrap_or_default()
                .into_iter()
                .map(str::to_string),
        );
    }
    out.sort();
    out.dedup();
    out
}

/// Parse `argv` (argv[0] is the probe name) and run the probe in-process.
/// Bad arguments become an UNKNOWN result naming them, as the binary would.
fn start<P: Probe>(argv: Vec<String>, cancel: Cancel, slot: StageSlot) -> Running {
    Box::pin(async move {
        let cmd = Invocation::<P::Args>::command()
            .name(P::BIN)
            .no_binary_name(false);
        let parsed = cmd
            .try_get_matches_from(&argv)
            .and_then(|m| Invocation::<P::Args>::from_arg_matches(&m));
        match parsed {
            // What `cli::run_probe` does, plus handing out the recorder.
            Ok(inv) => {
                let opts = inv.common.run_options(P::BIN, P::LABEL, P::DEFAULT_TIMEOUT);
                let args = inv.args;
                probes::runner::execute(opts, cancel, move |ctx| {
                    if let Ok(mut s) = slot.lock() {
                        *s = Some(ctx.recorder().clone());
                    }
                    P::run(args, ctx)
                })
                .await
            }
            Err(e) => {
                let text = e.to_string();
                let first = text
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("invalid arguments")
                    .trim_start_matches("error: ")
                    .to_string();
                unknown_result(P::BIN, P::LABEL, format!("bad arguments: {first}"))
            }
        }
    })
}

pub fn unknown_result(probe: &str, label: &str, summary: String) -> ProbeResult {
    ProbeResult {
        probe: probe.into(),
        label: label.into(),
        status: Status::Unknown,
        summary,
        steps: vec![],
        perfdata: vec![],
        resources: vec![],
        started_at: now(),
        duration: std::time::Duration::ZERO,
        http_requests: 0,
        details: vec![],
    }
}

pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Split a command line like a POSIX shell would for simple cases: words,
/// single and double quotes, backslash escapes. No expansions.
pub fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(d) => cur.push(d),
                        None => return Err(format!("unterminated ' in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(d) => cur.push(d),
                            None => return Err(format!("trailing \\ in {s:?}")),
                        },
                        Some(d) => cur.push(d),
                        None => return Err(format!("unterminated \" in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(d) => cur.push(d),
                    None => return Err(format!("trailing \\ in {s:?}")),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(
            split_words(r#"check_x --a 'b c' "d \"e\"" f\ g"#).unwrap(),
            vec!["check_x", "--a", "b c", "d \"e\"", "f g"]
        );
        assert!(split_words("a 'b").is_err());
    }

    #[test]
    fn aliases_count_as_accepted_flags() {
        let cmd = Invocation::<probes::auth::AuthArgs>::command();
        let f = long_flags(&cmd);
        for want in [
            "endpoint",
            "access-token",
            "project",
            "vo",
            "timeout",
            "ca-cert",
            "cert",
        ] {
            assert!(f.contains(&want.to_string()), "{want}: {f:?}");
        }
    }

    #[test]
    fn every_probe_is_known_and_takes_common_flags() {
        for n in NAMES.iter().filter(|n| **n != crate::grade::HARNESS_PROBE) {
            let e = find(n).unwrap();
            let f = (e.flags)();
            assert!(f.contains(&"timeout".to_string()), "{n}: {f:?}");
        }
    }
}
