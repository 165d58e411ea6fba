//! Reports from one synthetic run whose messages hold everything a broken
//! site can send back: ANSI escapes, control characters, `]]>`, markup,
//! invalid UTF-8 (lossily decoded). Validated by the real consumers'
//! tools where installed: xmllint (JUnit XSD), promtool, headless Chromium.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fedprobe::guideline::Guideline;
use fedprobe::model::{ExternalRun, ProbeRun, SiteRun};
use fedprobe::report::{self, Format, Report};
use probes::model::Perf;
use probes::model::{Cleanup, ProbeResult, Resource, Status, Step};

fn hostile() -> String {
    let invalid = String::from_utf8_lossy(&[b'b', b'a', b'd', 0xff, 0xfe, 0xc3, b'(']).into_owned();
    format!(
        "\u{1b}[31mHTTP 502\u{1b}[0m \u{7}\u{0}\u{8} ]]> <html><b>Bad & \"Gateway\"</b></html> {invalid} \u{FFFF}\u{FFFE}\u{85}\u{1F}\r\nsecond line ]]]]>>"
    )
}

fn step(check: &str, status: Status, msg: &str) -> Step {
    Step {
        check: check.into(),
        requirement: "EOSC-IAAS-API".into(),
        name: format!("stage {check} <x>"),
        status,
        message: msg.into(),
        duration: Duration::from_millis(1500),
        http: None,
        transport: None,
        cut_by_deadline: false,
    }
}

fn result(probe: &str, label: &str, status: Status, steps: Vec<Step>) -> ProbeResult {
    ProbeResult {
        probe: probe.into(),
        label: label.into(),
        status,
        outcome: probes::model::Outcome::Finished,
        summary: format!("{probe}: {}", hostile()),
        steps,
        perfdata: vec![Perf::seconds("total", Duration::from_secs(4))],
        resources: vec![],
        started_at: 1_700_000_000.0,
        duration: Duration::from_secs(4),
        http_requests: 7,
        details: vec![hostile()],
    }
}

fn site_run(name: &str, broken: bool) -> SiteRun {
    let m = hostile();
    let vm_status = if broken { Status::Critical } else { Status::Ok };
    let mut vm = result(
        "check_vm_lifecycle",
        "VM_LIFECYCLE",
        vm_status,
        vec![
            step("VM-01", Status::Ok, "flavor m1.small"),
            step("VM-02", vm_status, &m),
            step("VM-03", Status::Warning, "slow delete"),
        ],
    );
    vm.resources.push(Resource {
        kind: probes::model::ResourceKind::Server,
        id: "5e2d".into(),
        name: Some("fedprobe-test".into()),
        cleanup: Cleanup::Deleted,
        transport: None,
    });
    let probes = vec![
        result(
            "check_token_auth",
            "TOKEN_AUTH",
            Status::Ok,
            vec![
                step("AUTH-01", Status::Ok, "read"),
                step("AUTH-02", Status::Ok, "unscoped token"),
                step("AUTH-03", Status::Ok, "2 projects"),
                step("AUTH-04", Status::Ok, "scoped"),
            ],
        ),
        vm,
        result(
            "check_image_upload",
            "IMAGE_UPLOAD",
            Status::Unknown,
            vec![],
        ),
        result(
            "check_glue",
            "GLUE",
            Status::Critical,
            vec![step("GLUE-01", Status::Critical, &m)],
        ),
    ];
    SiteRun {
        site: name.into(),
        cloud: Default::default(),
        guideline: "eosc-iaas-2026.1".into(),
        started_at: 1_700_000_000.0,
        duration: Duration::from_secs(9),
        probes: probes
            .into_iter()
            .map(|r| ProbeRun {
                probe: r.probe.clone(),
                argv: vec![r.probe.clone(), "--endpoint".into(), "https://k/v3".into()],
                result: r,
            })
            .collect(),
        externals: vec![ExternalRun {
            name: "check_tcp".into(),
            command: vec!["check_tcp".into(), "-H".into(), "<host>".into()],
            status: Status::Warning,
            exit_code: Some(1),
            summary: m.clone(),
            long: vec![m],
            perfdata: vec![],
            duration: Duration::from_millis(30),
        }],
    }
}

fn report(n: usize) -> Report {
    let runs = (0..n)
        .map(|i| site_run(&format!("SITE-{i:03} <&\"'>"), i % 2 == 0))
        .collect();
    Report::build(
        &[Guideline::embedded()],
        runs,
        1_700_000_000.0,
        Duration::from_secs(12),
    )
}

fn tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn junit_is_schema_valid_whatever_the_messages_hold() {
    let r = report(3);
    let xml = r.output(report::Format::Junit);
    // Structure: a suite per site and capability, requirement ids in names.
    let caps = Guideline::embedded().capabilities.len();
    assert_eq!(
        xml.matches("<testsuite ").count(),
        3 * caps + 3,
        "plus one external suite per site"
    );
    assert!(xml.contains("VM-02 stage VM-02 &lt;x&gt; [EOSC-IAAS-API]"));
    assert!(xml.contains("<failure type=\"CRITICAL\" message=\"HTTP 502"));
    assert!(!xml.contains('\u{1b}') && !xml.contains('\u{7}') && !xml.contains('\u{0}'));
    assert!(
        !xml.contains("]]]]>>"),
        "]]> inside CDATA must be broken up"
    );
    let Some(xmllint) = tool("xmllint") else {
        eprintln!("SKIP junit_is_schema_valid_whatever_the_messages_hold: xmllint not installed (apt-get install libxml2-utils)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "junit.xml", &xml);
    let out = Command::new(xmllint)
        .args(["--noout", "--schema"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/junit/junit-10.xsd"
        ))
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xmllint: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        xml
    );
}

#[test]
fn the_unsanitised_crate_output_would_be_invalid() {
    // Proves the sanitising matters: junit-report passes `]]>` through.
    use junit_report::{Duration as D, ReportBuilder, TestCase, TestSuiteBuilder};
    let mut tc = TestCase::failure("t", D::seconds(1), "x", "m");
    tc.set_system_out("a ]]> b \u{1b}[0m");
    let mut s = TestSuiteBuilder::new("s");
    s.add_testcase(tc);
    let mut out = Vec::new();
    ReportBuilder::new()
        .add_testsuite(s.build())
        .build()
        .write_xml(&mut out)
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("]]> b") || text.contains('\u{1b}'), "{text}");
}

#[test]
fn openmetrics_passes_promtool() {
    let r = report(4);
    let text = r.output(report::Format::Openmetrics);
    assert!(
        text.contains("probe_success{site=\"SITE-000 <&\\\"'>\",probe=\"check_vm_lifecycle\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("probe_success{site=\"SITE-001 <&\\\"'>\",probe=\"check_vm_lifecycle\"} 1")
    );
    assert!(text.contains("fedprobe_stage_duration_seconds{site=\"SITE-001 <&\\\"'>\",probe=\"check_vm_lifecycle\",check=\"VM-02\"} 1.5"));
    assert!(text.contains("fedprobe_check_status{site=\"SITE-000 <&\\\"'>\",probe=\"check_glue\",check=\"GLUE-01\"} 2"));
    assert!(text
        .contains("fedprobe_external_status{site=\"SITE-000 <&\\\"'>\",plugin=\"check_tcp\"} 1"));
    assert!(text.ends_with("# EOF\n"));
    let Some(promtool) = tool("promtool") else {
        eprintln!(
            "SKIP openmetrics_passes_promtool: promtool not installed (apt-get install prometheus)"
        );
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
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
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn nagios_is_worst_first_and_under_16k_for_many_sites() {
    let r = report(300);
    let text = r.output(report::Format::Nagios);
    assert!(
        text.len() <= probes::render::nagios::MAX_OUTPUT,
        "{}",
        text.len()
    );
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("FEDPROBE CRITICAL - 0/300 sites pass"),
        "{first}"
    );
    assert!(
        first.contains("| sites=300;;;0 sites_passed=0;;;0"),
        "{first}"
    );
    assert!(text.contains("more lines cut to stay under 16 KB"));
    let second = text.lines().nth(1).unwrap();
    assert!(second.starts_with("[CRITICAL] SITE-000"), "{second}");
    let parsed = probes::render::parse::parse_output(&text);
    assert!(parsed.bad_perfdata.is_empty(), "{:?}", parsed.bad_perfdata);
    assert!(parsed.perfdata.iter().any(|p| p.label == "checks_fail"));
    assert!(!text.contains('\u{1b}'));
}

#[test]
fn json_has_every_check_and_a_schema() {
    let r = report(2);
    let v: serde_json::Value = serde_json::from_str(&r.output(report::Format::Json)).unwrap();
    assert_eq!(v["schema"], "fedprobe.harness-report/v1");
    assert_eq!(v["guideline"]["id"], "eosc-iaas-2026.1");
    assert_eq!(v["sites"].as_array().unwrap().len(), 2);
    let mut outcomes = std::collections::BTreeSet::new();
    for s in v["sites"].as_array().unwrap() {
        assert!(s["run"]["duration"].as_f64().unwrap() > 0.0);
        for c in s["grade"]["capabilities"].as_array().unwrap() {
            for ch in c["checks"].as_array().unwrap() {
                outcomes.insert(ch["outcome"].as_str().unwrap().to_string());
                assert!(ch["duration"].is_number());
            }
        }
    }
    for o in ["pass", "warn", "fail", "skip"] {
        assert!(outcomes.contains(o), "{o} missing: {outcomes:?}");
    }
    let t = &v["totals"];
    assert_eq!(t["sites"], 2);
    assert_eq!(v["status"], "CRITICAL");
    // The totals (each grade's tally, summed) count the checks the sites
    // list: unflagged ones by outcome, flagged ones apart.
    let mut counted = std::collections::BTreeMap::<String, u64>::new();
    for s in v["sites"].as_array().unwrap() {
        for c in s["grade"]["capabilities"].as_array().unwrap() {
            let na = c["status"] == "not-applicable";
            for ch in c["checks"].as_array().unwrap() {
                let key = if na {
                    "not_applicable".to_string()
                } else if ch.get("flagged").is_some() {
                    "flagged".to_string()
                } else {
                    ch["outcome"].as_str().unwrap().replace('-', "_")
                };
                *counted.entry(key).or_default() += 1;
            }
        }
    }
    assert!(counted["flagged"] > 0 && counted["fail"] > 0, "{counted:?}");
    for k in ["pass", "warn", "fail", "skip", "flagged", "not_configured"] {
        let want = counted.get(k).copied().unwrap_or(0);
        assert_eq!(t[k].as_u64().unwrap_or(0), want, "{k}: {counted:?}");
    }
}

#[test]
fn markdown_has_a_verdict_and_evidence_per_requirement() {
    let r = report(1);
    let md = r.output(report::Format::Markdown);
    for (id, _) in &r.requirements {
        assert!(md.contains(&format!("### {id}")), "{id}");
    }
    assert!(md.contains("**To fix:**"));
    assert!(
        md.contains("check_vm_lifecycle --endpoint https://k/v3"),
        "what was called"
    );
    assert!(!md.contains('\u{1b}'));
}

#[test]
fn html_renders_in_chromium_and_its_numbers_match_the_json() {
    let r = report(3);
    let html = r.output(report::Format::Html);
    assert!(html.contains("<svg class=\"timing\""));
    assert!(
        !html.contains("<html><b>Bad"),
        "site markup must be escaped"
    );
    let json: serde_json::Value = serde_json::from_str(&r.output(report::Format::Json)).unwrap();
    let Some(chromium) = tool("chromium").or_else(|| tool("chromium-browser")) else {
        eprintln!("SKIP html_renders_in_chromium_and_its_numbers_match_the_json: chromium not installed (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "report.html", &html);
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", f.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("data-rendered=\"yes\""),
        "page script did not run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let span = |id: &str| -> String {
        let key = format!("id=\"{id}\">");
        let at = dom.find(&key).unwrap_or_else(|| panic!("{id} not in DOM")) + key.len();
        dom[at..].split('<').next().unwrap().to_string()
    };
    for k in ["pass", "warn", "fail", "skip", "flagged"] {
        let want = json["totals"][k].as_u64().unwrap().to_string();
        assert_eq!(span(&format!("total-{k}")), want, "total {k}");
        assert_eq!(
            span(&format!("js-count-{k}")),
            want,
            "rows counted by the browser, {k}"
        );
    }
    // Per-site numbers, in the page's site order, against the JSON.
    for s in json["sites"].as_array().unwrap() {
        let name = s["run"]["site"].as_str().unwrap();
        let key = format!("id=\"site-{}\"", fedprobe::profile::sanitise_name(name));
        let at = dom
            .find(&key)
            .unwrap_or_else(|| panic!("site {name} not rendered"));
        let section = &dom[at..];
        let grab = |class: &str| {
            let key = format!("class=\"{class}\">");
            let i = section.find(&key).unwrap() + key.len();
            section[i..].split('<').next().unwrap().to_string()
        };
        // The page writes 50.0 as "50": compare the numbers.
        let num = |class: &str| grab(class).parse::<f64>().unwrap();
        assert_eq!(
            num("required-pct"),
            s["grade"]["required_pct"].as_f64().unwrap(),
            "{name}"
        );
        assert_eq!(
            num("unflagged-pct"),
            s["grade"]["unflagged_pct"].as_f64().unwrap(),
            "{name}"
        );
        assert_eq!(
            grab("required-passed"),
            s["grade"]["required_passed"].to_string(),
            "{name}"
        );
    }
    let svgs = dom.matches("<svg class=\"timing\"").count();
    assert_eq!(svgs, 3 * 4, "a timing chart per probe");
}

#[test]
fn no_report_format_shows_a_known_secret() {
    let secret = "tok_SECRET-abcdefgh.ijklmnop_qrstuvwx";
    let _ = probes::secret::Secret::new(secret);
    let mut run = site_run("S <x>", true);
    run.probes[1].result.steps[1].message =
        format!("echoed back: {secret} and part {}", &secret[4..20]);
    run.probes[1].argv.push(secret.to_string());
    run.externals[0].summary = format!("plugin said {secret}");
    let r = Report::build(
        &[Guideline::embedded()],
        vec![run],
        0.0,
        Duration::from_secs(1),
    );
    let dir = tempfile::tempdir().unwrap();
    for f in r.write_all(dir.path()).unwrap() {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("SECRET-abcd"), "{}", f.display());
        assert!(!text.contains(&secret[4..20]), "{}", f.display());
        // The metrics carry no messages; every other format shows the mask.
        if f.extension().is_none_or(|e| e != "prom") {
            assert!(text.contains("***"), "{}", f.display());
        }
    }
}

/// Every format's exact text for a small report, as snapshots
/// (harness/tests/it/snapshots): a change of any report shows in review.
#[test]
fn exact_text_of_every_format() {
    let r = report(2);
    for f in Format::ALL {
        let text = r.output(f).replace(env!("CARGO_PKG_VERSION"), "[version]");
        insta::assert_snapshot!(format!("report_{}", f.file_name()), text);
    }
}

/// The whole report of `runs` and its head (no site yet), as a run starts it.
fn whole_and_head(g: &fedprobe::guideline::Guideline, runs: &[SiteRun]) -> (Report, Report) {
    let guidelines = std::slice::from_ref(g);
    let full = Report::build(guidelines, runs.to_vec(), 1.0, Duration::from_secs(3));
    let mut head = Report::empty(guidelines, 1.0);
    head.duration = Duration::from_secs(3);
    (full, head)
}

/// The spooled reports a run writes equal the whole renderings of the same
/// report, byte for byte, in every format.
#[test]
fn spooled_reports_equal_whole_renderings() {
    use fedprobe::report::spool::{SitePart, Spool};
    let g = fedprobe::guideline::Guideline::embedded();
    let runs = vec![
        site_run("SITE-B", false),
        site_run("SITE-A", true),
        site_run("SITE-C", false),
    ];
    let (full, mut slim) = whole_and_head(&g, &runs);
    let mut spool = Spool::new().unwrap();
    for run in runs {
        let s = fedprobe::report::grade_site(std::slice::from_ref(&g), run);
        spool.append(SitePart::render(&slim, &s)).unwrap();
        slim.sites.push(s.slim());
    }
    assert!(slim.sites.iter().all(|s| s.run.probes.is_empty()));
    assert!(slim.sites.iter().all(|s| s.grade.capabilities.is_empty()));
    let dir = tempfile::tempdir().unwrap();
    spool.finish(&slim, dir.path()).unwrap();
    for f in Format::ALL {
        let written = std::fs::read_to_string(dir.path().join(f.file_name())).unwrap();
        assert_eq!(written, full.output(f), "{f:?}");
    }
    // No site at all: the heads alone.
    let empty = Report::empty(std::slice::from_ref(&g), 1.0);
    let dir = tempfile::tempdir().unwrap();
    Spool::new().unwrap().finish(&empty, dir.path()).unwrap();
    for f in Format::ALL {
        let written = std::fs::read_to_string(dir.path().join(f.file_name())).unwrap();
        assert_eq!(written, empty.output(f), "{f:?} of no site");
    }
}

/// A site's secrets are hidden in every part of it the writer spools, and
/// forgotten once it is rendered; another site's, still running, stay known.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sites_secrets_are_forgotten_once_its_parts_are_scrubbed() {
    use fedprobe::report::spool::{Spool, Writer};
    use probes::secret::{is_known, Scope, Secret};
    let g = fedprobe::guideline::Guideline::embedded();
    let (done, running) = (Scope::new(), Scope::new());
    let token = "zq-issued-to-site-a-40917";
    let other = "zq-issued-to-site-b-40917";
    let made = done.enter(async { Secret::new(token) }).await;
    let _still = running.enter(async { Secret::new(other) }).await;
    // The site sent its token back in a check's message and a plugin's output.
    let mut run = site_run("SITE-S", false);
    run.probes[1].result.steps[1].message = format!("echoed {token} back");
    run.externals[0].summary = format!("plugin saw {token}");
    drop(made);

    let (_, mut slim) = whole_and_head(&g, std::slice::from_ref(&run));
    let writer = Writer::start(&slim, Ok(Spool::new().unwrap()));
    let seat = writer.room().seat().await;
    writer.add(
        fedprobe::report::grade_site(std::slice::from_ref(&g), run),
        seat,
        done,
    );
    let (sites, spool) = writer.finish().await;
    slim.sites = sites;
    assert!(!is_known(token), "forgotten once rendered");
    assert!(is_known(other), "the running site's stays");
    assert!(
        slim.sites[0].run.externals.is_empty(),
        "no site text is kept"
    );
    let dir = tempfile::tempdir().unwrap();
    spool.unwrap().finish(&slim, dir.path()).unwrap();
    for f in Format::ALL {
        let written = std::fs::read_to_string(dir.path().join(f.file_name())).unwrap();
        assert!(!written.contains("issued-to"), "{f:?}: {written}");
        // The formats that carry messages carry this one, hidden.
        if !matches!(f, Format::Nagios | Format::Openmetrics) {
            assert!(written.contains("echoed ***"), "{f:?}");
        }
    }
}

/// Sites rendered in parallel by the spool's writer come out in the order
/// added, their JUnit suites numbered across sites, equal to the whole
/// renderings byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_rendered_in_parallel_are_spooled_in_order() {
    use fedprobe::report::spool::{Spool, Writer};
    let g = fedprobe::guideline::Guideline::embedded();
    let runs: Vec<_> = (0..24)
        .map(|i| site_run(&format!("SITE-{:02}", 23 - i), i % 3 == 0))
        .collect();
    let (full, mut slim) = whole_and_head(&g, &runs);
    let writer = Writer::start(&slim, Ok(Spool::new().unwrap()));
    for run in runs {
        let seat = writer.room().seat().await;
        writer.add(
            fedprobe::report::grade_site(std::slice::from_ref(&g), run),
            seat,
            probes::secret::Scope::new(),
        );
    }
    let (sites, spool) = writer.finish().await;
    slim.sites = sites;
    assert_eq!(slim.sites.len(), 24);
    assert!(slim.sites.iter().all(|s| s.run.probes.is_empty()));
    assert!(slim.sites.iter().all(|s| s.grade.capabilities.is_empty()));
    let dir = tempfile::tempdir().unwrap();
    spool.unwrap().finish(&slim, dir.path()).unwrap();
    for f in Format::ALL {
        let written = std::fs::read_to_string(dir.path().join(f.file_name())).unwrap();
        assert_eq!(written, full.output(f), "{f:?}");
    }
    // The Nagios output was cut from the spooled lines read worst first,
    // the count of lines cut taken over every site.
    let nagios = std::fs::read_to_string(dir.path().join(Format::Nagios.file_name())).unwrap();
    assert!(
        nagios.contains(" more lines cut to stay under 16 KB"),
        "{nagios}"
    );
}
