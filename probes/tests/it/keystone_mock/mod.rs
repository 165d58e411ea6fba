//! The one wiremock Keystone (and OIDC provider) of the probes' tests, for
//! faults the demo site's Keystone (fakecloud) does not stage: fixed token
//! values to look for in output, scripted OP grants, password and
//! application-credential logins, any answer at the federation URL. Used by
//! the token_auth tests and by mockcloud (VM and image faults).
#![allow(dead_code)]

use base64::Engine;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const UNSCOPED: &str = "kSt0kUnsc0pedQ1w2e3r4t5y6u7i8o9";
pub const SCOPED: &str = "kSt0kSc0pedZ9x8c7v6b5n4m3l2k1j0";
pub const CLIENT_SECRET: &str = "cl1entS3cretP0o9i8u7y6t5r4";
pub const REFRESH: &str = "r3freshT0kenM1n2b3v4c5x6z7";
pub const PASSWORD: &str = "pAssw0rdL1k2j3h4g5f6d7s8";
pub const APP_SECRET: &str = "appCr3dS3cretQ7w8e9r0t1y2u3";
pub const PROJECT_ID: &str = "0f5c2aa1b7e84d0c9a3d6f00c0ffee01";
pub const CC_TOKEN_PAYLOAD: &str = "client-credentials-token";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// A JWT-shaped access token with `exp` at `exp` (unix seconds); unsigned.
pub fn jwt(exp: i64, tag: &str) -> String {
    format!(
        "{}.{}.{}",
        b64(r#"{"alg":"RS256","typ":"at+jwt"}"#),
        b64(&format!(r#"{{"sub":"probe","exp":{exp},"jti":"{tag}"}}"#)),
        b64(&format!("signature-of-{tag}"))
    )
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The good access token the fake site accepts: one per test process, so
/// the site and the token file agree even across a second boundary.
pub fn access_token() -> String {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN
        .get_or_init(|| jwt(now() + 3600, "good-access-token"))
        .clone()
}

pub fn catalog(base: &str) -> Value {
    let ep = |url: &str| {
        json!([{"interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": url},
                               {"interface": "internal", "region": "RegionOne", "url": "http://10.0.0.1:1/"}])
    };
    json!([
        {"type": "compute", "name": "nova", "endpoints": ep("https://compute.example:8774/v2.1")},
        {"type": "image", "name": "glance", "endpoints": ep("https://image.example:9292")},
        {"type": "identity", "name": "keystone", "endpoints": ep(&format!("{base}/v3"))},
        {"type": "network", "name": "neutron", "endpoints": ep("https://network.example:9696")},
        {"type": "volumev3", "name": "cinder", "endpoints": ep("https://volume.example:8776/v3")},
    ])
}

pub fn token_body(catalog: Value) -> Value {
    json!({"token": {
        "methods": ["token"], "expires_at": "2099-01-01T00:00:00.000000Z",
        "project": {"id": PROJECT_ID, "name": "ops.vo.example", "domain": {"id": "default"}},
        "catalog": catalog
    }})
}

/// Which parts of the happy path to mount.
#[derive(Clone)]
pub struct Site {
    pub protocols: Vec<&'static str>,
    pub catalog: Option<Value>,
    pub garbage: ResponseTemplate,
}

impl Default for Site {
    fn default() -> Self {
        Site {
            protocols: vec!["openid"],
            catalog: None,
            garbage: ResponseTemplate::new(401)
                .insert_header("WWW-Authenticate", r#"Bearer error="invalid_token""#)
                .set_body_string("Unauthorized"),
        }
    }
}

fn subject(token: &str, status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("X-Subject-Token", token)
        .set_body_json(body)
}

/// Mount a working Keystone (and OP) on `server`.
pub async fn mount_site(server: &MockServer, site: Site) {
    let base = server.uri();
    let good = format!("Bearer {}", access_token());
    for p in &site.protocols {
        Mock::given(method("POST"))
            .and(path(format!(
                "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/{p}/auth"
            )))
            .and(header("authorization", good.as_str()))
            .respond_with(subject(
                UNSCOPED,
                201,
                json!({"token": {"methods": ["mapped"]}}),
            ))
            .mount(server)
            .await;
        Mock::given(method("POST"))
            .and(path(format!(
                "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/{p}/auth"
            )))
            .and(header(
                "authorization",
                "Bearer cc-access-token-from-op-0123",
            ))
            .respond_with(subject(
                UNSCOPED,
                201,
                json!({"token": {"methods": ["mapped"]}}),
            ))
            .mount(server)
            .await;
        // anything else at the federation URL: the configured answer for bad tokens
        Mock::given(method("POST"))
            .and(path(format!(
                "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/{p}/auth"
            )))
            .respond_with(site.garbage.clone())
            .with_priority(10)
            .mount(server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/v3/auth/projects"))
        .and(header("x-auth-token", UNSCOPED))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"projects": [
            {"id": "11111111111111111111111111111111", "name": "vo.access.egi.eu", "enabled": true, "domain_id": "default"},
            {"id": PROJECT_ID, "name": "ops.vo.example", "enabled": true, "domain_id": "default"},
            {"id": "22222222222222222222222222222222", "name": "other.vo", "enabled": true, "domain_id": "default"}
        ]})))
        .mount(server)
        .await;
    let cat = site.catalog.clone().unwrap_or_else(|| catalog(&base));
    Mock::given(method("POST"))
        .and(path("/v3/auth/tokens"))
        .respond_with(subject(SCOPED, 201, token_body(cat.clone())))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v3/auth/tokens"))
        .and(header("x-auth-token", SCOPED))
        .and(header("x-subject-token", SCOPED))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body(cat)))
        .mount(server)
        .await;
    // the OP: discovery and a token endpoint taking the refresh token or client credentials
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": base, "token_endpoint": format!("{base}/token"),
            "jwks_uri": format!("{base}/jwks")})))
        .mount(server)
        .await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("fedprobe:{CLIENT_SECRET}"))
    );
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("authorization", basic.as_str()))
        .and(wiremock::matchers::body_string_contains(
            "grant_type=refresh_token",
        ))
        .and(wiremock::matchers::body_string_contains(REFRESH))
        .and(wiremock::matchers::body_string_contains(
            "scope=openid+email+profile+eduperson_entitlement",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": access_token(), "token_type": "Bearer", "expires_in": 3600})))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("authorization", basic.as_str()))
        .and(wiremock::matchers::body_string_contains(
            "grant_type=client_credentials",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "cc-access-token-from-op-0123", "token_type": "Bearer", "expires_in": 3600})))
        .mount(server)
        .await;
}

/// Keystone password / application-credential logins.
pub async fn mount_password_and_appcred(server: &MockServer) {
    let base = server.uri();
    Mock::given(method("POST"))
        .and(path("/v3/auth/tokens"))
        .and(wiremock::matchers::body_string_contains(PASSWORD))
        .respond_with(subject(
            UNSCOPED,
            201,
            json!({"token": {"methods": ["password"]}}),
        ))
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/auth/tokens"))
        .and(wiremock::matchers::body_string_contains(APP_SECRET))
        .respond_with(subject(SCOPED, 201, token_body(catalog(&base))))
        .with_priority(1)
        .mount(server)
        .await;
}

/// A Keystone error document as Keystone writes them.
pub fn keystone_error(code: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(code).set_body_json(json!({"error": {
        "code": code, "message": message, "title": "Not Found"}}))
}

/// Mount `resp` at every federation URL (any idp/protocol), highest priority.
pub async fn federation_answers(server: &MockServer, resp: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path_regex(r"^/v3/OS-FEDERATION/identity_providers/.*"))
        .respond_with(resp)
        .with_priority(1)
        .mount(server)
        .await;
}
