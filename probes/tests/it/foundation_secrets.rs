//! A hostile site echoes the monitor's token (and the token it issued) back
//! in error bodies, headers and project names. Nothing of either may reach
//! stdout or stderr at `-vvv` or in `--output json`: no 8-character run.

use crate::foundation_support;

use foundation_support::*;
use probes::auth::{self, AuthArgs};
use probes::runner::{execute, RunOptions};
use probes::{Ctx, Status};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Random-looking, not JWT- or fernet-shaped: only the known-secret scrub can catch it.
const ACCESS: &str = "mAt9Qx2LrV7pKe4NwZ8sHb3YcJ6uFd1GtR5oXi0Ea";
const ISSUED: &str = "uNs9Lw2Qe7Rt4Yu1Io8Pa5Sd3Fg6Hj0KlZx";

fn leaks(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for secret in [ACCESS, ISSUED] {
        for w in secret.as_bytes().windows(8) {
            let frag = std::str::from_utf8(w).unwrap_or_default();
            if text.contains(frag) {
                found.push(frag.to_string());
            }
        }
    }
    found
}

/// The exchange is refused with the bearer token quoted back, in pieces and whole.
async fn refusing_site() -> MockServer {
    let server = MockServer::start().await;
    let body = format!(
        "{{\"error\": {{\"code\": 401, \"message\": \"token {ACCESS} rejected; \
         fragment {} / {} / {}\"}}}}",
        &ACCESS[3..14],
        &ACCESS[20..29],
        &ACCESS[31..]
    );
    Mock::given(method("POST"))
        .and(path(EXCHANGE_PATH))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("WWW-Authenticate", format!("Bearer error=\"{ACCESS}\""))
                .set_body_raw(body, "application/json"),
        )
        .mount(&server)
        .await;
    server
}

/// The exchange works; later steps echo both tokens in names and error pages.
async fn echoing_site() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/auth/projects"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "projects": [{"id": &ACCESS[2..18], "name": format!("ops-{}", &ISSUED[4..20])}]
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/auth/tokens"))
        .respond_with(ResponseTemplate::new(400).set_body_raw(
            format!(
                "<html><head><title>Bad token {} for {}</title></head></html>",
                &ISSUED[1..],
                &ACCESS[9..30]
            ),
            "text/html",
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(EXCHANGE_PATH))
        .respond_with(
            ResponseTemplate::new(201)
                .insert_header("X-Subject-Token", ISSUED)
                .set_body_raw(
                    format!("{{\"you_sent\": \"{ACCESS}\"}}"),
                    "application/json",
                ),
        )
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn binary_never_prints_token_fragments() {
    for (site, server) in [
        ("refusing", refusing_site().await),
        ("echoing", echoing_site().await),
    ] {
        let endpoint = format!("{}/v3", server.uri());
        let dir = tempfile::tempdir().unwrap();
        let token = token_file(&dir, ACCESS);
        for extra in [
            &["-vvv"][..],
            &["--output", "json"][..],
            &["-vvv", "--output", "json"][..],
        ] {
            let mut a = probe_args(&endpoint, &token, &["-t", "20"]);
            a.extend(extra.iter().map(|s| s.to_string()));
            let r = run(&a).await;
            assert!(
                !server
                    .received_requests()
                    .await
                    .unwrap_or_default()
                    .is_empty(),
                "{site}: the site was not asked"
            );
            let all = format!("{}\n{}", r.stdout, r.stderr);
            let found = leaks(&all);
            assert!(
                found.is_empty(),
                "{site} {extra:?}: leaked {found:?} in:\n{all}"
            );
            assert!(r.stdout.len() < 16 * 1024);
            if site == "refusing" {
                assert_eq!(r.code, 2, "{r:#?}");
                assert!(
                    all.contains("401"),
                    "{site}: the refusal is not reported: {all}"
                );
                // The echo did reach the output, scrubbed: the check is not vacuous.
                assert!(r.stdout.contains("***"), "{site}: echo not shown: {all}");
            }
        }
    }
}

#[tokio::test]
async fn login_output_never_holds_token_fragments() {
    // In-process through auth::login so the later steps run whatever the
    // binary does today; rendered both ways at full verbosity.
    let server = echoing_site().await;
    let dir = tempfile::tempdir().unwrap();
    let args = AuthArgs {
        endpoint: Some(format!("{}/v3", server.uri()).parse().unwrap()),
        access_token: Some(token_file(&dir, ACCESS)),
        identity_provider: "egi.eu".into(),
        protocol: Some("openid".into()),
        ..AuthArgs::default()
    };
    let opts = RunOptions {
        probe: "check_token_auth".into(),
        label: "TOKEN_AUTH".into(),
        timeout: std::time::Duration::from_secs(20),
        timeout_status: Status::Unknown,
        cleanup_grace: None,
        tls: Default::default(),
        settings: probes::ctx::Settings {
            verbosity: 3,
            ..Default::default()
        },
        events: None,
    };
    let r = execute(opts, std::future::pending(), move |ctx: Ctx| async move {
        let s = auth::login(&ctx, &args).await?;
        Ok(format!("logged in to {}", s.project_name))
    })
    .await;
    // AUTH-04 gets the HTML 400; the earlier steps saw the echoes.
    assert_eq!(r.status, Status::Critical, "{r:#?}");
    assert!(r.steps.iter().any(|s| s.check == "AUTH-03"), "{r:#?}");
    let text = probes::render::output(&r, probes::render::Format::Nagios, 3);
    let json = probes::render::output(&r, probes::render::Format::Json, 3);
    assert!(text.contains("AUTH-04"), "{text}");
    // The hostile echoes reached both outputs, scrubbed.
    assert!(
        text.contains("***") && json.contains("***"),
        "{text}\n{json}"
    );
    for out in [&text, &json] {
        let found = leaks(out);
        assert!(found.is_empty(), "leaked {found:?} in:\n{out}");
    }
}
