//! Options every probe shares, and the `main` every probe binary calls:
//! parse, run under the deadline with SIGTERM/SIGINT handled, render, exit.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::ctx::Ctx;
use crate::fail::Fail;
use crate::http::TlsOptions;
use crate::model::Status;
use crate::nagios::{self, Range};
use crate::runner::{self, RunOptions};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Nagios,
    Json,
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
    /// Host name of the service (accepted as monitoring systems pass it)
    #[arg(short = 'H', long = "hostname")]
    pub hostname: Option<String>,
    /// Warning range for the probe's main measurement (e.g. 60, 10:, ~:10, @10:20)
    #[arg(short = 'w', long = "warning", value_name = "RANGE")]
    pub warning: Option<Range>,
    /// Critical range for the probe's main measurement
    #[arg(short = 'c', long = "critical", value_name = "RANGE")]
    pub critical: Option<Range>,
    /// Output format
    #[arg(long = "output", value_enum, default_value = "nagios")]
    pub output: OutputFormat,
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

/// `90` (seconds), `1.5`, or humantime (`90s`, `5m`, `1h 30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        if secs.is_finite() && secs > 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!("{s:?}: must be a positive number of seconds"));
    }
    match humantime::parse_duration(t) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(format!("{s:?}: must be positive")),
        Err(e) => Err(format!("{s:?}: {e}")),
    }
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
            verbosity: self.verbose.min(3),
            tls: self.tls(),
            warning: self.warning,
            critical: self.critical,
            hostname: self.hostname.clone(),
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
}

#[derive(Parser, Debug)]
struct Cli<A: Args> {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    args: A,
}

/// Run probe `P` in-process (the harness uses this too).
pub async fn run_probe<P: Probe>(
    common: &Common,
    args: P::Args,
    cancel: impl Future<Output = String>,
) -> crate::model::ProbeResult {
    let opts = common.run_options(P::BIN, P::LABEL, P::DEFAULT_TIMEOUT);
    runner::execute(opts, cancel, move |ctx| P::run(args, ctx)).await
}

/// Resolves on the first SIGTERM or SIGINT, naming it.
pub async fn signals() -> String {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM".into(),
        _ = int.recv() => "SIGINT".into(),
    }
}

fn unknown_line(label: &str, msg: &str) -> ExitCode {
    print!(
        "{}",
        nagios::cap(nagios::first_line(label, "UNKNOWN", msg, ""), &[])
    );
    ExitCode::from(Status::Unknown.exit_code())
}

/// The whole `main` of a probe binary.
pub fn main<P: Probe>() -> ExitCode {
    // Panics become UNKNOWN results; never print a backtrace at the user.
    std::panic::set_hook(Box::new(|_| {}));
    let cmd = Cli::<P::Args>::command()
        .name(P::BIN)
        .bin_name(P::BIN)
        .version(VERSION)
        .about(P::ABOUT);
    let matches: ArgMatches = match cmd.try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            use clap::error::ErrorKind::*;
            if matches!(e.kind(), DisplayHelp | DisplayVersion) {
                print!("{e}");
                return ExitCode::SUCCESS;
            }
            let text = e.to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            return unknown_line(P::LABEL, &format!("bad arguments: {first} (see --help)"));
        }
    };
    let cli = match Cli::<P::Args>::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => return unknown_line(P::LABEL, &format!("bad arguments: {e}")),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return unknown_line(P::LABEL, &format!("cannot start runtime: {e}")),
    };
    let result = rt.block_on(run_probe::<P>(&cli.common, cli.args, signals()));
    let text = match cli.common.output {
        OutputFormat::Nagios => nagios::render(&result, cli.common.verbose.min(3)),
        OutputFormat::Json => crate::json::render(&result),
    };
    print!("{text}");
    ExitCode::from(result.status.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_seconds_and_humantime() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-3").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
