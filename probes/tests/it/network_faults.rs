//! check_network against the wiremock OpenStack: garbage and hostile
//! answers at the quota and topology stages, which must end in a CRITICAL
//! naming the stage before anything is created.

use crate::mockcloud;

use mockcloud::{run, MockCloud, PROJECT_ID};
use probes::checks::network::NetworkProbe;
use probes::render::nagios;
use probes::Status;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

async fn quota_answer(c: &MockCloud, t: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(format!("/network/v2.0/quotas/{PROJECT_ID}/details")))
        .respond_with(t)
        .mount(&c.server)
        .await;
}

fn step<'a>(r: &'a probes::ProbeResult, id: &str) -> &'a probes::model::Step {
    r.steps
        .iter()
        .find(|s| s.check == id)
        .unwrap_or_else(|| panic!("no step {id}: {:?}", r.steps))
}

/// Nothing was POSTed, PUT or DELETEd anywhere but at Keystone.
async fn created_nothing(c: &MockCloud) {
    let writes: Vec<String> = c
        .calls()
        .await
        .into_iter()
        .filter(|x| !x.starts_with("GET ") && !x.contains("/v3/"))
        .collect();
    assert!(writes.is_empty(), "wrote {writes:?}");
}

#[tokio::test]
async fn garbage_quota_answer_is_critical_at_the_quota_stage() {
    for body in [
        ResponseTemplate::new(200).set_body_string("<html>Service Unavailable</html>"),
        ResponseTemplate::new(200).set_body_json(json!({"quota": "all of it"})),
        ResponseTemplate::new(200).set_body_json(json!({"quotas": {}})),
        ResponseTemplate::new(200).set_body_json(
            json!({"quota": {"floatingip": {"limit": "<script>alert(1)</script>"}}}),
        ),
    ] {
        let c = MockCloud::start().await;
        quota_answer(&c, body).await;
        let r = run::<NetworkProbe>(&c.argv(&[])).await;
        let out = nagios::render(&r, 2);
        assert_eq!(r.status, Status::Critical, "{out}");
        assert_eq!(step(&r, "NET-01").status, Status::Critical, "{out}");
        assert!(out.len() < 16 * 1024);
        assert!(!out.contains("<script>"), "{out}");
        assert!(r.resources.is_empty(), "{:?}", r.resources);
        created_nothing(&c).await;
    }
}

#[tokio::test]
async fn no_room_in_the_quota_is_critical_with_the_numbers() {
    let c = MockCloud::start().await;
    quota_answer(
        &c,
        ResponseTemplate::new(200).set_body_json(json!({"quota": {
            "floatingip": {"limit": 2, "used": 2, "reserved": 0},
            "port": {"limit": -1, "used": 9, "reserved": 0},
            "security_group": {"limit": 10, "used": 1, "reserved": 0},
            "security_group_rule": {"limit": 100, "used": 4, "reserved": 0}}})),
    )
    .await;
    let r = run::<NetworkProbe>(&c.argv(&[])).await;
    let out = nagios::render(&r, 2);
    assert_eq!(r.status, Status::Critical, "{out}");
    let s = step(&r, "NET-01");
    assert_eq!(s.status, Status::Critical);
    assert!(
        s.message
            .contains("network quota exhausted, nothing created: floatingip 2 used + 0 reserved of 2, 1 more needed"),
        "{}",
        s.message
    );
    assert!(!s.message.contains("port"), "{}", s.message);
    assert!(!r.steps.iter().any(|s| s.check == "NET-02"), "{out}");
    created_nothing(&c).await;
}

async fn unlimited_quota(c: &MockCloud) {
    quota_answer(
        c,
        ResponseTemplate::new(200).set_body_json(json!({"quota": {
            "floatingip": {"limit": -1, "used": 0, "reserved": 0}}})),
    )
    .await;
}

/// `GET path` answers `body`, ahead of the mock cloud's own answers.
async fn answer(c: &MockCloud, p: &str, body: serde_json::Value) {
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .with_priority(1)
        .mount(&c.server)
        .await;
}

#[tokio::test]
async fn a_project_without_a_network_is_told_what_is_missing() {
    let c = MockCloud::start().await;
    unlimited_quota(&c).await;
    let r = run::<NetworkProbe>(&c.argv(&[])).await;
    let out = nagios::render(&r, 2);
    // The mock cloud lists no networks at all.
    assert_eq!(r.status, Status::Critical, "{out}");
    let s = step(&r, "NET-02");
    assert!(
        s.message.contains(&format!(
            "project {PROJECT_ID} has no network of its own (0 networks visible, 0 external)"
        )),
        "{}",
        s.message
    );
    // A quota without the other resources is fine; they are named as not reported.
    assert_eq!(step(&r, "NET-01").status, Status::Ok, "{out}");
    assert!(
        step(&r, "NET-01").message.contains("port: not reported"),
        "{out}"
    );
    created_nothing(&c).await;
}

#[tokio::test]
async fn a_project_without_a_router_is_told_what_is_missing() {
    let c = MockCloud::start().await;
    unlimited_quota(&c).await;
    answer(&c, "/network/v2.0/networks", json!({"networks": [
        {"id": "n1", "name": "own-net", "status": "ACTIVE", "project_id": PROJECT_ID, "subnets": ["s1"]},
        {"id": "x1", "name": "public", "status": "ACTIVE", "project_id": "admin", "router:external": true, "subnets": ["s2"]}]}))
    .await;
    answer(
        &c,
        "/network/v2.0/subnets",
        json!({"subnets": [{"id": "s1", "cidr": "10.0.0.0/24", "network_id": "n1"}]}),
    )
    .await;
    // A router, but without a gateway: not what a floating IP needs.
    answer(
        &c,
        "/network/v2.0/routers",
        json!({"routers": [{"id": "r1", "name": "lonely", "external_gateway_info": null}]}),
    )
    .await;
    let r = run::<NetworkProbe>(&c.argv(&[])).await;
    let out = nagios::render(&r, 2);
    assert_eq!(r.status, Status::Critical, "{out}");
    assert!(
        step(&r, "NET-02")
            .message
            .contains("own-net (n1), subnet 10.0.0.0/24"),
        "{out}"
    );
    let s = step(&r, "NET-03");
    assert_eq!(s.status, Status::Critical);
    assert!(
        s.message
            .contains("no router with an external gateway in the project (1 routers listed)"),
        "{}",
        s.message
    );
    created_nothing(&c).await;
}
