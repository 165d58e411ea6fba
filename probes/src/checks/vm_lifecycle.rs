//! check_vm_lifecycle: Create, wait for and delete a VM through the API.
//! Placeholder until its issue lands: reports UNKNOWN, never a fake OK.

use std::time::Duration;

use crate::cli::Probe;
use crate::{Ctx, Fail};

#[derive(clap::Args, Clone, Debug)]
pub struct Args {}

pub struct VmLifecycle;

impl Probe for VmLifecycle {
    const BIN: &'static str = "check_vm_lifecycle";
    const LABEL: &'static str = "VM_LIFECYCLE";
    const ABOUT: &'static str = "Create, wait for and delete a VM through the API";
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
    type Args = Args;

    async fn run(_args: Args, _ctx: Ctx) -> Result<String, Fail> {
        Err(Fail::unknown("check_vm_lifecycle is not implemented yet"))
    }
}
