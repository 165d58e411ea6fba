//! Guideline grading with synthetic probe results: required, advisory and
//! flagged capabilities, percentages, checks never reached, the harness's
//! own checks, guideline validation and the CI exit policy.

use std::time::Duration;

use fedprobe::app::{exit_code, FailOn};
use fedprobe::grade::{grade, CapStatus, Verdict};
use fedprobe::guideline::Guideline;
use fedprobe::model::{ProbeRun, SiteRun};
use probes::model::{Cleanup, Outcome, ProbeResult, Resource, ResourceKind, Status, Step};

const G: &str = r#"
schema = 1
id = "test-1"
title = "test guideline"
[probes.check_token_auth]
[probes.check_vm_lifecycle]
timeout = "5m"
[probes.fedprobe]

[[requirement]]
id = "R-AAI"
title = "federated login"
[[requirement]]
id = "R-VM"
title = "VMs"
[[requirement]]
id = "R-MON"
title = "monitoring"

[[capability]]
id = "auth"
requirement = "R-AAI"
level = "required"
title = "login"
checks = ["check_token_auth:AUTH-*"]

[[capability]]
id = "vm"
requirement = "R-VM"
level = "required"
title = "vm lifecycle"
checks = ["check_vm_lifecycle:VM-01", "check_vm_lifecycle:VM-02", "check_vm_lifecycle:VM-09"]
flagged = [{ check = "check_vm_lifecycle:VM-09", reason = "known broken upstream" }]

[[capability]]
id = "vm-extra"
requirement = "R-VM"
level = "advisory"
title = "extra"
checks = ["check_vm_lifecycle:VM-03"]

[[capability]]
id = "mon"
requirement = "R-MON"
level = "required"
title = "monitoring"
checks = ["fedprobe:RUN-*"]
"#;

fn step(check: &str, status: Status) -> Step {
    Step {
        check: check.into(),
        requirement: "R".into(),
        name: format!("step {check}"),
        status,
        message: format!("{check} said {status}"),
        duration: Duration::from_millis(120),
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
        outcome: Outcome::Finished,
        summary: format!("{probe} summary"),
        steps,
        perfdata: vec![],
        resources: vec![],
        started_at: 1_700_000_000.0,
        duration: Duration::from_secs(2),
        http_requests: 3,
        details: vec![],
    }
}

fn site(results: Vec<ProbeResult>) -> SiteRun {
    SiteRun {
        site: "S1".into(),
        cloud: Default::default(),
        guideline: "test-1".into(),
        started_at: 1_700_000_000.0,
        duration: Duration::from_secs(3),
        probes: results
            .into_iter()
            .map(|r| ProbeRun {
                probe: r.probe.clone(),
                argv: vec![r.probe.clone()],
                result: r,
            })
            .collect(),
        externals: vec![],
    }
}

fn g() -> Guideline {
    Guideline::parse(G).unwrap()
}

fn all_ok() -> Vec<ProbeResult> {
    vec![
        result(
            "check_token_auth",
            "TOKEN_AUTH",
            Status::Ok,
            vec![step("AUTH-01", Status::Ok), step("AUTH-02", Status::Ok)],
        ),
        result(
            "check_vm_lifecycle",
            "VM_LIFECYCLE",
            Status::Ok,
            vec![
                step("VM-01", Status::Ok),
                step("VM-02", Status::Ok),
                step("VM-03", Status::Ok),
                step("VM-09", Status::Ok),
            ],
        ),
    ]
}

fn cap<'a>(sg: &'a fedprobe::grade::SiteGrade, id: &str) -> &'a fedprobe::grade::CapGrade {
    sg.capabilities.iter().find(|c| c.id == id).unwrap()
}

#[test]
fn everything_passing_passes_at_100_percent() {
    let sg = grade(&g(), &site(all_ok()));
    assert!(sg.passed);
    assert_eq!(sg.status, Status::Ok);
    assert_eq!((sg.required_passed, sg.required_total), (3, 3));
    assert_eq!(sg.required_pct, 100.0);
    assert_eq!(sg.unflagged_pct, 100.0);
    // AUTH-01, AUTH-02, VM-01, VM-02, VM-03, RUN-TOKEN_AUTH, RUN-VM_LIFECYCLE
    assert_eq!(sg.unflagged_total, 7);
    let auth = cap(&sg, "auth");
    assert_eq!(auth.checks.len(), 2, "prefix selects both AUTH steps");
}

#[test]
fn a_flagged_failure_does_not_fail_its_capability_but_is_recorded() {
    let mut rs = all_ok();
    rs[1].steps[3].status = Status::Critical;
    let sg = grade(&g(), &site(rs));
    let vm = cap(&sg, "vm");
    assert_eq!(vm.status, CapStatus::Pass);
    let flagged = vm.checks.iter().find(|c| c.check == "VM-09").unwrap();
    assert_eq!(flagged.outcome, Verdict::Fail);
    assert_eq!(flagged.flagged.as_deref(), Some("known broken upstream"));
    assert!(sg.passed);
    assert_eq!(sg.status, Status::Ok, "flagged checks do not count");
}

#[test]
fn an_advisory_failure_keeps_the_site_passing_and_caps_at_warning() {
    let mut rs = all_ok();
    rs[1].steps[2].status = Status::Critical; // VM-03, advisory
    let sg = grade(&g(), &site(rs));
    assert_eq!(cap(&sg, "vm-extra").status, CapStatus::Fail);
    assert!(sg.passed);
    assert_eq!(sg.required_pct, 100.0);
    assert_eq!(sg.unflagged_passed, 6);
    assert_eq!(sg.unflagged_pct, 85.7);
    assert_eq!(sg.status, Status::Warning);
}

#[test]
fn a_required_failure_fails_the_site_with_percentages() {
    let mut rs = all_ok();
    rs[0].steps[1] = step("AUTH-02", Status::Critical);
    rs[0].status = Status::Critical;
    let sg = grade(&g(), &site(rs));
    assert_eq!(cap(&sg, "auth").status, CapStatus::Fail);
    assert!(!sg.passed);
    assert_eq!((sg.required_passed, sg.required_total), (2, 3));
    assert_eq!(sg.required_pct, 66.7);
    assert_eq!(sg.status, Status::Critical);
    let failing = cap(&sg, "auth")
        .checks
        .iter()
        .find(|c| c.check == "AUTH-02")
        .unwrap();
    assert_eq!(
        failing.message, "AUTH-02 said CRITICAL",
        "failures keep the probe's words"
    );
}

#[test]
fn warnings_pass() {
    let mut rs = all_ok();
    rs[1].steps[0].status = Status::Warning;
    let sg = grade(&g(), &site(rs));
    assert_eq!(cap(&sg, "vm").status, CapStatus::Pass);
    assert!(sg.passed);
    assert_eq!(sg.status, Status::Warning);
}

#[test]
fn checks_never_reached_fail_with_the_probes_reason() {
    let mut rs = all_ok();
    // The VM probe died at login: no VM-* step at all.
    rs[1] = result(
        "check_vm_lifecycle",
        "VM_LIFECYCLE",
        Status::Critical,
        vec![step("AUTH-02", Status::Critical)],
    );
    let sg = grade(&g(), &site(rs));
    let vm = cap(&sg, "vm");
    assert_eq!(vm.status, CapStatus::Fail);
    let c = &vm.checks[0];
    assert_eq!(c.check, "check_vm_lifecycle:VM-01");
    assert_eq!(c.outcome, Verdict::Fail);
    assert!(c.message.contains("not reached"), "{}", c.message);
    assert!(c.message.contains("after AUTH-02"), "{}", c.message);
    assert!(!sg.passed);
}

#[test]
fn a_placeholder_probe_is_skipped_not_passed() {
    let mut rs = all_ok();
    rs[1] = result(
        "check_vm_lifecycle",
        "VM_LIFECYCLE",
        Status::Unknown,
        vec![],
    );
    let sg = grade(&g(), &site(rs));
    let vm = cap(&sg, "vm");
    assert_eq!(vm.status, CapStatus::Fail);
    assert!(vm.checks.iter().all(|c| c.outcome == Verdict::Skip));
    let mon = cap(&sg, "mon");
    assert_eq!(
        mon.status,
        CapStatus::Fail,
        "a probe that cannot run is not monitorable"
    );
    assert_eq!(sg.status, Status::Unknown);
}

#[test]
fn a_missing_probe_is_reported() {
    let rs = vec![all_ok().remove(0)];
    let sg = grade(&g(), &site(rs));
    let vm = cap(&sg, "vm");
    assert!(vm.checks[0].message.contains("was not run"));
    assert_eq!(vm.status, CapStatus::Fail);
}

#[test]
fn leaked_resources_and_timeouts_fail_the_harness_checks() {
    let mut rs = all_ok();
    rs[1].resources.push(Resource {
        kind: ResourceKind::Server,
        id: "abc".into(),
        name: None,
        cleanup: Cleanup::Failed("HTTP 500".into()),
        transport: None,
    });
    rs[0].summary = "Timeout: no result within 60s (-t), stage AUTH-02".into();
    rs[0].outcome = Outcome::TimedOut {
        stage: Some("AUTH-02".into()),
    };
    let sg = grade(&g(), &site(rs));
    let mon = cap(&sg, "mon");
    assert_eq!(mon.status, CapStatus::Fail);
    let vm = mon
        .checks
        .iter()
        .find(|c| c.check == "RUN-VM_LIFECYCLE")
        .unwrap();
    assert_eq!(vm.outcome, Verdict::Fail);
    assert!(vm.message.contains("server abc"), "{}", vm.message);
    let auth = mon
        .checks
        .iter()
        .find(|c| c.check == "RUN-TOKEN_AUTH")
        .unwrap();
    assert!(auth.message.contains("deadline"), "{}", auth.message);
}

#[test]
fn a_capability_whose_checks_are_all_flagged_is_untested() {
    let text = G.replace(
        "checks = [\"check_vm_lifecycle:VM-03\"]",
        "checks = [\"check_vm_lifecycle:VM-03\"]\nflagged = [{ check = \"check_vm_lifecycle:VM-03\", reason = \"r\" }]",
    );
    let g = Guideline::parse(&text).unwrap();
    let mut rs = all_ok();
    rs[1].steps[2].status = Status::Critical;
    let sg = grade(&g, &site(rs));
    assert_eq!(cap(&sg, "vm-extra").status, CapStatus::Untested);
    assert_eq!(sg.status, Status::Ok);
}

#[test]
fn guideline_validation_finds_every_problem() {
    // unknown field
    let e = Guideline::parse(&G.replace("title = \"test guideline\"", "title = \"t\"\ncolour = 1"))
        .unwrap_err();
    assert!(e[0].contains("colour"), "{e:?}");
    let bad = format!(
        "{G}
[[capability]]
id = \"auth\"
requirement = \"R-NOPE\"
level = \"advisory\"
title = \"dup\"
checks = []

[[capability]]
id = \"x\"
requirement = \"R-AAI\"
level = \"advisory\"
title = \"x\"
checks = [\"check_glue:GLUE-*\", \"nocolon\", \"check_token_auth:AUTH-01\", \"check_token_auth:AUTH-01\"]
flagged = [{{ check = \"check_token_auth:AUTH-09\", reason = \"\" }}]

[[requirement]]
id = \"R-AAI\"
title = \"again\"
[[requirement]]
id = \"R-UNUSED\"
title = \"nobody\"
[probes.check_usage]
"
    );
    let problems = Guideline::parse(&bad).unwrap_err();
    let has = |s: &str| problems.iter().any(|p| p.contains(s));
    assert!(has("duplicate capability id \"auth\""), "{problems:#?}");
    assert!(has("duplicate requirement id \"R-AAI\""), "{problems:#?}");
    assert!(has("unknown requirement \"R-NOPE\""), "{problems:#?}");
    assert!(has("capability auth has no checks"), "{problems:#?}");
    assert!(has("missing from [probes]"), "{problems:#?}");
    assert!(has("expected PROBE:ID"), "{problems:#?}");
    assert!(has("duplicate check"), "{problems:#?}");
    assert!(has("without a reason"), "{problems:#?}");
    assert!(has("is not among its checks"), "{problems:#?}");
    assert!(
        has("R-UNUSED is evidenced by no capability"),
        "{problems:#?}"
    );
    assert!(
        has("probe check_usage is run but its checks are referenced by no capability"),
        "{problems:#?}"
    );
}

#[test]
fn embedded_guideline_maps_every_seed_requirement() {
    let g = Guideline::embedded();
    for r in [
        "EOSC-IAAS-API",
        "EOSC-IAAS-AAI",
        "EOSC-IAAS-ORCH",
        "EOSC-IAAS-IMAGE",
        "EOSC-IAAS-USAGE",
        "EGI-ACCOUNTING",
        "EGI-INFOSYS",
        "EGI-MONITORING",
        "EOSC-IAAS-OVF",
    ] {
        assert!(g.requirement(r).is_some(), "{r}");
        assert!(g.capabilities.iter().any(|c| c.requirement == r), "{r}");
    }
    assert_eq!(
        g.timeout_of("check_vm_lifecycle"),
        Some(Duration::from_secs(600))
    );
}

#[test]
fn exit_policy() {
    assert_eq!(exit_code(Status::Ok, FailOn::Warning), 0);
    assert_eq!(exit_code(Status::Warning, FailOn::Warning), 1);
    assert_eq!(exit_code(Status::Unknown, FailOn::Warning), 3);
    assert_eq!(exit_code(Status::Warning, FailOn::Critical), 0);
    assert_eq!(
        exit_code(Status::Unknown, FailOn::Critical),
        3,
        "undecided is not a pass"
    );
    assert_eq!(exit_code(Status::Critical, FailOn::Critical), 2);
    assert_eq!(exit_code(Status::Critical, FailOn::Never), 0);
    assert_eq!(exit_code(Status::Ok, FailOn::Critical), 0);
}

#[test]
fn coverage_against_a_report_finds_unreferenced_checks() {
    let g = g();
    let report = serde_json::json!({"sites": [{"run": {"probes": [
        {"probe": "check_token_auth", "result": {"steps": [{"check": "AUTH-01"}, {"check": "AUTH-07"}]}},
        {"probe": "check_vm_lifecycle", "result": {"steps": [{"check": "VM-01"}, {"check": "NET-01"}]}}
    ]}}]});
    let (unreferenced, unmatched) = fedprobe::app::coverage(&g, &report);
    assert_eq!(unreferenced, vec!["check_vm_lifecycle:NET-01"]);
    assert_eq!(
        unmatched,
        vec![
            "check_vm_lifecycle:VM-02",
            "check_vm_lifecycle:VM-03",
            "check_vm_lifecycle:VM-09"
        ]
    );
}

#[test]
fn a_saml_only_site_meets_the_aai_requirement_and_a_saml_failure_says_what_to_fix() {
    let g = Guideline::embedded();
    let token = |steps: Vec<Step>, status: Status| {
        let mut r = result("check_token_auth", "TOKEN_AUTH", status, steps);
        r.summary = "token auth".into();
        r
    };
    // logged in by SAML2 ECP: no AUTH-02 (OIDC) at all
    let saml_ok = vec![
        step("AUTH-05", Status::Ok),
        step("AUTH-01", Status::Ok),
        step("AUTH-14", Status::Ok),
        step("AUTH-15", Status::Ok),
        step("AUTH-16", Status::Ok),
        step("AUTH-17", Status::Ok),
        step("AUTH-03", Status::Ok),
        step("AUTH-04", Status::Ok),
        step("AUTH-18", Status::Ok),
    ];
    let sg = grade(&g, &site(vec![token(saml_ok.clone(), Status::Ok)]));
    let aai = cap(&sg, "identity-oidc-federation");
    assert_eq!(aai.status, CapStatus::Pass);
    assert!(aai.checks.iter().all(|c| c.hint.is_none()));
    // the SP refuses the assertion: the check carries the site's fix, the others do not
    let mut failed = saml_ok[..4].to_vec();
    failed.push(step("AUTH-16", Status::Critical));
    let sg = grade(&g, &site(vec![token(failed, Status::Critical)]));
    let aai = cap(&sg, "identity-oidc-federation");
    assert_eq!(aai.status, CapStatus::Fail);
    let c16 = aai
        .checks
        .iter()
        .find(|c| c.check == "AUTH-16" && c.outcome == Verdict::Fail)
        .unwrap();
    let hint = c16.hint.as_deref().expect("a hint for AUTH-16");
    assert!(
        hint.contains("signing certificate") && hint.contains("audience"),
        "{hint}"
    );
    assert!(aai
        .checks
        .iter()
        .filter(|c| c.check != "AUTH-16")
        .all(|c| c.hint.is_none() || c.outcome != Verdict::Pass));
    // the self-certification report puts it beside the failed check
    let mut failed = saml_ok[..4].to_vec();
    failed.push(step("AUTH-16", Status::Critical));
    let report = fedprobe::report::Report::build(
        std::slice::from_ref(&g),
        vec![site(vec![token(failed, Status::Critical)])],
        1_700_000_000.0,
        Duration::from_secs(3),
    );
    for f in [
        fedprobe::report::Format::Markdown,
        fedprobe::report::Format::Html,
    ] {
        let out = report.output(f);
        let at = out.find("AUTH-16 said CRITICAL").expect("the failed check");
        let fix = out[at..].find("To fix:").expect("its fix");
        assert!(
            out[at + fix..].contains("signing certificate"),
            "{}",
            &out[at..]
        );
    }
    // a hint must name one of its capability's checks and say something
    let bad = G.replace(
        "checks = [\"check_token_auth:AUTH-*\"]",
        "checks = [\"check_token_auth:AUTH-*\"]\nhints = [{ check = \"check_vm_lifecycle:VM-01\", fix = \"x\" }, { check = \"check_token_auth:AUTH-14\", fix = \" \" }]",
    );
    let problems = Guideline::parse(&bad).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("hint for \"check_vm_lifecycle:VM-01\" is not among its checks")),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("without a fix")),
        "{problems:#?}"
    );
}

/// The test guideline with per-cloud notes: login not applicable on
/// OpenNebula, the advisory extra not checked on EC2.
fn g_per_cloud() -> Guideline {
    let text = G
        .replace(
            "checks = [\"check_token_auth:AUTH-*\"]",
            "checks = [\"check_token_auth:AUTH-*\"]\nnot_applicable = [{ clouds = [\"opennebula\"], reason = \"no federated login\" }]",
        )
        .replace(
            "checks = [\"check_vm_lifecycle:VM-03\"]",
            "checks = [\"check_vm_lifecycle:VM-03\"]\nnot_checked = [{ clouds = [\"ec2\"], reason = \"no probe for it\" }]",
        );
    Guideline::parse(&text).unwrap()
}

#[test]
fn not_applicable_is_shown_with_its_reason_and_never_counted() {
    use probes::auth::cloud::CloudKind;
    // The login ran and failed: on OpenNebula that is shown, not graded.
    let mut results = all_ok();
    results[0] = result(
        "check_token_auth",
        "TOKEN_AUTH",
        Status::Critical,
        vec![step("AUTH-01", Status::Critical)],
    );
    let mut run = site(results.clone());
    run.cloud = CloudKind::OpenNebula;
    let sg = grade(&g_per_cloud(), &run);
    let auth = cap(&sg, "auth");
    assert_eq!(auth.status, CapStatus::NotApplicable);
    assert_eq!(
        auth.reason.as_deref(),
        Some("not applicable on OpenNebula XML-RPC: no federated login")
    );
    assert!(auth.checks.iter().all(|c| c.flagged.is_some()), "{auth:?}");
    assert!(sg.passed, "{sg:?}");
    assert_eq!(sg.required_total, 2);
    assert_eq!(
        sg.status,
        Status::Ok,
        "a not-applicable check sets no status"
    );
    // Not run at all: one line with the reason.
    let mut run = site(results[1..].to_vec());
    run.cloud = CloudKind::OpenNebula;
    let sg = grade(&g_per_cloud(), &run);
    let auth = cap(&sg, "auth");
    assert_eq!(auth.checks.len(), 1);
    assert_eq!(auth.checks[0].outcome, Verdict::NotApplicable);
    // The same failure on OpenStack fails the site.
    let sg = grade(&g_per_cloud(), &site(results));
    assert_eq!(cap(&sg, "auth").status, CapStatus::Fail);
    assert!(!sg.passed);
    assert_eq!(sg.required_total, 3);
}

#[test]
fn not_checked_fails_saying_why_and_only_on_its_clouds() {
    use probes::auth::cloud::CloudKind;
    let no_vm03 = || {
        let mut r = all_ok();
        r[1].steps.retain(|s| s.check != "VM-03");
        r[1].status = Status::Critical;
        r[1].steps.push(step("VM-02", Status::Critical));
        r
    };
    let mut run = site(no_vm03());
    run.cloud = CloudKind::Ec2;
    let sg = grade(&g_per_cloud(), &run);
    let extra = cap(&sg, "vm-extra");
    assert_eq!(extra.status, CapStatus::Fail);
    assert_eq!(
        extra.reason.as_deref(),
        Some("not checked on Amazon EC2/EBS: no probe for it")
    );
    assert!(
        extra.checks[0]
            .message
            .starts_with("not checked on Amazon EC2/EBS: no probe for it ("),
        "{:?}",
        extra.checks[0]
    );
    // Elsewhere the same miss reads as before.
    let sg = grade(&g_per_cloud(), &site(no_vm03()));
    let extra = cap(&sg, "vm-extra");
    assert!(extra.reason.is_none());
    assert!(!extra.checks[0].message.contains("not checked on"));
}

#[test]
fn a_cloud_both_not_applicable_and_not_checked_is_refused() {
    let text = G.replace(
        "checks = [\"check_vm_lifecycle:VM-03\"]",
        "checks = [\"check_vm_lifecycle:VM-03\"]\nnot_applicable = [{ clouds = [\"gce\"], reason = \"a\" }]\nnot_checked = [{ clouds = [\"gce\"], reason = \"b\" }]",
    );
    let e = Guideline::parse(&text).unwrap_err();
    assert!(e.iter().any(|p| p.contains("gce is both")), "{e:?}");
    let text = G.replace(
        "checks = [\"check_vm_lifecycle:VM-03\"]",
        "checks = [\"check_vm_lifecycle:VM-03\"]\nnot_applicable = [{ clouds = [], reason = \"a\" }]",
    );
    assert!(Guideline::parse(&text).is_err());
}
