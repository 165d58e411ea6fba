//! check_glue: Check a site's GLUE 2.1 publication.
//! Placeholder until its issue lands: reports UNKNOWN, never a fake OK.

use std::time::Duration;

use crate::cli::Probe;
use crate::{Ctx, Fail};

#[derive(clap::Args, Clone, Debug)]
pub struct Args {}

pub struct Glue;

impl Probe for Glue {
    const BIN: &'static str = "check_glue";
    const LABEL: &'static str = "GLUE";
    const ABOUT: &'static str = "Check a site's GLUE 2.1 publication";
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
    type Args = Args;

    async fn run(_args: Args, _ctx: Ctx) -> Result<String, Fail> {
        Err(Fail::unknown("check_glue is not implemented yet"))
    }
}
