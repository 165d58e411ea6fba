// Shared by the cargo-fuzz targets (fuzz_targets/answer_*.rs) and their
// stable stand-in (probes/tests/it/fuzz_answers.rs): one HTTP answer made
// of arbitrary bytes (first byte: the status; the rest: the body), served on
// 127.0.0.1 and read by every call of one client. The client must not panic,
// and whatever failure it reports must fit a Nagios line.

// Each fuzz target names one client; the rest are unused there.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use probes::auth::cloud::CloudKind;
use probes::backend::cloud::Connected;
use probes::backend::{Compute, ImageStore, Usage, Volumes};
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
    /// The other clouds' backends, every call of the cloud-neutral seam.
    OpenNebula,
    Ec2,
    Azure,
    Gce,
}

pub const CLIENTS: [Client; 12] = [
    Client::Keystone,
    Client::Nova,
    Client::Glance,
    Client::Neutron,
    Client::Cinder,
    Client::Usage,
    Client::Oidc,
    Client::IsApi,
    Client::OpenNebula,
    Client::Ec2,
    Client::Azure,
    Client::Gce,
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
        Client::OpenNebula => &[
            "<?xml version=\"1.0\"?><methodResponse><params><param><value><array><data><value><boolean>1</boolean></value><value><string>&lt;VM&gt;&lt;ID&gt;7&lt;/ID&gt;&lt;NAME&gt;fedprobe-x&lt;/NAME&gt;&lt;STATE&gt;3&lt;/STATE&gt;&lt;LCM_STATE&gt;3&lt;/LCM_STATE&gt;&lt;USER_TEMPLATE&gt;&lt;FEDPROBE_RUN&gt;r&lt;/FEDPROBE_RUN&gt;&lt;/USER_TEMPLATE&gt;&lt;/VM&gt;</string></value><value><i4>0</i4></value></data></array></value></param></params></methodResponse>",
            "<?xml version=\"1.0\"?><methodResponse><params><param><value><array><data><value><boolean>1</boolean></value><value><i4>42</i4></value><value><i4>0</i4></value></data></array></value></param></params></methodResponse>",
            "<?xml version=\"1.0\"?><methodResponse><params><param><value><array><data><value><boolean>1</boolean></value><value><string>&lt;IMAGE_POOL&gt;&lt;IMAGE&gt;&lt;ID&gt;3&lt;/ID&gt;&lt;NAME&gt;img&lt;/NAME&gt;&lt;STATE&gt;1&lt;/STATE&gt;&lt;SIZE&gt;10&lt;/SIZE&gt;&lt;TEMPLATE&gt;&lt;FEDPROBE_RUN&gt;r&lt;/FEDPROBE_RUN&gt;&lt;/TEMPLATE&gt;&lt;/IMAGE&gt;&lt;/IMAGE_POOL&gt;</string></value><value><i4>0</i4></value></data></array></value></param></params></methodResponse>",
            "<?xml version=\"1.0\"?><methodResponse><params><param><value><array><data><value><boolean>0</boolean></value><value><string>[one.vm.info] Error getting virtual machine [7].</string></value><value><i4>1024</i4></value></data></array></value></param></params></methodResponse>",
        ],
        Client::Ec2 => &[
            "<DescribeAvailabilityZonesResponse><availabilityZoneInfo><item><zoneName>z1</zoneName><zoneState>available</zoneState></item></availabilityZoneInfo></DescribeAvailabilityZonesResponse>",
            "<DescribeInstancesResponse><reservationSet><item><instancesSet><item><instanceId>i-1</instanceId><instanceState><code>16</code><name>running</name></instanceState><instanceType>t3.small</instanceType><tagSet><item><key>fedprobe-run</key><value>r</value></item></tagSet></item></instancesSet></item></reservationSet></DescribeInstancesResponse>",
            "<DescribeImagesResponse><imagesSet><item><imageId>ami-1</imageId><name>img</name><imageState>available</imageState></item></imagesSet></DescribeImagesResponse>",
            "<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>gone</Message></Error></Errors><RequestID>x</RequestID></Response>",
        ],
        Client::Azure => &[
            r#"{"access_token": "a", "token_type": "Bearer", "expires_in": 3600}"#,
            r#"{"value": [{"name": "Standard_B1s", "numberOfCores": 1, "memoryInMB": 1024, "osDiskSizeInMB": 1047552}], "nextLink": "http://127.0.0.1/next"}"#,
            r#"{"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/v", "name": "v", "tags": {"fedprobe-run": "r"}, "properties": {"provisioningState": "Succeeded", "instanceView": {"statuses": [{"code": "PowerState/running"}]}}}"#,
            r#"{"error": {"code": "ResourceNotFound", "message": "gone"}}"#,
        ],
        Client::Gce => &[
            r#"{"access_token": "a", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer", "expires_in": 3600}"#,
            r#"{"items": [{"name": "e2-small", "guestCpus": 2, "memoryMb": 2048, "selfLink": "http://127.0.0.1/x"}], "nextPageToken": "p"}"#,
            r#"{"name": "vm", "id": "1", "status": "RUNNING", "labels": {"fedprobe-run": "r"}, "disks": [{"source": "d"}]}"#,
            r#"{"kind": "compute#operation", "name": "op1", "status": "DONE", "error": {"errors": [{"code": "QUOTA_EXCEEDED", "message": "m"}]}}"#,
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
    let ctype = if body.first() == Some(&b'<') {
        "text/xml"
    } else {
        "application/json"
    };
    let mut v = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
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

/// Serve `data` as the answer to every request while `f` runs (given the
/// server's base URL) on a runtime of its own.
fn answering<F: std::future::Future>(data: &[u8], f: impl FnOnce(&'static str) -> F) -> F::Output {
    if let Ok(mut a) = ANSWER.lock() {
        *a = data.to_vec();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(f(base()))
}

/// A client with a 5 s deadline, as a probe's.
fn client() -> Http {
    let deadline = probes::deadline::Deadline::after(Duration::from_secs(5));
    Http::new(TlsOptions::default(), deadline, Recorder::new(false, None)).expect("client")
}

/// Serve `data` as the answer and run every call of `client` against it.
pub fn run(client: Client, data: &[u8]) {
    answering(data, |base| calls(client, base));
}

async fn calls(client: Client, base: &str) {
    use probes::clients::{glance, is_api, keystone, neutron, nova, oidc, usage};
    let http = self::client();
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
        Client::OpenNebula | Client::Ec2 | Client::Azure | Client::Gce => {
            match connected(client, base, http).await {
                Ok(c) => {
                    // OpenNebula's API has no call returning an image's bytes:
                    // its download is a WARNING whatever the site answers.
                    let download = c.kind() != CloudKind::OpenNebula;
                    probes::with_backend!(c, b => seam(b, download).await)
                }
                Err(f) => check("login", Err::<(), _>(f)),
            }
        }
    }
}

/// The backend of `client` logged in the way a probe does (`--cloud`).
async fn connected(client: Client, base: &str, http: Http) -> Result<Connected, Fail> {
    let ctx = probes::ctx::Ctx::new(http, Recorder::new(false, None), Default::default());
    probes::backend::cloud::connect(&ctx, &login_args(client, base)).await
}

/// Credential files for the logins, made once; every URL is the loopback server.
fn login_args(client: Client, base: &str) -> probes::auth::AuthArgs {
    use probes::auth::{azure::AzureArgs, ec2::Ec2Args, gce::GceArgs, AuthArgs};
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    // One directory for every process (a static's TempDir is never dropped,
    // so a directory per process would be left behind by each): files are
    // written only when missing or different, through a rename, so
    // concurrent processes never read half a file.
    let dir = DIR.get_or_init(|| {
        let d = std::env::temp_dir().join("fedprobe-fuzz-credentials");
        let _ = std::fs::create_dir_all(&d);
        for (f, v) in [
            ("ak", "AKIAFUZZ"),
            ("sk", "s3cret"),
            ("token", "t0ken"),
            ("session", "fedprobe:s3cret"),
        ] {
            let path = d.join(f);
            if std::fs::read(&path).ok().as_deref() != Some(v.as_bytes()) {
                let tmp = d.join(format!("{f}.{}", std::process::id()));
                if std::fs::write(&tmp, v).is_ok() {
                    let _ = std::fs::rename(&tmp, &path);
                }
            }
        }
        d
    });
    let url = |p: &str| Url::parse(&format!("{base}{p}")).ok();
    let mut a = AuthArgs {
        endpoint: url("/"),
        ..Default::default()
    };
    match client {
        Client::OpenNebula => {
            a.cloud = CloudKind::OpenNebula;
            a.endpoint = url("/RPC2");
            a.opennebula.session = Some(dir.join("session"));
        }
        Client::Ec2 => {
            a.cloud = CloudKind::Ec2;
            a.ec2 = Box::new(Ec2Args {
                access_key_file: Some(dir.join("ak")),
                secret_key_file: Some(dir.join("sk")),
                sts_endpoint: url("/sts"),
                ebs_endpoint: url("/ebs"),
                ..Default::default()
            })
        }
        Client::Azure => {
            a.cloud = CloudKind::Azure;
            a.azure = Box::new(AzureArgs {
                authority: url("/"),
                tenant: Some("t".into()),
                client_id: Some("c".into()),
                client_secret: Some(dir.join("sk")),
                subscription: Some("s".into()),
                resource_group: Some("rg".into()),
                location: Some("westeurope".into()),
                ..Default::default()
            })
        }
        _ => {
            a.cloud = CloudKind::Gce;
            a.access_token = Some(dir.join("token"));
            a.gce = Box::new(GceArgs {
                project: Some("p".into()),
                zone: Some("z".into()),
                wif_audience: Some("//iam.googleapis.com/x".into()),
                sts_url: url("/sts"),
                iam_url: url("/iam"),
                token_url: url("/token"),
                storage_url: url("/storage"),
                bucket: Some("b".into()),
                ..Default::default()
            })
        }
    }
    a
}

/// Every call of the cloud-neutral seam against the one answer.
async fn seam<B>(mut b: B, download: bool)
where
    B: Compute + Volumes + Usage + ImageStore + Sync,
{
    use probes::backend::{ImageQuery, NetworkChoice, ServerSpec, VolumeSpec};
    let tags: std::collections::BTreeMap<String, String> =
        [("fedprobe-run".to_string(), "r".to_string())].into();
    check("api_version", b.api_version().await);
    check(
        "find_image",
        b.find_image(&ImageQuery::IdOrName("img".into())).await,
    );
    check(
        "find_image",
        b.find_image(&ImageQuery::AppDb("1017".into())).await,
    );
    let flavor = b.pick_flavor(None, 1).await;
    if let Ok(f) = &flavor {
        check("compute_quota", b.compute_quota(f).await);
    }
    check("pick_flavor", flavor);
    check("pick_network", b.pick_network().await);
    let spec = ServerSpec {
        name: "fedprobe-x".into(),
        image_id: "1".into(),
        flavor_id: "1".into(),
        network: NetworkChoice::Auto,
        metadata: tags.clone(),
    };
    check("create_server", b.create_server(&spec).await);
    check("server", b.server("7").await);
    check("servers_tagged", b.servers_tagged("fedprobe-run").await);
    check("delete_server", b.delete_server("7").await);
    let vol = VolumeSpec {
        name: "fedprobe-x".into(),
        size_gb: 1,
        volume_type: None,
        metadata: tags,
    };
    check("create_volume", b.create_volume(&vol).await);
    check("volume", b.volume("3").await);
    check("attach_volume", b.attach_volume("7", "3").await);
    check("server_volumes", b.server_volumes("7").await);
    check("detach_volume", b.detach_volume("7", "3").await);
    check("volumes_tagged", b.volumes_tagged("fedprobe-run").await);
    check("volume_limits", b.volume_limits().await);
    check("delete_volume", b.delete_volume("3").await);
    check("server_usage", b.server_usage(0.0, 86400.0).await);
    check("volume_usage", b.volume_usage().await);
    let spec = probes::backend::NewImage {
        name: "fedprobe-x".into(),
        disk_format: "raw".into(),
        container_format: "bare".into(),
        properties: Default::default(),
    };
    check("create_image", b.create_image(&spec).await);
    check("import_support", b.import_support().await);
    check("image", b.image("3").await);
    if download {
        let mut seen = 0usize;
        let mut sink = |b: &[u8]| {
            seen += b.len();
            seen < (1 << 26)
        };
        check("download", b.download("3", &mut sink).await);
    }
    check("images_named", b.images_named("fedprobe-x").await);
    check("images_tagged", b.images_tagged("fedprobe-run").await);
    check("delete_image", b.delete_image("3").await);
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

/// Whether a backend logs in on `data` (as a probe does, through
/// `cloud::connect`): the tests' proof that the seam's calls are reached.
pub fn backend_reached(client: Client, data: &[u8]) -> bool {
    answering(data, |base| async move {
        connected(client, base, self::client()).await.is_ok()
    })
}

/// Whether a Nova version call succeeds on `data`: the tests' proof that
/// the answers really reach the client.
pub fn nova_version_ok(data: &[u8]) -> bool {
    answering(data, |base| async move {
        let url = Url::parse(&format!("{base}/v2.1")).expect("url");
        let n = probes::clients::nova::Nova::new(client(), &url, Secret::new("t"), None);
        n.version().await.is_ok()
    })
}
