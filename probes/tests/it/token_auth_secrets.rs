//! No part of a secret (8 characters or more) may appear in anything
//! check_token_auth prints, at -vvv or as JSON, whichever way it logged in,
//! even when the site echoes the token back in an error page.

use crate::token_auth_support;

use token_auth_support::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn secrets() -> Vec<String> {
    vec![
        access_token(),
        UNSCOPED.into(),
        SCOPED.into(),
        CLIENT_SECRET.into(),
        REFRESH.into(),
        PASSWORD.into(),
        APP_SECRET.into(),
        "cc-access-token-from-op-0123".into(),
    ]
}

/// Fails naming the secret and where a fragment of it showed up.
fn assert_no_leak(r: &Run, what: &str) {
    let out = r.all();
    for s in secrets() {
        let b = s.as_bytes();
        for w in b.windows(8) {
            let frag = String::from_utf8_lossy(w);
            assert!(
                !out.contains(frag.as_ref()),
                "{what}: fragment {frag:?} of a secret leaked in:\n{out}"
            );
        }
    }
}

/// Both renderings of one invocation, at full verbosity.
async fn run_both(args: &[&str], env: &[(&str, &str)], what: &str) -> Vec<Run> {
    let mut runs = Vec::new();
    for fmt in ["nagios", "json"] {
        let mut a = vec!["-vvv", "--output", fmt];
        a.extend_from_slice(args);
        let r = run(&a, env).await;
        assert_no_leak(&r, &format!("{what} ({fmt})"));
        runs.push(r);
    }
    runs
}

struct Env {
    server: MockServer,
    dir: tempfile::TempDir,
}

async fn env() -> Env {
    let server = MockServer::start().await;
    mount_site(&server, Site::default()).await;
    mount_password_and_appcred(&server).await;
    Env {
        server,
        dir: tempfile::tempdir().expect("tempdir"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_login_method_keeps_secrets_out_of_the_output() {
    let e = env().await;
    let ks = format!("{}/v3", e.server.uri());
    let issuer = e.server.uri();
    let token = file(&e.dir, "oidc", &access_token());
    let refresh = file(&e.dir, "refresh", REFRESH);
    let secret = file(&e.dir, "secret", CLIENT_SECRET);
    let pw = file(&e.dir, "pw", PASSWORD);
    let app = file(&e.dir, "app", APP_SECRET);

    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "access token",
            vec!["--endpoint", &ks, "--access-token", &token],
        ),
        (
            "refresh token",
            vec![
                "--endpoint",
                &ks,
                "--refresh-token",
                &refresh,
                "--client-id",
                "fedprobe",
                "--client-secret",
                &secret,
                "--oidc-issuer",
                &issuer,
            ],
        ),
        (
            "client credentials",
            vec![
                "--endpoint",
                &ks,
                "--client-id",
                "fedprobe",
                "--client-secret",
                &secret,
                "--oidc-issuer",
                &issuer,
            ],
        ),
        (
            "password",
            vec![
                "--endpoint",
                &ks,
                "--username",
                "probe-user",
                "--password-file",
                &pw,
                "--project",
                "ops.vo.example",
            ],
        ),
        (
            "application credential",
            vec![
                "--endpoint",
                &ks,
                "--app-cred-id",
                "appcred-1",
                "--app-cred-secret",
                &app,
            ],
        ),
    ];
    for (what, args) in cases {
        let runs = run_both(&args, &[], what).await;
        // the runs really logged in (a leak test of a failed run proves little)
        assert_eq!(runs[0].code, 0, "{what}:\n{}", runs[0].all());
        assert!(runs[0].stdout.contains("http: POST"), "-vvv trace missing");
        let doc: serde_json::Value = serde_json::from_str(&runs[1].stdout).expect("json output");
        assert_eq!(doc["status"], "OK", "{what}: {doc}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_and_clouds_yaml_secrets_stay_hidden() {
    let e = env().await;
    let ks = format!("{}/v3", e.server.uri());
    let runs = run_both(
        &[],
        &[
            ("OS_AUTH_URL", &ks),
            ("OS_AUTH_TYPE", "v3applicationcredential"),
            ("OS_APPLICATION_CREDENTIAL_ID", "appcred-1"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", APP_SECRET),
        ],
        "OS_* application credential",
    )
    .await;
    assert_eq!(runs[0].code, 0, "{}", runs[0].all());
    assert!(
        runs[0].stdout.contains("OS_* environment"),
        "{}",
        runs[0].stdout
    );

    let token = access_token();
    let runs = run_both(
        &[],
        &[
            ("OS_AUTH_URL", &ks),
            ("OS_AUTH_TYPE", "v3oidcaccesstoken"),
            ("OS_ACCESS_TOKEN", &token),
            ("OS_IDENTITY_PROVIDER", "egi.eu"),
            ("OS_PROTOCOL", "openid"),
            ("OS_PROJECT_NAME", "ops.vo.example"),
            ("OS_REGION_NAME", "RegionOne"),
        ],
        "OS_* access token",
    )
    .await;
    assert_eq!(runs[0].code, 0, "{}", runs[0].all());

    let yaml = format!(
        "clouds:\n  site:\n    auth_type: password\n    auth:\n      auth_url: {ks}\n      \
         username: probe-user\n      password: \"{PASSWORD}\"\n      project_name: ops.vo.example\n      \
         user_domain_name: Default\n    region_name: RegionOne\n"
    );
    let clouds = file(&e.dir, "clouds.yaml", &yaml);
    let runs = run_both(
        &["--os-cloud", "site"],
        &[("OS_CLIENT_CONFIG_FILE", &clouds)],
        "clouds.yaml password",
    )
    .await;
    assert_eq!(runs[0].code, 0, "{}", runs[0].all());
    assert!(
        runs[0].stdout.contains("clouds.yaml cloud site"),
        "{}",
        runs[0].stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_site_echoing_tokens_in_errors_does_not_leak_them() {
    let e = env().await;
    let echo = format!(
        "<html><head><title>Error</title></head><body>bad token {UNSCOPED} for bearer {}</body></html>",
        access_token()
    );
    Mock::given(method("GET"))
        .and(path("/v3/auth/projects"))
        .respond_with(ResponseTemplate::new(401).set_body_raw(echo, "text/plain"))
        .with_priority(1)
        .mount(&e.server)
        .await;
    let ks = format!("{}/v3", e.server.uri());
    let token = file(&e.dir, "oidc", &access_token());
    let runs = run_both(
        &["--endpoint", &ks, "--access-token", &token],
        &[],
        "echoing site",
    )
    .await;
    assert_eq!(runs[0].code, 2, "{}", runs[0].all());
    assert!(runs[0].stdout.contains("AUTH-03"), "{}", runs[0].stdout);
    assert!(runs[0].stdout.contains("HTTP 401"), "{}", runs[0].stdout);
}

/// The OP's token endpoint answers `status` with `body`; the arguments of a
/// client-credentials login through it.
async fn op_answers(e: &Env, status: u16, body: String) -> Vec<String> {
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(status).set_body_raw(body, "application/json"))
        .with_priority(1)
        .mount(&e.server)
        .await;
    let secret = file(&e.dir, "secret", CLIENT_SECRET);
    [
        "--endpoint",
        &format!("{}/v3", e.server.uri()),
        "--client-id",
        "fedprobe",
        "--client-secret",
        &secret,
        "--oidc-issuer",
        &e.server.uri(),
    ]
    .map(String::from)
    .to_vec()
}

/// The OP answers the client's Basic credentials back in its error: the
/// secret then shows base64-encoded, and must be hidden in that form too.
#[tokio::test(flavor = "multi_thread")]
async fn an_op_echoing_the_basic_credentials_does_not_leak_the_client_secret() {
    use base64::Engine as _;
    let e = env().await;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("fedprobe:{CLIENT_SECRET}"));
    let body = format!(
        r#"{{"error":"invalid_client","error_description":"Basic {basic} is not a client"}}"#
    );
    let owned = op_answers(&e, 401, body).await;
    let args: Vec<&str> = owned.iter().map(String::as_str).collect();
    let runs = run_both(&args, &[], "OP echoing the Basic credentials").await;
    // Every verbosity, not only -vvv: the summary line quotes the OP.
    let mut all: Vec<Run> = runs;
    all.push(run(&args, &[]).await);
    for r in &all {
        assert_eq!(r.code, 3, "{}", r.all());
        assert!(r.stdout.contains("invalid_client"), "{}", r.stdout);
        let out = r.all();
        for w in basic.as_bytes().windows(8) {
            let frag = String::from_utf8_lossy(w);
            assert!(
                !out.contains(frag.as_ref()),
                "{frag:?} of the Basic credentials in:\n{out}"
            );
        }
    }
}

#[test]
fn the_leak_detector_catches_a_fragment() {
    let r = Run {
        code: 0,
        stdout: format!("token: ...{}...", &PASSWORD[3..11]),
        stderr: String::new(),
    };
    let caught = std::panic::catch_unwind(|| assert_no_leak(&r, "self-test")).is_err();
    assert!(
        caught,
        "an 8-character fragment of a password went unnoticed"
    );
    let clean = Run {
        code: 0,
        stdout: "nothing secret here".into(),
        stderr: String::new(),
    };
    assert_no_leak(&clean, "self-test");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_token_response_is_not_quoted() {
    // truncated answer of the OP: the opaque token in it must not be echoed
    let e = env().await;
    let body = format!(r#"{{"token_type":"Bearer","access_token":"{REFRESH}"#);
    let owned = op_answers(&e, 200, body).await;
    let args: Vec<&str> = owned.iter().map(String::as_str).collect();
    let runs = run_both(&args, &[], "truncated token response").await;
    assert_eq!(runs[0].code, 3, "{}", runs[0].all());
    assert!(
        runs[0].stdout.contains("truncated JSON"),
        "{}",
        runs[0].stdout
    );
}
