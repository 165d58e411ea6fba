//! The `main` every probe binary calls: parse, run under the deadline with
//! SIGTERM/SIGINT handled, render, scrub, print, exit.

use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::model::Status;
use crate::probe::{arg_error_line, run, Invocation, Probe};
use crate::render;
use crate::runner::Stop;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Resolves on the first SIGTERM or SIGINT, naming it.
pub async fn signals() -> Stop {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => Stop::Signal("SIGTERM".into()),
        _ = int.recv() => Stop::Signal("SIGINT".into()),
    }
}

/// One scrubbed UNKNOWN line, for what ends a probe before (or without) a result.
fn unknown_text(label: &str, msg: &str, perf: &str) -> String {
    let line = render::nagios::cap(render::nagios::first_line(label, "UNKNOWN", msg, perf), &[]);
    crate::secret::scrub(&line)
}

fn unknown_line(label: &str, msg: &str) -> ExitCode {
    print!("{}", unknown_text(label, msg, ""));
    ExitCode::from(Status::Unknown.exit_code())
}

/// How long past `-t` the watchdog waits for the probe's own result.
const WATCHDOG_MARGIN: Duration = Duration::from_millis(500);

/// The exit code once the probe's output is printed; `None` before.
type Printed = Arc<Mutex<Option<u8>>>;

/// The last word on `-t` when the probe's thread cannot run at all (a read
/// of a FIFO or of a hung NFS mount blocks the runtime, its timers and its
/// signal handling with it): past the deadline and a margin it prints the
/// timeout line and ends the process. UNKNOWN whatever --timeout-status
/// says: what blocks outside the network calls is the monitor's own (its
/// files, its mounts). What the probe created is then not deleted; the
/// runner ends before this whenever it can run.
fn watchdog(label: &'static str, timeout: Duration, printed: Printed) {
    let t0 = Instant::now();
    let _ = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            std::thread::sleep(timeout + WATCHDOG_MARGIN);
            let done = printed.lock().unwrap_or_else(PoisonError::into_inner);
            let code = done.unwrap_or_else(|| {
                let msg = format!(
                    "Timeout: no result within {}s (-t): the probe's thread was held \
                     outside its network calls (a file or device that never answered, or \
                     work on an answer that ran past the deadline); what it created may be \
                     left behind",
                    crate::text::fmt_num(timeout.as_secs_f64())
                );
                let perf = crate::model::Perf::seconds("total", t0.elapsed()).to_string();
                let line = unknown_text(label, &msg, &perf);
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(line.as_bytes());
                let _ = out.flush();
                Status::Unknown.exit_code()
            });
            std::process::exit(i32::from(code));
        });
}

/// The whole `main` of a probe binary.
pub fn main<P: Probe>() -> ExitCode {
    // Panics become UNKNOWN results; never print a backtrace at the user.
    std::panic::set_hook(Box::new(|_| {}));
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let cmd = Invocation::<P::Args>::command_for(P::BIN)
        .version(VERSION)
        .about(P::ABOUT);
    let inv = match cmd
        .try_get_matches_from(&argv)
        .and_then(|m| <Invocation<P::Args> as clap::FromArgMatches>::from_arg_matches(&m))
    {
        Ok(inv) => inv,
        Err(e) => {
            use clap::error::ErrorKind::*;
            if matches!(e.kind(), DisplayHelp | DisplayVersion) {
                print!("{e}");
                return ExitCode::SUCCESS;
            }
            return unknown_line(P::LABEL, &format!("{} (see --help)", arg_error_line(&e)));
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return unknown_line(P::LABEL, &format!("cannot start runtime: {e}")),
    };
    let (format, verbosity) = (inv.common.output, inv.common.verbose.min(3));
    let printed = Printed::default();
    watchdog(
        P::LABEL,
        inv.common.timeout.unwrap_or(P::DEFAULT_TIMEOUT),
        printed.clone(),
    );
    let result = rt.block_on(run::<P>(inv, signals(), None));
    let code = result.status.exit_code();
    {
        // Held while printing: the watchdog, if it spoke first, holds it
        // until the process ends, so only one of them prints.
        let mut done = printed.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(render::output(&result, format, verbosity).as_bytes());
        let _ = out.flush();
        *done = Some(code);
    }
    // Not waiting for blocking work that may never end (a stuck read).
    rt.shutdown_background();
    ExitCode::from(code)
}
