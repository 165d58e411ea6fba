//! The one probe signature ([`Probe`]), the options every probe shares
//! ([`Common`]), and a probe invocation parsed once ([`Invocation`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::ctx::{Ctx, Settings};
use crate::fail::Fail;
use crate::http::TlsOptions;
use crate::model::{ProbeResult, Range, Status};
use crate::record::StageSink;
use crate::render::Format;
use crate::runner::{self, RunOptions};
use crate::units::parse_duration;

/// A fact one probe's run hands to another's for the same site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Link {
    /// A server the probe created and saw running (VM lifecycle -> usage).
    Server,
}

/// A check that runs only when configured: the flags that enable it and
/// how to, in words a site profile's author can follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Optional {
    pub check: &'static str,
    /// Any of these long flags enables it.
    pub flags: &'static [&'static str],
    pub how: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TimeoutStatus {
    Unknown,
    Critical,
}

/// The Monitoring Plugins standard options plus fedprobe's shared ones.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Hard overall deadline, cleanup included: seconds or a duration like 90s, 5m
    #[arg(short = 't', long = "timeout", value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// More output: -v steps, -vv configuration, -vvv HTTP trace (secrets never shown)
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Host name of the site's service. Accepted because monitoring systems
    /// pass it; the probes take the site from their endpoint options, and tag
    /// what they create with the monitor's name (--argo-host-name), not this
    #[arg(short = 'H', long = "hostname")]
    pub hostname: Option<String>,
    /// Warning range for the probe's main measurement (e.g. 60, 10:, ~:10, @10:20)
    // Hyphen values: `-w -1:` is a range, as engines pass it, not a flag.
    #[arg(
        short = 'w',
        long = "warning",
        value_name = "RANGE",
        allow_hyphen_values = true
    )]
    pub warning: Option<Range>,
    /// Critical range for the probe's main measurement (probes without one: the run's total seconds)
    #[arg(
        short = 'c',
        long = "critical",
        value_name = "RANGE",
        allow_hyphen_values = true
    )]
    pub critical: Option<Range>,
    /// Output format
    #[arg(long = "output", value_enum, default_value = "nagios")]
    pub output: Format,
    /// Extra CA certificate(s) to trust besides the system store (PEM)
    #[arg(long = "ca-cert", visible_alias = "cert", value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
    /// Directory of CA certificates, e.g. /etc/grid-security/certificates
    #[arg(long = "ca-path", value_name = "DIR")]
    pub ca_path: Option<PathBuf>,
    /// Do not verify TLS certificates (off by default)
    #[arg(long = "insecure")]
    pub insecure: bool,
    /// Status reported when -t runs out (the guidelines say UNKNOWN)
    #[arg(long = "timeout-status", value_enum, default_value = "unknown")]
    pub timeout_status: TimeoutStatus,
    /// Part of -t kept for deleting what the probe created (default: a fifth, 1 s to 60 s)
    #[arg(long = "cleanup-grace", value_name = "DURATION", value_parser = parse_duration)]
    pub cleanup_grace: Option<Duration>,
}

impl Common {
    pub fn tls(&self) -> TlsOptions {
        TlsOptions {
            ca_certs: self.ca_cert.clone(),
            ca_path: self.ca_path.clone(),
            insecure: self.insecure,
        }
    }

    pub fn run_options(&self, probe: &str, label: &str, default_timeout: Duration) -> RunOptions {
        RunOptions {
            probe: probe.into(),
            label: label.into(),
            timeout: self.timeout.unwrap_or(default_timeout),
            timeout_status: match self.timeout_status {
                TimeoutStatus::Unknown => Status::Unknown,
                TimeoutStatus::Critical => Status::Critical,
            },
            cleanup_grace: self.cleanup_grace,
            tls: self.tls(),
            settings: Settings {
                verbosity: self.verbose.min(3),
                warning: self.warning,
                critical: self.critical,
            },
            events: None,
        }
    }
}

/// A probe: its name, its options, and its body. One signature for all.
pub trait Probe: 'static {
    /// Binary name, e.g. `check_vm_lifecycle`.
    const BIN: &'static str;
    /// Label on the Nagios first line, e.g. `VM_LIFECYCLE`.
    const LABEL: &'static str;
    const ABOUT: &'static str;
    const DEFAULT_TIMEOUT: Duration;
    type Args: Args + Clone + Send + Sync + std::fmt::Debug + 'static;

    /// The probe body: record steps and perfdata on `ctx`, return the
    /// summary, or fail with the stage and what came back.
    fn run(
        args: Self::Args,
        ctx: Ctx,
    ) -> impl Future<Output = Result<String, Fail>> + Send + 'static;

    /// The probe's check ids (the shared login's first, when it logs in).
    fn checks() -> Vec<crate::model::CheckId>;

    /// What this invocation can take from another probe of the same site
    /// (a harness chains them), if anything.
    fn wants(_args: &Self::Args) -> Option<Link> {
        None
    }

    /// Take what [`Probe::wants`] asked for; returns the command-line words
    /// that say the same (shown in reports as part of the probe's argv).
    fn give(_args: &mut Self::Args, _link: Link, _value: String) -> Vec<String> {
        Vec::new()
    }

    /// What its runs can offer other probes of the same site ([`Probe::offers`]).
    const PROVIDES: &'static [Link] = &[];

    /// Its checks that run only when a flag configures them.
    const OPTIONAL: &'static [Optional] = &[];

    /// A flag without which the whole probe is not configured: a harness
    /// does not plan it then, and grades its checks "not configured".
    const REQUIRES: Option<&'static str> = None;

    /// What a finished run offers to other probes of the same site.
    fn offers(_result: &ProbeResult) -> Vec<(Link, String)> {
        Vec::new()
    }
}

/// A probe's command line parsed once: the shared options and the probe's own.
#[derive(Parser, Debug, Clone)]
pub struct Invocation<A: Args> {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub args: A,
}

impl<A: Args> Invocation<A> {
    /// The clap command for probe `bin`.
    pub fn command_for(bin: &'static str) -> clap::Command {
        // getopt's rule, as every Monitoring Plugin follows it: an option
        // given twice takes its last value (`-t 5 -t 6` is 6 seconds).
        Self::command()
            .name(bin)
            .bin_name(bin)
            .args_override_self(true)
    }

    /// Parse `argv` (argv[0] is the program name). Errors are one line.
    /// The command is built once per probe and process: a harness parses
    /// thousands of argvs, and building clap's command was most of the cost.
    pub fn parse(bin: &'static str, argv: &[String]) -> Result<Self, clap::Error> {
        type Key = (&'static str, &'static str);
        static BUILT: Mutex<BTreeMap<Key, clap::Command>> = Mutex::new(BTreeMap::new());
        let m = match BUILT.lock() {
            Ok(mut built) => built
                .entry((std::any::type_name::<A>(), bin))
                .or_insert_with(|| Self::command_for(bin))
                .try_get_matches_from_mut(argv)?,
            // A poisoned cache (a panic elsewhere): build afresh.
            Err(_) => Self::command_for(bin).try_get_matches_from(argv)?,
        };
        Self::from_arg_matches(&m)
    }
}

/// A clap error as one line (its text up to the usage), for an UNKNOWN result.
pub fn arg_error_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let what: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let line = what.join(" ");
    let line = line.trim_start_matches("error: ");
    if line.is_empty() {
        "bad arguments: invalid arguments".into()
    } else {
        format!("bad arguments: {line}")
    }
}

/// Run probe `P` as invoked, in-process (the binaries and the harness both).
pub fn run<P: Probe>(
    inv: Invocation<P::Args>,
    cancel: impl Future<Output = runner::Stop>,
    events: Option<StageSink>,
) -> impl Future<Output = ProbeResult> {
    // Not an async fn, and the arguments boxed: the run's future would keep
    // room for `inv` and the body's captures (a probe's parsed flags are
    // about 2 KB) for as long as it runs.
    let mut opts = inv.common.run_options(P::BIN, P::LABEL, P::DEFAULT_TIMEOUT);
    opts.events = events;
    let args = Box::new(inv.args);
    runner::execute(opts, cancel, move |ctx| P::run(*args, ctx))
}

/// Run probe `P` in-process with `args` (no program name) and no cancel, as
/// its binary would: bad arguments give the binary's UNKNOWN result.
pub async fn run_args<P: Probe, S: AsRef<str>>(args: &[S]) -> ProbeResult {
    let argv: Vec<String> = std::iter::once(P::BIN)
        .chain(args.iter().map(AsRef::as_ref))
        .map(String::from)
        .collect();
    match Invocation::<P::Args>::parse(P::BIN, &argv) {
        Ok(inv) => run::<P>(inv, std::future::pending(), None).await,
        Err(e) => runner::not_started(P::BIN, P::LABEL, arg_error_line(&e)),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Common;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        c: Common,
    }

    #[test]
    fn negative_ranges_are_values_in_either_form() {
        let c = Cli::try_parse_from(["x", "-w", "-1:", "-c", "-5:-1", "-v"])
            .unwrap()
            .c;
        assert_eq!(c.warning.unwrap().to_string(), "-1:");
        assert_eq!(c.critical.unwrap().to_string(), "-5:-1");
        assert_eq!(c.verbose, 1);
        let c = Cli::try_parse_from(["x", "--warning=-1:1", "-c", "@-10:-2"])
            .unwrap()
            .c;
        assert_eq!(c.warning.unwrap().to_string(), "-1:1");
        assert_eq!(c.critical.unwrap().to_string(), "@-10:-2");
        // A flag where a range belongs is a bad range, not a silent skip.
        assert!(Cli::try_parse_from(["x", "-w", "-v"]).is_err());
    }

    #[test]
    fn a_timeout_past_a_year_is_a_usage_error() {
        for t in ["1e19", "9223372036854775807", "292277024626y"] {
            assert!(Cli::try_parse_from(["x", "-t", t]).is_err(), "{t}");
        }
        assert!(Cli::try_parse_from(["x", "-t", "99999"]).is_ok());
    }

    #[derive(clap::Args, Debug)]
    struct NoArgs {}

    #[test]
    fn an_option_given_twice_takes_its_last_value() {
        let argv: Vec<String> = ["check_x", "-t", "5", "-w", "1", "-t", "6", "-w", "2"]
            .map(String::from)
            .to_vec();
        let inv = super::Invocation::<NoArgs>::parse("check_x", &argv).unwrap();
        assert_eq!(inv.common.timeout, Some(std::time::Duration::from_secs(6)));
        assert_eq!(inv.common.warning.unwrap().to_string(), "2");
    }
}
