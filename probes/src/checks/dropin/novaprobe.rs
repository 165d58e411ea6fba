//! `novaprobe`: production's eu.egi.cloud.OpenStack-VM probe. Its flags are
//! a subset of check_vm_lifecycle's, with the same defaults (`--vm-timeout
//! 300`, `--identity-provider egi.eu`, `--argo-host-name` this machine,
//! `--cert` the CA file), so the mapping is the probe itself under another
//! name. One difference: production's `-t` (default 120) bounds each HTTP
//! request, fedprobe's bounds the whole run, cleanup included; without `-t`
//! the run gets twice the default `--vm-timeout` (production bounds the
//! create wait and the delete wait by it each).

use std::time::Duration;

use crate::checks::vm_lifecycle::{Args, VmLifecycle};
use crate::model::{CheckId, ProbeResult};
use crate::probe::{Link, Probe};
use crate::{Ctx, Fail};

pub struct Novaprobe;

impl Probe for Novaprobe {
    const BIN: &'static str = "novaprobe";
    const LABEL: &'static str = VmLifecycle::LABEL;
    const ABOUT: &'static str =
        "Drop-in for production's novaprobe (eu.egi.cloud.OpenStack-VM): runs check_vm_lifecycle";
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
    type Args = Args;
    const PROVIDES: &'static [Link] = VmLifecycle::PROVIDES;

    fn checks() -> Vec<CheckId> {
        VmLifecycle::checks()
    }

    async fn run(args: Args, ctx: Ctx) -> Result<String, Fail> {
        VmLifecycle::run(args, ctx).await
    }

    fn offers(r: &ProbeResult) -> Vec<(Link, String)> {
        VmLifecycle::offers(r)
    }
}
