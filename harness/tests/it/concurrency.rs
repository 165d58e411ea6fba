//! `--jobs` and `--jobs-per-site` bound what runs at once: plugins that
//! detect an overlapping sibling through a shared lock directory.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fedprobe::progress::Progress;
use fedprobe::run::{run_all, ExternalPlan, Limits, SitePlan};
use probes::model::Status;

/// An executable shell script `name` in `dir` running `body`.
fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let script = dir.join(name);
    std::fs::write(&script, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script
}

fn plugin(dir: &Path, lock: &Path) -> Vec<String> {
    let body = format!(
        "if mkdir '{l}' 2>/dev/null; then sleep 0.6; rmdir '{l}'; echo 'OK - alone'; exit 0; fi\necho 'CRITICAL - overlapped'; exit 2\n",
        l = lock.display()
    );
    vec![script(dir, "check_overlap", &body).display().to_string()]
}

fn plans(sites: usize, per_site: usize, cmd: &[String]) -> Vec<SitePlan> {
    plans_with(sites, per_site, |_, _| cmd.to_vec())
}

/// Sites `S0..` with plugins `p0..`, plugin `i` of site `s` running `cmd(s, i)`.
fn plans_with(
    sites: usize,
    per_site: usize,
    cmd: impl Fn(usize, usize) -> Vec<String>,
) -> Vec<SitePlan> {
    (0..sites)
        .map(|s| {
            let externals = (0..per_site)
                .map(|i| ExternalPlan {
                    name: format!("p{i}"),
                    command: cmd(s, i),
                    timeout: Duration::from_secs(60),
                })
                .collect();
            SitePlan::new(format!("S{s}"), "g".into(), vec![], externals)
        })
        .collect()
}

fn limits(jobs: usize, jobs_per_site: usize) -> Limits {
    Limits {
        jobs,
        jobs_per_site,
        ..Limits::default()
    }
}

async fn statuses(plans: Vec<SitePlan>, jobs: usize, per_site: usize) -> Vec<Status> {
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let mut out = Vec::new();
    run_all(
        plans,
        limits(jobs, per_site),
        Arc::new(Progress::quiet()),
        rx,
        |r| out.extend(r.externals.into_iter().map(|e| e.status)),
    )
    .await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_overall_never_overlaps() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = plugin(dir.path(), &dir.path().join("lock"));
    let s = statuses(plans(2, 2, &cmd), 1, 4).await;
    assert_eq!(s, vec![Status::Ok; 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_per_site_never_overlaps_within_a_site() {
    let dir = tempfile::tempdir().unwrap();
    // One lock per site: sites may overlap each other, not themselves.
    let mut all = Vec::new();
    for s in 0..3 {
        let sd = dir.path().join(format!("s{s}"));
        std::fs::create_dir(&sd).unwrap();
        let cmd = plugin(&sd, &sd.join("lock"));
        let mut p = plans(1, 3, &cmd);
        p[0].site = format!("S{s}");
        all.extend(p);
    }
    let s = statuses(all, 8, 1).await;
    assert_eq!(s, vec![Status::Ok; 9]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_run_in_parallel_under_a_per_site_bound() {
    // One lock shared by all sites: with one job per site they still overlap.
    let dir = tempfile::tempdir().unwrap();
    let cmd = plugin(dir.path(), &dir.path().join("lock"));
    let s = statuses(plans(4, 1, &cmd), 8, 1).await;
    assert!(s.contains(&Status::Critical), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_bounds_the_plugins_do_overlap() {
    // The control: the detector does see overlap when it happens.
    let dir = tempfile::tempdir().unwrap();
    let cmd = plugin(dir.path(), &dir.path().join("lock"));
    let s = statuses(plans(1, 4, &cmd), 8, 4).await;
    assert!(s.contains(&Status::Critical), "{s:?}");
}

/// A site's finished results wait for its last job on the run's shelf (a
/// temporary file), and a site that ends before an earlier one waits for
/// it: everything comes back whole, each site in plan order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_that_end_out_of_order_come_back_whole_in_plan_order() {
    let dir = tempfile::tempdir().unwrap();
    let script = script(
        dir.path(),
        "check_says",
        "sleep \"$2\"\nprintf 'WARNING - %s \"quoted\" <é> & done | t=%ss;1;2;0;10 n=3\\nfirst long line\\nsecond | x=1\\n' \"$1\" \"$2\"\nexit 1\n",
    );
    // Site S0's second job is slow: its first job, and every job of S1 and
    // S2, end before S0 does.
    let delays = [["0", "1.5"], ["0", "0.1"], ["0.2", "0"]];
    let plans = plans_with(3, 2, |s, i| {
        vec![
            script.display().to_string(),
            format!("S{s}-p{i}"),
            delays[s][i].to_string(),
        ]
    });
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let mut sites = Vec::new();
    run_all(plans, limits(8, 2), Arc::new(Progress::quiet()), rx, |r| {
        sites.push(r)
    })
    .await;
    assert_eq!(
        sites.iter().map(|s| s.site.as_str()).collect::<Vec<_>>(),
        ["S0", "S1", "S2"]
    );
    for (s, site) in sites.iter().enumerate() {
        assert_eq!(site.externals.len(), 2, "{}", site.site);
        for (i, e) in site.externals.iter().enumerate() {
            assert_eq!(e.name, format!("p{i}"));
            assert_eq!(e.status, Status::Warning);
            assert_eq!(e.exit_code, Some(1));
            assert_eq!(
                e.summary,
                format!("WARNING - S{s}-p{i} \"quoted\" <é> & done")
            );
            assert_eq!(e.long, ["first long line", "second"]);
            let perf: Vec<String> = e.perfdata.iter().map(|p| p.to_string()).collect();
            assert_eq!(
                perf,
                [
                    format!("t={}s;1;2;0;10", delays[s][i]),
                    "n=3".into(),
                    "x=1".into()
                ]
            );
        }
    }
}

/// A consumer with room for one site is handed the next only after it gives
/// the last one's seat back; meanwhile the run goes on (the later sites'
/// results wait on the shelf) and every site still comes back, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_is_handed_over_only_when_the_consumer_has_room() {
    use fedprobe::budget::Room;
    let dir = tempfile::tempdir().unwrap();
    let script = script(dir.path(), "check_ok", "echo 'OK - fine'\nexit 0\n");
    let plans = plans(4, 2, &[script.display().to_string()]);
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let room = Room::new(1);
    let held = Arc::new(std::sync::Mutex::new(0usize));
    let mut got = Vec::new();
    fedprobe::run::run_all_within(
        plans,
        limits(8, 2),
        Arc::new(Progress::quiet()),
        rx,
        &room,
        |r, seat, _| {
            let mut n = held.lock().unwrap();
            assert_eq!(*n, 0, "{} handed over while the room was full", r.site);
            *n += 1;
            got.push((r.site, r.externals.len(), std::time::Instant::now()));
            // The consumer keeps the site a while, then gives the seat back.
            let held = held.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(150)).await;
                *held.lock().unwrap() -= 1;
                drop(seat);
            });
        },
    )
    .await;
    let names: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(names, ["S0", "S1", "S2", "S3"]);
    assert!(got.iter().all(|g| g.1 == 2));
    for w in got.windows(2) {
        assert!(
            w[1].2 - w[0].2 >= Duration::from_millis(150),
            "handed over before the seat was back"
        );
    }
}

/// A run over many sites works through them in order: the first site is
/// handed over long before the last ones start (so a thousand sites'
/// results and plans are never all live), not after every site's first
/// job has run, as a queue of every job in plan order would have it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sites_are_worked_through_in_order_not_all_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("starts");
    let body = format!(
        "echo \"$1\" >> '{}'\nsleep 0.05\necho 'OK - done'\nexit 0\n",
        log.display()
    );
    let script = script(dir.path(), "check_logged", &body);
    let sites = 100;
    let plans = plans_with(sites, 2, |s, _| {
        vec![script.display().to_string(), format!("S{s}")]
    });
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let mut handed = Vec::new();
    run_all(plans, limits(8, 1), Arc::new(Progress::quiet()), rx, |r| {
        let started = std::fs::read_to_string(&log).unwrap().lines().count();
        handed.push((r.site, r.externals.len(), started));
    })
    .await;
    assert_eq!(handed.len(), sites);
    assert!(handed.iter().all(|h| h.1 == 2));
    let names: Vec<String> = handed.iter().map(|h| h.0.clone()).collect();
    let expected: Vec<String> = (0..sites).map(|s| format!("S{s}")).collect();
    assert_eq!(names, expected);
    // Site S0's second job is due 30 sites after its first: when S0 is
    // handed over about 32 jobs (and the 8 running) have started, not 101.
    assert!(
        handed[0].2 <= 50,
        "{} jobs had started when the first site was handed over",
        handed[0].2
    );
    assert_eq!(handed[sites - 1].2, 2 * sites);
}
