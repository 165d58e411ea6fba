//! Drop-in names: the production probes' command lines (ARGO's
//! argo-probe-fedcloud) accepted unchanged, mapped onto fedprobe's probes, so
//! a monitoring configuration switches by changing only the path.
//!
//! Not in [`super::ALL`]: they are other names for probes already there,
//! not probes of their own.

pub mod cloudinfo;
pub mod novaprobe;
pub mod swiftprobe;

use std::time::Duration;

use crate::probe::{Invocation, Probe};

/// One drop-in name.
#[derive(Clone, Copy)]
pub struct DropIn {
    pub name: &'static str,
    /// The fedprobe probe that answers for it.
    pub runs: &'static str,
    pub default_timeout: Duration,
    /// Its full command line (shared options included), named.
    pub command: fn() -> clap::Command,
}

pub const ALL: &[DropIn] = &[
    entry::<novaprobe::Novaprobe>("check_vm_lifecycle"),
    entry::<cloudinfo::Cloudinfo>("check_glue"),
    entry::<swiftprobe::Swiftprobe>("check_object_storage"),
];

const fn entry<P: Probe>(runs: &'static str) -> DropIn {
    DropIn {
        name: P::BIN,
        runs,
        default_timeout: P::DEFAULT_TIMEOUT,
        command: command::<P>,
    }
}

fn command<P: Probe>() -> clap::Command {
    Invocation::<P::Args>::command_for(P::BIN).about(P::ABOUT)
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_drop_in_runs_a_probe_of_the_table() {
        for d in super::ALL {
            assert!(crate::checks::find(d.runs).is_some(), "{}", d.runs);
            assert_eq!((d.command)().get_name(), d.name);
        }
    }
}
