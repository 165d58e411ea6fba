//! Site profiles: parsing, refusing inline secrets, credential sources,
//! and how options become probe flags.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use fedprobe::app::plan_site;
use fedprobe::guideline::Guideline;
use fedprobe::profile::Profile;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/sites")
        .join(name)
}

fn flags(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_example_profile_parses_and_plans_every_guideline_probe() {
    let p = Profile::load(&testdata("example.toml")).unwrap();
    assert_eq!(p.site, "EXAMPLE-SITE");
    assert_eq!(p.vos, ["ops", "vo.access.egi.eu"]);
    assert_eq!(p.external.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_site(&p, &Guideline::embedded(), dir.path()).unwrap();
    let names: Vec<&str> = plan.probes.iter().map(|a| a.name.as_str()).collect();
    for n in [
        "check_token_auth",
        "check_vm_lifecycle",
        "check_image_upload",
        "check_usage",
        "check_glue",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let auth = plan
        .probes
        .iter()
        .find(|a| a.name == "check_token_auth")
        .unwrap();
    let joined = auth.argv.join(" ");
    assert!(
        joined.contains("--endpoint https://keystone.example.org:5000/v3"),
        "{joined}"
    );
    assert!(
        joined.contains("--access-token /etc/fedprobe/oidc-access-token"),
        "{joined}"
    );
    assert!(
        joined.contains("--timeout 60s"),
        "guideline timeout: {joined}"
    );
    assert!(
        joined.contains("--ca-path /etc/grid-security/certificates"),
        "{joined}"
    );
    let vm = plan
        .probes
        .iter()
        .find(|a| a.name == "check_vm_lifecycle")
        .unwrap();
    assert!(
        vm.argv.join(" ").contains("--timeout 10m"),
        "profile wins: {vm:?}"
    );
    assert_eq!(
        plan.externals[0].timeout,
        std::time::Duration::from_secs(10)
    );
}

#[test]
fn inline_secrets_are_refused_unless_allowed() {
    let e = Profile::load(&testdata("inline-secret.toml")).unwrap_err();
    assert!(e.contains("inline secret refused"), "{e}");
    assert!(
        !e.contains("not-a-real-token"),
        "the error must not echo the secret: {e}"
    );
    let text = std::fs::read_to_string(testdata("inline-secret.toml")).unwrap();
    let allowed = format!("allow_inline_secrets = true\n{text}");
    let p = Profile::parse(&allowed, "allowed").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let creds = p.materialise(dir.path()).unwrap();
    let f = &creds["access_token"];
    assert_eq!(
        std::fs::read_to_string(f).unwrap(),
        "eyJhbGciOiJSUzI1NiJ9.not-a-real-token.signature"
    );
    assert_eq!(
        std::fs::metadata(f).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn env_and_clouds_yaml_credentials_become_private_files() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("clouds.yaml");
    std::fs::write(
        &yaml,
        "clouds:\n  mysite:\n    auth_type: v3oidcaccesstoken\n    auth:\n      auth_url: https://k.example/v3\n      access_token: yaml-token-1234567890\n      identity_provider: egi.eu\n      protocol: openid\n",
    )
    .unwrap();
    std::env::set_var("FEDPROBE_TEST_TOKEN_ENV", "env-token-1234567890");
    let text = format!(
        r#"site = "S"
[credentials.access_token]
env = "FEDPROBE_TEST_TOKEN_ENV"
[credentials.other_token]
clouds_yaml = "{}"
cloud = "mysite"
"#,
        yaml.display()
    );
    let p = Profile::parse(&text, "t").unwrap();
    assert_eq!(
        p.keystone().as_deref(),
        Some("https://k.example/v3"),
        "auth_url from clouds.yaml"
    );
    let out = tempfile::tempdir().unwrap();
    let creds = p.materialise(out.path()).unwrap();
    assert_eq!(
        std::fs::read_to_string(&creds["access_token"]).unwrap(),
        "env-token-1234567890"
    );
    assert_eq!(
        std::fs::read_to_string(&creds["other_token"]).unwrap(),
        "yaml-token-1234567890"
    );
    // Secrets read this way are scrubbed from every output.
    assert_eq!(probes::secret::scrub("x env-token-1234567890 y"), "x *** y");

    let missing = Profile::parse(
        "site = \"S\"\n[credentials.t]\nenv = \"FEDPROBE_TEST_SURELY_UNSET\"\n",
        "t",
    )
    .unwrap();
    let e = missing.materialise(out.path()).unwrap_err();
    assert!(e.contains("FEDPROBE_TEST_SURELY_UNSET not set"), "{e}");
}

#[test]
fn bad_profiles_are_refused() {
    let cases = [
        ("site = \"S\"\ncolour = 1\n", "colour"),
        ("site = \"\"\n", "empty site"),
        (
            "site = \"S\"\n[probe.check_nothing]\nx = 1\n",
            "unknown probe",
        ),
        (
            "site = \"S\"\n[credentials.t]\nfile = \"/a\"\nenv = \"B\"\n",
            "exactly one",
        ),
        (
            "site = \"S\"\n[[external]]\nname = \"x\"\ncommand = []\n",
            "empty command",
        ),
    ];
    for (text, want) in cases {
        let e = Profile::parse(text, "t").unwrap_err();
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

#[test]
fn options_map_to_flags_the_probe_accepts() {
    let p = Profile::parse(
        r#"site = "S"
vos = ["ops", "other"]
[endpoints]
keystone = "https://k/v3"
glue-url = "https://g/glue.json"
[defaults]
insecure = true
not-a-flag-anywhere = "x"
[probe.check_vm_lifecycle]
flavor = "m1.small"
ca-cert = ["/a.pem", "/b.pem"]
verbose = false
poll = 2
"#,
        "t",
    )
    .unwrap();
    let accepted = flags(&["endpoint", "vo", "insecure", "timeout", "flavor", "ca-cert"]);
    let argv = p
        .argv(
            "check_vm_lifecycle",
            &accepted,
            &BTreeMap::new(),
            Some("5m"),
        )
        .unwrap();
    let s = argv.join(" ");
    assert_eq!(argv[0], "check_vm_lifecycle");
    assert!(s.contains("--endpoint https://k/v3"), "{s}");
    assert!(s.contains("--vo ops"), "first VO: {s}");
    assert!(s.contains("--insecure"), "{s}");
    assert!(
        !s.contains("not-a-flag"),
        "defaults only where accepted: {s}"
    );
    assert!(
        !s.contains("glue-url"),
        "endpoints only where accepted: {s}"
    );
    assert!(
        s.contains("--ca-cert /a.pem --ca-cert /b.pem"),
        "arrays repeat: {s}"
    );
    assert!(!s.contains("--verbose"), "false omits: {s}");
    assert!(
        s.contains("--poll 2"),
        "per-probe table passed as given: {s}"
    );
    assert!(s.contains("--timeout 5m"), "{s}");
}

#[test]
fn a_profile_names_its_cloud_and_its_api_endpoint() {
    let p = Profile::parse(
        "site = \"S\"\ncloud = \"ec2\"\n[endpoints]\napi = \"https://ec2.example/\"\n",
        "t",
    )
    .unwrap();
    assert_eq!(p.cloud, probes::auth::cloud::CloudKind::Ec2);
    let accepted = flags(&["endpoint", "cloud"]);
    let argv = p
        .argv("check_vm_lifecycle", &accepted, &BTreeMap::new(), None)
        .unwrap();
    let s = argv.join(" ");
    assert!(s.contains("--cloud ec2"), "{s}");
    assert!(s.contains("--endpoint https://ec2.example/"), "{s}");
    assert!(!s.contains("--api"), "api is the endpoint, not a flag: {s}");
    // OpenStack is the default and adds no flag.
    let os = Profile::parse("site = \"S\"\n", "t").unwrap();
    let argv = os
        .argv("check_vm_lifecycle", &accepted, &BTreeMap::new(), None)
        .unwrap();
    assert!(!argv.join(" ").contains("--cloud"), "{argv:?}");
    assert!(Profile::parse("site = \"S\"\ncloud = \"aws\"\n", "t").is_err());
}

#[tokio::test]
async fn a_flag_the_probe_does_not_know_is_an_unknown_result_naming_it() {
    let argv = flags(&["check_token_auth", "--no-such-flag", "x"]);
    let plan = fedprobe::run::ProbePlan::parse(argv);
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let r = fedprobe::run::run_probe(plan, std::time::Duration::from_secs(1), stop, None)
        .await
        .result;
    assert_eq!(r.status, probes::model::Status::Unknown);
    assert!(r.summary.contains("--no-such-flag"), "{}", r.summary);
}
