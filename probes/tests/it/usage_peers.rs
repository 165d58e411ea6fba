//! check_usage against the real local OpenStack (peers.env) and on the real
//! cASO spool ci/producers/caso.sh writes. Skips loudly without them.

use std::collections::HashMap;

use probes::checks::usage::Usage;
use probes::model::{ProbeResult, Status};
use probes::probe::run_args;

/// The cASO spool is rewritten by caso.sh: one test at a time uses it.
static SPOOL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn run(argv: &[String]) -> ProbeResult {
    run_args::<Usage, _>(argv).await
}

fn peers() -> Option<HashMap<String, String>> {
    let p = std::env::var("FEDPROBE_PEERS_ENV")
        .unwrap_or_else(|_| "/tmp/fedprobe-peers/peers.env".into());
    let text = std::fs::read_to_string(&p).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
            .collect(),
    )
}

/// An OIDC access token from the peers' provider (client credentials).
async fn access_token(env: &HashMap<String, String>) -> Option<tempfile::NamedTempFile> {
    // The probes' own client setup (rustls with the ring provider, the CA).
    let tls = probes::http::TlsOptions {
        ca_certs: vec![env["CA_CERT"].clone().into()],
        ..Default::default()
    };
    let client = probes::http::build_client(&tls).ok()?;
    let secret = std::fs::read_to_string(&env["OIDC_CLIENT_SECRET_FILE"]).ok()?;
    let scope = env
        .get("OIDC_SCOPES")
        .cloned()
        .unwrap_or_default()
        .replace(',', " ");
    let resp = client
        .post(&env["OIDC_TOKEN_ENDPOINT"])
        .basic_auth(&env["OIDC_CLIENT_ID"], Some(secret.trim()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope.as_str()),
        ])
        .send()
        .await
        .ok()?;
    let v: serde_json::Value = resp.json().await.ok()?;
    let f = tempfile::NamedTempFile::new().ok()?;
    std::fs::write(f.path(), v["access_token"].as_str()?).ok()?;
    Some(f)
}

fn base_args(env: &HashMap<String, String>, tok: &tempfile::NamedTempFile) -> Vec<String> {
    vec![
        "--endpoint".into(),
        env["KEYSTONE_URL"].clone(),
        "--access-token".into(),
        tok.path().display().to_string(),
        "--ca-cert".into(),
        env["CA_CERT"].clone(),
        "--project".into(),
        env["OPS_PROJECT_NAME"].clone(),
        "--window".into(),
        "30d".into(),
    ]
}

#[tokio::test]
async fn real_openstack_usage_and_a_known_server() {
    let Some(env) = peers() else {
        eprintln!(
            "SKIP real_openstack_usage_and_a_known_server: no peers.env (local OpenStack not up)"
        );
        return;
    };
    let Some(tok) = access_token(&env).await else {
        eprintln!(
            "SKIP real_openstack_usage_and_a_known_server: no OIDC token from the peers' provider"
        );
        return;
    };
    let r = run(&base_args(&env, &tok)).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    let servers = r
        .perfdata
        .iter()
        .find(|p| p.label == "servers")
        .unwrap()
        .value
        .unwrap();
    let vol = r.steps.iter().find(|s| s.check == "USAGE-03").unwrap();
    eprintln!("real usage: {servers} server(s); volumes: {}", vol.message);

    // Real Nova paging (2.40 limit/marker, links rel=next): one server a page.
    let mut a = base_args(&env, &tok);
    a.extend(["--usage-page-size".into(), "1".into()]);
    let r = run(&a).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    let paged = r
        .perfdata
        .iter()
        .find(|p| p.label == "servers")
        .unwrap()
        .value
        .unwrap();
    let pages = r
        .perfdata
        .iter()
        .find(|p| p.label == "usage_pages")
        .unwrap()
        .value
        .unwrap();
    assert_eq!(paged, servers, "paging lost or repeated servers");
    assert!(pages >= servers, "{pages} pages for {servers} servers");
    eprintln!("real paging: {servers} server(s) over {pages} page(s)");

    // A server id the site does not know: CRITICAL, named.
    let mut a = base_args(&env, &tok);
    a.extend([
        "--server-id".into(),
        "00000000-0000-0000-0000-000000000000".into(),
    ]);
    let r = run(&a).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary.contains("is missing from os-simple-tenant-usage"),
        "{}",
        r.summary
    );

    // A server cASO saw in this project (the real spool names it): its usage
    // must match its flavor. Without a spool there is no id to ask for.
    let _guard = SPOOL.lock().await;
    let Some(id) = caso_server(&env) else {
        eprintln!(
            "SKIP real server-id check: no cASO record for this project (run ci/producers/caso.sh)"
        );
        return;
    };
    let mut a = base_args(&env, &tok);
    a.extend(["--server-id".into(), id.clone()]);
    let r = run(&a).await;
    assert_eq!(r.status, Status::Ok, "server {id}: {r:#?}");
    let step = r.steps.iter().find(|s| s.check == "USAGE-02").unwrap();
    assert!(step.message.contains("= flavor"), "{}", step.message);
}

/// Run cASO (ci/producers/caso.sh) when its spool is older than the peers.
fn refresh_caso_spool() {
    let peers = std::env::var("FEDPROBE_PEERS_ENV")
        .unwrap_or_else(|_| "/tmp/fedprobe-peers/peers.env".into());
    let newest = probes::checks::usage::spool_files(std::path::Path::new(
        "/tmp/fedprobe-producers/out/apel",
    ))
    .ok()
    .and_then(|f| f.into_iter().map(|(_, t)| t).max());
    let peers_t = std::fs::metadata(&peers).and_then(|m| m.modified()).ok();
    if newest.is_some() && newest >= peers_t {
        return;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/producers/caso.sh");
    match std::process::Command::new("bash").arg(script).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => eprintln!("caso.sh failed: {}", String::from_utf8_lossy(&o.stdout)),
        Err(e) => eprintln!("caso.sh did not run: {e}"),
    }
}

/// A VMUUID from cASO's real spool for the ops project.
fn caso_server(env: &HashMap<String, String>) -> Option<String> {
    refresh_caso_spool();
    let dir = std::path::Path::new("/tmp/fedprobe-producers/out/apel");
    for (p, _) in probes::checks::usage::spool_files(dir).ok()? {
        let text = std::fs::read_to_string(p).ok()?;
        for rec in text.split("%%") {
            let field = |k: &str| {
                rec.lines().find_map(|l| {
                    l.strip_prefix(&format!("{k}: "))
                        .map(|v| v.trim().to_string())
                })
            };
            if field("LocalGroupId").as_deref() == Some(env["OPS_PROJECT_ID"].as_str()) {
                return field("VMUUID");
            }
        }
    }
    None
}

#[tokio::test]
async fn real_caso_spool_is_valid_and_fresh() {
    let _guard = SPOOL.lock().await;
    if peers().is_some() {
        refresh_caso_spool();
    }
    let dir = "/tmp/fedprobe-producers/out/apel";
    if !std::path::Path::new(dir).is_dir() {
        eprintln!("SKIP real_caso_spool_is_valid_and_fresh: no {dir} (run ci/producers/caso.sh)");
        return;
    }
    let r = run(&[
        "--apel-dir".into(),
        dir.into(),
        "--site".into(),
        "FEDPROBE-TEST".into(),
    ])
    .await;
    // Fresh after a run today; valid records.
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert!(r
        .perfdata
        .iter()
        .any(|p| p.label == "records" && p.value.unwrap() > 0.0));
}
