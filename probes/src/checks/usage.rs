//! check_usage: Check per-VM usage, block storage usage and accounting records.
//! Placeholder until its issue lands: reports UNKNOWN, never a fake OK.

use std::time::Duration;

use crate::cli::Probe;
use crate::{Ctx, Fail};

#[derive(clap::Args, Clone, Debug)]
pub struct Args {}

pub struct Usage;

impl Probe for Usage {
    const BIN: &'static str = "check_usage";
    const LABEL: &'static str = "USAGE";
    const ABOUT: &'static str = "Check per-VM usage, block storage usage and accounting records";
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
    type Args = Args;

    async fn run(_args: Args, _ctx: Ctx) -> Result<String, Fail> {
        Err(Fail::unknown("check_usage is not implemented yet"))
    }
}
