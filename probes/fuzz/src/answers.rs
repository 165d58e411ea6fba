// Shared by the cargo-fuzz targets (fuzz_targets/answer_*.rs) and their
// stable stand-in (probes/tests/it/fuzz_answers.rs): one HTTP answer made
// of arbitrary bytes (first byte: the status; the rest: the body), served on
// 127.0.0.1 and read by every call of one client. The client must not panic,
// and whatever failure it reports must fit a Nagios line.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use probes::http::{Http, TlsOptions};
use probes::record::Recorder;
use probes::secret::Secret;
use probes::{Fail, Status};
use reqwest::Url;

#[derive(Clone, Copy, Debug)]
pub enum Client {
    Keystone,
    Nova,
    Glance,
    Neutron,
    Cinder,
    Usage,
    Oidc,
    IsApi,
}

pub const CLIENTS: [Client; 8] = [
    Client::Keystone,
    Client::Nova,
    Client::Glance,
    Client::Neutron,
    Client::Cinder,
    Client::Usage,
    Client::Oidc,
    Client::IsApi,
];

/// A well-formed answer per client: seeds for mutation.
pub fn seeds(c: Client) -> &'static [&'static str] {
    match c {
        Client::Keystone => &[
            r#"{"projects": [{"id": "p1", "name": "ops", "enabled": true, "domain_id": "default"}]}"#,
            r#"{"token": {"expires_at": "2026-01-01T00:00:00Z", "project": {"id": "p1", "name": "ops"}, "catalog": [{"type": "compute", "name": "nova", "endpoints": [{"interface": "public", "region": "R", "url": "https://x/v2.1"}]}]}}"#,
        ],
        Client::Nova => &[
            r#"{"version": {"id": "v2.1", "version": "2.90", "min_version": "2.1"}}"#,
            r#"{"flavors": [{"id": "8", "name": "m1", "vcpus": 1, "ram": 512, "disk": 8}]}"#,
            r#"{"server": {"id": "s1", "status": "ACTIVE", "metadata": {"k": "v"}, "fault": {"code": 500, "message": "m"}}}"#,
            r#"{"servers": [{"id": "s1"}], "servers_links": [{"rel": "next", "href": "/v2.1/servers/detail?marker=s1"}]}"#,
        ],
        Client::Glance => &[
            r#"{"images": [{"id": "i1", "name": "n", "status": "active", "size": 1}], "next": "/v2/images?marker=i1"}"#,
            r#"{"id": "i1", "status": "queued", "checksum": null}"#,
            r#"{"import-methods": {"value": ["glance-direct"]}}"#,
        ],
        Client::Neutron => &[
            r#"{"networks": [{"id": "n1", "name": "n", "status": "ACTIVE", "project_id": "p1"}]}"#,
        ],
        Client::Cinder => &[r#"{"volume-summary": {"total_count": 2, "total_size": 10}}"#],
        Client::Usage => &[
            r#"{"tenant_usage": {"server_usages": [{"instance_id": "s1", "flavor": "m1", "vcpus": 1, "memory_mb": 512, "local_gb": 8, "hours": 1.5, "started_at": "2026-01-01T00:00:00.000000", "ended_at": null, "state": "active"}]}, "tenant_usage_links": [{"rel": "next", "href": "/v2.1/os-simple-tenant-usage/p1?marker=s1"}]}"#,
        ],
        Client::Oidc => &[
            r#"{"issuer": "http://127.0.0.1", "token_endpoint": "http://127.0.0.1/token"}"#,
            r#"{"access_token": "a", "refresh_token": "r", "expires_in": 3600, "token_type": "Bearer"}"#,
        ],
        Client::IsApi => &[
            r#"[{"name": "SITE", "url": "https://x", "id": "1"}]"#,
            r#"[{"id": "p1", "name": "ops", "vo": "ops"}]"#,
        ],
    }
}

static ANSWER: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static BASE: OnceLock<String> = OnceLock::new();

/// The loopback server answering every request with [`ANSWER`].
fn base() -> &'static str {
    BASE.get_or_init(|| {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let base = format!("http://{}", l.local_addr().expect("local address"));
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // The request head (and whatever body came with it): enough.
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 1 << 20 {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let answer = ANSWER.lock().map(|a| a.clone()).unwrap_or_default();
                let _ = s.write_all(&wire(&answer));
            }
        });
        base
    })
}

/// First byte picks the status, the rest is the body.
fn wire(data: &[u8]) -> Vec<u8> {
    let (status, body) = match data.split_first() {
        Some((b, rest)) => (
            match b % 8 {
                0..=3 => "200 OK",
                4 => "201 Created",
                5 => "202 Accepted",
                6 => "404 Not Found",
                _ => "500 Internal Server Error",
            },
            rest,
        ),
        None => ("200 OK", data),
    };
    let mut v = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

fn check<T>(what: &str, r: Result<T, Fail>) {
    if let Err(f) = r {
        assert!(
            matches!(f.status, Status::Critical | Status::Unknown),
            "{what}: a site's garbage graded {:?}: {}",
            f.status,
            f.message
        );
        let line = probes::render::nagios::first_line("X", "CRITICAL", &f.message, "");
        assert!(!line.contains('\n') && line.len() < 400, "{what}: {line}");
    }
}

/// Serve `data` as the answer and run every call of `client` against it.
pub fn run(client: Client, data: &[u8]) {
    if let Ok(mut a) = ANSWER.lock() {
        *a = data.to_vec();
    }
    let base = base();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(calls(client, base));
}

async fn calls(client: Client, base: &str) {
    use probes::clients::{glance, is_api, keystone, neutron, nova, oidc, usage};
    let deadline = probes::deadline::Deadline::after(Duration::from_secs(5));
    let http =
        Http::new(TlsOptions::default(), deadline, Recorder::new(false, None)).expect("client");
    let url = |p: &str| Url::parse(&format!("{base}{p}")).expect("url");
    let token = Secret::new("t0ken");
    match client {
        Client::Keystone => {
            let k = keystone::Keystone::new(http, url("/v3"));
            check("projects", k.list_projects(&token).await);
            check("validate", k.validate_token(&token).await);
            let id = serde_json::json!({"methods": ["token"], "token": {"id": "t"}});
            check("issue", k.issue_token(id, None).await);
            let ex = k.exchange_oidc("egi.eu", "openid", &token).await;
            check("exchange", ex);
        }
        Client::Nova => {
            let n = nova::Nova::new(http, &url("/v2.1"), token, Some("2.37"));
            check("version", n.version().await);
            check("flavors", n.flavors(&[]).await);
            check("create", n.create_server(&serde_json::json!({})).await);
            check("server", n.server("s1").await);
            check("list", n.servers_detail().await);
            check("delete", n.delete_server("s1").await);
        }
        Client::Glance => {
            let g = glance::Glance::new(http, &url("/"), token);
            check("images", g.images(&[]).await);
            check("image", g.image("i1").await);
            check("create", g.create(&serde_json::json!({})).await);
            check("methods", g.import_methods().await);
            let mut seen = 0usize;
            let mut sink = |b: &[u8]| {
                seen += b.len();
                seen < (1 << 26)
            };
            check("download", g.download("i1", &mut sink).await);
            let (tx, body) = probes::http::body_channel(16);
            tokio::spawn(async move { tx.send(vec![0u8; 16].into()).await });
            check("upload", g.upload("i1", body).await);
        }
        Client::Neutron => {
            let n = neutron::Neutron::new(http, &url("/"), token);
            check("networks", n.networks().await);
        }
        Client::Cinder => {
            if let Ok(c) = usage::Cinder::new(http, &url("/v3"), token, "p1") {
                check("summary", c.volume_summary().await);
            }
        }
        Client::Usage => {
            let u = usage::TenantUsage::new(http, &url("/v2.1"), token);
            check("usage", u.servers("p1", 0, 86400, 100).await);
        }
        Client::Oidc => {
            let c = oidc::Client {
                id: "fedprobe".into(),
                secret: Secret::new("s3cret"),
            };
            check(
                "discover",
                oidc::TokenClient::discover(&http, &url("/")).await,
            );
            let op = oidc::TokenClient::new(http, url("/token"), c);
            check("refresh", op.refresh_grant(&token, "openid").await);
            check("client", op.client_credentials("openid").await);
        }
        Client::IsApi => {
            let api = is_api::IsApi::new(http, &url("/"));
            check("sites", api.sites().await);
            check("project", api.vo_project("SITE", "ops").await);
            check("images", api.vo_images("SITE", "ops").await);
        }
    }
}

/// Any text as plugin output: parsed without panic, perfdata labels kept.
pub fn nagios_output(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let out = probes::render::parse::parse_output(&text);
    let _ = format!("{out:?}");
    let (perf, bad) = probes::render::parse::parse_perfdata(&text);
    for p in &perf {
        // What was parsed renders back to something parseable.
        let again = probes::render::parse::parse_perfdata(&p.to_string());
        assert_eq!(again.0.len(), 1, "{p} from {text:?}: {again:?}");
    }
    let _ = bad;
}

/// Whether a Nova version call succeeds on `data`: the tests' proof that
/// the answers really reach the client.
pub fn nova_version_ok(data: &[u8]) -> bool {
    if let Ok(mut a) = ANSWER.lock() {
        *a = data.to_vec();
    }
    let url = Url::parse(&format!("{}/v2.1", base())).expect("url");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let deadline = probes::deadline::Deadline::after(Duration::from_secs(5));
        let http =
            Http::new(TlsOptions::default(), deadline, Recorder::new(false, None)).expect("client");
        let n = probes::clients::nova::Nova::new(http, &url, Secret::new("t"), None);
        n.version().await.is_ok()
    })
}
