//! check_network end to end against the real peers: OIDC token, Keystone,
//! Nova (fake driver) and Neutron with its L3 router plugin, over https.
//! What is left behind is checked as admin on Neutron's and Nova's direct
//! ports, by the run's names (`fedprobe-net-<run>`).

use std::time::Duration;

use serde_json::{json, Value};

use crate::realpeers;
use realpeers::{assert_no_token, run_bin, Peers};

const BIN: &str = env!("CARGO_BIN_EXE_check_network");
const PREFIX: &str = "fedprobe-net-";

/// One test at a time: the SIGTERM tests find their run as the one
/// `fedprobe-net-*` object in the admin listings.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Setup {
    peers: Peers,
    token: String,
    _dir: tempfile::TempDir,
    file: String,
}

async fn setup(test: &str) -> Option<Setup> {
    let peers = Peers::load(test)?;
    if peers.get("EXTERNAL_NETWORK_ID").is_empty() {
        panic!("{test}: peers.env has no EXTERNAL_NETWORK_ID (peers without Neutron's router plugin: run setup_cloud.py network)");
    }
    let token = peers.access_token(test).await?;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oidc");
    std::fs::write(&file, &token).unwrap();
    Some(Setup {
        peers,
        token,
        file: file.display().to_string(),
        _dir: dir,
    })
}

fn args(s: &Setup, extra: &[&str]) -> Vec<String> {
    let p = &s.peers;
    let mut v: Vec<String> = [
        "--endpoint",
        p.get("KEYSTONE_URL"),
        "--access-token",
        &s.file,
        "--cert",
        p.get("CA_CERT"),
        "--identity-provider",
        p.get("IDP"),
        "--image",
        p.get("IMAGE_ID"),
        "-t",
        "240",
        "-v",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

async fn admin_call(
    p: &Peers,
    admin: &str,
    m: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = p
        .client
        .request(m, url)
        .header("X-Auth-Token", admin)
        .timeout(Duration::from_secs(60));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("neutron answers");
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

/// `kind` (floatingips, security-groups) of every project whose name or
/// description starts with `prefix`, as the admin sees them.
async fn neutron_left(p: &Peers, admin: &str, kind: &str, prefix: &str) -> Vec<Value> {
    let url = format!("{}/v2.0/{kind}", p.get("NEUTRON_DIRECT_URL"));
    let (code, v) = admin_call(p, admin, reqwest::Method::GET, url, None).await;
    assert_eq!(code, 200, "{kind}: {v}");
    v[kind.replace('-', "_")]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|x| {
            x["name"].as_str().unwrap_or("").starts_with(prefix)
                || x["description"].as_str().unwrap_or("").starts_with(prefix)
        })
        .collect()
}

async fn servers_left(p: &Peers, admin: &str, prefix: &str) -> Vec<Value> {
    p.all_servers(admin)
        .await
        .into_iter()
        .filter(|s| s["name"].as_str().unwrap_or("").starts_with(prefix))
        .collect()
}

/// Floating IPs, groups and servers of `prefix`: none may be left.
async fn assert_nothing_left(p: &Peers, prefix: &str) {
    let admin = p.admin_token().await;
    let fips = neutron_left(p, &admin, "floatingips", prefix).await;
    let groups = neutron_left(p, &admin, "security-groups", prefix).await;
    let servers = servers_left(p, &admin, prefix).await;
    assert!(
        fips.is_empty() && groups.is_empty() && servers.is_empty(),
        "left behind: floating IPs {fips:?}, groups {groups:?}, servers {servers:?}"
    );
}

/// The run's name in `... in group fedprobe-net-<run>, ...`.
fn run_name(out: &str) -> String {
    out.split(|c: char| c.is_whitespace() || c == ',' || c == ')' || c == '(')
        .find(|w| w.starts_with(PREFIX))
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn network_cycle_ok() {
    let _one = SERIAL.lock().await;
    let Some(s) = setup("network_cycle_ok").await else {
        return;
    };
    let (code, out, cpu, wall) = run_bin(BIN, &args(&s, &[])).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("NETWORK OK - floating IP 198.51.100."),
        "{out}"
    );
    for want in [
        "[OK] NET-01 network quota has room: room: floatingip",
        "[OK] NET-02 project network with a subnet: ops.vo.example-net",
        "[OK] NET-03 router with an external gateway: ops.vo.example-router",
        "[OK] NET-04 external network: public",
        "[OK] NET-05 security group with ingress rules",
        "ingress TCP 22 and ICMP read back",
        "[OK] NET-06 server in the group becomes ACTIVE",
        "[OK] NET-07 server's port in the group",
        "[OK] NET-08 allocate floating IP",
        "[OK] NET-09 floating IP seen on the port",
        "[OK] NET-10 disassociate floating IP",
        "[OK] NET-11 release floating IP",
        "[OK] NET-12 delete server",
        "[OK] NET-13 delete security group",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    for perf in [
        "quota=",
        "topology=",
        "group=",
        "server=",
        "allocate=",
        "associate=",
        "release=",
        "delete_group=",
    ] {
        assert!(out.contains(perf), "{perf}: {out}");
    }
    assert_eq!(out.matches(": deleted").count(), 3, "{out}");
    assert_no_token(&out, &s.token);
    let name = run_name(&out);
    assert!(name.len() > PREFIX.len(), "{out}");
    assert_nothing_left(&s.peers, &name).await;
    eprintln!("BENCH check_network: wall {wall:.3}s, cpu {cpu:.3}s");
}

/// Start the probe, wait until `seen` finds its first object as admin,
/// SIGTERM it; the output and exit code.
async fn sigterm_when(s: &Setup, kind: &str, pause: Duration) -> (Option<i32>, String) {
    let child = tokio::process::Command::new(BIN)
        .args(args(s, &[]))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let admin = s.peers.admin_token().await;
    let mut seen = false;
    for _ in 0..600 {
        let found = match kind {
            "server" => !servers_left(&s.peers, &admin, PREFIX).await.is_empty(),
            k => !neutron_left(&s.peers, &admin, k, PREFIX).await.is_empty(),
        };
        if found {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the probe's {kind} never appeared");
    tokio::time::sleep(pause).await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("probe exits after SIGTERM")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn sigterm_during_the_server_wait_leaves_nothing() {
    let _one = SERIAL.lock().await;
    let Some(s) = setup("sigterm_during_the_server_wait_leaves_nothing").await else {
        return;
    };
    // SIGTERM as soon as the admin sees the server: the fake driver usually
    // takes seconds to ACTIVE, so this is mid-wait (NET-06). On a loaded
    // machine the admin's listing can lag past ACTIVE (CI once saw NET-09):
    // any stage with the server alive must still leave nothing.
    let (code, out) = sigterm_when(&s, "server", Duration::ZERO).await;
    assert_eq!(code, Some(3), "{out}");
    assert!(
        (6..=13).any(|n| out.contains(&format!("Interrupted by SIGTERM during NET-{n:02}"))),
        "{out}"
    );
    assert!(out.contains("created server "), "{out}");
    assert!(!out.contains("NOT deleted"), "{out}");
    assert_nothing_left(&s.peers, PREFIX).await;
}

#[tokio::test]
async fn sigterm_after_the_floating_ip_is_allocated_leaves_nothing() {
    let _one = SERIAL.lock().await;
    let Some(s) = setup("sigterm_after_the_floating_ip_is_allocated_leaves_nothing").await else {
        return;
    };
    let (code, out) = sigterm_when(&s, "floatingips", Duration::ZERO).await;
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("Interrupted by SIGTERM during NET-"), "{out}");
    assert!(out.contains("created floating IP "), "{out}");
    assert!(out.contains("created server "), "{out}");
    assert!(out.contains("created security group "), "{out}");
    assert!(!out.contains("NOT deleted"), "{out}");
    assert_nothing_left(&s.peers, PREFIX).await;
}

/// An admin-made external network whose one-address pool is already used:
/// selected with --external-network, allocation fails at NET-08, named, and
/// what was made before (group, server) is deleted.
#[tokio::test]
async fn an_exhausted_floating_ip_pool_is_critical_at_the_allocation() {
    let _one = SERIAL.lock().await;
    let Some(s) = setup("an_exhausted_floating_ip_pool_is_critical_at_the_allocation").await else {
        return;
    };
    let p = &s.peers;
    let admin = p.admin_token().await;
    let nt = format!("{}/v2.0", p.get("NEUTRON_DIRECT_URL"));
    let tag = format!("fedprobe-test-ext-{}", std::process::id());
    let post = |kind: &'static str, body: Value| {
        let (url, admin) = (format!("{nt}/{kind}s"), admin.clone());
        async move {
            let (code, v) = admin_call(
                p,
                &admin,
                reqwest::Method::POST,
                url,
                Some(json!({ kind: body })),
            )
            .await;
            assert_eq!(code, 201, "{kind}: {v}");
            v[kind]["id"].as_str().unwrap().to_string()
        }
    };
    let net = post(
        "network",
        json!({"name": tag, "router:external": true,
        "provider:network_type": "flat", "provider:physical_network": tag}),
    )
    .await;
    post(
        "subnet",
        json!({"network_id": net, "ip_version": 4, "cidr": "192.0.2.0/24",
        "enable_dhcp": false, "gateway_ip": null,
        "allocation_pools": [{"start": "192.0.2.10", "end": "192.0.2.10"}]}),
    )
    .await;
    let used = post(
        "floatingip",
        json!({"floating_network_id": net, "description": tag}),
    )
    .await;

    let (code, out, _, _) = run_bin(BIN, &args(&s, &["--external-network", &tag])).await;

    let del = |kind: &str, id: &str| format!("{nt}/{kind}/{id}");
    admin_call(
        p,
        &admin,
        reqwest::Method::DELETE,
        del("floatingips", &used),
        None,
    )
    .await;
    let (c, v) = admin_call(
        p,
        &admin,
        reqwest::Method::DELETE,
        del("networks", &net),
        None,
    )
    .await;
    assert_eq!(c, 204, "cleanup of the test network: {v}");

    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("[OK] NET-04 external network: {tag}")),
        "{out}"
    );
    assert!(
        out.contains("[CRITICAL] NET-08 allocate floating IP"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "no floating IP allocated on external network {tag}"
        )),
        "{out}"
    );
    assert!(out.contains("No more IP addresses available"), "{out}");
    assert_no_token(&out, &s.token);
    assert_nothing_left(&s.peers, &run_name(&out)).await;
}
