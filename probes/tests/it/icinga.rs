//! A real consumer: Icinga 2 runs `check_token_auth` as a CheckCommand and
//! its GraphiteWriter sends on what it parsed (value/warn/crit/min/max per
//! perfdata label, and the service state) to a listener in this test. What
//! Icinga sent must match what the probe printed in that very run, and the
//! labels and thresholds must match the probe's own `--output json`.
//!
//! Needs `icinga2` (Debian `icinga2-bin`); skips loudly without it. With the
//! real peers up (ci/peers) a third service logs in at the real Keystone.
//! FEDPROBE_TEST_DEBUG=1 prints every Graphite line received.

use crate::foundation_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foundation_support::*;
use probes::model::{Range, Uom};
use probes::render::parse::parse_output;
use tokio::io::AsyncBufReadExt;

const TEST: &str = "icinga_parses_probe_perfdata_and_state";
const HOST: &str = "site-a";
const COMMAND: &str = "fedprobe_token_auth";
const WARNING: &str = "10";
const CRITICAL: &str = "20";
const BOUND: Duration = Duration::from_secs(60);

fn icinga_binary() -> Option<PathBuf> {
    ["/usr/sbin/icinga2", "/usr/bin/icinga2"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// The icinga2 daemon's process group, killed however the test ends.
struct Daemon {
    child: tokio::process::Child,
    pgid: u32,
}

impl Daemon {
    async fn stop(&mut self) {
        signal_group(self.pgid, "-TERM");
        if tokio::time::timeout(Duration::from_secs(3), self.child.wait())
            .await
            .is_err()
        {
            // Icinga 2.13 sometimes ignores SIGTERM during start-up.
            signal_group(self.pgid, "-KILL");
            let _ = self.child.wait().await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        signal_group(self.pgid, "-KILL");
    }
}

fn signal_group(pgid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .args([sig, "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// Graphite plaintext lines received: (path, value).
type Lines = Arc<Mutex<Vec<(String, f64)>>>;

async fn graphite_listener() -> (u16, Lines) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind graphite listener");
    let port = listener.local_addr().expect("addr").port();
    let lines: Lines = Arc::default();
    let store = lines.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let mut reader = tokio::io::BufReader::new(sock).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    let mut parts = line.split_whitespace();
                    if let (Some(p), Some(v)) = (parts.next(), parts.next()) {
                        if let Ok(v) = v.parse::<f64>() {
                            store.lock().unwrap().push((p.to_string(), v));
                        }
                    }
                }
            });
        }
    });
    (port, lines)
}

/// Icinga's GraphiteWriter label escaping (2.13).
fn graphite_label(label: &str) -> String {
    label.replace([' ', '\\', '/'], "_").replace("::", ".")
}

/// Icinga normalises time units to seconds; others are sent as printed.
fn to_icinga(v: f64, uom: Uom) -> Option<f64> {
    match uom {
        Uom::Seconds | Uom::None | Uom::Percent | Uom::Counter => Some(v),
        Uom::Millis => Some(v / 1e3),
        Uom::Micros => Some(v / 1e6),
        _ => None,
    }
}

/// Icinga only forwards a threshold that is a plain number (`10` = 0..10).
fn plain_threshold(r: Option<Range>, uom: Uom) -> Option<f64> {
    let r = r?;
    match (r.start, r.end, r.inside) {
        (Some(0.0), Some(e), false) => to_icinga(e, uom),
        _ => None,
    }
}

fn key(v: f64) -> i64 {
    (v * 1e6).round() as i64
}

/// Expected per label from the probe's JSON: uom, warn, crit, min, max.
#[derive(Debug)]
struct Expected {
    uom: Uom,
    fields: BTreeMap<&'static str, f64>,
}

fn expected_from_json(json: &serde_json::Value) -> BTreeMap<String, Expected> {
    let perf: Vec<probes::model::Perf> =
        serde_json::from_value(json["perfdata"].clone()).expect("perfdata in --output json");
    perf.into_iter()
        .map(|p| {
            let mut fields = BTreeMap::new();
            let f = |v: Option<f64>| v.and_then(|v| to_icinga(v, p.uom));
            for (name, v) in [
                ("warn", plain_threshold(p.warn, p.uom)),
                ("crit", plain_threshold(p.crit, p.uom)),
                ("min", f(p.min)),
                ("max", f(p.max)),
            ] {
                if let Some(v) = v {
                    fields.insert(name, v);
                }
            }
            (graphite_label(&p.label), Expected { uom: p.uom, fields })
        })
        .collect()
}

/// Recorded runs of one service: (label -> values printed, exit codes).
fn recorded(text: &str) -> (BTreeMap<String, BTreeSet<i64>>, BTreeSet<i64>) {
    let mut values: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    let mut codes = BTreeSet::new();
    let mut out = String::new();
    for line in text.lines() {
        if let Some(code) = line.strip_prefix("=== exit ") {
            codes.insert(code.trim().parse::<i64>().unwrap_or(-1));
            for p in parse_output(&out).perfdata {
                if let Some(v) = p.value.and_then(|v| to_icinga(v, p.uom)) {
                    values
                        .entry(graphite_label(&p.label))
                        .or_default()
                        .insert(key(v));
                }
            }
            out.clear();
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    (values, codes)
}

/// label -> field (`value`, `warn`, ...) -> values sent.
type Sent = BTreeMap<String, BTreeMap<String, Vec<f64>>>;

/// What Graphite got for one service: perfdata, and states.
fn received(lines: &[(String, f64)], service: &str) -> (Sent, Vec<f64>) {
    let prefix = format!("icinga2.{HOST}.services.{service}.{COMMAND}.");
    let mut perf = Sent::new();
    let mut states = Vec::new();
    for (p, v) in lines {
        let Some(rest) = p.strip_prefix(&prefix) else {
            continue;
        };
        if rest == "metadata.state" {
            states.push(*v);
        } else if let Some(m) = rest.strip_prefix("perfdata.") {
            if let Some((label, field)) = m.rsplit_once('.') {
                perf.entry(label.to_string())
                    .or_default()
                    .entry(field.to_string())
                    .or_default()
                    .push(*v);
            }
        }
    }
    (perf, states)
}

/// The probe's `--output json` for the same options Icinga passes.
async fn reference_json(
    endpoint: &str,
    token: &Path,
    idp: &str,
    protocol: &str,
    ca_cert: Option<&str>,
) -> serde_json::Value {
    let token = token.display().to_string();
    let mut a = vec![
        "--endpoint",
        endpoint,
        "--access-token",
        &token,
        "--identity-provider",
        idp,
        "--protocol",
        protocol,
        "-t",
        "20",
        "-w",
        WARNING,
        "-c",
        CRITICAL,
        "--output",
        "json",
    ];
    if let Some(ca) = ca_cert {
        a.extend(["--ca-cert", ca]);
    }
    let r = run(&args(&a)).await;
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("--output json: {e}: {r:#?}"))
}

fn render_config(template: &str, vars: &[(&str, String)]) -> String {
    let template = std::fs::read_to_string(repo_file(template))
        .unwrap_or_else(|e| panic!("read {template}: {e}"));
    let mut text = template;
    for (name, value) in vars {
        text = text.replace(&format!("@{name}@"), value);
    }
    assert!(
        !text.contains("@"),
        "unfilled placeholder in config:\n{text}"
    );
    text
}

async fn start_icinga(bin: &Path, dir: &Path, config: &Path) -> Daemon {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("daemon").arg("-c").arg(config);
    for (constant, sub) in [
        ("DataDir", "data"),
        ("InitRunDir", "run"),
        ("CacheDir", "cache"),
        ("LogDir", "log"),
        ("SpoolDir", "spool"),
    ] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).expect("state dir");
        cmd.arg(format!("-D{constant}={}", d.display()));
    }
    // Icinga drops privileges to RunAsUser; run as whoever runs the test.
    cmd.args(run_as());
    let log = std::fs::File::create(dir.join("icinga2.out")).expect("log file");
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .process_group(0);
    let child = cmd.spawn().expect("spawn icinga2");
    let pgid = child.id().expect("icinga2 pid");
    Daemon { child, pgid }
}

fn icinga_log(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("icinga2.out")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The real peers' Keystone (ci/peers), when they are up: endpoint, CA,
/// identity provider, protocol, and a fresh access token in `dir`.
struct RealSite {
    endpoint: String,
    ca_cert: String,
    idp: String,
    protocol: String,
    token_file: PathBuf,
}

fn peers_env() -> Result<BTreeMap<String, String>, String> {
    let file = std::env::var("FEDPROBE_PEERS_ENV")
        .unwrap_or_else(|_| "/tmp/fedprobe-peers/peers.env".into());
    let text = std::fs::read_to_string(&file).map_err(|e| format!("no peers ({file}: {e})"))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

/// A client_credentials access token from the real OIDC provider.
async fn real_site(dir: &Path) -> Result<RealSite, String> {
    let env = peers_env()?;
    let get = |k: &str| {
        env.get(k)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| format!("peers.env has no {k}"))
    };
    let ca_cert = get("CA_CERT")?;
    let token_url = match get("OIDC_TOKEN_ENDPOINT") {
        Ok(u) => u,
        Err(_) => format!("{}/token", get("OIDC_ISSUER")?.trim_end_matches('/')),
    };
    let secret = std::fs::read_to_string(get("OIDC_CLIENT_SECRET_FILE")?)
        .map_err(|e| format!("client secret file: {e}"))?;
    let tls = probes::http::TlsOptions {
        ca_certs: vec![PathBuf::from(&ca_cert)],
        ..Default::default()
    };
    let client = probes::http::build_client(&tls).map_err(|f| f.message)?;
    let scope = get("OIDC_SCOPES")
        .unwrap_or_else(|_| "openid".into())
        .replace(',', " ");
    let reply = client
        .post(&token_url)
        .basic_auth(get("OIDC_CLIENT_ID")?, Some(secret.trim()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope.as_str()),
        ])
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .map_err(|e| format!("OIDC provider {token_url} not reachable: {e}"))?;
    let status = reply.status();
    let body: serde_json::Value = reply
        .json()
        .await
        .map_err(|e| format!("token endpoint HTTP {status}: {e}"))?;
    let token = body["access_token"]
        .as_str()
        .ok_or_else(|| format!("token endpoint HTTP {status}: no access_token"))?;
    let token_file = dir.join("real-token");
    std::fs::write(&token_file, token).map_err(|e| e.to_string())?;
    Ok(RealSite {
        endpoint: get("KEYSTONE_URL")?,
        ca_cert,
        idp: get("IDP").unwrap_or_else(|_| "egi.eu".into()),
        protocol: get("PROTOCOL").unwrap_or_else(|_| "openid".into()),
        token_file,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icinga_parses_probe_perfdata_and_state() {
    let Some(icinga) = icinga_binary() else {
        eprintln!("SKIP {TEST}: icinga2 is not installed (apt-get install icinga2-bin, see ci/install-deps.sh)");
        return;
    };
    // Two sites: one accepts the federated login, one refuses it.
    let good = fake_keystone(None).await;
    let refusing = fakecloud::FakeCloud::start(fakecloud::Options {
        faults: fakecloud::Faults::of([fakecloud::Fault::BadToken]),
        ..fakecloud::Options::default()
    })
    .await
    .expect("start fakecloud");
    let ok_endpoint = good.keystone(0);
    let denied_endpoint = refusing.keystone(0);

    let dir = tempfile::tempdir().expect("tempdir");
    let token = token_file(&dir, &good.cloud.access_token);
    let record_dir = dir.path().join("records");
    std::fs::create_dir_all(&record_dir).unwrap();

    // The probe's own account of itself, as the reference.
    let ok_json = reference_json(&ok_endpoint, &token, "egi.eu", "openid", None).await;
    let denied_json = reference_json(&denied_endpoint, &token, "egi.eu", "openid", None).await;
    assert_eq!(ok_json["exit_code"], 0, "good site is not OK: {ok_json}");
    assert_eq!(
        denied_json["exit_code"], 2,
        "refusing site is not CRITICAL: {denied_json}"
    );
    let ok_expected = expected_from_json(&ok_json);
    let denied_expected = expected_from_json(&denied_json);
    assert!(!ok_expected.is_empty(), "no perfdata in {ok_json}");
    if !ok_expected.values().any(|e| e.fields.contains_key("warn")) {
        eprintln!(
            "NOTE {TEST}: check_token_auth puts -w {WARNING} -c {CRITICAL} on no perfdata \
             label yet; only values/min/max are compared"
        );
    }

    // The real Keystone too, when the peers are up.
    let real = match real_site(dir.path()).await {
        Ok(site) => Some(site),
        Err(why) => {
            eprintln!("SKIP {TEST} (real Keystone part): {why}");
            None
        }
    };
    let mut real_expected = BTreeMap::new();
    let mut real_state = 0;
    let mut real_vars = Vec::new();
    if let Some(site) = &real {
        let json = reference_json(
            &site.endpoint,
            &site.token_file,
            &site.idp,
            &site.protocol,
            Some(&site.ca_cert),
        )
        .await;
        // The login must work; a WARNING (e.g. no volume service in the
        // peers' catalog) is the site's real state and Icinga must show it.
        let code = json["exit_code"].as_i64().unwrap_or(-1);
        assert!(code == 0 || code == 1, "real Keystone login failed: {json}");
        real_state = code;
        real_expected = expected_from_json(&json);
        real_vars = vec![
            ("REAL_ENDPOINT", site.endpoint.clone()),
            ("REAL_TOKEN_FILE", site.token_file.display().to_string()),
            ("REAL_CA_CERT", site.ca_cert.clone()),
            ("REAL_IDP", site.idp.clone()),
            ("REAL_PROTOCOL", site.protocol.clone()),
        ];
    }

    let (port, lines) = graphite_listener().await;
    let config = dir.path().join("icinga2.conf");
    let mut vars = vec![
        ("GRAPHITE_PORT", port.to_string()),
        (
            "RECORD_SH",
            repo_file("ci/icinga/record.sh").display().to_string(),
        ),
        ("PROBE", BIN.to_string()),
        ("TOKEN_FILE", token.display().to_string()),
        ("WARNING", WARNING.into()),
        ("CRITICAL", CRITICAL.into()),
        ("OK_ENDPOINT", ok_endpoint.clone()),
        ("DENIED_ENDPOINT", denied_endpoint.clone()),
        ("RECORD_DIR", record_dir.display().to_string()),
    ];
    let mut text = render_config("ci/icinga/fedprobe-test.conf.in", &vars);
    if real.is_some() {
        vars.extend(real_vars);
        text.push_str(&render_config("ci/icinga/real-site.conf.in", &vars));
    }
    std::fs::write(&config, text).unwrap();

    let mut daemon = start_icinga(&icinga, dir.path(), &config).await;
    let t0 = Instant::now();
    let mut services = vec![
        ("login_ok", &ok_expected, 0),
        ("login_denied", &denied_expected, 2),
    ];
    if real.is_some() {
        services.push(("login_real", &real_expected, real_state));
    }
    // Wait until Graphite got every label's value and a state for both services.
    let complete = loop {
        let done = services.iter().all(|(svc, exp, _)| {
            let (perf, states) = received(&lines.lock().unwrap(), svc);
            !states.is_empty()
                && exp
                    .keys()
                    .all(|l| perf.get(l).is_some_and(|f| f.contains_key("value")))
        });
        if done {
            break true;
        }
        if let Ok(Some(status)) = daemon.child.try_wait() {
            panic!(
                "icinga2 exited early ({status}):\n{}",
                icinga_log(dir.path())
            );
        }
        if t0.elapsed() > BOUND {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Snapshot what Graphite got, then the records: a run is recorded before
    // Icinga sees its result, so every value sent is in the records read after.
    // (Stopping the daemon may cut a run short; it is not looked at.)
    let got = lines.lock().unwrap().clone();
    let records: BTreeMap<&str, String> = services
        .iter()
        .map(|(svc, _, _)| {
            let file = record_dir.join(format!("{svc}.out"));
            (*svc, std::fs::read_to_string(file).unwrap_or_default())
        })
        .collect();
    daemon.stop().await;
    eprintln!(
        "{TEST}: Icinga sent {} Graphite lines in {:.1}s",
        got.len(),
        t0.elapsed().as_secs_f64()
    );
    if std::env::var_os("FEDPROBE_TEST_DEBUG").is_some() {
        eprintln!("{got:#?}");
    }
    assert!(
        complete,
        "Graphite did not get all metrics within {BOUND:?}; got {got:#?}\nicinga2 log:\n{}",
        icinga_log(dir.path())
    );

    for (svc, expected, want_state) in services {
        let (perf, states) = received(&got, svc);
        let (printed, codes) = recorded(&records[svc]);
        assert!(!codes.is_empty(), "{svc}: Icinga never ran the probe");
        // Same label set in JSON, in what was printed, and in what Icinga sent.
        let sent: BTreeSet<&String> = perf.keys().collect();
        let json_labels: BTreeSet<&String> = expected.keys().collect();
        let printed_labels: BTreeSet<&String> = printed.keys().collect();
        assert_eq!(
            sent, json_labels,
            "{svc}: labels Icinga sent vs --output json"
        );
        assert_eq!(
            printed_labels, json_labels,
            "{svc}: labels printed vs --output json"
        );
        for (label, exp) in expected {
            let fields = &perf[label];
            // Every value Icinga sent is one a run printed (unit-normalised).
            if to_icinga(1.0, exp.uom).is_some() {
                for v in &fields["value"] {
                    assert!(
                        printed[label].contains(&key(*v)),
                        "{svc}/{label}: Icinga sent {v}, runs printed {:?}",
                        printed[label]
                    );
                }
            }
            // Thresholds, min and max: exactly the ones the JSON implies.
            let sent_fields: BTreeSet<&str> = fields
                .keys()
                .map(String::as_str)
                .filter(|f| *f != "value")
                .collect();
            let want_fields: BTreeSet<&str> = exp.fields.keys().copied().collect();
            assert_eq!(sent_fields, want_fields, "{svc}/{label}: fields sent");
            for (field, want) in &exp.fields {
                for got in &fields[*field] {
                    assert_eq!(key(*got), key(*want), "{svc}/{label}.{field}");
                }
            }
        }
        // Icinga's state is the probe's exit code.
        assert!(
            codes.iter().all(|c| *c == want_state),
            "{svc}: exit codes {codes:?}"
        );
        assert!(
            states.iter().all(|s| key(*s) == key(want_state as f64)),
            "{svc}: Icinga states {states:?}, want {want_state}"
        );
    }
}

/// Icinga 2 runs the probes through the CheckCommands the packages ship
/// (packaging/icinga2/fedprobe-commands.conf, `PluginDir` pointing at the
/// built binaries): the whole file passes Icinga's own validation, and the
/// states Icinga forwards are the probes' verdicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icinga_runs_the_shipped_check_commands() {
    const TEST: &str = "icinga_runs_the_shipped_check_commands";
    let Some(icinga) = icinga_binary() else {
        eprintln!("SKIP {TEST}: icinga2 is not installed (apt-get install icinga2-bin, see ci/install-deps.sh)");
        return;
    };
    let good = fake_keystone(None).await;
    let refusing = fakecloud::FakeCloud::start(fakecloud::Options {
        faults: fakecloud::Faults::of([fakecloud::Fault::BadToken]),
        ..fakecloud::Options::default()
    })
    .await
    .expect("start fakecloud");
    let dir = tempfile::tempdir().expect("tempdir");
    let token = token_file(&dir, &good.cloud.access_token);
    let plugin_dir = Path::new(BIN).parent().expect("target dir");
    let (port, lines) = graphite_listener().await;
    // service, command, state wanted, vars
    type Service<'a> = (&'a str, &'a str, i64, Vec<(&'a str, String)>);
    let services: Vec<Service> = vec![
        (
            "token_ok",
            "fedprobe_token_auth",
            0,
            vec![
                ("endpoint", good.keystone(0)),
                ("access_token", token.display().to_string()),
            ],
        ),
        (
            "token_denied",
            "fedprobe_token_auth",
            2,
            vec![
                ("endpoint", refusing.keystone(0)),
                ("access_token", token.display().to_string()),
            ],
        ),
        (
            "infoprovider",
            "fedprobe_cloudinfo",
            0,
            vec![
                ("endpoint", good.keystone(0)),
                ("is_endpoint", format!("{}/is", good.base())),
                ("is_cache", dir.path().join("is.json").display().to_string()),
                ("is_cache_ttl", "600".into()),
            ],
        ),
        (
            "infoprovider_missing",
            "fedprobe_cloudinfo",
            2,
            vec![
                ("endpoint", "https://not-listed.example.org/v3".into()),
                ("is_endpoint", format!("{}/is", good.base())),
                (
                    "is_cache",
                    dir.path().join("is2.json").display().to_string(),
                ),
            ],
        ),
    ];
    let mut conf = format!(
        "include <itl>\nconst PluginDir = {:?}\ninclude {:?}\n\
         object CheckerComponent \"checker\" {{ }}\n\
         object GraphiteWriter \"graphite\" {{\n  host = \"127.0.0.1\"\n  port = {port}\n  enable_send_metadata = true\n}}\n\
         object Host \"{HOST}\" {{\n  check_command = \"dummy\"\n  check_interval = 1h\n}}\n",
        plugin_dir.display().to_string(),
        repo_file("packaging/icinga2/fedprobe-commands.conf")
            .display()
            .to_string(),
    );
    for (svc, command, _, vars) in &services {
        conf.push_str(&format!(
            "object Service {svc:?} {{\n  host_name = \"{HOST}\"\n  check_command = {command:?}\n  \
             check_interval = 2s\n  retry_interval = 2s\n  max_check_attempts = 1\n  vars.{command}_timeout = 20\n"
        ));
        for (k, v) in vars {
            conf.push_str(&format!("  vars.{command}_{k} = {v:?}\n"));
        }
        conf.push_str("}\n");
    }
    let config = dir.path().join("icinga2.conf");
    std::fs::write(&config, &conf).unwrap();

    // Icinga's own validation of the shipped file and these services.
    for d in ["data", "cache", "log", "run", "spool"] {
        std::fs::create_dir_all(dir.path().join(d)).expect("icinga dir");
    }
    let check = std::process::Command::new(&icinga)
        .args(["daemon", "-C", "-c"])
        .arg(&config)
        .args([
            format!("-DDataDir={}", dir.path().join("data").display()),
            format!("-DCacheDir={}", dir.path().join("cache").display()),
            format!("-DLogDir={}", dir.path().join("log").display()),
            format!("-DInitRunDir={}", dir.path().join("run").display()),
            format!("-DSpoolDir={}", dir.path().join("spool").display()),
        ])
        // Icinga drops privileges to RunAsUser: stay whoever runs the test.
        .args(run_as())
        .output()
        .expect("icinga2 daemon -C");
    assert!(
        check.status.success(),
        "icinga2 daemon -C refused the shipped commands:\n{}\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let mut daemon = start_icinga(&icinga, dir.path(), &config).await;
    let state_of = |got: &[(String, f64)], svc: &str, command: &str| -> Vec<f64> {
        let path = format!("icinga2.{HOST}.services.{svc}.{command}.metadata.state");
        got.iter()
            .filter(|(p, _)| *p == path)
            .map(|(_, v)| *v)
            .collect()
    };
    let t0 = Instant::now();
    let complete = loop {
        let got = lines.lock().unwrap().clone();
        if services
            .iter()
            .all(|(svc, command, _, _)| !state_of(&got, svc, command).is_empty())
        {
            break true;
        }
        if let Ok(Some(status)) = daemon.child.try_wait() {
            panic!(
                "icinga2 exited early ({status}):\n{}",
                icinga_log(dir.path())
            );
        }
        if t0.elapsed() > BOUND {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let got = lines.lock().unwrap().clone();
    daemon.stop().await;
    assert!(
        complete,
        "Icinga did not report every service within {BOUND:?}; got {got:#?}\n{}",
        icinga_log(dir.path())
    );
    for (svc, command, want, _) in &services {
        let states = state_of(&got, svc, command);
        assert!(
            states.iter().all(|s| key(*s) == key(*want as f64)),
            "{svc} ({command}): Icinga states {states:?}, want {want}\n{}",
            icinga_log(dir.path())
        );
    }
}

/// `-DRunAsUser=`/`-DRunAsGroup=` of whoever runs the test.
fn run_as() -> [String; 2] {
    let id = |flag: &str| {
        std::process::Command::new("id")
            .arg(flag)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|_| "root".into())
    };
    [
        format!("-DRunAsUser={}", id("-un")),
        format!("-DRunAsGroup={}", id("-gn")),
    ]
}
