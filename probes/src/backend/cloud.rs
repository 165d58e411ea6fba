//! One probe, any cloud: `--cloud` picks the backend, its login prologue
//! runs, and [`with_backend!`] hands the connected backend to probe logic
//! written against the traits only (`Compute`, `ImageStore`, `Volumes`).
//!
//! A new cloud adds a variant to [`Connected`], an arm to [`connect`] and one
//! to [`with_backend!`]; the probes do not change.

use super::azure::{self, Azure};
use super::ec2::{self, Ec2};
use super::opennebula::{self, OpenNebula};
use super::openstack::{self, OpenStack};
use crate::auth::cloud::CloudKind;
use crate::auth::AuthArgs;
use crate::{Ctx, Fail};

/// A logged-in backend of whichever cloud `--cloud` named.
// One per run: the size difference between clouds' backends costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Connected {
    OpenStack(OpenStack),
    OpenNebula(OpenNebula),
    Azure(Azure),
    Gce(super::gce::Gce),
    Ec2(Ec2),
}

impl Connected {
    pub fn kind(&self) -> CloudKind {
        match self {
            Connected::OpenStack(_) => CloudKind::OpenStack,
            Connected::OpenNebula(_) => CloudKind::OpenNebula,
            Connected::Azure(_) => CloudKind::Azure,
            Connected::Gce(_) => CloudKind::Gce,
            Connected::Ec2(_) => CloudKind::Ec2,
        }
    }
}

/// Log in to the cloud `args.cloud` names (recording its login steps and
/// `auth` perfdata) and return its backend.
pub async fn connect(ctx: &Ctx, args: &AuthArgs) -> Result<Connected, Fail> {
    ctx.detail(format!("cloud API: {}", args.cloud.api()));
    // Each login boxed: the future of this match is its largest arm, carried
    // by every probe run for all of its stages.
    match args.cloud {
        CloudKind::OpenStack => Ok(Connected::OpenStack(
            Box::pin(openstack::login(ctx, args)).await?,
        )),
        CloudKind::OpenNebula => Ok(Connected::OpenNebula(
            Box::pin(opennebula::login(ctx, args)).await?,
        )),
        CloudKind::Azure => Ok(Connected::Azure(Box::pin(azure::login(ctx, args)).await?)),
        CloudKind::Gce => Ok(Connected::Gce(
            Box::pin(super::gce::connect(ctx, args)).await?,
        )),
        CloudKind::Ec2 => Ok(Connected::Ec2(Box::pin(ec2::login(ctx, args)).await?)),
    }
}

/// Run `$body` with `$b` bound to the connected backend, whatever its type:
/// `with_backend!(connected, b => lifecycle(&ctx, &b, &plan).await)`.
/// `mut` before the name binds it mutably.
#[macro_export]
macro_rules! with_backend {
    ($c:expr, mut $b:ident => $body:expr) => {
        match $c {
            $crate::backend::cloud::Connected::OpenStack(mut $b) => $body,
            $crate::backend::cloud::Connected::OpenNebula(mut $b) => $body,
            $crate::backend::cloud::Connected::Azure(mut $b) => $body,
            $crate::backend::cloud::Connected::Gce(mut $b) => $body,
            $crate::backend::cloud::Connected::Ec2(mut $b) => $body,
        }
    };
    ($c:expr, $b:ident => $body:expr) => {
        match $c {
            $crate::backend::cloud::Connected::OpenStack($b) => $body,
            $crate::backend::cloud::Connected::OpenNebula($b) => $body,
            $crate::backend::cloud::Connected::Azure($b) => $body,
            $crate::backend::cloud::Connected::Gce($b) => $body,
            $crate::backend::cloud::Connected::Ec2($b) => $body,
        }
    };
}
