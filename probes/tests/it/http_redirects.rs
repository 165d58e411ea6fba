//! Redirects as the probes' HTTP layer follows them: GET and HEAD within
//! the site (at most five hops, never to another host, which would be sent
//! the token); any other method gets the redirect back as its answer, so a
//! POST answered 302 fails where it was sent instead of turning into a GET.

use std::time::Duration;

use probes::deadline::Deadline;
use probes::http::{Http, TlsOptions};
use probes::model::Transport;
use probes::record::Recorder;
use reqwest::{Method, Url};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "Tq4Lw8Zx2Nv6Rb1Kp9Hc3Jm";

fn http() -> Http {
    Http::new(
        TlsOptions::default(),
        Deadline::after(Duration::from_secs(10)),
        Recorder::new(false, None),
    )
    .unwrap()
}

fn url(server: &MockServer, p: &str) -> Url {
    Url::parse(&format!("{}{p}", server.uri())).unwrap()
}

async fn answer(server: &MockServer, m: &str, p: &str, resp: ResponseTemplate) {
    Mock::given(method(m))
        .and(path(p))
        .respond_with(resp)
        .mount(server)
        .await;
}

fn to(location: &str, status: u16) -> ResponseTemplate {
    ResponseTemplate::new(status).insert_header("Location", location)
}

async fn requests(server: &MockServer) -> Vec<(String, String)> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| (r.method.to_string(), r.url.path().to_string()))
        .collect()
}

#[tokio::test]
async fn a_post_answered_302_is_not_followed() {
    let s = MockServer::start().await;
    answer(&s, "POST", "/v2.1/servers", to("/v2.1/servers/detail", 302)).await;
    answer(
        &s,
        "GET",
        "/v2.1/servers/detail",
        ResponseTemplate::new(200),
    )
    .await;
    let h = http();
    let req = h
        .request(Method::POST, url(&s, "/v2.1/servers"))
        .header("X-Auth-Token", TOKEN)
        .body("{}");
    let reply = h.send(req).await.unwrap();
    assert_eq!(reply.status.as_u16(), 302);
    let f = reply.success().unwrap_err();
    assert!(
        f.message.contains("HTTP 302 Found, a redirect to http://")
            && f.message
                .contains("/v2.1/servers/detail not followed for a POST"),
        "{}",
        f.message
    );
    assert_eq!(f.http.as_ref().and_then(|h| h.status), Some(302));
    assert_eq!(
        requests(&s).await,
        vec![("POST".into(), "/v2.1/servers".into())],
        "the redirect is not followed as a GET"
    );
}

#[tokio::test]
async fn a_put_answered_307_comes_back_as_the_answer() {
    let s = MockServer::start().await;
    answer(&s, "PUT", "/v1/AUTH_p/c/o", to("/v1/AUTH_p/c/other", 307)).await;
    let h = http();
    let reply = h
        .send(
            h.request(Method::PUT, url(&s, "/v1/AUTH_p/c/o"))
                .body("data"),
        )
        .await
        .unwrap();
    assert_eq!(reply.status.as_u16(), 307);
    assert_eq!(requests(&s).await.len(), 1);
}

#[tokio::test]
async fn a_get_follows_redirects_within_the_site_with_its_headers() {
    let s = MockServer::start().await;
    answer(&s, "GET", "/v3", to("/v3/", 301)).await;
    let versions = ResponseTemplate::new(200).set_body_string("{\"version\":{}}");
    answer(&s, "GET", "/v3/", versions).await;
    let h = http();
    let reply = h
        .send(h.get(url(&s, "/v3")).header("X-Auth-Token", TOKEN))
        .await
        .unwrap();
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(reply.url.path(), "/v3/");
    assert_eq!(reply.body, b"{\"version\":{}}");
    let got = s.received_requests().await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[1].headers.get("x-auth-token").map(|v| v.as_bytes()),
        Some(TOKEN.as_bytes()),
        "same site: the token goes along"
    );
}

/// A GET of `p` answered 302 to another host ("localhost" is not the
/// site's 127.0.0.1), sent with the token or not: refused as a redirect
/// with the 302's facts, and the other host asked nothing.
async fn redirected_away(p: &str, with_token: bool) -> probes::fail::Fail {
    let site = MockServer::start().await;
    let other = MockServer::start().await;
    let away = format!("http://localhost:{}/away", other.address().port());
    answer(&site, "GET", p, to(&away, 302)).await;
    answer(&other, "GET", "/away", ResponseTemplate::new(200)).await;
    let h = http();
    let mut req = h.get(url(&site, p));
    if with_token {
        req = req.header("X-Auth-Token", TOKEN);
    }
    let f = h.send(req).await.unwrap_err();
    assert!(
        f.message.contains("redirect to another host not followed"),
        "{}",
        f.message
    );
    assert_eq!(f.transport, Some(Transport::TooManyRedirects));
    assert_eq!(f.http.as_ref().and_then(|h| h.status), Some(302));
    assert!(
        requests(&other).await.is_empty(),
        "the other host was asked"
    );
    f
}

#[tokio::test]
async fn a_get_redirected_to_another_host_is_refused_and_that_host_sees_nothing() {
    let f = redirected_away("/v2/images", true).await;
    assert!(
        f.message.contains("it would be sent the token"),
        "{}",
        f.message
    );
}

/// A request that carries no credential is refused the other host too,
/// and the refusal does not claim a token was at stake.
#[tokio::test]
async fn a_redirect_without_credentials_is_refused_without_naming_a_token() {
    let f = redirected_away("/.well-known/openid-configuration", false).await;
    assert!(!f.message.contains("token"), "{}", f.message);
}

#[tokio::test]
async fn a_redirect_loop_ends_after_five_hops() {
    let s = MockServer::start().await;
    answer(&s, "GET", "/loop", to("/loop", 302)).await;
    let h = http();
    let f = h.send(h.get(url(&s, "/loop"))).await.unwrap_err();
    assert!(
        f.message.contains("too many redirects (more than 5)"),
        "{}",
        f.message
    );
    assert_eq!(
        requests(&s).await.len(),
        6,
        "the first request and five hops"
    );
}

#[tokio::test]
async fn without_redirects_a_get_gets_the_redirect_back() {
    let s = MockServer::start().await;
    answer(&s, "GET", "/sso", to("/idp/login", 302)).await;
    let h = http().without_redirects().unwrap();
    let reply = h.send(h.get(url(&s, "/sso"))).await.unwrap();
    assert_eq!(reply.status.as_u16(), 302);
    assert_eq!(requests(&s).await.len(), 1);
}
