//! check_token_auth against a fake site that misbehaves in the ways real
//! sites do but real services will not on demand. Each test runs the real
//! binary and checks the exit status and that the output names the stage and
//! what came back.

use crate::token_auth_support;

use serde_json::json;
use token_auth_support::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OK: i32 = 0;
const WARNING: i32 = 1;
const CRITICAL: i32 = 2;
const UNKNOWN: i32 = 3;

struct Fixture {
    server: MockServer,
    dir: tempfile::TempDir,
    token_file: String,
}

async fn fixture(site: Site) -> Fixture {
    let server = MockServer::start().await;
    mount_site(&server, site).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = file(&dir, "oidc", &access_token());
    Fixture {
        server,
        dir,
        token_file,
    }
}

impl Fixture {
    fn keystone(&self) -> String {
        format!("{}/v3", self.server.uri())
    }

    /// Run with the token file and `extra` arguments, `-v` for step lines.
    async fn run(&self, extra: &[&str]) -> Run {
        let ks = self.keystone();
        let mut args = vec![
            "-v",
            "--endpoint",
            ks.as_str(),
            "--access-token",
            self.token_file.as_str(),
        ];
        args.extend_from_slice(extra);
        run(&args, &[]).await
    }

    async fn requests_to(&self, p: &str) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == p)
            .count()
    }
}

fn expect(r: &Run, code: i32, needles: &[&str]) {
    // shown with --nocapture, to read what an operator would see
    eprintln!("{}", r.stdout);
    assert_eq!(r.code, code, "exit code; output:\n{}", r.all());
    for n in needles {
        assert!(r.stdout.contains(n), "missing {n:?} in:\n{}", r.all());
    }
}

fn first_line(r: &Run) -> &str {
    r.stdout.lines().next().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread")]
async fn healthy_site_is_ok_with_step_perfdata() {
    let f = fixture(Site::default()).await;
    let r = f.run(&["--region", "RegionOne"]).await;
    expect(
        &r,
        OK,
        &[
            "[OK] AUTH-02",
            "openid: unscoped token",
            "using ops.vo.example",
            "[OK] AUTH-06",
            "[OK] AUTH-07",
            "[OK] AUTH-09",
            "HTTP 401 (refused)",
        ],
    );
    let line = first_line(&r);
    assert!(line.starts_with("TOKEN_AUTH OK - "), "{line}");
    for label in [
        "login=",
        "credential=",
        "authenticate=",
        "projects=",
        "scope=",
        "validate=",
        "invalid_token=",
        "total=",
    ] {
        assert!(line.contains(label), "no {label} perfdata in {line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn login_time_thresholds_apply() {
    let f = fixture(Site::default()).await;
    let r = f.run(&["-w", "0.000001", "-c", "600"]).await;
    expect(
        &r,
        WARNING,
        &["[WARNING] AUTH-11 login time", "-w 0.000001"],
    );
    assert!(first_line(&r).contains("login="), "{}", r.stdout);
    assert!(first_line(&r).contains(";0.000001;600;"), "{}", r.stdout);
    let r = f.run(&["-c", "0.000001"]).await;
    expect(&r, CRITICAL, &["AUTH-11 login time"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn html_502_page_from_keystone() {
    let f = fixture(Site::default()).await;
    federation_answers(
        &f.server,
        ResponseTemplate::new(502).set_body_raw(
            "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            "text/html",
        ),
    )
    .await;
    let r = f.run(&[]).await;
    expect(
        &r,
        CRITICAL,
        &[
            "AUTH-02 OIDC token exchange",
            "HTTP 502",
            "\"502 Bad Gateway\"",
        ],
    );
    assert!(first_line(&r).starts_with("TOKEN_AUTH CRITICAL - AUTH-02"));
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_json_from_projects() {
    let f = fixture(Site::default()).await;
    Mock::given(method("GET"))
        .and(path("/v3/auth/projects"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(r#"{"projects": [{"id": "p1", "na"#, "application/json"),
        )
        .with_priority(1)
        .mount(&f.server)
        .await;
    let r = f.run(&[]).await;
    expect(&r, CRITICAL, &["AUTH-03 list projects", "truncated JSON"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_json_types_from_scoped_token() {
    let f = fixture(Site::default()).await;
    Mock::given(method("POST"))
        .and(path("/v3/auth/tokens"))
        .respond_with(
            ResponseTemplate::new(201)
                .insert_header("X-Subject-Token", SCOPED)
                .set_body_json(json!({"token": {"catalog": "compute", "project": 7}})),
        )
        .with_priority(1)
        .mount(&f.server)
        .await;
    let r = f.run(&[]).await;
    expect(
        &r,
        CRITICAL,
        &[
            "AUTH-04 project-scoped token",
            "wrong JSON shape",
            "invalid type",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn server_error_500_on_scoping() {
    let f = fixture(Site::default()).await;
    Mock::given(method("POST"))
        .and(path("/v3/auth/tokens"))
        .respond_with(keystone_error(
            500,
            "An unexpected error prevented the server from fulfilling your request.",
        ))
        .with_priority(1)
        .mount(&f.server)
        .await;
    let r = f.run(&[]).await;
    expect(
        &r,
        CRITICAL,
        &[
            "AUTH-04 project-scoped token",
            "HTTP 500",
            "unexpected error prevented",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_429_with_retry_after() {
    let f = fixture(Site::default()).await;
    federation_answers(
        &f.server,
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "30")
            .set_body_string("slow down"),
    )
    .await;
    let r = f.run(&["--protocol", "openid"]).await;
    expect(
        &r,
        CRITICAL,
        &["AUTH-02", "HTTP 429", "Retry-After: 30", "slow down"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_reset_by_keystone() {
    // A raw listener that accepts and resets every connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            #[allow(deprecated)]
            let _ = sock.set_linger(Some(std::time::Duration::ZERO));
            drop(sock);
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let token = file(&dir, "oidc", &access_token());
    let ks = format!("http://{addr}/v3");
    let r = run(
        &[
            "-v",
            "--endpoint",
            &ks,
            "--access-token",
            &token,
            "--protocol",
            "openid",
        ],
        &[],
    )
    .await;
    eprintln!("{}", r.stdout);
    assert_eq!(r.code, CRITICAL, "{}", r.all());
    assert!(r.stdout.contains("AUTH-02"), "{}", r.stdout);
    let lower = r.stdout.to_lowercase();
    assert!(
        lower.contains("connection reset") || lower.contains("connection closed"),
        "{}",
        r.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_token_accepted_is_critical() {
    let f = fixture(Site {
        garbage: ResponseTemplate::new(201)
            .insert_header("X-Subject-Token", "whatever-token-0000")
            .set_body_json(json!({"token": {}})),
        ..Site::default()
    })
    .await;
    let r = f.run(&[]).await;
    expect(
        &r,
        CRITICAL,
        &["AUTH-09 invalid token refused", "HTTP 201", "ACCEPTED"],
    );
    // the login itself worked
    assert!(r.stdout.contains("[OK] AUTH-04"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_token_404_invalid_token_is_warning() {
    let f = fixture(Site {
        garbage: ResponseTemplate::new(404).set_body_json(json!({"error": "invalid_token"})),
        ..Site::default()
    })
    .await;
    let r = f.run(&[]).await;
    expect(
        &r,
        WARNING,
        &["[WARNING] AUTH-09", "HTTP 404 invalid_token", "RFC 6750"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_identity_provider_is_critical_and_named() {
    let f = fixture(Site::default()).await;
    federation_answers(
        &f.server,
        keystone_error(404, "Could not find Identity Provider: nope.idp."),
    )
    .await;
    let r = f.run(&["--identity-provider", "nope.idp"]).await;
    expect(
        &r,
        CRITICAL,
        &[
            "AUTH-02",
            "identity provider nope.idp",
            "openid: HTTP 404 Not Found",
            "identity_providers/nope.idp/protocols/openid/auth)",
            "oidc: HTTP 404 Not Found",
            "identity_providers/nope.idp/protocols/oidc/auth)",
            "Could not find Identity Provider",
        ],
    );
}

/// Both protocols failing still leaves the HTTP facts on the AUTH-02 step
/// (graders read `http.status`, not the joined text).
#[tokio::test(flavor = "multi_thread")]
async fn failed_exchange_keeps_the_http_facts() {
    let f = fixture(Site::default()).await;
    federation_answers(
        &f.server,
        keystone_error(404, "Could not find Identity Provider: nope.idp."),
    )
    .await;
    let r = f
        .run(&["--identity-provider", "nope.idp", "--output", "json"])
        .await;
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON result");
    let step = v["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["check"] == "AUTH-02"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(step["status"], "CRITICAL", "{}", r.stdout);
    assert_eq!(step["http"]["status"], 404, "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn openid_fails_oidc_works_both_reported() {
    let f = fixture(Site {
        protocols: vec!["oidc"],
        ..Site::default()
    })
    .await;
    Mock::given(method("POST"))
        .and(path(
            "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/auth",
        ))
        .respond_with(keystone_error(404, "Could not find protocol openid"))
        .mount(&f.server)
        .await;
    let r = f.run(&[]).await;
    expect(
        &r,
        OK,
        &[
            "[OK] AUTH-02",
            "openid: HTTP",
            "HTTP 404",
            "oidc: unscoped token",
            "via egi.eu/oidc",
        ],
    );
    // the garbage-token check used the protocol that works
    assert!(
        r.stdout.contains("protocols/oidc/auth with a garbage"),
        "{}",
        r.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_jwt_in_token_file_is_unknown() {
    let f = fixture(Site::default()).await;
    let expired = file(&f.dir, "expired", &jwt(now() - 7200, "expired"));
    let ks = f.keystone();
    let r = run(&["-v", "--endpoint", &ks, "--access-token", &expired], &[]).await;
    expect(
        &r,
        UNKNOWN,
        &["AUTH-01 obtain monitor credential", "expired 2h"],
    );
    let fed = "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/auth";
    assert_eq!(f.requests_to(fed).await, 0, "an expired token was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_empty_token_file_is_unknown() {
    let f = fixture(Site::default()).await;
    let ks = f.keystone();
    let r = run(
        &[
            "--endpoint",
            &ks,
            "--access-token",
            "/nonexistent/fedprobe/oidc",
        ],
        &[],
    )
    .await;
    expect(
        &r,
        UNKNOWN,
        &["AUTH-01", "cannot read /nonexistent/fedprobe/oidc"],
    );
    let empty = file(&f.dir, "empty", "\n");
    let r = run(&["--endpoint", &ks, "--access-token", &empty], &[]).await;
    expect(&r, UNKNOWN, &["AUTH-01", "is empty"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_token_rejected_by_op_is_unknown() {
    let f = fixture(Site::default()).await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant", "error_description": "grant request is invalid"})))
        .with_priority(1)
        .mount(&f.server)
        .await;
    let refresh = file(&f.dir, "refresh", "revoked0123456789abcdef");
    let secret = file(&f.dir, "secret", CLIENT_SECRET);
    let ks = f.keystone();
    let issuer = f.server.uri();
    let r = run(
        &[
            "-v",
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
        &[],
    )
    .await;
    expect(
        &r,
        UNKNOWN,
        &[
            "AUTH-01",
            "refresh-token grant",
            "HTTP 400",
            "invalid_grant",
            "the monitor's credential was rejected",
        ],
    );
    // the opaque refresh token's lifetime step ran and did not fail
    assert!(r.stdout.contains("[OK] AUTH-10"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_and_client_credentials_grants_work() {
    let f = fixture(Site::default()).await;
    let refresh = file(&f.dir, "refresh", REFRESH);
    let secret = file(&f.dir, "secret", CLIENT_SECRET);
    let ks = f.keystone();
    let issuer = f.server.uri();
    let token_ep = format!("{issuer}/token");
    let r = run(
        &[
            "-v",
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
        &[],
    )
    .await;
    expect(
        &r,
        OK,
        &["OIDC refresh-token grant at", "[OK] AUTH-10", "opaque"],
    );
    let r = run(
        &[
            "-v",
            "--endpoint",
            &ks,
            "--client-id",
            "fedprobe",
            "--client-secret",
            &secret,
            "--token-endpoint",
            &token_ep,
        ],
        &[],
    )
    .await;
    expect(
        &r,
        OK,
        &["client_credentials grant for fedprobe", "not a JWT"],
    );
}

/// An OP answering a token a header cannot carry is the monitor's OP
/// failing: UNKNOWN at AUTH-01, the token named by its source, not sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_from_the_op_outside_the_bearer_form_is_unknown() {
    let f = fixture(Site::default()).await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "line-one\r\nX-Injected: 1", "token_type": "Bearer"})))
        .with_priority(1)
        .mount(&f.server)
        .await;
    let secret = file(&f.dir, "secret", CLIENT_SECRET);
    let token_ep = format!("{}/token", f.server.uri());
    let r = run(
        &[
            "--endpoint",
            &f.keystone(),
            "--client-id",
            "fedprobe",
            "--client-secret",
            &secret,
            "--token-endpoint",
            &token_ep,
        ],
        &[],
    )
    .await;
    expect(&r, UNKNOWN, &["AUTH-01", "the token answer of", "U+000D"]);
    let sent = f.server.received_requests().await.unwrap();
    assert!(
        !sent.iter().any(|q| q.url.path().contains("OS-FEDERATION")),
        "the token went to Keystone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_without_image_is_critical() {
    let server_uri_catalog = |base: &str| {
        let mut c = catalog(base);
        if let Some(a) = c.as_array_mut() {
            a.retain(|s| s["type"] != "image");
        }
        c
    };
    let server = MockServer::start().await;
    mount_site(
        &server,
        Site {
            catalog: Some(server_uri_catalog(&server.uri())),
            ..Site::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let token = file(&dir, "oidc", &access_token());
    let ks = format!("{}/v3", server.uri());
    let r = run(&["-v", "--endpoint", &ks, "--access-token", &token], &[]).await;
    expect(
        &r,
        CRITICAL,
        &["[CRITICAL] AUTH-07", "image: missing from the catalog"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_endpoints_in_catalog_are_flagged() {
    let server = MockServer::start().await;
    let mut c = catalog(&server.uri());
    c[0]["endpoints"][0]["url"] = json!("http://compute.example:8774/v2.1");
    c[3]["endpoints"][0]["url"] = json!("http://network.example:9696");
    mount_site(
        &server,
        Site {
            catalog: Some(c),
            ..Site::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let token = file(&dir, "oidc", &access_token());
    let ks = format!("{}/v3", server.uri());
    let r = run(&["-v", "--endpoint", &ks, "--access-token", &token], &[]).await;
    expect(
        &r,
        CRITICAL,
        &[
            "[CRITICAL] AUTH-07",
            "http://compute.example:8774/v2.1 is not https",
            "[WARNING] AUTH-08",
            "http://network.example:9696/ is not https",
        ],
    );
    // with the region of another site nothing matches: named as such
    let r = run(
        &[
            "-v",
            "--endpoint",
            &ks,
            "--access-token",
            &token,
            "--region",
            "Elsewhere",
        ],
        &[],
    )
    .await;
    expect(
        &r,
        CRITICAL,
        &["compute: no public endpoint in region Elsewhere (only in other regions)"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_and_plain_http_keystone_urls_are_flagged_before_sending_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = file(&dir, "oidc", &access_token());
    for (url, needle) in [
        ("https://keystone.invalid:5000/v2.0", "v2.0 is retired"),
        (
            "http://keystone.invalid:5000/v3",
            "plain http: no credential was sent",
        ),
    ] {
        let r = run(
            &[
                "--output",
                "json",
                "--endpoint",
                url,
                "--access-token",
                &token,
            ],
            &[],
        )
        .await;
        assert_eq!(r.code, CRITICAL, "{url}: {}", r.all());
        let doc: serde_json::Value = serde_json::from_str(&r.stdout).expect("json output");
        let summary = doc["summary"].as_str().unwrap_or("");
        assert!(summary.starts_with("AUTH-05 Keystone URL"), "{summary}");
        assert!(summary.contains(needle), "{summary}");
        assert_eq!(doc["http_requests"], 0, "{url}: a request was sent");
    }
    // --allow-http downgrades plain http to a WARNING (and then tries)
    let r = run(
        &[
            "-v",
            "--endpoint",
            "http://keystone.invalid:5000/v3",
            "--access-token",
            &token,
            "--allow-http",
            "-t",
            "10",
        ],
        &[],
    )
    .await;
    assert!(r.stdout.contains("[WARNING] AUTH-05"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_op_is_the_monitors_problem() {
    let f = fixture(Site::default()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let issuer = format!("http://127.0.0.1:{port}");
    let secret = file(&f.dir, "secret", CLIENT_SECRET);
    let ks = f.keystone();
    let r = run(
        &[
            "-v",
            "--endpoint",
            &ks,
            "--client-id",
            "fedprobe",
            "--client-secret",
            &secret,
            "--oidc-issuer",
            &issuer,
        ],
        &[],
    )
    .await;
    expect(
        &r,
        UNKNOWN,
        &["AUTH-01", "OIDC discovery", "connection refused"],
    );
    // a discovery document that is not JSON is named too
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("<html>login</html>", "text/html"))
        .with_priority(1)
        .mount(&f.server)
        .await;
    let issuer = f.server.uri();
    let r = run(
        &[
            "-v",
            "--endpoint",
            &ks,
            "--client-id",
            "fedprobe",
            "--client-secret",
            &secret,
            "--oidc-issuer",
            &issuer,
        ],
        &[],
    )
    .await;
    expect(&r, UNKNOWN, &["AUTH-01", "OIDC discovery", "not JSON"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_token_near_expiry_is_warned_then_critical() {
    let f = fixture(Site::default()).await;
    // the OP accepts any refresh token here
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(wiremock::matchers::body_string_contains(
            "grant_type=refresh_token",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": access_token(), "token_type": "Bearer", "expires_in": 3600})))
        .with_priority(1)
        .mount(&f.server)
        .await;
    let secret = file(&f.dir, "secret", CLIENT_SECRET);
    let ks = f.keystone();
    let issuer = f.server.uri();
    for (days, code, needle) in [
        (20, WARNING, "[WARNING] AUTH-10"),
        (10, CRITICAL, "[CRITICAL] AUTH-10"),
        (90, OK, "[OK] AUTH-10"),
    ] {
        let rt = file(&f.dir, "refresh", &jwt(now() + days * 86400, "refresh"));
        let r = run(
            &[
                "-v",
                "--endpoint",
                &ks,
                "--refresh-token",
                &rt,
                "--client-id",
                "fedprobe",
                "--client-secret",
                &secret,
                "--oidc-issuer",
                &issuer,
            ],
            &[],
        )
        .await;
        expect(&r, code, &[needle, "refresh token expires in"]);
        // the login itself still ran and worked
        assert!(r.stdout.contains("[OK] AUTH-04"), "{}", r.stdout);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn federation_answering_a_login_page_is_critical() {
    // mod_auth_openidc set up for browsers: a 200 HTML login page, no token
    let f = fixture(Site::default()).await;
    federation_answers(
        &f.server,
        ResponseTemplate::new(200).set_body_raw(
            "<html><head><title>Sign in to EGI Check-in</title></head><body>form</body></html>",
            "text/html",
        ),
    )
    .await;
    let r = f.run(&["--protocol", "openid"]).await;
    expect(
        &r,
        CRITICAL,
        &[
            "AUTH-02",
            "HTTP 200 OK but no X-Subject-Token header",
            "\"Sign in to EGI Check-in\"",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_project_or_unknown_project_is_critical() {
    let f = fixture(Site::default()).await;
    let r = f.run(&["--project", "vo.not.there"]).await;
    expect(
        &r,
        CRITICAL,
        &[
            "AUTH-03 list projects",
            "\"vo.not.there\" not available",
            "ops.vo.example",
        ],
    );
    Mock::given(method("GET"))
        .and(path("/v3/auth/projects"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"projects": []})))
        .with_priority(1)
        .mount(&f.server)
        .await;
    let r = f.run(&[]).await;
    expect(
        &r,
        CRITICAL,
        &["AUTH-03", "the federated user has no project"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hanging_keystone_ends_at_the_deadline_naming_the_stage() {
    let f = fixture(Site::default()).await;
    Mock::given(method("GET"))
        .and(path("/v3/auth/projects"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(60)))
        .with_priority(1)
        .mount(&f.server)
        .await;
    let t0 = std::time::Instant::now();
    let r = f.run(&["-t", "3"]).await;
    expect(&r, UNKNOWN, &["Timeout", "AUTH-03 list projects"]);
    // the steps done before the deadline still give their timings
    assert!(first_line(&r).contains("authenticate="), "{}", r.stdout);
    // generous bound: the deadline, not the 60 s hang, ended it
    assert!(t0.elapsed() < std::time::Duration::from_secs(30));
    let r = f.run(&["-t", "3", "--timeout-status", "critical"]).await;
    expect(&r, CRITICAL, &["AUTH-03"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn first_login_conflict_is_asked_again_once() {
    // Keystone's shadow-user race on concurrent first logins: 409 once, then 201.
    let f = fixture(Site::default()).await;
    Mock::given(method("POST"))
        .and(path(
            "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/auth",
        ))
        .respond_with(keystone_error(
            409,
            "Conflict occurred attempting to store federated_user",
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&f.server)
        .await;
    let r = f.run(&["--protocol", "openid"]).await;
    expect(&r, OK, &["[OK] AUTH-02", "openid: unscoped token"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn lasting_conflict_is_critical() {
    let f = fixture(Site::default()).await;
    Mock::given(method("POST"))
        .and(path(
            "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/auth",
        ))
        .respond_with(keystone_error(
            409,
            "Conflict occurred attempting to store federated_user",
        ))
        .with_priority(1)
        .mount(&f.server)
        .await;
    let r = f.run(&["--protocol", "openid"]).await;
    expect(&r, CRITICAL, &["AUTH-02", "HTTP 409 Conflict"]);
    let posts = f
        .server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|q| q.url.path().ends_with("/protocols/openid/auth"))
        .count();
    // The login and its one retry; the run stops there.
    assert_eq!(posts, 2, "exchange requests");
}
