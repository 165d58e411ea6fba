//! A hostile site must not steer a probe's requests: identifiers and paging
//! links it answers go into URLs as one escaped path segment (or are refused),
//! never as a path of their own.

use crate::mockcloud;

use mockcloud::{run, MockCloud};
use probes::checks::image_upload::ImageUpload;
use probes::checks::vm_lifecycle::VmLifecycle;
use probes::render::nagios;
use probes::{ProbeResult, Status};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

fn vm_argv(c: &MockCloud) -> Vec<String> {
    c.argv(&[
        "--registry-image",
        "registry.egi.eu/egi_vm_images/monitoring:1.0",
        "--argo-host-name",
        "mon.test.example",
    ])
}

/// Nova answers a create with `id`, ahead of the stateful fake.
async fn nova_creates(c: &MockCloud, id: &str) {
    Mock::given(method("POST"))
        .and(path("/compute/v2.1/servers"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"server": {"id": id}})))
        .with_priority(1)
        .mount(&c.server)
        .await;
}

/// Glance answers an image create with `id`, ahead of the stateful fake.
async fn glance_creates(c: &MockCloud, id: &str) {
    Mock::given(method("POST"))
        .and(path("/image/v2/images"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": id, "status": "queued", "name": "x"})),
        )
        .with_priority(1)
        .mount(&c.server)
        .await;
}

/// Every request after login, as `METHOD path?query`.
async fn service_calls(c: &MockCloud) -> Vec<String> {
    c.requests()
        .await
        .iter()
        // Keystone (the shared mock serves it at /v3) is not a service call.
        .filter(|r| !r.url.path().starts_with("/identity/") && !r.url.path().starts_with("/v3/"))
        .map(|r| match r.url.query() {
            Some(q) => format!("{} {}?{q}", r.method, r.url.path()),
            None => format!("{} {}", r.method, r.url.path()),
        })
        .collect()
}

fn valid(r: &ProbeResult) -> String {
    let out = nagios::render(r, 2);
    assert!(out.len() < 16 * 1024, "{out}");
    out
}

#[tokio::test]
async fn nova_id_with_dot_dot_stays_under_servers() {
    let c = MockCloud::start().await;
    nova_creates(&c, "../flavors/8").await;
    let r = run::<VmLifecycle>(&vm_argv(&c)).await;
    let out = valid(&r);
    let calls = service_calls(&c).await;
    for call in &calls {
        assert!(
            !call.ends_with("/compute/v2.1/flavors/8"),
            "a hostile id steered {call}: {calls:#?}\n{out}"
        );
    }
    assert!(
        calls.contains(&"DELETE /compute/v2.1/servers/..%2Fflavors%2F8".to_string()),
        "{calls:#?}\n{out}"
    );
}

#[tokio::test]
async fn nova_id_with_query_and_fragment_is_one_segment() {
    let c = MockCloud::start().await;
    nova_creates(&c, "x?all_tenants=1#y").await;
    let r = run::<VmLifecycle>(&vm_argv(&c)).await;
    let out = valid(&r);
    let calls = service_calls(&c).await;
    assert!(
        calls.contains(&"DELETE /compute/v2.1/servers/x%3Fall_tenants=1%23y".to_string()),
        "{calls:#?}\n{out}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.contains("all_tenants=1") && c.contains('?') && !c.contains("%3F")),
        "a hostile id added a query: {calls:#?}"
    );
}

#[tokio::test]
async fn nova_id_with_escapes_is_escaped_again() {
    let c = MockCloud::start().await;
    nova_creates(&c, "a%2F..%2Fflavors").await;
    let r = run::<VmLifecycle>(&vm_argv(&c)).await;
    let out = valid(&r);
    let calls = service_calls(&c).await;
    assert!(
        calls.contains(&"DELETE /compute/v2.1/servers/a%252F..%252Fflavors".to_string()),
        "{calls:#?}\n{out}"
    );
}

#[tokio::test]
async fn nova_id_dot_dot_alone_is_refused() {
    for id in ["..", ".", ""] {
        let c = MockCloud::start().await;
        nova_creates(&c, id).await;
        let r = run::<VmLifecycle>(&vm_argv(&c)).await;
        let out = valid(&r);
        assert_eq!(r.status, Status::Critical, "{id:?}: {out}");
        assert!(r.summary.contains("VM-06"), "{id:?}: {}", r.summary);
        assert!(
            r.summary.contains(&format!("{id:?}")),
            "the id is named: {}",
            r.summary
        );
        let calls = service_calls(&c).await;
        for call in &calls {
            assert!(
                !call.starts_with("DELETE") && !call.starts_with("GET /compute/v2.1/servers?"),
                "{id:?} steered {call}: {calls:#?}"
            );
            assert_ne!(call, "GET /compute/v2.1/servers", "{id:?}: {calls:#?}");
            assert_ne!(call, "GET /compute/v2.1/servers/", "{id:?}: {calls:#?}");
            assert_ne!(call, "GET /compute/v2.1/", "{id:?}: {calls:#?}");
        }
    }
}

#[tokio::test]
async fn glance_id_cannot_climb_out_of_images() {
    let c = MockCloud::start().await;
    glance_creates(&c, "../../v3/x").await;
    let r = run::<ImageUpload>(&c.argv(&["--size", "4K"])).await;
    let out = valid(&r);
    assert_eq!(r.status, Status::Critical, "{out}");
    let calls = service_calls(&c).await;
    for call in &calls {
        assert!(
            call.starts_with("POST /image/v2/images")
                || call.starts_with("GET /image/v2/info/import")
                || call.contains("/image/v2/images/..%2F..%2Fv3%2Fx")
                // IMG-07's listing of leftovers, made before the create.
                || (call == "GET /image/v2/images?limit=200&visibility=private"
                    && calls.iter().position(|c| c == call) < calls.iter().position(|c| c.starts_with("POST "))),
            "a hostile image id steered {call}: {calls:#?}\n{out}"
        );
    }
    assert!(
        calls.contains(&"DELETE /image/v2/images/..%2F..%2Fv3%2Fx".to_string()),
        "{calls:#?}\n{out}"
    );
}

/// Glance lists a first page whose `next` points at `next`.
async fn glance_pages_to(c: &MockCloud, next: &str) {
    Mock::given(method("GET"))
        .and(path("/image/v2/images"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "images": [{"id": "other", "name": "other", "status": "active"}],
            "next": next})))
        .with_priority(1)
        .mount(&c.server)
        .await;
}

#[tokio::test]
async fn glance_next_link_must_stay_on_the_image_service() {
    for next in [
        "/v2/../../identity/v3/steered",
        "../identity/steered",
        "https://127.0.0.1:9/image/v2/images?steered",
        "//127.0.0.2:9/image/v2/images?steered",
        "http://127.0.0.2:9/image/v2/images?steered",
    ] {
        let c = MockCloud::start().await;
        glance_pages_to(&c, next).await;
        let r = run::<VmLifecycle>(&vm_argv(&c)).await;
        let out = valid(&r);
        let calls = c.calls().await;
        assert!(
            !calls
                .iter()
                .any(|c| c.contains("steered") && !c.starts_with("GET /image/v2/images")),
            "{next}: {calls:#?}\n{out}"
        );
        assert_eq!(r.status, Status::Critical, "{next}: {out}");
        assert!(r.summary.contains("VM-02"), "{next}: {}", r.summary);
        assert!(r.summary.contains("next"), "{next}: {}", r.summary);
    }
}

#[tokio::test]
async fn nova_servers_links_must_stay_on_the_compute_service() {
    for href in [
        "http://127.0.0.2:9/compute/v2.1/servers/detail?marker=x",
        "https://127.0.0.1:9/compute/v2.1/servers/detail?marker=x",
    ] {
        let c = MockCloud::start().await;
        Mock::given(method("GET"))
            .and(path("/compute/v2.1/servers/detail"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "servers": [],
                "servers_links": [{"rel": "next", "href": href}]})))
            .with_priority(1)
            .mount(&c.server)
            .await;
        let r = run::<VmLifecycle>(&vm_argv(&c)).await;
        let out = valid(&r);
        assert_eq!(r.status, Status::Critical, "{href}: {out}");
        assert!(r.summary.contains("VM-05"), "{href}: {}", r.summary);
        assert!(r.summary.contains("next"), "{href}: {}", r.summary);
    }
}

#[tokio::test]
async fn glance_next_link_on_the_service_is_followed() {
    let c = MockCloud::start().await;
    // The first page points at the second with a marker; the fake's own
    // listing (lower priority) answers the marker request.
    Mock::given(method("GET"))
        .and(path("/image/v2/images"))
        .and(wiremock::matchers::query_param_is_missing("marker"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "images": [{"id": "other", "name": "other", "status": "active"}],
            "next": "/v2/images?marker=other&limit=200"})))
        .with_priority(1)
        .mount(&c.server)
        .await;
    let r = run::<VmLifecycle>(&vm_argv(&c)).await;
    let out = valid(&r);
    assert_eq!(r.status, Status::Ok, "{out}");
    let calls = service_calls(&c).await;
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("GET /image/v2/images?marker=other")),
        "{calls:#?}"
    );
}

#[tokio::test]
async fn glance_id_dot_dot_alone_is_refused_at_create() {
    let c = MockCloud::start().await;
    glance_creates(&c, "..").await;
    let r = run::<ImageUpload>(&c.argv(&["--size", "4K"])).await;
    let out = valid(&r);
    assert_eq!(r.status, Status::Critical, "{out}");
    assert!(r.summary.contains("IMG-01"), "{}", r.summary);
    assert!(r.summary.contains("\"..\""), "{}", r.summary);
    let calls = service_calls(&c).await;
    assert!(
        calls
            .iter()
            .all(|c| c.starts_with("POST /image/v2/images") || c.starts_with("GET /image/v2/")),
        "{calls:#?}"
    );
    assert!(
        !calls.iter().any(|c| c == "GET /image/v2/images/"
            || c.starts_with("DELETE")
            || c.starts_with("PUT")),
        "{calls:#?}"
    );
}
