//! `swiftprobe`: production's eu.egi.cloud.OpenStack-Swift probe. Its flags
//! (`--endpoint`, `--access-token`, `--cert`, `-t` default 120,
//! `--identity-provider` default egi.eu, `-v`) are a subset of
//! check_object_storage's, with the same defaults, so the mapping is that
//! probe under another name. It checks more than production (byte and
//! MD5/ETag comparison, the listing, deletions confirmed) and removes what
//! it created on every exit path. As for novaprobe, `-t` bounds the whole
//! run, cleanup included, where production's bounds each request.

use std::time::Duration;

use crate::checks::object_storage::{Args, ObjectStorage};
use crate::model::CheckId;
use crate::probe::Probe;
use crate::{Ctx, Fail};

pub struct Swiftprobe;

impl Probe for Swiftprobe {
    const BIN: &'static str = "swiftprobe";
    const LABEL: &'static str = ObjectStorage::LABEL;
    const ABOUT: &'static str =
        "Drop-in for production's swiftprobe (eu.egi.cloud.OpenStack-Swift): runs check_object_storage";
    /// Production's default `-t`.
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
    type Args = Args;

    fn checks() -> Vec<CheckId> {
        ObjectStorage::checks()
    }

    async fn run(args: Args, ctx: Ctx) -> Result<String, Fail> {
        ObjectStorage::run(args, ctx).await
    }
}
