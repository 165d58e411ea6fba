//! The `main` every probe binary calls: parse, run under the deadline with
//! SIGTERM/SIGINT handled, render, scrub, print, exit.

use std::process::ExitCode;

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

fn unknown_line(label: &str, msg: &str) -> ExitCode {
    let line = render::nagios::cap(render::nagios::first_line(label, "UNKNOWN", msg, ""), &[]);
    print!("{}", crate::secret::scrub(&line));
    ExitCode::from(Status::Unknown.exit_code())
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
    let result = rt.block_on(run::<P>(inv, signals(), None));
    print!("{}", render::output(&result, format, verbosity));
    ExitCode::from(result.status.exit_code())
}
