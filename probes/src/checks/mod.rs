//! Probe logic, one module per probe, and [`ALL`]: the one table of probes
//! that the binaries' docs, the harness and the guideline checker read
//! (blackbox_exporter's table of probers). Protocol clients live in
//! `clients`, rendering in `render`; this layer only decides what to check.

pub mod appliances;
pub mod block_storage;
pub mod certificates;
pub mod dropin;
pub mod glue;
pub mod image_upload;
pub mod network;
pub mod object_storage;
pub mod orchestrator;
pub mod token_auth;
pub mod token_auth_cloud;
pub mod usage;
pub mod vm_lifecycle;

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use clap::CommandFactory;

use crate::model::{CheckId, ProbeResult};
use crate::probe::{arg_error_line, Common, Invocation, Link, Optional, Probe};
use crate::record::StageSink;
use crate::runner::not_started;

pub type Cancel = Pin<Box<dyn Future<Output = crate::runner::Stop> + Send>>;
pub type Running = Pin<Box<dyn Future<Output = ProbeResult> + Send>>;
/// Parses an argv (argv[0] is the probe name) into a typed invocation.
pub type Parse = fn(&[String]) -> Result<Box<dyn Planned>, String>;

/// One probe in the table: what it is, and how to plan and start it.
#[derive(Clone, Copy)]
pub struct Entry {
    pub name: &'static str,
    pub label: &'static str,
    pub about: &'static str,
    pub default_timeout: Duration,
    /// Its check ids, those of the shared login first.
    pub checks: fn() -> Vec<CheckId>,
    /// Its full command line definition (common options included).
    pub command: fn() -> clap::Command,
    /// Parse an argv (argv[0] is the probe name) into a typed invocation.
    pub parse: Parse,
    /// What its runs can offer to other probes of the same site.
    pub provides: &'static [Link],
    /// What a finished run offers to other probes of the same site.
    pub offers: fn(&ProbeResult) -> Vec<(Link, String)>,
    /// Checks that run only when configured, and the flags that do it.
    pub optional: &'static [Optional],
    /// The flag without which the probe is not configured at all.
    pub requires: Option<&'static str>,
    /// The size of its body's future (bounded by a test for every probe).
    #[cfg(test)]
    body_size: fn() -> usize,
}

impl Entry {
    /// How to enable `check` when the invocation `argv` leaves it off:
    /// `None` when it is not optional or one of its flags is given.
    pub fn not_configured(&self, check: &str, argv: &[String]) -> Option<&'static Optional> {
        self.optional.iter().find(|o| {
            o.check == check
                && !o.flags.iter().any(|f| {
                    let long = format!("--{f}");
                    argv.iter()
                        .any(|a| a == &long || a.starts_with(&format!("{long}=")))
                })
        })
    }
}

/// The probes, in the order a guideline run shows them.
pub const ALL: &[Entry] = &[
    entry::<token_auth::TokenAuth>(),
    entry::<vm_lifecycle::VmLifecycle>(),
    entry::<image_upload::ImageUpload>(),
    entry::<usage::Usage>(),
    entry::<glue::Glue>(),
    entry::<object_storage::ObjectStorage>(),
    entry::<block_storage::BlockStorage>(),
    entry::<network::NetworkProbe>(),
    entry::<appliances::Appliances>(),
    entry::<orchestrator::Orchestrator>(),
    entry::<certificates::Certificates>(),
];

pub fn find(name: &str) -> Option<&'static Entry> {
    ALL.iter().find(|e| e.name == name)
}

const fn entry<P: Probe>() -> Entry {
    Entry {
        name: P::BIN,
        label: P::LABEL,
        about: P::ABOUT,
        default_timeout: P::DEFAULT_TIMEOUT,
        checks: checks_of::<P>,
        command: Invocation::<P::Args>::command,
        parse: parse::<P>,
        provides: P::PROVIDES,
        offers: P::offers,
        optional: P::OPTIONAL,
        requires: P::REQUIRES,
        #[cfg(test)]
        body_size: tests::body_size::<P>,
    }
}

fn checks_of<P: Probe>() -> Vec<CheckId> {
    P::checks()
}

fn parse<P: Probe>(argv: &[String]) -> Result<Box<dyn Planned>, String> {
    Invocation::<P::Args>::parse(P::BIN, argv)
        .map(|inv| Box::new(Typed::<P> { inv }) as Box<dyn Planned>)
        .map_err(|e| arg_error_line(&e))
}

/// A probe invocation parsed once, behind a type-erased face: the harness
/// reads its shared options, links it to other probes, and starts it.
pub trait Planned: Send + Sync {
    fn name(&self) -> &'static str;
    fn label(&self) -> &'static str;
    fn common(&self) -> &Common;
    fn common_mut(&mut self) -> &mut Common;
    /// `-t`, or the probe's default.
    fn timeout(&self) -> Duration;
    /// What this invocation can take from another probe of the same site.
    fn wants(&self) -> Option<Link>;
    /// Take it; returns the words to show in the probe's argv.
    fn give(&mut self, link: Link, value: String) -> Vec<String>;
    fn start(self: Box<Self>, cancel: Cancel, events: Option<StageSink>) -> Running;
    fn clone_box(&self) -> Box<dyn Planned>;
}

struct Typed<P: Probe> {
    inv: Invocation<P::Args>,
}

impl<P: Probe> Planned for Typed<P> {
    fn name(&self) -> &'static str {
        P::BIN
    }
    fn label(&self) -> &'static str {
        P::LABEL
    }
    fn common(&self) -> &Common {
        &self.inv.common
    }
    fn common_mut(&mut self) -> &mut Common {
        &mut self.inv.common
    }
    fn timeout(&self) -> Duration {
        self.inv.common.timeout.unwrap_or(P::DEFAULT_TIMEOUT)
    }
    fn wants(&self) -> Option<Link> {
        P::wants(&self.inv.args)
    }
    fn give(&mut self, link: Link, value: String) -> Vec<String> {
        P::give(&mut self.inv.args, link, value)
    }
    fn start(self: Box<Self>, cancel: Cancel, events: Option<StageSink>) -> Running {
        Box::pin(crate::probe::run::<P>(self.inv, cancel, events))
    }
    fn clone_box(&self) -> Box<dyn Planned> {
        Box::new(Typed::<P> {
            inv: self.inv.clone(),
        })
    }
}

/// A result for an argv that does not parse, as the binary would print it.
pub fn bad_arguments(e: &Entry, why: String) -> ProbeResult {
    not_started(e.name, e.label, why)
}

/// Long option names an entry accepts, aliases included (`--vo` for `--project`).
pub fn long_flags(e: &Entry) -> &'static [String] {
    // Built once per probe and process: listing them means building the
    // probe's whole clap command, and a harness run asks for every site. The
    // table is finite, so what is leaked here is bounded.
    static BUILT: Mutex<Vec<(&'static str, &'static [String])>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, f)) = built.iter().find(|(n, _)| *n == e.name) {
        return f;
    }
    let cmd = (e.command)();
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
    let f: &'static [String] = Box::leak(out.into_boxed_slice());
    built.push((e.name, f));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_probe_is_in_the_table_once_and_takes_common_flags() {
        let mut names: Vec<_> = ALL.iter().map(|e| e.name).collect();
        names.dedup();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 11);
        assert_eq!(names.len(), ALL.len());
        for e in ALL {
            let f = long_flags(e);
            for want in ["timeout", "ca-cert", "cert", "output"] {
                assert!(f.contains(&want.to_string()), "{}: {f:?}", e.name);
            }
        }
        let f = long_flags(find("check_vm_lifecycle").unwrap());
        for want in ["endpoint", "access-token", "project", "vo"] {
            assert!(f.contains(&want.to_string()), "{want}: {f:?}");
        }
    }

    #[test]
    fn no_check_id_names_two_checks() {
        let mut seen: std::collections::BTreeMap<&str, &str> = Default::default();
        for e in ALL {
            for c in (e.checks)() {
                if let Some(other) = seen.insert(c.id, c.name) {
                    assert_eq!(other, c.name, "{} names two checks", c.id);
                }
            }
        }
        assert!(seen.len() >= 30, "{seen:?}");
    }

    #[test]
    fn invocations_are_parsed_once_and_linked_by_type() {
        let usage = find("check_usage").unwrap();
        let argv = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let mut p = (usage.parse)(&argv(
            "check_usage --endpoint https://k.example/v3 --access-token t -t 90",
        ))
        .unwrap();
        assert_eq!(p.timeout(), Duration::from_secs(90));
        assert_eq!(p.wants(), Some(Link::Server));
        p.give(Link::Server, "s1".into());
        assert_eq!(p.wants(), None, "a given server is not asked for again");
        let q = (usage.parse)(&argv(
            "check_usage --endpoint https://k.example/v3 --no-api --apel-dir /x",
        ))
        .unwrap();
        assert_eq!(q.wants(), None);
        assert_eq!(q.timeout(), usage.default_timeout);
        let bad = (usage.parse)(&argv("check_usage --bogus")).err().unwrap();
        assert!(bad.starts_with("bad arguments:"), "{bad}");
        let vm = find("check_vm_lifecycle").unwrap();
        let no_image = (vm.parse)(&argv("check_vm_lifecycle --endpoint https://k.example/v3"));
        assert!(no_image.is_err(), "one of the image flags is required");
    }

    /// The flags each probe needs to parse, past an endpoint and a token.
    fn minimal_argv(name: &str) -> Vec<String> {
        let extra = match name {
            "check_vm_lifecycle" => "--image x",
            "check_glue" => "--glue-url https://g.example/glue.json",
            "check_appliances" => "--appliances-list /a",
            "check_orchestrator" => {
                "--orchestrator https://o.example --orchestrator-user u --orchestrator-password-file /p --image x"
            }
            _ => "",
        };
        format!("{name} --endpoint https://k.example/v3 --access-token /t {extra}")
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    /// A harness holds thousands of probe runs in flight: each run's own
    /// future stays small (it was 21-33 KB, the probe body inlined twice).
    #[test]
    fn a_started_probe_run_is_small() {
        for e in ALL {
            let planned = (e.parse)(&minimal_argv(e.name)).unwrap_or_else(|w| panic!("{w}"));
            let running = planned.start(Box::pin(std::future::pending()), None);
            let size = std::mem::size_of_val(&*running);
            assert!(size <= 2048, "{}: its run future is {size} bytes", e.name);
        }
    }

    pub(super) fn body_size<P: Probe>() -> usize {
        let inv = Invocation::<P::Args>::parse(P::BIN, &minimal_argv(P::BIN)).unwrap();
        let rec = crate::record::Recorder::new(false, None);
        let deadline = crate::deadline::Deadline::after(Duration::from_secs(1));
        let http = crate::http::Http::new(Default::default(), deadline, rec.clone()).unwrap();
        let ctx = crate::ctx::Ctx::new(http, rec, Default::default());
        std::mem::size_of_val(&P::run(inv.args, ctx))
    }

    /// Each stage and every HTTP exchange is boxed, so a probe body holds
    /// its own locals and the stage running now (it was 13-25 KB).
    #[test]
    fn a_probe_body_holds_its_running_stage_only() {
        for e in ALL {
            let size = (e.body_size)();
            assert!(
                size <= 10 * 1024,
                "{}: its body future is {size} bytes",
                e.name
            );
        }
    }
}
