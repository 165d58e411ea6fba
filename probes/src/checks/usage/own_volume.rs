//! USAGE-03's strong check (`--own-volume`): a short-lived volume of this
//! run, made through the `Volumes` seam, must show in the project's volume
//! usage (the seam's `Usage`) with its size; then it is deleted. Cinder's
//! summary keeps no deleted volume, so the volume cannot come from an
//! earlier probe of the harness (as the VM probe's server does for USAGE-02):
//! it must exist while the usage is read.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::{run_id, UsageRecord, VolumePhase, VolumeSpec, Volumes};
use crate::checks::block_storage::wait_gone;
use crate::checks::vm_lifecycle::{
    self, CREATED_KEY, HOST_KEY, NAME_PREFIX, OWNER_KEY, RUN_KEY, UNTIL_KEY,
};
use crate::clients::usage::VolumeSummary;
use crate::clock::now_unix;
use crate::model::Cleanup;
use crate::poll::{wait_for, Poll, Wait};
use crate::record::ResourceId;
use crate::{Ctx, Fail};

/// Clock skew between the site and us that is not a fault.
const SKEW: f64 = 300.0;

/// What the own volume is.
#[derive(Clone, Debug)]
pub struct Own {
    pub size_gb: u64,
    pub volume_type: Option<String>,
    pub timeout: Duration,
    pub host: String,
    pub run_id: String,
}

impl Own {
    pub fn new(size_gb: u64, volume_type: Option<String>, timeout: Duration, host: String) -> Own {
        Own {
            size_gb,
            volume_type,
            timeout,
            host,
            run_id: run_id(),
        }
    }

    fn tags(&self, ends_by: f64) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert(HOST_KEY.to_string(), self.host.clone());
        m.insert(RUN_KEY.to_string(), self.run_id.clone());
        m.insert(CREATED_KEY.to_string(), format!("{}", now_unix() as u64));
        m.insert(UNTIL_KEY.to_string(), format!("{}", ends_by.ceil() as u64));
        if let Some(owner) = vm_lifecycle::run_owner(std::process::id()) {
            m.insert(OWNER_KEY.to_string(), owner);
        }
        m
    }
}

/// The volume made, tracked for deletion on every exit path.
pub struct Made {
    pub id: String,
    pub handle: ResourceId,
    /// Unix time the create was asked.
    pub asked: f64,
    /// Seconds from the create to available.
    pub ready_secs: f64,
}

/// Create the volume and wait until it is available (an `error` volume is
/// CRITICAL with the cloud's reason).
pub async fn create<V: Volumes>(ctx: &Ctx, cloud: &V, own: &Own) -> Result<Made, Fail> {
    let name = format!("{NAME_PREFIX}usage-vol-{}", own.run_id);
    let ends_by = now_unix() + 2.0 * ctx.deadline().remaining().as_secs_f64();
    let spec = VolumeSpec {
        name: name.clone(),
        size_gb: own.size_gb,
        volume_type: own.volume_type.clone(),
        metadata: own.tags(ends_by),
    };
    let asked = now_unix();
    let t = Instant::now();
    // Until an id comes back, cleanup finds the volume by the run's tag.
    let in_flight = crate::checks::block_storage::track_volume_run(ctx, cloud, &own.run_id);
    let id = cloud
        .create_volume(&spec)
        .await
        .map_err(|f| f.context("creating the own volume"))?;
    let handle = crate::checks::block_storage::track_volume(ctx, cloud, &id, &name);
    ctx.forget(in_flight);
    let wait = Wait::bounded(ctx.deadline(), own.timeout, None).sleep_first();
    let vid = id.as_str();
    let waited = wait_for(wait, || {
        let fut = cloud.volume(vid);
        async move {
            let Some(v) = fut.await? else {
                return Err(Fail::critical(format!(
                    "own volume {vid} disappeared before it was available"
                )));
            };
            match v.phase {
                VolumePhase::Available => Ok(Poll::Ready(())),
                VolumePhase::Error { reason } => Err(Fail::critical(format!(
                    "own volume {vid} went to {}: {}",
                    v.status_text,
                    reason.as_deref().unwrap_or("the cloud gives no reason")
                ))),
                _ => Ok(Poll::Pending(v.status_text)),
            }
        }
    })
    .await?;
    waited.or_fail(|l| {
        format!(
            "own volume {id} not available after {:.0}s; last status {}",
            l.limit.as_secs_f64(),
            l.last
        )
    })?;
    Ok(Made {
        id,
        handle,
        asked,
        ready_secs: t.elapsed().as_secs_f64(),
    })
}

/// The own volume in the usage: listed, with the size it was made with and
/// a creation time between the ask and now (give or take the clock skew).
pub fn judge(
    records: &[UsageRecord],
    id: &str,
    size_gb: u64,
    asked: f64,
    now: f64,
) -> Result<String, String> {
    let Some(r) = records.iter().find(|r| r.id == id) else {
        return Err(format!(
            "own volume {id} ({size_gb} GiB, made {:.0}s ago) is missing from the volume usage \
             ({} volume(s) listed)",
            (now - asked).max(0.0),
            records.len()
        ));
    };
    match r.size_gb {
        Some(s) if s == size_gb => {}
        Some(s) => {
            return Err(format!(
                "own volume {id} is accounted with {s} GiB, made with {size_gb} GiB"
            ))
        }
        None => return Err(format!("own volume {id} is listed without a size")),
    }
    match r.started {
        Some(t) if t < asked - SKEW || t > now + SKEW => Err(format!(
            "own volume {id} is accounted as created {:.0}s from when it was made",
            t - asked
        )),
        Some(_) => Ok(format!("own volume {id} listed with {size_gb} GiB")),
        None => Ok(format!(
            "own volume {id} listed with {size_gb} GiB (no creation time given)"
        )),
    }
}

/// Cinder's summary against the list read around it. When the two lists
/// agreed (`stable`) the summary must count exactly what is listed; when the
/// project changed meanwhile it must at least be able to hold the own volume.
pub fn judge_summary(
    s: &VolumeSummary,
    list: &[UsageRecord],
    stable: bool,
    own_gb: u64,
) -> Result<String, String> {
    let n = list.len() as u64;
    let gb: u64 = list.iter().filter_map(|r| r.size_gb).sum();
    let said = format!(
        "the volume summary counts {} volume(s), {} GB",
        s.total_count, s.total_size
    );
    if stable {
        if s.total_count == n && (s.total_size - gb as f64).abs() < 0.5 {
            return Ok(format!(
                "counted in the volume summary ({n} volume(s), {gb} GB, as listed)"
            ));
        }
        return Err(format!(
            "{said}, but the project lists {n} volume(s), {gb} GB, own volume included"
        ));
    }
    if s.total_count >= 1 && s.total_size >= own_gb as f64 {
        return Ok(
            "counted in the volume summary (the project changed while read: compared loosely)"
                .into(),
        );
    }
    Err(format!(
        "{said}: it cannot hold the own volume of {own_gb} GiB"
    ))
}

/// Delete the own volume and wait until it is gone (bounded like the
/// create); settled on success, otherwise the runner's cleanup tries again.
pub async fn delete<V: Volumes>(ctx: &Ctx, cloud: &V, own: &Own, made: Made) -> Result<f64, Fail> {
    let t = Instant::now();
    let id = made.id.as_str();
    cloud
        .delete_volume(id)
        .await
        .map_err(|f| f.context(format!("deleting own volume {id}")))?;
    wait_gone(ctx, cloud, id, "own volume", own.timeout, None).await?;
    ctx.settle(made.handle, Cleanup::Deleted);
    Ok(t.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, size: Option<u64>, started: Option<f64>) -> UsageRecord {
        UsageRecord {
            id: id.into(),
            size_gb: size,
            started,
            ..UsageRecord::default()
        }
    }

    #[test]
    fn the_own_volume_must_be_listed_with_its_size_and_a_sane_time() {
        let now = 1_000_000.0;
        let asked = now - 5.0;
        let ok = [
            rec("a", Some(3), None),
            rec("v", Some(1), Some(asked + 1.0)),
        ];
        assert_eq!(
            judge(&ok, "v", 1, asked, now).unwrap(),
            "own volume v listed with 1 GiB"
        );
        let e = judge(&ok[..1], "v", 1, asked, now).unwrap_err();
        assert!(
            e.contains("missing from the volume usage (1 volume(s) listed)"),
            "{e}"
        );
        let e = judge(&[rec("v", Some(2), None)], "v", 1, asked, now).unwrap_err();
        assert!(e.contains("accounted with 2 GiB, made with 1 GiB"), "{e}");
        assert!(judge(&[rec("v", None, None)], "v", 1, asked, now).is_err());
        let e = judge(
            &[rec("v", Some(1), Some(asked - 4000.0))],
            "v",
            1,
            asked,
            now,
        )
        .unwrap_err();
        assert!(e.contains("created -4000s"), "{e}");
        assert!(judge(&[rec("v", Some(1), None)], "v", 1, asked, now)
            .unwrap()
            .contains("no creation time"));
    }

    #[test]
    fn the_summary_must_count_what_is_listed() {
        let list = [rec("a", Some(3), None), rec("v", Some(1), None)];
        let sum = |c, s| VolumeSummary {
            total_count: c,
            total_size: s,
        };
        assert!(judge_summary(&sum(2, 4.0), &list, true, 1).is_ok());
        let e = judge_summary(&sum(1, 3.0), &list, true, 1).unwrap_err();
        assert!(
            e.contains("counts 1 volume(s), 3 GB, but the project lists 2 volume(s), 4 GB"),
            "{e}"
        );
        assert!(judge_summary(&sum(5, 9.0), &list, false, 1).is_ok());
        assert!(judge_summary(&sum(0, 0.0), &list, false, 1).is_err());
    }
}
