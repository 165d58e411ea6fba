//! check_block_storage against fakecloud, the demo's site: the whole cycle,
//! and its block-storage faults (volume stuck creating, attach failing,
//! volume quota exhausted), each ending CRITICAL at its stage with nothing
//! left behind.

use std::time::Instant;

use probes::checks::block_storage::BlockStorage;
use probes::model::{Cleanup, ProbeResult};
use probes::Status;

use crate::mockcloud::run;

async fn site(faults: &[fakecloud::Fault]) -> fakecloud::FakeCloud {
    fakecloud::FakeCloud::start(fakecloud::Options {
        boot_delay: std::time::Duration::from_millis(300),
        faults: fakecloud::Faults::of(faults.iter().copied()),
        ..fakecloud::Options::default()
    })
    .await
    .expect("start fakecloud")
}

async fn probe(c: &fakecloud::FakeCloud, extra: &[&str]) -> ProbeResult {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("oidc");
    std::fs::write(&token, &c.cloud.access_token).unwrap();
    let mut argv: Vec<String> = [
        "--endpoint",
        &c.keystone(0),
        "--access-token",
        &token.display().to_string(),
        "--identity-provider",
        fakecloud::fixtures::IDP,
        "--registry-image",
        "egi.ubuntu.22.04",
        "--argo-host-name",
        "blk-fake",
        "-t",
        "60",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if extra.contains(&"-t") {
        // The caller's -t instead of 60.
        argv.truncate(argv.len() - 2);
    }
    argv.extend(extra.iter().map(|s| s.to_string()));
    run::<BlockStorage>(&argv).await
}

fn step<'a>(r: &'a ProbeResult, id: &str) -> &'a probes::model::Step {
    r.steps
        .iter()
        .find(|s| s.check == id)
        .unwrap_or_else(|| panic!("no {id}: {:#?}", r.steps))
}

/// No volume or server of the site still there, every resource deleted.
fn nothing_left(c: &fakecloud::FakeCloud, r: &ProbeResult) {
    for x in &r.resources {
        assert_eq!(x.cleanup, Cleanup::Deleted, "{x:?}");
    }
    let now = Instant::now();
    let site = c.cloud.site(0).unwrap();
    let vols = site.volumes.values().filter(|v| !v.gone(now)).count();
    let servers = site
        .servers
        .values()
        .filter(|s| s.deleted.is_none())
        .count();
    assert_eq!((vols, servers), (0, 0), "left on the site");
}

#[tokio::test]
async fn the_cycle_passes_on_the_demo_site() {
    let c = site(&[]).await;
    let r = probe(&c, &[]).await;
    assert_eq!(r.status, Status::Ok, "{}: {:#?}", r.summary, r.steps);
    assert!(step(&r, "BLK-06").message.contains("lists volume"));
    assert_eq!(r.resources.len(), 2);
    nothing_left(&c, &r);
}

#[tokio::test]
async fn a_volume_stuck_creating_is_critical_at_blk_03() {
    let c = site(&[fakecloud::Fault::VolumeStuckCreating]).await;
    let r = probe(&c, &["--volume-timeout", "2s"]).await;
    assert_eq!(r.status, Status::Critical, "{:#?}", r.steps);
    let s = step(&r, "BLK-03");
    assert_eq!(s.status, Status::Critical);
    assert!(s.message.contains("not available after"), "{}", s.message);
    assert!(s.message.contains("last status creating"), "{}", s.message);
    // Its own limit ended the wait, not -t.
    assert!(!s.cut_by_deadline, "{s:?}");
    nothing_left(&c, &r);
}

/// The same volume with -t shorter than --volume-timeout: the wait is cut
/// by what -t left, a typed fact of BLK-03 (CRITICAL: the site had not
/// made the volume), and the cleanup still runs within -t.
#[tokio::test]
async fn a_volume_wait_cut_by_minus_t_says_so() {
    let c = site(&[fakecloud::Fault::VolumeStuckCreating]).await;
    let r = probe(&c, &["-t", "8"]).await;
    assert_eq!(r.status, Status::Critical, "{:#?}", r.steps);
    let s = step(&r, "BLK-03");
    assert_eq!(s.status, Status::Critical);
    assert!(s.cut_by_deadline, "{s:?}");
    assert!(
        r.duration < std::time::Duration::from_secs(8),
        "{:?}",
        r.duration
    );
    nothing_left(&c, &r);
}

#[tokio::test]
async fn a_failing_attach_is_critical_at_blk_05_and_cleaned() {
    let c = site(&[fakecloud::Fault::AttachFailing]).await;
    let r = probe(&c, &[]).await;
    assert_eq!(r.status, Status::Critical, "{:#?}", r.steps);
    let s = step(&r, "BLK-05");
    assert_eq!(s.status, Status::Critical);
    assert!(
        s.message.contains("went from attaching back to available"),
        "{}",
        s.message
    );
    nothing_left(&c, &r);
}

#[tokio::test]
async fn an_exhausted_volume_quota_is_critical_at_blk_01_before_creating() {
    let c = site(&[fakecloud::Fault::VolumeQuotaExhausted]).await;
    let r = probe(&c, &[]).await;
    assert_eq!(r.status, Status::Critical, "{:#?}", r.steps);
    let s = step(&r, "BLK-01");
    assert!(
        s.message
            .contains("no room for one more volume of 1 GiB: volumes 0 of 0 used"),
        "{}",
        s.message
    );
    assert!(r.steps.iter().all(|s| s.check != "BLK-02"));
    assert!(r.resources.is_empty(), "{:#?}", r.resources);
    nothing_left(&c, &r);
}
