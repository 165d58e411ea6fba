//! Demo accounting: an APEL spool per site as cASO leaves it (dirq
//! QueueSimple layout, v0.4 cloud messages with cASO's sorted keys) and a
//! last-update endpoint like an accounting portal's.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::StatusCode;
use serde_json::json;

use super::nova::FLAVORS;
use super::server::{iso_secs, not_found, reply, Cloud, Resp};
use super::state::{stable_id, Site};

/// cASO runs hourly: the newest record is about an hour old.
const CASO_LAG: i64 = 3600;
/// The `stale-accounting` fault: nothing published for 40 days.
pub const STALE_DAYS: i64 = 40;

fn secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// When the site's accounting was last updated (Unix seconds).
pub fn last_update(c: &Cloud) -> i64 {
    let started = secs(c.started);
    if c.faults.stale_accounting {
        started - STALE_DAYS * 86_400
    } else {
        started - CASO_LAG
    }
}

/// The site's spool directory under the demo's temp dir.
pub fn spool_dir(root: &Path, i: usize) -> PathBuf {
    root.join("apel").join(format!("s{i}"))
}

fn uuid(seed: &str) -> String {
    let h = stable_id(seed);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// One v0.4 message for the servers the site's ops project ran in the few
/// hours before `last`: completed ones and one still running then.
pub fn cloud_message(site: &Site, last: i64) -> String {
    let project = site.project_id("ops");
    let user = stable_id(&format!("{}-monitoring-user-sha", site.name));
    let image = uuid(&format!("{}-base-image", site.name));
    let mut out = String::from("APEL-cloud-message: v0.4\n");
    let runs: [(usize, i64, Option<i64>); 3] = [
        (0, last - 3 * 3600, Some(last - 2 * 3600)),
        (2, last - 5 * 3600, Some(last - 4 * 3600 + 17)),
        (1, last - 6 * 3600, None),
    ];
    for (n, (flavor, start, end)) in runs.iter().enumerate() {
        let (_, _, vcpus, ram, disk) = FLAVORS[*flavor];
        let wall = end.unwrap_or(last) - start;
        if n > 0 {
            out.push_str("%%\n");
        }
        // cASO writes the fields sorted by name.
        let fields = [
            ("CloudComputeService", "demo-compute".to_string()),
            ("CloudType", "caso/5.2.2 (OpenStack)".into()),
            ("CpuCount", vcpus.to_string()),
            ("CpuDuration", (wall * vcpus as i64).to_string()),
            ("Disk", disk.to_string()),
            ("EndTime", end.unwrap_or(0).to_string()),
            ("FQAN", "ops".into()),
            ("GlobalUserName", "monitoring-user@egi.eu".into()),
            ("ImageId", image.clone()),
            ("LocalGroupId", project.clone()),
            ("LocalUserId", user.clone()),
            ("MachineName", format!("demo-worker-{n}")),
            ("Memory", ram.to_string()),
            ("PublicIPCount", "0".into()),
            ("SiteName", site.name.clone()),
            ("StartTime", start.to_string()),
            (
                "Status",
                if end.is_some() {
                    "completed"
                } else {
                    "started"
                }
                .into(),
            ),
            ("VMUUID", uuid(&format!("{}-past-server-{n}", site.name))),
            ("WallDuration", wall.to_string()),
        ];
        for (k, v) in fields {
            out.push_str(&format!("{k}: {v}\n"));
        }
    }
    out
}

/// Write the site's message where dirq would: `<dir>/<8 hex minute>/<14 hex>`,
/// through a `.tmp` file renamed into place, dated `last`.
pub fn write_spool(dir: &Path, site: &Site, last: i64) -> std::io::Result<PathBuf> {
    let minute = last - last.rem_euclid(60);
    let sub = dir.join(format!("{minute:08x}"));
    std::fs::create_dir_all(&sub)?;
    let name = format!("{last:08x}{:05x}{:01x}", site.index % 0x10_0000, 0);
    let path = sub.join(&name);
    let tmp = sub.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(cloud_message(site, last).as_bytes())?;
    f.set_modified(UNIX_EPOCH + Duration::from_secs(last.max(0) as u64))?;
    drop(f);
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// `GET /sN/accounting/last-update`: the site's newest accounting record.
pub(super) fn last_update_endpoint(c: &Cloud, i: usize, rest: &[&str]) -> Resp {
    if rest != ["last-update"] {
        return not_found();
    }
    let Ok(site) = c.sites[i].lock() else {
        return not_found();
    };
    reply(
        StatusCode::OK,
        json!({"site": site.name, "last_update": iso_secs(last_update(c))}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_messages_pass_the_validator() {
        let site = Site::new(3, "DEMO-003".into());
        let dir = tempfile::tempdir().unwrap();
        let last = 1_790_000_000;
        let p = write_spool(dir.path(), &site, last).unwrap();
        let files = probes::checks::usage::spool_files(dir.path()).unwrap();
        assert_eq!(files.len(), 1, "no .tmp left behind: {files:?}");
        assert_eq!(files[0].0, p);
        assert_eq!(secs(files[0].1), last);
        let r = probes::formats::apel::check_message("demo", &std::fs::read(&p).unwrap());
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(r.records, 3);
        assert!(r.sites.contains("DEMO-003"));
    }
}
