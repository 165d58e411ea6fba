//! The grade and report a provider reads: checks not configured are graded
//! so (with the flag that enables them), the overview rows and what to fix
//! first, and `--compare` against a previous JSON report.

use std::time::Duration;

use fedprobe::grade::{grade, Verdict};
use fedprobe::guideline::Guideline;
use fedprobe::model::{ProbeRun, SiteRun};
use fedprobe::report::{Format, Report};
use probes::model::{Outcome, ProbeResult, Status, Step};

fn step(check: &str, status: Status) -> Step {
    Step {
        check: check.into(),
        requirement: "R".into(),
        name: format!("stage {check}"),
        status,
        message: format!("{check} came back {status}"),
        duration: Duration::from_millis(50),
        http: None,
        transport: None,
        cut_by_deadline: false,
    }
}

fn probe(argv: &[&str], status: Status, steps: Vec<Step>, secs: u64) -> ProbeRun {
    let name = argv[0].to_string();
    ProbeRun {
        probe: name.clone(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        result: ProbeResult {
            probe: name,
            label: "L".into(),
            status,
            outcome: Outcome::Finished,
            summary: "summary".into(),
            steps,
            perfdata: vec![],
            resources: vec![],
            started_at: 1_700_000_000.0,
            duration: Duration::from_secs(secs),
            http_requests: 1,
            details: vec![],
        },
    }
}

/// A site whose usage probe has the API but no APEL spool; `vm_ok` and
/// `usage_ok` decide two checks, `vm_secs` the VM probe's time.
fn run(vm_ok: bool, usage_ok: bool, vm_secs: u64) -> SiteRun {
    let st = |ok: bool| if ok { Status::Ok } else { Status::Critical };
    SiteRun {
        site: "MY-SITE".into(),
        cloud: Default::default(),
        guideline: "eosc-iaas-2026.1".into(),
        started_at: 1_700_000_000.0,
        duration: Duration::from_secs(5),
        probes: vec![
            probe(
                &[
                    "check_vm_lifecycle",
                    "--endpoint",
                    "https://k/v3",
                    "--vo",
                    "ops",
                ],
                st(vm_ok),
                vec![step("VM-01", Status::Ok), step("VM-02", st(vm_ok))],
                vm_secs,
            ),
            probe(
                &["check_usage", "--endpoint", "https://k/v3"],
                st(usage_ok),
                vec![step("USAGE-01", st(usage_ok)), step("USAGE-03", Status::Ok)],
                1,
            ),
        ],
        externals: vec![],
    }
}

fn report(r: SiteRun) -> Report {
    Report::build(
        &[Guideline::embedded()],
        vec![r],
        1_700_000_000.0,
        Duration::from_secs(6),
    )
}

#[test]
fn a_check_its_probe_was_not_configured_for_is_graded_so_with_the_flag() {
    let g = grade(&Guideline::embedded(), &run(true, true, 2));
    let all: Vec<_> = g.capabilities.iter().flat_map(|c| &c.checks).collect();
    let find = |id: &str| {
        all.iter()
            .find(|c| c.check == id)
            .unwrap_or_else(|| panic!("{id} not graded"))
    };
    let apel = find("check_usage:USAGE-04");
    assert_eq!(apel.outcome, Verdict::NotConfigured);
    assert!(
        apel.message.contains("enable with --apel-dir DIR"),
        "{}",
        apel.message
    );
    assert!(!apel.message.contains("does not have"), "{}", apel.message);
    // USAGE-02 needs the VM probe's server: it names that.
    assert!(find("check_usage:USAGE-02").message.contains("--server-id"));
    // The whole appliance probe is not configured.
    let appl = find("check_appliances:APPL-*");
    assert_eq!(appl.outcome, Verdict::NotConfigured);
    assert!(
        appl.message.contains("--appliances-list"),
        "{}",
        appl.message
    );
    // A not configured check does not pass its capability.
    let acc = g
        .capabilities
        .iter()
        .find(|c| c.id == "accounting-records")
        .unwrap();
    assert_eq!(acc.status, fedprobe::grade::CapStatus::Fail);
    // Configured but absent is still "a check this probe does not have".
    let mut r = run(true, true, 2);
    r.probes[1]
        .argv
        .extend(["--apel-dir".to_string(), "/x".to_string()]);
    let g = grade(&Guideline::embedded(), &r);
    let c = g
        .capabilities
        .iter()
        .flat_map(|c| &c.checks)
        .find(|c| c.check == "check_usage:USAGE-04")
        .unwrap();
    assert_eq!(c.outcome, Verdict::Skip);
    assert!(c.message.contains("does not have"), "{}", c.message);
}

#[test]
fn the_overview_has_a_row_per_requirement_and_the_fixes_in_order() {
    let r = report(run(false, true, 2));
    let md = r.output(Format::Markdown);
    let html = r.output(Format::Html);
    let reqs = Guideline::embedded().requirements;
    assert_eq!(html.matches("class=\"ov-row\"").count(), reqs.len());
    for q in &reqs {
        assert!(md.contains(&format!("| **{}** ", q.id)), "{}", q.id);
        assert!(html.contains(&format!("href=\"#req-MY-SITE-{}\"", q.id)));
        assert!(
            html.contains(&format!("id=\"req-MY-SITE-{}\"", q.id)),
            "evidence anchor"
        );
    }
    assert!(html.contains("data-requirement=\"EOSC-IAAS-API\" data-verdict=\"fail\""));
    assert!(html.contains("data-requirement=\"EGI-ACCOUNTING\" data-verdict=\"not-configured\""));
    // Required first: the VM failure is item 1, with the stage, what came back and the fix.
    let fixes = md.split("#### What to fix first").nth(1).unwrap();
    let first = fixes.lines().find(|l| l.starts_with("1. ")).unwrap();
    assert!(first.contains("compute-vm-lifecycle"), "{first}");
    assert!(first.contains("VM-02 came back CRITICAL"), "{first}");
    assert!(
        first.contains("Fix: Subscribe the VO to the monitoring image"),
        "{first}"
    );
    let accounting = fixes.find("accounting-records").unwrap();
    assert!(
        fixes.find("compute-vm-lifecycle").unwrap() < accounting,
        "advisory after required"
    );
    // Integration steps.
    assert!(
        md.contains("| Accounting: cASO records published | not configured |"),
        "{md}"
    );
    assert!(
        md.contains("| VM and appliance repository | to do |"),
        "{md}"
    );
}

#[test]
fn compare_lists_new_failures_fixes_and_timing_changes() {
    let old = report(run(false, true, 2));
    let old_json: serde_json::Value = serde_json::from_str(&old.output(Format::Json)).unwrap();
    let mut now = report(run(true, false, 10));
    now.previous = Some(old_json);
    let md = now.output(Format::Markdown);
    let cmp = md
        .split("#### Compared with the previous report")
        .nth(1)
        .unwrap();
    assert!(
        cmp.contains("- new failures: 1: check_usage:USAGE-01"),
        "{cmp}"
    );
    assert!(
        cmp.contains("- fixed: 1: check_vm_lifecycle:VM-02"),
        "{cmp}"
    );
    assert!(
        cmp.contains("check_vm_lifecycle 2.0s to 10.0s (+400%)"),
        "{cmp}"
    );
    let html = now.output(Format::Html);
    assert!(html.contains("class=\"cmp-new\" data-count=\"1\""));
    assert!(html.contains("class=\"cmp-fixed\" data-count=\"1\""));
    // Nothing to compare without --compare.
    assert!(!report(run(true, true, 2))
        .output(Format::Markdown)
        .contains("Compared with the previous report"));
}
