//! Accounting: an APEL spool per site as cASO leaves it (dirq
//! QueueSimple layout, v0.4 cloud messages with cASO's sorted keys) and a
//! last-update endpoint like an accounting portal's.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use hyper::StatusCode;
use serde_json::json;

use crate::dates::{iso_secs, unix};
use crate::faults::Fault;
use crate::fixtures::{base_image_id, stable_id, stable_uuid, FLAVORS};
use crate::http::{not_found, reply, Resp};
use crate::state::{Cloud, Site};

/// cASO runs hourly: the newest record is about an hour old.
const CASO_LAG: i64 = 3600;
/// The `stale-accounting` fault: nothing published for 40 days.
pub const STALE_DAYS: i64 = 40;

/// When the site's accounting was last updated (Unix seconds).
pub fn last_update(c: &Cloud) -> i64 {
    let started = unix(c.started);
    if c.fault(Fault::StaleAccounting) {
        started - STALE_DAYS * 86_400
    } else {
        started - CASO_LAG
    }
}

/// The site's spool directory under the demo's temp dir.
pub fn spool_dir(root: &Path, i: usize) -> PathBuf {
    root.join("apel").join(format!("s{i}"))
}

/// One v0.4 message for the servers the site's ops project ran in the few
/// hours before `last`: completed ones and one still running then.
pub fn cloud_message(site: &Site, last: i64) -> String {
    let project = site.project_id("ops");
    let user = stable_id(&format!("{}-monitoring-user-sha", site.name));
    let image = base_image_id(&site.name);
    let mut out = String::from("APEL-cloud-message: v0.4\n");
    let runs: [(usize, i64, Option<i64>); 3] = [
        (0, last - 3 * 3600, Some(last - 2 * 3600)),
        (2, last - 5 * 3600, Some(last - 4 * 3600 + 17)),
        (1, last - 6 * 3600, None),
    ];
    for (n, (flavor, start, end)) in runs.iter().enumerate() {
        let f = &FLAVORS[*flavor];
        let (vcpus, ram, disk) = (f.vcpus, f.ram_mb, f.disk_gb);
        let wall = end.unwrap_or(last) - start;
        if n > 0 {
            out.push_str("%%\n");
        }
        // cASO writes the fields sorted by name.
        let fields = [
            ("CloudComputeService", "demo-compute".to_string()),
            ("CloudType", "caso/5.2.2 (OpenStack)".into()),
            ("CpuCount", vcpus.to_string()),
            ("CpuDuration", (wall * i64::from(vcpus)).to_string()),
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
            (
                "VMUUID",
                stable_uuid(&format!("{}-past-server-{n}", site.name)),
            ),
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
pub fn last_update_endpoint(c: &Cloud, i: usize, rest: &[&str]) -> Resp {
    if rest != ["last-update"] {
        return not_found();
    }
    let Some(site) = c.site(i) else {
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
    fn spool_file_is_where_dirq_puts_it() {
        let site = Site::new(3, "DEMO-003".into());
        let dir = tempfile::tempdir().unwrap();
        let last = 1_790_000_000;
        let p = write_spool(dir.path(), &site, last).unwrap();
        let minute = last - last % 60;
        assert_eq!(
            p.parent().unwrap(),
            dir.path().join(format!("{minute:08x}"))
        );
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [p.file_name().unwrap()], "no .tmp left behind");
        let modified = std::fs::metadata(&p).unwrap().modified().unwrap();
        assert_eq!(unix(modified), last);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("APEL-cloud-message: v0.4\n"), "{text}");
        assert_eq!(text.matches("SiteName: DEMO-003\n").count(), 3);
        assert_eq!(text.matches("\n%%\n").count(), 2);
    }
}
