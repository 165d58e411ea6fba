//! Soak support: one probe run under `/usr/bin/time` (its peak RSS comes
//! from wait4's rusage, also when the probe is killed), optionally signalled
//! at a chosen moment; the verdict rules for a run; and the admin's view of
//! what the soak's image runs left in Glance.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Run;
use crate::realpeers::Peers;

/// A signal the soak sends the probe mid-run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sig {
    Term,
    Kill,
}

impl Sig {
    fn name(self) -> &'static str {
        match self {
            Sig::Term => "TERM",
            Sig::Kill => "KILL",
        }
    }
}

/// One soak run: the result when the probe printed one, else None (killed).
pub struct Shot {
    pub run: Option<Run>,
    /// The signal actually delivered to a live probe, and when (s after start).
    pub signalled: Option<(Sig, f64)>,
    pub rss_kb: u64,
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    pub secs: f64,
    /// Wall-clock nanoseconds around the run: its run id (time-based) is inside.
    pub window: (i128, i128),
    /// What /usr/bin/time wrote besides the RSS (e.g. "terminated by signal 9").
    pub time_note: String,
}

/// Run `bin args` with `HTTPS_PROXY=proxy`; with `sig`, signal the probe
/// after the given delay if it is still running. Bounded by `limit`.
pub async fn shot(
    bin: &str,
    args: &[String],
    proxy: &str,
    sig: Option<(Sig, Duration)>,
    rss_file: &Path,
    limit: Duration,
) -> Shot {
    let t0 = Instant::now();
    let start_ns = probes::clock::now_nanos();
    let child = tokio::process::Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(rss_file)
        .arg(bin)
        .args(args)
        .env("HTTPS_PROXY", proxy)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("run /usr/bin/time");
    let time_pid = child.id().expect("pid of time");
    let signaller = tokio::spawn(async move {
        let (s, after) = sig?;
        tokio::time::sleep(after).await;
        // The probe is /usr/bin/time's only child.
        let kids = std::fs::read_to_string(format!("/proc/{time_pid}/task/{time_pid}/children"))
            .unwrap_or_default();
        let pid = kids.split_whitespace().next()?.to_string();
        let ok = std::process::Command::new("kill")
            .args(["-s", s.name(), &pid])
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?
            .success();
        ok.then(|| (s, t0.elapsed().as_secs_f64()))
    });
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("probe still running after {limit:?}"))
        .expect("wait for the probe");
    signaller.abort();
    let signalled = signaller.await.ok().flatten();
    let secs = t0.elapsed().as_secs_f64();
    let end_ns = probes::clock::now_nanos();
    let timed = std::fs::read_to_string(rss_file).unwrap_or_default();
    let rss_kb = timed
        .trim()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    let time_note = timed
        .lines()
        .filter(|l| l.trim().parse::<u64>().is_err())
        .collect::<Vec<_>>()
        .join(" ");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code().unwrap_or(-1);
    let run = if stdout.trim().is_empty() {
        None
    } else {
        let json: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not one JSON result ({e}): {stdout}"));
        assert_eq!(
            json["exit_code"].as_i64(),
            Some(code as i64),
            "exit code and JSON agree: {stdout}"
        );
        assert!(stdout.len() < 64 * 1024, "output is bounded");
        Some(Run {
            code,
            json,
            secs,
            stdout,
        })
    };
    Shot {
        run,
        signalled,
        rss_kb,
        code,
        secs,
        window: (start_ns, end_ns),
        time_note,
    }
}

/// Why a soak run's verdict is wrong, or None when it is a right one:
/// OK; WARNING at `reap_stage` (a reaped leftover of a cut or killed run);
/// CRITICAL naming a cut transport; UNKNOWN naming SIGTERM when one was
/// delivered; no result at all only after a delivered SIGKILL.
pub fn wrong(shot: &Shot, reap_stage: Option<&str>) -> Option<String> {
    let Some(run) = &shot.run else {
        return match shot.signalled {
            Some((Sig::Kill, _)) => None,
            _ => Some(format!(
                "no result (exit {}; {}) without a SIGKILL",
                shot.code, shot.time_note
            )),
        };
    };
    let transport = deciding_transport(run);
    let fine = match run.code {
        0 => true,
        1 => reap_stage.is_some_and(|s| run.stage() == s),
        2 => ["reset", "closed", "broken"].contains(&transport),
        3 => {
            shot.signalled.is_some()
                && run.outcome() == "cancelled"
                && run.json["outcome"]["by"] == "SIGTERM"
        }
        _ => false,
    };
    (!fine).then(|| {
        format!(
            "{} at {} ({transport}): {}",
            run.status(),
            run.stage(),
            run.summary()
        )
    })
}

/// The transport failure behind a run's status: its deciding step's, or
/// else that of a cleanup that failed (a SIGTERMed run whose delete was cut
/// is CRITICAL for the server it could not delete, not for the signal).
fn deciding_transport(run: &Run) -> &str {
    let step = run.deciding_step()["transport"].as_str().unwrap_or("");
    if !step.is_empty() || run.json["status"] != "CRITICAL" {
        return step;
    }
    run.json["resources"]
        .as_array()
        .and_then(|rs| {
            rs.iter()
                .filter(|r| r["cleanup"].get("failed").is_some())
                .find_map(|r| r["transport"].as_str())
        })
        .unwrap_or("")
}

/// The tally key of a run: status and transport, or the signal's mark.
pub fn tally(shot: &Shot) -> String {
    match &shot.run {
        None => "killed (SIGKILL)".to_string(),
        Some(run) => {
            let t = deciding_transport(run);
            let by = if run.outcome() == "cancelled" {
                " SIGTERM"
            } else {
                ""
            };
            format!("{}{by} {t}", run.status()).trim().to_string()
        }
    }
}

/// The full wall-clock time (ns) of the 40-bit time-based run id `hex`
/// (backend::run_id), which wraps every 2^40 ns (18.3 min): the latest such
/// time before `created_ns` (Glance's created_at, whole seconds) plus 2 s.
pub fn run_id_time(hex: &str, created_ns: i128) -> Option<i128> {
    const M: i128 = 1 << 40;
    let v = u64::from_str_radix(hex, 16).ok()? as i128;
    let upper = created_ns + 2_000_000_000;
    Some(upper - (upper - v).rem_euclid(M))
}

/// Images of monitoring host `host` named `fedprobe-<run id>` whose run id
/// falls in one of `windows`, as the admin lists them in Glance: run index ->
/// "id (status)". The host keeps out other tests' image runs of the same time.
pub async fn images_of_runs(
    p: &Peers,
    host: &str,
    windows: &[(i128, i128)],
) -> BTreeMap<usize, Vec<String>> {
    let admin = p.admin_token().await;
    let glance = p.get("GLANCE_DIRECT_URL");
    let mut found: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut next = "/v2/images?limit=200".to_string();
    // Bounded: 50 pages of 200 images.
    for _ in 0..50 {
        let resp = p
            .client
            .get(format!("{glance}{next}"))
            .header("X-Auth-Token", &admin)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("glance answers");
        assert!(resp.status().is_success(), "glance list: {}", resp.status());
        let v: Value = resp.json().await.unwrap();
        for img in v["images"].as_array().into_iter().flatten() {
            let name = img["name"].as_str().unwrap_or("");
            if img["argo-mon-host"] != host {
                continue;
            }
            let Some(hex) = name.strip_prefix("fedprobe-") else {
                continue;
            };
            let created = img["created_at"]
                .as_str()
                .and_then(|c| c.parse::<jiff::Timestamp>().ok())
                .map(|t| t.as_nanosecond());
            let Some(at) = created.and_then(|c| run_id_time(hex, c)) else {
                continue;
            };
            if let Some(i) = windows.iter().position(|w| w.0 <= at && at <= w.1) {
                found.entry(i).or_default().push(format!(
                    "{} ({})",
                    img["id"].as_str().unwrap_or("?"),
                    img["status"].as_str().unwrap_or("?")
                ));
            }
        }
        match v["next"].as_str() {
            Some(n) => next = n.to_string(),
            None => break,
        }
    }
    found
}

/// Delete images as the admin (ids as `images_of_runs` gives them).
pub async fn admin_delete_images(p: &Peers, listed: &[String]) {
    let admin = p.admin_token().await;
    for entry in listed {
        let id = entry.split_whitespace().next().unwrap_or_default();
        let _ = p
            .client
            .delete(format!("{}/v2/images/{id}", p.get("GLANCE_DIRECT_URL")))
            .header("X-Auth-Token", &admin)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
    }
}

/// The running mean of unsignalled runs' durations, for drawing signal moments.
#[derive(Default)]
pub struct Typical {
    sum: f64,
    n: u32,
}

impl Typical {
    pub fn add(&mut self, secs: f64) {
        self.sum += secs;
        self.n += 1;
    }

    pub fn get(&self, default: f64) -> f64 {
        if self.n == 0 {
            default
        } else {
            self.sum / self.n as f64
        }
    }
}

#[test]
fn run_ids_are_placed_in_time_across_wraps() {
    let made = 1_700_000_000_123_456_789i128;
    let id = format!("{:010x}", (made as u64) & 0xff_ffff_ffff);
    // Glance's created_at: the second after, truncated.
    let created = (made / 1_000_000_000 + 1) * 1_000_000_000;
    assert_eq!(run_id_time(&id, created), Some(made));
    // One wrap (18.3 min) later the same id is another time.
    let later = created + (1i128 << 40);
    assert_eq!(run_id_time(&id, later), Some(made + (1i128 << 40)));
    assert_eq!(run_id_time("zz", created), None);
}

#[tokio::test]
async fn a_signal_reaches_the_child_of_time() {
    let dir = tempfile::tempdir().unwrap();
    let rss = dir.path().join("rss");
    let shot = shot(
        "sleep",
        &["5".to_string()],
        "http://127.0.0.1:9",
        Some((Sig::Term, Duration::from_millis(500))),
        &rss,
        Duration::from_secs(20),
    )
    .await;
    assert!(shot.run.is_none());
    assert!(
        matches!(shot.signalled, Some((Sig::Term, _))),
        "{}",
        shot.time_note
    );
    assert!(shot.secs < 4.0, "{}", shot.secs);
    assert!(shot.time_note.contains("signal 15"), "{}", shot.time_note);
}

/// A run that reaped a killed run's leftover (WARNING at the reaping stage)
/// and then had its tunnel reset (CRITICAL) is right: the reset decides.
#[test]
fn a_reset_after_a_reap_is_a_right_verdict() {
    let shot = |steps: Value, code: i32, status: &str| Shot {
        run: Some(Run {
            code,
            json: serde_json::json!({"status": status, "exit_code": code, "steps": steps}),
            secs: 1.0,
            stdout: String::new(),
        }),
        signalled: None,
        rss_kb: 0,
        code,
        secs: 1.0,
        window: (0, 0),
        time_note: String::new(),
    };
    let reaped_then_reset = serde_json::json!([
        {"check": "VM-05", "status": "WARNING"},
        {"check": "VM-07", "status": "CRITICAL", "transport": "reset"},
    ]);
    let s = shot(reaped_then_reset, 2, "CRITICAL");
    assert_eq!(wrong(&s, Some("VM-05")), None);
    assert_eq!(tally(&s), "CRITICAL reset");
    // a CRITICAL without a cut transport stays wrong
    let plain = serde_json::json!([
        {"check": "VM-05", "status": "WARNING"},
        {"check": "VM-07", "status": "CRITICAL"},
    ]);
    assert!(wrong(&shot(plain, 2, "CRITICAL"), Some("VM-05")).is_some());
}

/// A SIGTERMed run whose cleanup DELETE was reset is CRITICAL for the
/// server it could not delete: right, and tallied by the reset. Seen in the
/// 200-run soak (run 124, seed 24501) before resources carried a transport.
#[test]
fn a_reset_cleanup_after_sigterm_is_a_right_verdict() {
    let json = |transport: Option<&str>| {
        let mut r = serde_json::json!({"kind": "server", "id": "s1",
            "cleanup": {"failed": "connection reset: Connection reset by peer"}});
        if let Some(t) = transport {
            r["transport"] = t.into();
        }
        serde_json::json!({"status": "CRITICAL", "exit_code": 2,
            "outcome": {"kind": "cancelled", "by": "SIGTERM", "stage": "VM-07"},
            "steps": [{"check": "VM-07", "status": "UNKNOWN"}],
            "resources": [r]})
    };
    let shot = |json: Value| Shot {
        run: Some(Run {
            code: 2,
            json,
            secs: 1.0,
            stdout: String::new(),
        }),
        signalled: Some((Sig::Term, 1.0)),
        rss_kb: 0,
        code: 2,
        secs: 1.0,
        window: (0, 0),
        time_note: String::new(),
    };
    let s = shot(json(Some("reset")));
    assert_eq!(wrong(&s, Some("VM-05")), None);
    assert_eq!(tally(&s), "CRITICAL SIGTERM reset");
    // a failed cleanup with no cut transport stays wrong
    assert!(wrong(&shot(json(None)), Some("VM-05")).is_some());
}
