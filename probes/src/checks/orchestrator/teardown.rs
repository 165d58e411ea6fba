//! check_orchestrator's cleanups: a deployment is destroyed through the
//! orchestrator once IM lets go of it, and the servers IM reported are
//! deleted at the site too (IM 2.0 can forget a deployment whose VM still
//! appears).

use std::time::Duration;

use crate::backend::{delete_server_and_wait, Compute};
use crate::clients::im::Im;
use crate::deadline::{Deadline, WithDeadline};
use crate::model::ResourceKind;
use crate::poll::{wait_for, Poll, Wait, Waited};
use crate::record::ResourceId;
use crate::{Ctx, Fail};

/// Most infrastructures read back when looking for a lost create's.
const MAX_LISTED: usize = 50;
/// Most VMs of one deployment read (it asks for one).
const MAX_VMS: usize = 4;

/// The orchestrator and the site, for cleanups that need both.
#[derive(Clone)]
struct Both<C> {
    im: Im,
    cloud: C,
}

impl<C: WithDeadline> WithDeadline for Both<C> {
    fn with_deadline(&self, deadline: Deadline) -> Self {
        Both {
            im: self.im.with_deadline(deadline),
            cloud: self.cloud.with_deadline(deadline),
        }
    }
}

/// Destroy the deployment through the orchestrator, then delete at the
/// site any server it had reported (its destroy may leave some behind).
pub fn track_infrastructure<C: Compute>(ctx: &Ctx, im: &Im, cloud: &C, id: &str) -> ResourceId {
    let both = Both {
        im: im.clone(),
        cloud: cloud.clone(),
    };
    ctx.track(
        ResourceKind::Infrastructure,
        id,
        None,
        &both,
        |b, id| async move { teardown(&b, &id).await },
    )
}

/// Cleanup for a create whose answer has not come: tear down whatever
/// deployment of this IM user carries the run's system name.
pub fn track_request<C: Compute>(ctx: &Ctx, im: &Im, cloud: &C, system: &str) -> ResourceId {
    let needle = format!("system {system} ");
    let both = Both {
        im: im.clone(),
        cloud: cloud.clone(),
    };
    ctx.track(
        ResourceKind::Infrastructure,
        &format!("request {system}"),
        None,
        &both,
        move |b, _| async move {
            // A request still on its way may not be listed yet: look twice.
            for attempt in 0..2 {
                let mut found = false;
                for id in b.im.list().await?.into_iter().take(MAX_LISTED) {
                    if b.im.radl(&id).await?.is_some_and(|r| r.contains(&needle)) {
                        teardown(&b, &id).await?;
                        found = true;
                    }
                }
                if found || attempt == 1 {
                    break;
                }
                b.im.deadline().sleep(Duration::from_secs(1)).await;
            }
            Ok(())
        },
    )
}

/// Tear a deployment down: destroy it with force once IM has settled, then
/// make sure the site servers IM reported are gone at the site. Bounded by
/// the deadline the cleanup was given.
///
/// IM 2.0 accepts a destroy that comes before its create has reached the
/// cloud, reports success, and then launches the VM anyway, into a
/// deployment it no longer lists. So a deployment still `pending` without
/// VMs is waited for, and IM's 409 ("Invalid State") while it adds VMs too.
async fn teardown<C: Compute>(b: &Both<C>, inf: &str) -> Result<(), Fail> {
    let seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let waited = wait_for(Wait::until_deadline(), || async {
        let Some(state) = b.im.state(inf).await? else {
            // IM dropped it (its own cleanup of a failed create).
            return Ok(Poll::Ready(()));
        };
        let ids = instance_ids(&b.im, inf).await.unwrap_or_default();
        let has_vms = !ids.is_empty() || !state.vms.is_empty();
        if let Ok(mut s) = seen.lock() {
            s.extend(ids);
        }
        if state.state == "pending" && !has_vms {
            return Ok(Poll::Pending(
                "the orchestrator is still creating it".into(),
            ));
        }
        match b.im.destroy(inf, true).await {
            Ok(_) => Ok(Poll::Ready(())),
            Err(f) if f.http_status() == Some(409) => Ok(Poll::Pending(f.message)),
            Err(f) => Err(f),
        }
    })
    .await?;
    if let Waited::TimedOut { last, .. } = waited {
        return Err(Fail::timeout(format!(
            "not destroyed when the deadline came: {last}"
        )));
    }
    let servers: Vec<String> = seen
        .lock()
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default();
    for id in servers {
        delete_server_and_wait(&b.cloud, &id).await?;
    }
    Ok(())
}

/// The site's server ids of a deployment's VMs, as IM reports them.
pub async fn instance_ids(im: &Im, inf: &str) -> Result<Vec<String>, Fail> {
    let mut out = Vec::new();
    for vm in im.vms(inf).await?.iter().take(MAX_VMS) {
        if let Some(id) = im.vm_property(inf, vm, "instance_id").await? {
            out.push(id);
        }
    }
    Ok(out)
}
