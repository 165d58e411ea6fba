//! `fedprobe serve` against the demo cloud: curl-like scrapes, coalescing
//! of concurrent scrapes onto one run, the scrape-timeout header, promtool
//! on what it answers, and a real Prometheus (Debian `prometheus`) scraping
//! it and storing the series.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fedprobe::demo::{Demo, DemoOptions, Faults};
use fedprobe::guideline::Guideline;
use fedprobe::serve::{Exporter, Options, Server, TIMEOUT_HEADER};
use reqwest::{Client, StatusCode};

fn client() -> Client {
    probes::http::build_client(&Default::default()).unwrap()
}

fn tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// The demo cloud with `sites` sites and an exporter for it on 127.0.0.1.
async fn start(sites: usize, boot: Duration, opts: Options) -> (Demo, Server) {
    let demo = Demo::start(DemoOptions {
        sites,
        boot_delay: boot,
        faults: Faults::default(),
    })
    .await
    .unwrap();
    let g = Guideline::embedded();
    let plans = (0..sites)
        .map(|i| fedprobe::app::plan_site(&demo.profile(i, None).unwrap(), &g, demo.dir()).unwrap())
        .collect();
    let ex = Arc::new(Exporter::new(plans, opts).unwrap());
    let server = Server::start("127.0.0.1:0".parse().unwrap(), ex)
        .await
        .unwrap();
    (demo, server)
}

async fn scrape(
    server: &Server,
    site: &str,
    module: &str,
    timeout: Option<&str>,
) -> (StatusCode, String) {
    let mut req = client().get(format!(
        "http://{}/probe?target={site}&module={module}",
        server.addr
    ));
    if let Some(t) = timeout {
        req = req.header(TIMEOUT_HEADER, t);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.text().await.unwrap())
}

async fn get(server: &Server, path: &str) -> (StatusCode, String) {
    let r = client()
        .get(format!("http://{}{path}", server.addr))
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.text().await.unwrap())
}

/// The value of the one sample whose line starts with `series`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `promtool check metrics` on `text`; None when promtool is not installed.
fn promtool(text: &str) -> Option<(bool, String)> {
    let promtool = tool("promtool")?;
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Some((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_runs_the_probe_and_answers_its_metrics() {
    let (_demo, server) = start(2, Duration::from_millis(200), Options::default()).await;
    let (status, text) = scrape(&server, "DEMO-001", "check_token_auth", Some("10")).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let l = "{site=\"DEMO-001\",probe=\"check_token_auth\"}";
    assert_eq!(
        value(&text, &format!("probe_success{l}")),
        Some(1.0),
        "{text}"
    );
    let d = value(&text, &format!("probe_duration_seconds{l}")).unwrap();
    assert!(d > 0.0 && d < 9.5, "{text}");
    let stage = "{site=\"DEMO-001\",probe=\"check_token_auth\",check=\"AUTH-02\"}";
    assert!(
        value(&text, &format!("fedprobe_stage_duration_seconds{stage}")).is_some(),
        "{text}"
    );
    assert_eq!(
        value(&text, &format!("fedprobe_check_status{stage}")),
        Some(0.0),
        "{text}"
    );
    // 10 s less the 0.5 s offset, under the probe's own 60 s.
    assert_eq!(
        value(&text, &format!("fedprobe_probe_timeout_seconds{l}")),
        Some(9.5),
        "{text}"
    );
    assert_eq!(
        value(&text, &format!("fedprobe_probe_coalesced{l}")),
        Some(0.0),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));

    // Wrong requests are 400 with a reason, and run nothing.
    let (s, t) = scrape(&server, "NOPE", "check_token_auth", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(t.contains("unknown target \"NOPE\""), "{t}");
    let (s, t) = scrape(&server, "DEMO-001", "check_nothing", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(t.contains("check_vm_lifecycle"), "names the modules: {t}");
    let (s, t) = scrape(&server, "DEMO-001", "check_token_auth", Some("soon")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(t.contains(TIMEOUT_HEADER), "{t}");
    let (s, _) = get(&server, "/probe?target=DEMO-001").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, t) = get(&server, "/").await;
    assert_eq!(s, StatusCode::OK);
    assert!(t.contains("DEMO-000: ") && t.contains("check_glue"), "{t}");
    let (s, t) = get(&server, "/-/healthy").await;
    assert_eq!((s, t.as_str()), (StatusCode::OK, "Healthy\n"));

    let (s, own) = get(&server, "/metrics").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        value(
            &own,
            "fedprobe_serve_scrapes_total{module=\"check_token_auth\",result=\"ran\"}"
        ),
        Some(1.0),
        "{own}"
    );
    assert_eq!(
        value(
            &own,
            "fedprobe_serve_probe_runs_total{module=\"check_token_auth\",status=\"ok\"}"
        ),
        Some(1.0),
        "{own}"
    );
    assert_eq!(value(&own, "fedprobe_serve_targets"), Some(2.0), "{own}");
    assert_eq!(
        value(&own, "fedprobe_serve_runs_in_progress"),
        Some(0.0),
        "{own}"
    );

    match (promtool(&text), promtool(&own)) {
        (Some((ok, out)), Some((ok2, out2))) => {
            assert!(ok, "promtool on /probe: {out}\n{text}");
            assert!(ok2, "promtool on /metrics: {out2}\n{own}");
        }
        _ => eprintln!(
            "SKIP a_scrape_runs_the_probe_and_answers_its_metrics (promtool part): promtool not installed (apt-get install prometheus)"
        ),
    }
    server.stop().await;
}

/// `debug=true`, blackbox_exporter's switch: the probe's own output (why a
/// site failed, stage by stage), the metrics it would have answered and its
/// command line, in that exporter's layout; no secret in any of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_true_answers_the_probe_output_metrics_and_command_line() {
    use fedprobe::demo::Fault;
    let demo = Demo::start(DemoOptions {
        sites: 1,
        boot_delay: Duration::from_millis(200),
        faults: Faults::of([Fault::BadToken]),
    })
    .await
    .unwrap();
    let g = Guideline::embedded();
    let plan = fedprobe::app::plan_site(&demo.profile(0, None).unwrap(), &g, demo.dir()).unwrap();
    let ex = Arc::new(Exporter::new(vec![plan], Options::default()).unwrap());
    let server = Server::start("127.0.0.1:0".parse().unwrap(), ex)
        .await
        .unwrap();
    let url = |debug: &str| {
        format!(
            "http://{}/probe?target=DEMO-000&module=check_token_auth&debug={debug}",
            server.addr
        )
    };
    let r = client().get(url("true")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ctype = r.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(ctype.starts_with("text/plain; charset"), "{ctype}");
    let text = r.text().await.unwrap();

    let logs = text
        .strip_prefix("Logs for the probe:\n")
        .unwrap_or_else(|| panic!("{text}"));
    let (logs, rest) = logs
        .split_once("\n\n\nMetrics that would have been returned:\n")
        .unwrap_or_else(|| panic!("{text}"));
    let (metrics, module) = rest
        .split_once("\n\n\nModule configuration:\n")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(logs.starts_with("TOKEN_AUTH CRITICAL - "), "{logs}");
    assert!(logs.contains("AUTH-02") && logs.contains("401"), "{logs}");
    let l = "{site=\"DEMO-000\",probe=\"check_token_auth\"}";
    assert_eq!(
        value(metrics, &format!("probe_success{l}")),
        Some(0.0),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    assert!(module.starts_with("check_token_auth "), "{module}");
    assert!(module.contains("timeout: 60.000 s"), "{module}");
    assert!(
        module.contains("-t 60s") || module.contains("--timeout 60s"),
        "the command line that ran: {module}"
    );
    for secret in [&demo.cloud.access_token, &demo.cloud.client_secret] {
        assert!(
            !text.contains(secret.as_str()),
            "a secret in the debug answer:\n{text}"
        );
    }

    // Anything but "true" is the plain exposition, as in blackbox_exporter.
    let plain = client()
        .get(url("1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(plain.starts_with("# HELP "), "{plain}");
    server.stop().await;
}

/// Five scrapes at once of one site's VM lifecycle: one run, one server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scrapes_share_one_vm_lifecycle() {
    let (demo, server) = start(2, Duration::from_millis(1500), Options::default()).await;
    let server = Arc::new(server);
    let mut handles = Vec::new();
    for _ in 0..5 {
        let s = server.clone();
        handles.push(tokio::spawn(async move {
            scrape(&s, "DEMO-000", "check_vm_lifecycle", Some("60")).await
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let l = "{site=\"DEMO-000\",probe=\"check_vm_lifecycle\"}";
    let mut coalesced = Vec::new();
    for h in handles {
        let (status, text) = h.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(
            value(&text, &format!("probe_success{l}")),
            Some(1.0),
            "{text}"
        );
        coalesced.push(value(&text, &format!("fedprobe_probe_coalesced{l}")).unwrap());
    }
    coalesced.sort_by(f64::total_cmp);
    assert_eq!(coalesced, vec![0.0, 1.0, 1.0, 1.0, 1.0]);
    assert_eq!(
        demo.cloud.site(0).unwrap().servers.len(),
        1,
        "one VM for five scrapes"
    );

    // Another site's run is its own, and a scrape after the run starts afresh;
    // the runs of one site never overlap.
    let (a, b) = tokio::join!(
        scrape(&server, "DEMO-000", "check_vm_lifecycle", Some("60")),
        scrape(&server, "DEMO-001", "check_vm_lifecycle", Some("60")),
    );
    assert_eq!(
        value(&a.1, &format!("fedprobe_probe_coalesced{l}")),
        Some(0.0),
        "{}",
        a.1
    );
    assert!(
        b.1.contains("probe_success{site=\"DEMO-001\",probe=\"check_vm_lifecycle\"} 1"),
        "{}",
        b.1
    );
    let mut spans: Vec<(Instant, Instant)> = {
        let site = demo.cloud.site(0).unwrap();
        assert_eq!(site.servers.len(), 2);
        site.servers
            .values()
            .map(|s| (s.created, s.deleted.expect("every server deleted").0))
            .collect()
    };
    spans.sort();
    assert!(
        spans[0].1 <= spans[1].0,
        "VM lifecycles overlapped: {spans:?}"
    );
    assert_eq!(demo.cloud.site(1).unwrap().servers.len(), 1);

    let (_, own) = get(&server, "/metrics").await;
    let runs = "fedprobe_serve_probe_runs_total{module=\"check_vm_lifecycle\",status=\"ok\"}";
    assert_eq!(value(&own, runs), Some(3.0), "{own}");
    let shared = "fedprobe_serve_scrapes_total{module=\"check_vm_lifecycle\",result=\"coalesced\"}";
    assert_eq!(value(&own, shared), Some(4.0), "{own}");
}

/// The scrape's timeout bounds the run: a VM that never boots in time ends
/// the run inside the scrape, cleaned up, and reported as a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrape_timeout_header_bounds_the_run() {
    let opts = Options {
        default_timeout: Duration::from_secs(4),
        ..Options::default()
    };
    let (demo, server) = start(1, Duration::from_secs(120), opts).await;
    let l = "{site=\"DEMO-000\",probe=\"check_vm_lifecycle\"}";
    let t0 = Instant::now();
    let (status, text) = scrape(&server, "DEMO-000", "check_vm_lifecycle", Some("3")).await;
    let took = t0.elapsed();
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        took < Duration::from_secs(3),
        "answered after {took:?}, past the scrape timeout"
    );
    assert_eq!(
        value(&text, &format!("fedprobe_probe_timeout_seconds{l}")),
        Some(2.5),
        "{text}"
    );
    assert_eq!(
        value(&text, &format!("probe_success{l}")),
        Some(0.0),
        "{text}"
    );
    // The create went through; the wait for ACTIVE is what ran out.
    let vm06 = "{site=\"DEMO-000\",probe=\"check_vm_lifecycle\",check=\"VM-06\"}";
    assert_eq!(
        value(&text, &format!("fedprobe_check_status{vm06}")),
        Some(0.0),
        "{text}"
    );
    {
        let site = demo.cloud.site(0).unwrap();
        assert_eq!(site.servers.len(), 1);
        assert!(
            site.servers.values().all(|s| s.deleted.is_some()),
            "the timed-out run deleted its server"
        );
    }
    // No header: the exporter's default (4 s here) less the offset.
    let (_, text) = scrape(&server, "DEMO-000", "check_token_auth", None).await;
    let l = "{site=\"DEMO-000\",probe=\"check_token_auth\"}";
    assert_eq!(
        value(&text, &format!("fedprobe_probe_timeout_seconds{l}")),
        Some(3.5),
        "{text}"
    );
    // A header shorter than the offset is used whole.
    let (_, text) = scrape(&server, "DEMO-000", "check_token_auth", Some("0.4")).await;
    assert_eq!(
        value(&text, &format!("fedprobe_probe_timeout_seconds{l}")),
        Some(0.4),
        "{text}"
    );
    server.stop().await;
}

/// A Prometheus process on 127.0.0.1, killed however the test ends.
struct Prometheus {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The blackbox_exporter relabelling: the target becomes `target=` and
/// `instance`, the scrape goes to the exporter. `extra` goes first.
fn probe_job(
    name: &str,
    module: &str,
    targets: &[String],
    addr: SocketAddr,
    extra: &str,
) -> String {
    format!(
        r#"  - job_name: {name}
    metrics_path: /probe
    params:
      module: [{module}]
    static_configs:
      - targets: [{targets}]
    relabel_configs:
{extra}      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: {addr}
"#,
        targets = targets.join(", ")
    )
}

impl Prometheus {
    /// Start with `scrape_configs` (global: every 2 s, 2 s timeout); the
    /// configuration passes `promtool check config` first.
    fn start(bin: &Path, scrape_configs: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        let config = format!(
            "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\nscrape_configs:\n{scrape_configs}"
        );
        std::fs::write(&cfg, &config).unwrap();
        if let Some(promtool) = tool("promtool") {
            let out = std::process::Command::new(promtool)
                .args(["check", "config"])
                .arg(&cfg)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}{config}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = std::process::Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Prometheus { child, port, dir }
    }

    /// An instant query's result vector (None while Prometheus is not up).
    async fn query(&self, q: &str) -> Option<Vec<serde_json::Value>> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let r = client().get(url).query(&[("query", q)]).send().await.ok()?;
        let v: serde_json::Value = r.json().await.ok()?;
        v["data"]["result"].as_array().cloned()
    }

    /// Query until `done` holds for the result (bounded: 60 s).
    async fn query_until(
        &self,
        q: &str,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let t0 = Instant::now();
        let mut last = Vec::new();
        while t0.elapsed() < Duration::from_secs(60) {
            last = self.query(q).await.unwrap_or_default();
            if done(&last) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        last
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

fn instances(series: &[serde_json::Value]) -> Vec<String> {
    let mut v: Vec<String> = series
        .iter()
        .filter_map(|s| s["metric"]["instance"].as_str().map(String::from))
        .collect();
    v.sort();
    v
}

/// A real Prometheus scrapes the exporter with the blackbox_exporter
/// relabelling; its HTTP API then holds the series, with the timeout it sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_and_stores_the_series() {
    const TEST: &str = "a_real_prometheus_scrapes_and_stores_the_series";
    let Some(bin) = tool("prometheus") else {
        eprintln!("SKIP {TEST}: prometheus not installed (apt-get install prometheus)");
        return;
    };
    let (_demo, server) = start(2, Duration::from_millis(200), Options::default()).await;
    let sites = ["DEMO-000".to_string(), "DEMO-001".to_string()];
    let config = format!(
        "{}  - job_name: fedprobe-exporter\n    static_configs:\n      - targets: ['{}']\n",
        probe_job("fedprobe", "check_token_auth", &sites, server.addr, ""),
        server.addr
    );
    let prom = Prometheus::start(&bin, &config);
    // Prometheus starts in a second or two and scrapes every 2 s.
    let up = prom
        .query_until("up{job=\"fedprobe-exporter\"} == 1", |r| r.len() == 1)
        .await;
    assert_eq!(
        up.len(),
        1,
        "the exporter's own /metrics scraped\n{}",
        prom.log()
    );
    let series = prom
        .query_until("probe_success{job=\"fedprobe\"} == 1", |r| r.len() == 2)
        .await;
    assert_eq!(instances(&series), sites, "{series:?}\n{}", prom.log());
    // Prometheus sent its 2 s scrape timeout; the run got 1.5 s of it.
    let t = prom
        .query("fedprobe_probe_timeout_seconds{job=\"fedprobe\"}")
        .await
        .unwrap();
    assert_eq!(t.len(), 2, "{t:?}");
    for s in &t {
        assert_eq!(s["value"][1].as_str(), Some("1.5"), "{s}");
    }
    let stages = prom
        .query("fedprobe_stage_duration_seconds{job=\"fedprobe\",check=\"AUTH-02\"}")
        .await
        .unwrap();
    assert_eq!(stages.len(), 2, "{stages:?}");
    server.stop().await;
}

/// Two Prometheus servers sharding the targets with `hashmod`, as
/// docs/engines.md describes: each site is probed by exactly one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_prometheus_shards_probe_each_site_once() {
    const TEST: &str = "two_prometheus_shards_probe_each_site_once";
    let Some(bin) = tool("prometheus") else {
        eprintln!("SKIP {TEST}: prometheus not installed (apt-get install prometheus)");
        return;
    };
    const SITES: usize = 8;
    let (_demo, server) = start(SITES, Duration::from_millis(200), Options::default()).await;
    let sites: Vec<String> = (0..SITES).map(fedprobe::demo::site_name).collect();
    let shard = |n: usize| {
        let extra = format!(
            "      - source_labels: [__param_target]\n        modulus: 2\n        target_label: __tmp_shard\n        action: hashmod\n      - source_labels: [__tmp_shard]\n        regex: \"{n}\"\n        action: keep\n"
        );
        // hashmod reads __param_target: set it first, as in the docs' order.
        let job = probe_job("fedprobe", "check_token_auth", &sites, server.addr, "");
        job.replacen(
            "      - source_labels: [__param_target]\n        target_label: instance\n",
            &format!(
                "{extra}      - source_labels: [__param_target]\n        target_label: instance\n"
            ),
            1,
        )
    };
    let a = Prometheus::start(&bin, &shard(0));
    let b = Prometheus::start(&bin, &shard(1));
    let q = "probe_success{job=\"fedprobe\"} == 1";
    // Targets come up over a couple of scrape rounds: wait until both
    // together have every site, then let one more round pass.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        let na = a.query(q).await.unwrap_or_default().len();
        let nb = b.query(q).await.unwrap_or_default().len();
        if na + nb >= SITES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ia = instances(&a.query(q).await.unwrap_or_default());
    let ib = instances(&b.query(q).await.unwrap_or_default());
    assert!(
        !ia.is_empty() && !ib.is_empty(),
        "both shards work: {ia:?} {ib:?}\n{}\n{}",
        a.log(),
        b.log()
    );
    assert!(
        ia.iter().all(|s| !ib.contains(s)),
        "a site in both shards: {ia:?} {ib:?}"
    );
    let mut all = [ia.clone(), ib.clone()].concat();
    all.sort();
    assert_eq!(all, sites, "every site in one shard: {ia:?} {ib:?}");
    // The other shard's sites are not scraped at all (no `up` series).
    let up_a = instances(&a.query("up{job=\"fedprobe\"}").await.unwrap());
    let up_b = instances(&b.query("up{job=\"fedprobe\"}").await.unwrap());
    assert_eq!((up_a, up_b), (ia, ib));
    server.stop().await;
}
