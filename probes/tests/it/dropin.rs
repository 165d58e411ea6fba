//! Drop-in names: production's command lines (argo-probe-fedcloud's
//! novaprobe, cloudinfo and swiftprobe) parse unchanged with production's defaults;
//! cloudinfo against an information system (scripted, and fakecloud's);
//! novaprobe's binary against the real peers with ARGO's command line.

use std::time::Duration;

use probes::checks::dropin::cloudinfo::{self, Cloudinfo};
use probes::checks::dropin::novaprobe::Novaprobe;
use probes::checks::dropin::swiftprobe::Swiftprobe;
use probes::checks::object_storage;
use probes::checks::vm_lifecycle;
use probes::model::Status;
use probes::probe::{run_args, Invocation, Probe};
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::realpeers::{assert_no_token, run_bin, Peers};

fn argv(bin: &str, s: &str) -> Vec<String> {
    std::iter::once(bin)
        .chain(s.split_whitespace())
        .map(String::from)
        .collect()
}

#[test]
fn novaprobe_takes_argos_command_line_and_every_production_flag() {
    // What ARGO generates for eu.egi.cloud.OpenStack-VM today.
    let argo = "-t 300 -v --access-token /etc/sensu/certs/oidc --appdb-image 1017 \
                --endpoint https://cloud.example.org:443/v3 --region RegionOne --cert /etc/ca.pem";
    let inv = Invocation::<vm_lifecycle::Args>::parse(Novaprobe::BIN, &argv("novaprobe", argo))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(inv.common.timeout, Some(Duration::from_secs(300)));
    assert_eq!(inv.common.verbose, 1);
    assert_eq!(
        inv.common.ca_cert,
        vec![std::path::PathBuf::from("/etc/ca.pem")]
    );
    assert_eq!(inv.args.appdb_image.as_deref(), Some("1017"));
    assert_eq!(inv.args.auth.region.as_deref(), Some("RegionOne"));
    // Production's defaults: --vm-timeout 300, --identity-provider egi.eu,
    // --argo-host-name this machine.
    assert_eq!(inv.args.vm_timeout, Duration::from_secs(300));
    assert!(inv.args.argo_host_name.is_none());
    let resolved =
        probes::auth::config::resolve(&inv.args.auth, &|_: &str| None).expect("resolves");
    assert_eq!(resolved.identity_provider, "egi.eu");
    // Every other flag production's novaprobe has.
    let all = "-t 120 -v --endpoint https://k.example.org/v3 --flavor m1.small --image img \
               --cert /ca.pem --access-token /tok --vm-timeout 200 --appdb-image 1 \
               --registry-image registry.egi.eu/x:1 --identity-provider other \
               --region R --argo-host-name mon.example.org --insecure";
    let inv = Invocation::<vm_lifecycle::Args>::parse(Novaprobe::BIN, &argv("novaprobe", all))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(inv.args.vm_timeout, Duration::from_secs(200));
    assert!(inv.common.insecure);
    assert_eq!(inv.args.flavor.as_deref(), Some("m1.small"));
    assert_eq!(
        inv.args.registry_image.as_deref(),
        Some("registry.egi.eu/x:1")
    );
    assert_eq!(inv.args.argo_host_name.as_deref(), Some("mon.example.org"));
    // Without -t: room for the create and the delete wait, each --vm-timeout.
    assert_eq!(Novaprobe::DEFAULT_TIMEOUT, Duration::from_secs(600));
}

#[test]
fn swiftprobe_takes_production_command_line_and_defaults() {
    // What ARGO generates for eu.egi.cloud.OpenStack-Swift, and every flag
    // production's swiftprobe.py has.
    let argo = "-t 300 -v --access-token /etc/sensu/certs/oidc \
                --endpoint https://cloud.example.org:443/v3";
    let inv = Invocation::<object_storage::Args>::parse(Swiftprobe::BIN, &argv("swiftprobe", argo))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(inv.common.timeout, Some(Duration::from_secs(300)));
    assert_eq!(inv.common.verbose, 1);
    let endpoint = inv.args.auth.endpoint.as_ref().expect("--endpoint");
    assert_eq!(endpoint.host_str(), Some("cloud.example.org"));
    assert_eq!(endpoint.path(), "/v3");
    assert_eq!(
        inv.args.auth.access_token.as_deref(),
        Some(std::path::Path::new("/etc/sensu/certs/oidc"))
    );
    let resolved =
        probes::auth::config::resolve(&inv.args.auth, &|_: &str| None).expect("resolves");
    assert_eq!(resolved.identity_provider, "egi.eu");
    let all = "--endpoint https://k.example.org/v3 --cert /ca.pem --access-token /tok \
               --timeout 60 --identity-provider other --verbose";
    let inv = Invocation::<object_storage::Args>::parse(Swiftprobe::BIN, &argv("swiftprobe", all))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(inv.common.timeout, Some(Duration::from_secs(60)));
    assert_eq!(
        inv.common.ca_cert,
        vec![std::path::PathBuf::from("/ca.pem")]
    );
    assert_eq!(inv.args.auth.identity_provider, "other");
    // Without -t: production's 120 s.
    assert_eq!(Swiftprobe::DEFAULT_TIMEOUT, Duration::from_secs(120));
    assert_eq!(Swiftprobe::LABEL, "OBJECT_STORAGE");
}

#[test]
fn cloudinfo_takes_production_command_line_and_defaults() {
    let inv = Invocation::<cloudinfo::Args>::parse(
        Cloudinfo::BIN,
        &argv("cloudinfo", "-e https://cloud.example.org:443/v3"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(inv.args.endpoint, "https://cloud.example.org:443/v3");
    assert_eq!(inv.args.is_endpoint.as_str(), "https://is.cloud.egi.eu/");
    assert_eq!(
        inv.args.is_cache,
        std::path::PathBuf::from("/tmp/cloud_is.json")
    );
    assert_eq!(inv.args.is_cache_ttl, Duration::from_secs(600));
    let all = "--endpoint https://c.example.org/v3 -v -t 120 --is-endpoint https://is.example.org \
               --is-cache /var/tmp/is.json --is-cache-ttl 60";
    let inv = Invocation::<cloudinfo::Args>::parse(Cloudinfo::BIN, &argv("cloudinfo", all))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(inv.common.timeout, Some(Duration::from_secs(120)));
    assert_eq!(inv.args.is_cache_ttl, Duration::from_secs(60));
    // -e is required, as in production.
    assert!(
        Invocation::<cloudinfo::Args>::parse(Cloudinfo::BIN, &argv("cloudinfo", "-v")).is_err()
    );
}

async fn is_api(sites: serde_json::Value, times: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/sites/"))
        .and(query_param("include_projects", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(sites))
        .expect(times)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn cloudinfo_verdicts_and_cache() {
    let sites = json!([
        {"id": "1", "name": "SITE-A", "url": "https://a.example.org/v3",
         "projects": [{"id": "p1", "name": "ops"}, {"id": "p2", "name": "vo.example"}]},
        {"id": "2", "name": "SITE-B", "url": "https://b.example.org/v3", "projects": []},
    ]);
    // One request to the information system for three runs: the cache serves the rest.
    let server = is_api(sites, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cloud_is.json").display().to_string();
    let run = |endpoint: &'static str| {
        let (uri, cache) = (server.uri(), cache.clone());
        async move {
            run_args::<Cloudinfo, _>(&["-e", endpoint, "--is-endpoint", &uri, "--is-cache", &cache])
                .await
        }
    };
    // ARGO's :443 form of a URL the IS lists without it.
    let ok = run("https://a.example.org:443/v3").await;
    assert_eq!(ok.status, Status::Ok, "{ok:#?}");
    assert!(ok.summary.contains("2 VO(s)"), "{}", ok.summary);
    let no_vo = run("https://b.example.org/v3").await;
    assert_eq!(no_vo.status, Status::Warning, "{no_vo:#?}");
    assert!(no_vo.steps[0].message.contains("cached"), "{no_vo:#?}");
    let missing = run("https://c.example.org/v3").await;
    assert_eq!(missing.status, Status::Critical, "{missing:#?}");
    assert!(
        missing.summary.contains("not listed"),
        "{}",
        missing.summary
    );
    server.verify().await;
}

#[tokio::test]
async fn cloudinfo_is_unknown_when_the_information_system_fails() {
    let server = MockServer::start().await;
    Mock::given(path("/sites/"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("c.json").display().to_string();
    let uri = server.uri();
    let r = run_args::<Cloudinfo, _>(&[
        "-e",
        "https://a.example.org/v3",
        "--is-endpoint",
        &uri,
        "--is-cache",
        &cache,
    ])
    .await;
    assert_eq!(r.status, Status::Unknown, "{r:#?}");
    assert!(
        !std::path::Path::new(&cache).exists(),
        "a failure is not cached"
    );
    // Garbage instead of a list of sites: UNKNOWN too, and not cached.
    let server = MockServer::start().await;
    Mock::given(path("/sites/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"detail": "x"})))
        .mount(&server)
        .await;
    let uri = server.uri();
    let r = run_args::<Cloudinfo, _>(&[
        "-e",
        "https://a.example.org/v3",
        "--is-endpoint",
        &uri,
        "--is-cache",
        &cache,
    ])
    .await;
    assert_eq!(r.status, Status::Unknown, "{r:#?}");
    assert!(!std::path::Path::new(&cache).exists());
}

/// The binary against fakecloud's information system, which lists each
/// emulated site under its Keystone URL.
#[tokio::test]
async fn cloudinfo_binary_finds_a_fakecloud_site() {
    let cloud = fakecloud::FakeCloud::start(fakecloud::Options::default())
        .await
        .expect("start fakecloud");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("c.json").display().to_string();
    let args: Vec<String> = [
        "-e",
        &cloud.keystone(0),
        "-v",
        "-t",
        "30",
        "--is-endpoint",
        &format!("{}/is", cloud.base()),
        "--is-cache",
        &cache,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, out, _, _) = run_bin(env!("CARGO_BIN_EXE_cloudinfo"), &args).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("GLUE OK - Endpoint publishing"), "{out}");
    assert!(out.contains("[OK] GLUE-03"), "{out}");
}

#[tokio::test]
async fn novaprobe_binary_runs_argos_command_line_against_the_real_peers() {
    const TEST: &str = "novaprobe_binary_runs_argos_command_line_against_the_real_peers";
    let Some(peers) = Peers::load(TEST) else {
        return;
    };
    let Some(token) = peers.access_token(TEST).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("oidc");
    std::fs::write(&token_file, &token).unwrap();
    let host = format!("real-novaprobe-{}", std::process::id());
    let args: Vec<String> = [
        "-t",
        "300",
        "-v",
        "--access-token",
        token_file.to_str().unwrap(),
        "--appdb-image",
        peers.get("IMAGE_APPDB_ID"),
        "--endpoint",
        peers.get("KEYSTONE_URL"),
        "--region",
        peers.get("REGION"),
        "--cert",
        peers.get("CA_CERT"),
        "--argo-host-name",
        &host,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, out, _, _) = run_bin(env!("CARGO_BIN_EXE_novaprobe"), &args).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("VM_LIFECYCLE OK - Compute instance="),
        "{out}"
    );
    assert!(out.contains("[OK] VM-08 delete server"), "{out}");
    assert_no_token(&out, &token);
    let admin = peers.admin_token().await;
    let left: Vec<_> = peers
        .all_servers(&admin)
        .await
        .into_iter()
        .filter(|s| s["metadata"]["argo-mon-host"] == host.as_str())
        .collect();
    assert!(left.is_empty(), "servers left: {left:?}");
}
