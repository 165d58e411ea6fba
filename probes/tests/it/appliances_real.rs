//! check_appliances against the real Glance of the peers: images made as an
//! image synchroniser (atrope) makes them, with APPLIANCE_ATTRIBUTES from
//! the registry's HEPiX image list, and lists built in that format. A
//! current image passes; an outdated and a missing one are named. Without
//! the peers this test fails.

use serde_json::{json, Value};
use sha2::{Digest, Sha512};

use crate::realpeers::{assert_no_token, run_bin, Peers};

const BIN: &str = env!("CARGO_BIN_EXE_check_appliances");
const T: &str = "appliances_real";

/// Create a private image with `attrs` and `data`; returns its id.
async fn image(p: &Peers, token: &str, name: &str, attrs: &Value, data: &[u8]) -> String {
    let glance = p.get("GLANCE_URL").trim_end_matches('/').to_string();
    let r: Value = p
        .client
        .post(format!("{glance}/v2/images"))
        .header("X-Auth-Token", token)
        .json(&json!({
            "name": name, "disk_format": "raw", "container_format": "bare",
            "visibility": "private", "APPLIANCE_ATTRIBUTES": attrs.to_string(),
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = r["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string();
    let put = p
        .client
        .put(format!("{glance}/v2/images/{id}/file"))
        .header("X-Auth-Token", token)
        .header("Content-Type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "upload: {}", put.status());
    id
}

async fn delete(p: &Peers, token: &str, id: &str) {
    let glance = p.get("GLANCE_URL").trim_end_matches('/').to_string();
    let _ = p
        .client
        .delete(format!("{glance}/v2/images/{id}"))
        .header("X-Auth-Token", token)
        .send()
        .await;
}

/// A scoped token for the ops project through the real federated login.
async fn scoped(p: &Peers, access: &str) -> String {
    let k = p.get("KEYSTONE_URL").trim_end_matches('/').to_string();
    let r = p
        .client
        .post(format!(
            "{k}/OS-FEDERATION/identity_providers/{}/protocols/{}/auth",
            p.get("IDP"),
            p.get("PROTOCOL")
        ))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    let unscoped = r.headers()["x-subject-token"].to_str().unwrap().to_string();
    let r = p
        .client
        .post(format!("{k}/auth/tokens"))
        .json(
            &json!({"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}},
            "scope": {"project": {"id": p.get("OPS_PROJECT_ID")}}}}),
        )
        .send()
        .await
        .unwrap();
    r.headers()["x-subject-token"].to_str().unwrap().to_string()
}

fn entry(id: &str, title: &str, version: &str, sha: &str) -> Value {
    json!({"hv:image": {
        "dc:identifier": id, "dc:title": title, "hv:version": version,
        "sl:checksum:sha512": sha, "ad:mpuri": format!("https://registry.example/appliance/{id}:{version}/"),
        "hv:uri": format!("https://registry.example/{id}.raw"), "hv:format": "raw",
    }})
}

fn list(images: Vec<Value>) -> String {
    json!({"hv:imagelist": {
        "dc:identifier": "fedprobe-test-list", "dc:title": "ops image list", "ad:vo": "ops",
        "dc:date:created": "2026-11-30T00:00:00Z", "dc:date:expires": "2499-12-31T22:00:00Z",
        "dc:description": "built by the test", "dc:source": "https://registry.example/",
        "hv:version": "1", "hv:uri": "https://registry.example/list",
        "hv:endorser": {"hv:x509": {"dc:creator": "test", "hv:ca": "/CN=test", "hv:dn": "/CN=test", "hv:email": "t@example.org"}},
        "hv:images": images,
    }})
    .to_string()
}

#[tokio::test]
async fn subscribed_images_are_found_current_or_named_on_the_real_glance() {
    let p = Peers::load(T).expect("peers.env: start the peers (ci/peers/up.sh)");
    let access = p
        .access_token(T)
        .await
        .expect("an access token from the peers' OIDC provider");
    let token = scoped(&p, &access).await;
    let run = format!("{:x}", std::process::id());
    let (a_id, b_id, c_id) = (
        format!("fedprobe-appl-a-{run}"),
        format!("fedprobe-appl-b-{run}"),
        format!("fedprobe-appl-c-{run}"),
    );
    let data_a: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    let data_b = vec![1u8; 2048];
    let sha = |d: &[u8]| format!("{:x}", Sha512::digest(d));
    // A is current; B is at version 1 (the list has 2); C is not at the site.
    let a = image(
        &p,
        &token,
        &format!("A {run}"),
        &json!({"dc:identifier": a_id, "hv:version": "2", "ad:mpuri": format!("https://registry.example/appliance/{a_id}:2/")}),
        &data_a,
    )
    .await;
    let b = image(
        &p,
        &token,
        &format!("B {run}"),
        &json!({"dc:identifier": b_id, "hv:version": "1"}),
        &data_b,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let tok_file = dir.path().join("at");
    std::fs::write(&tok_file, &access).unwrap();
    let full = dir.path().join("full.json");
    std::fs::write(
        &full,
        list(vec![
            entry(&a_id, &format!("A {run}"), "2", &sha(&data_a)),
            entry(&b_id, &format!("B {run}"), "2", &sha(&data_b)),
            entry(&c_id, &format!("C {run}"), "1", &sha(b"c")),
        ]),
    )
    .unwrap();
    let only_a = dir.path().join("a.json");
    std::fs::write(
        &only_a,
        list(vec![entry(&a_id, &format!("A {run}"), "2", &sha(&data_a))]),
    )
    .unwrap();
    let args = |l: &std::path::Path| -> Vec<String> {
        [
            "-t",
            "60",
            "-v",
            "--access-token",
            &tok_file.display().to_string(),
            "--endpoint",
            p.get("KEYSTONE_URL"),
            "--ca-cert",
            p.get("CA_CERT"),
            "--vo",
            "ops",
            "--appliances-list",
            &l.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let (bad_code, bad, _, _) = run_bin(BIN, &args(&full)).await;
    let (good_code, good, _, _) = run_bin(BIN, &args(&only_a)).await;
    let (junk_code, junk, _, _) = run_bin(BIN, &args(&tok_file)).await;
    delete(&p, &token, &a).await;
    delete(&p, &token, &b).await;

    assert_eq!(bad_code, 2, "{bad}");
    assert!(bad.starts_with("APPLIANCES CRITICAL"), "{bad}");
    assert!(
        bad.contains("2 of 3 subscribed image(s) not current"),
        "{bad}"
    );
    assert!(
        bad.contains(&format!(
            "B {run} ({b_id}): outdated, {b} is version 1 but the list has 2"
        )),
        "{bad}"
    );
    assert!(
        bad.contains(&format!("C {run} ({c_id}): missing at the site")),
        "{bad}"
    );
    assert!(
        !bad.contains(&format!("A {run} ({a_id})")),
        "A is current: {bad}"
    );
    assert_eq!(good_code, 0, "{good}");
    assert!(good.starts_with("APPLIANCES OK"), "{good}");
    assert!(
        good.contains("1 subscribed image(s) present, active and current"),
        "{good}"
    );
    // A file that is not an image list is the monitor's trouble.
    assert_eq!(junk_code, 3, "{junk}");
    assert!(junk.contains("not a JSON image list"), "{junk}");
    for o in [&bad, &good, &junk] {
        assert_no_token(o, &access);
    }
}
