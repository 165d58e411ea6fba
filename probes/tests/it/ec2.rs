//! The EC2/EBS backend against a real moto server (ci/peers/moto.sh), and
//! the faults moto will not produce on demand through a wiremock front that
//! forwards everything else to that moto.

use std::collections::BTreeMap;
use std::future::pending;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::mockcloud::run;
use probes::auth::cloud::CloudKind;
use probes::auth::ec2::Ec2Args;
use probes::auth::AuthArgs;
use probes::backend::ec2;
use probes::backend::{
    delete_server_and_wait, Compute, ImageQuery, NetworkChoice, ServerPhase, ServerSpec, Usage,
    VolumePhase, VolumeSpec, Volumes,
};
use probes::checks::image_upload::ImageUpload;
use probes::checks::vm_lifecycle::VmLifecycle;
use probes::ctx::Settings;
use probes::http::TlsOptions;
use probes::model::{Cleanup, ProbeResult, ResourceKind};
use probes::runner::{execute, RunOptions};
use probes::{Fail, Status};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// An AMI moto ships in its default set (amzn-ami-hvm-2017.09.1, x86_64).
const AMI: &str = "ami-760aaa0f";

/// moto's URL from ci/peers/moto.sh's facts, or `None` after a SKIP line.
fn moto(test: &str) -> Option<String> {
    let file = std::env::var("FEDPROBE_MOTO_ENV")
        .unwrap_or_else(|_| "/tmp/fedprobe-peers/moto.env".into());
    let text = std::fs::read_to_string(&file).ok();
    let url = text.as_deref().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("MOTO_URL="))
            .map(|u| u.trim().to_string())
    });
    if url.is_none() {
        eprintln!("SKIP {test}: no MOTO_URL in {file} (start moto with ci/peers/moto.sh start)");
    }
    url
}

struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ak"), "AKIDFEDPROBETEST").unwrap();
        std::fs::write(dir.path().join("sk"), "Wm4Jq8Zt2Xr6Vb1Ny5Kc").unwrap();
        std::fs::write(dir.path().join("oidc"), "eyJ-Hd7Pq3Lz9Sv.x.y").unwrap();
        Keys { dir }
    }
    fn path(&self, f: &str) -> String {
        self.dir.path().join(f).display().to_string()
    }
    fn argv(&self, endpoint: &str, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = [
            "--cloud",
            "ec2",
            "--endpoint",
            endpoint,
            "--ec2-access-key-file",
            &self.path("ak"),
            "--ec2-secret-key-file",
            &self.path("sk"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }
}

fn step<'a>(r: &'a ProbeResult, check: &str) -> &'a probes::model::Step {
    r.steps
        .iter()
        .find(|s| s.check == check)
        .unwrap_or_else(|| panic!("no step {check} in {:#?}", r.steps))
}

fn all_cleaned(r: &ProbeResult) {
    for x in &r.resources {
        assert!(
            x.cleanup == Cleanup::Deleted,
            "{x:?} not cleaned up: {:#?}",
            r.steps
        );
    }
}

/// What moto holds for `action` with `params`, as a raw XML string.
async fn moto_xml(moto: &str, action: &str, params: &[(&str, &str)]) -> String {
    let mut form = vec![("Action", action), ("Version", "2016-11-15")];
    form.extend_from_slice(params);
    probes::http::build_client(&TlsOptions::default())
        .unwrap()
        .post(moto)
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDFEDPROBETEST/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0",
        )
        .form(&form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn vm_lifecycle_passes_on_moto_and_tags_the_instance() {
    let Some(m) = moto("ec2::vm_lifecycle_passes_on_moto") else {
        return;
    };
    let k = Keys::new();
    let r = run::<VmLifecycle>(&k.argv(&m, &["--image", AMI, "-t", "60"])).await;
    assert_eq!(r.status, Status::Ok, "{:#?}", r.steps);
    assert!(step(&r, "VM-01").message.contains("API 2016-11-15"));
    let id = &r.resources[0].id;
    assert!(id.starts_with("i-"), "{id}");
    all_cleaned(&r);
    // moto still lists it, terminated, with the probe's tags.
    let x = moto_xml(&m, "DescribeInstances", &[("InstanceId.1", id)]).await;
    assert!(x.contains("<name>terminated</name>"), "{x}");
    assert!(x.contains("<key>fedprobe-run</key>"), "{x}");
    assert!(x.contains("<key>argo-mon-host</key>"), "{x}");
}

#[tokio::test]
async fn image_upload_goes_through_ebs_direct_and_downloads_identical() {
    let Some(m) = moto("ec2::image_upload_goes_through_ebs_direct") else {
        return;
    };
    let k = Keys::new();
    // Not a multiple of the 512 KiB block: the last block is padded.
    let r = run::<ImageUpload>(&k.argv(&m, &["--size", "1300000", "-t", "60"])).await;
    assert_eq!(step(&r, "IMG-02").status, Status::Ok, "{:#?}", r.steps);
    assert_eq!(step(&r, "IMG-03").status, Status::Ok, "{:#?}", r.steps);
    assert!(step(&r, "IMG-05")
        .message
        .starts_with("1300000 bytes identical"));
    assert_eq!(step(&r, "IMG-06").status, Status::Ok);
    // EBS reports no whole-image size or checksum: IMG-04 says so.
    assert_eq!(step(&r, "IMG-04").status, Status::Warning);
    assert_eq!(r.status, Status::Warning);
    all_cleaned(&r);
    let name = &r.resources[0].id;
    let tag = format!("tag:{}", ec2::IMAGE_TAG);
    let f = [
        ("Owner.1", "self"),
        ("Filter.1.Name", tag.as_str()),
        ("Filter.1.Value.1", name.as_str()),
    ];
    let snaps = moto_xml(&m, "DescribeSnapshots", &f).await;
    assert!(!snaps.contains("<snapshotId>"), "snapshot left: {snaps}");
    let amis = moto_xml(&m, "DescribeImages", &f).await;
    assert!(!amis.contains("<imageId>"), "AMI left: {amis}");
}

#[tokio::test]
async fn federated_login_through_sts_web_identity() {
    let Some(m) = moto("ec2::federated_login_through_sts") else {
        return;
    };
    let k = Keys::new();
    let argv: Vec<String> = [
        "--cloud",
        "ec2",
        "--endpoint",
        &m,
        "--access-token",
        &k.path("oidc"),
        "--ec2-role-arn",
        "arn:aws:iam::123456789012:role/fedprobe",
        "--image",
        AMI,
        "-t",
        "60",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let r = run::<VmLifecycle>(&argv).await;
    assert_eq!(r.status, Status::Ok, "{:#?}", r.steps);
    let x = step(&r, "AUTH-02");
    assert!(
        x.message.contains("AssumeRoleWithWebIdentity"),
        "{}",
        x.message
    );
    assert!(
        x.message.contains("assumed-role/fedprobe/fedprobe"),
        "{}",
        x.message
    );
    let out = serde_json::to_string(&r).unwrap();
    assert!(!out.contains("Hd7Pq3Lz9Sv"), "token in the result");
}

fn opts(timeout: u64) -> RunOptions {
    RunOptions {
        probe: "ec2_volumes".into(),
        label: "EC2_VOLUMES".into(),
        timeout: Duration::from_secs(timeout),
        timeout_status: Status::Unknown,
        cleanup_grace: None,
        tls: TlsOptions::default(),
        settings: Settings {
            verbosity: 1,
            ..Default::default()
        },
        events: None,
    }
}

fn ec2_args(k: &Keys, endpoint: &str) -> AuthArgs {
    AuthArgs {
        cloud: CloudKind::Ec2,
        endpoint: Some(endpoint.parse().unwrap()),
        ec2: Box::new(Ec2Args {
            access_key_file: Some(k.path("ak").into()),
            secret_key_file: Some(k.path("sk").into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Poll `f` until it says ready, 100 times at most.
async fn until<F, Fut>(what: &str, mut f: F) -> Result<(), Fail>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, Fail>>,
{
    for _ in 0..100 {
        if f().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(Fail::critical(format!("{what}: not reached")))
}

/// The Volumes and Usage traits on moto: a volume created, attached to a
/// running instance, detached and deleted; usage lists both while they live.
#[tokio::test]
async fn volumes_attach_detach_and_usage_on_moto() {
    let Some(m) = moto("ec2::volumes_attach_detach_and_usage_on_moto") else {
        return;
    };
    let k = Keys::new();
    let args = ec2_args(&k, &m);
    let r = execute(opts(60), pending(), move |ctx| async move {
        let b = ec2::login(&ctx, &args).await?;
        let img = b.find_image(&ImageQuery::IdOrName(AMI.into())).await?;
        let f = b.pick_flavor(None, 0).await?;
        let mut tags = BTreeMap::new();
        tags.insert("fedprobe-run".to_string(), "voltest".to_string());
        let sid = b
            .create_server(&ServerSpec {
                name: "fedprobe-voltest".into(),
                image_id: img.id,
                flavor_id: f.id,
                network: NetworkChoice::Auto,
                metadata: tags.clone(),
            })
            .await?;
        ctx.track(ResourceKind::Server, &sid, None, &b, |c, id| async move {
            delete_server_and_wait(&c, &id).await.map(drop)
        });
        until("server running", || async {
            Ok(b.server(&sid).await?.map(|s| s.phase) == Some(ServerPhase::Active))
        })
        .await?;
        let vid = b
            .create_volume(&VolumeSpec {
                name: "fedprobe-voltest".into(),
                size_gb: 1,
                volume_type: None,
                metadata: tags,
            })
            .await?;
        ctx.track(ResourceKind::Volume, &vid, None, &b, |c, id| async move {
            c.delete_volume(&id).await.map(drop)
        });
        let phase = |p: VolumePhase| {
            let (b, vid) = (&b, &vid);
            move || {
                let p = p.clone();
                async move { Ok(b.volume(vid).await?.map(|v| v.phase) == Some(p)) }
            }
        };
        until("volume available", phase(VolumePhase::Available)).await?;
        let tagged = b.volumes_tagged("fedprobe-run").await?;
        assert!(tagged.iter().any(|v| v.id == vid && v.size_gb == Some(1)));
        b.attach_volume(&sid, &vid).await?;
        until("volume in use", phase(VolumePhase::InUse)).await?;
        let v = b.volume(&vid).await?.unwrap();
        assert_eq!(v.attached_to, vec![sid.clone()]);
        let now = probes::clock::now_unix();
        let su = b.server_usage(now - 3600.0, now + 60.0).await?;
        let mine = su.iter().find(|u| u.id == sid).expect("server in usage");
        assert_eq!(mine.vcpus, Some(2));
        assert!(mine.hours.is_some_and(|h| h >= 0.0));
        let vu = b.volume_usage().await?;
        assert!(vu.iter().any(|u| u.id == vid && u.size_gb == Some(1)));
        b.detach_volume(&sid, &vid).await?;
        until("volume available again", phase(VolumePhase::Available)).await?;
        assert!(b.delete_volume(&vid).await?);
        until("volume gone", || async {
            Ok(b.volume(&vid).await?.is_none())
        })
        .await?;
        assert!(!b.delete_volume(&vid).await?, "second delete: already gone");
        Ok(format!("volume {vid} on {sid}: attach, detach, delete"))
    })
    .await;
    assert_eq!(r.status, Status::Ok, "{} {:#?}", r.summary, r.steps);
    assert_eq!(r.resources.len(), 2);
    for x in &r.resources {
        assert!(x.cleanup == Cleanup::Deleted, "{x:?}");
    }
}

// --- faults, through a wiremock front forwarding to moto

/// What the front does to the calls of one action.
#[derive(Clone)]
enum Fault {
    /// The first `times` calls answer 503 RequestLimitExceeded.
    Throttle { action: &'static str, times: u32 },
    /// Answer `status` with `body` instead (STS errors, garbage).
    Answer {
        action: &'static str,
        status: u16,
        body: &'static str,
    },
    /// Forward, then replace `from` by `to` in the answers to DescribeInstances
    /// for one instance (a poll of the probe's server).
    Rewrite {
        from: &'static str,
        to: &'static str,
    },
    /// Polls of one instance answer: terminated by the provider, with reason.
    ProviderFailed,
    /// Everything forwarded as is.
    Pass,
}

struct Front {
    moto: String,
    fault: Fault,
    seen: Arc<AtomicU32>,
    /// Every request, for the service-model check.
    log: Arc<Mutex<Vec<serde_json::Value>>>,
}

/// The request as ci/peers/ec2_model_check.py reads it; the service is
/// the one it was signed for (STS's web-identity call is unsigned).
fn record(req: &Request) -> serde_json::Value {
    let auth = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let service = auth
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("sts");
    let headers: BTreeMap<String, String> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = if service == "ebs" && req.url.path().contains("/blocks/") {
        String::new() // block data: its headers are what the model describes
    } else {
        String::from_utf8_lossy(&req.body).into_owned()
    };
    serde_json::json!({
        "service": service,
        "method": req.method.to_string(),
        "path": req.url.path(),
        "query": req.url.query().unwrap_or(""),
        "headers": headers,
        "body": body,
    })
}

fn action_of(body: &[u8]) -> String {
    url_param(body, "Action").unwrap_or_default()
}

fn url_param(body: &[u8], key: &str) -> Option<String> {
    String::from_utf8_lossy(body).split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.replace("%2D", "-"))
    })
}

/// Forward one request to moto over a plain socket (wiremock answers
/// synchronously), `Connection: close`, and read the whole answer.
fn forward(moto: &str, req: &Request) -> ResponseTemplate {
    let addr = moto.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let target = match req.url.query() {
        Some(q) => format!("{}?{q}", req.url.path()),
        None => req.url.path().to_string(),
    };
    let mut head = format!("{} {target} HTTP/1.1\r\nHost: {addr}\r\n", req.method);
    for (k, v) in req.headers.iter() {
        let n = k.as_str();
        if !matches!(
            n,
            "host" | "connection" | "content-length" | "transfer-encoding"
        ) {
            head.push_str(&format!("{n}: {}\r\n", v.to_str().unwrap_or("")));
        }
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        req.body.len()
    ));
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&req.body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("answer head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut t = ResponseTemplate::new(status);
    for line in head.lines().skip(1) {
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if !matches!(
                k.as_str(),
                "content-length" | "connection" | "transfer-encoding"
            ) {
                t = t.insert_header(k.as_str(), v.trim());
            }
        }
    }
    t.set_body_bytes(raw[split + 4..].to_vec())
}

impl Respond for Front {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        self.log.lock().unwrap().push(record(req));
        let action = action_of(&req.body);
        let one_instance =
            action == "DescribeInstances" && url_param(&req.body, "InstanceId.1").is_some();
        match &self.fault {
            Fault::Throttle { action: a, times }
                if *a == action && self.seen.fetch_add(1, Ordering::SeqCst) < *times =>
            {
                return ResponseTemplate::new(503).set_body_raw(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error>\
                     <Code>RequestLimitExceeded</Code><Message>Request limit exceeded.\
                     </Message></Error></Errors><RequestID>f1</RequestID></Response>",
                    "text/xml",
                );
            }
            Fault::Answer {
                action: a,
                status,
                body,
            } if *a == action => {
                self.seen.fetch_add(1, Ordering::SeqCst);
                return ResponseTemplate::new(*status).set_body_raw(*body, "text/xml");
            }
            Fault::Rewrite { from, to } if one_instance => {
                let x = forward_text(&self.moto, req);
                self.seen.fetch_add(1, Ordering::SeqCst);
                return ResponseTemplate::new(200).set_body_raw(x.replace(from, to), "text/xml");
            }
            Fault::ProviderFailed if one_instance => {
                self.seen.fetch_add(1, Ordering::SeqCst);
                let id = url_param(&req.body, "InstanceId.1").unwrap();
                return ResponseTemplate::new(200).set_body_raw(
                    format!(
                        "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
                         <reservationSet><item><instancesSet><item><instanceId>{id}</instanceId>\
                         <instanceType>t3.micro</instanceType><instanceState><code>48</code>\
                         <name>terminated</name></instanceState><stateReason>\
                         <code>Server.InsufficientInstanceCapacity</code><message>We currently do \
                         not have sufficient t3.micro capacity</message></stateReason></item>\
                         </instancesSet></item></reservationSet></DescribeInstancesResponse>"
                    ),
                    "text/xml",
                );
            }
            _ => {}
        }
        forward(&self.moto, req)
    }
}

/// Forward and return the answer's body as text (for rewriting).
fn forward_text(moto: &str, req: &Request) -> String {
    let addr = moto.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        req.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
        req.body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&req.body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

async fn front(moto: &str, fault: Fault) -> (MockServer, Arc<AtomicU32>) {
    let (server, seen, _) = front_logged(moto, fault).await;
    (server, seen)
}

type Log = Arc<Mutex<Vec<serde_json::Value>>>;

async fn front_logged(moto: &str, fault: Fault) -> (MockServer, Arc<AtomicU32>, Log) {
    let server = MockServer::start().await;
    let seen = Arc::new(AtomicU32::new(0));
    let log = Log::default();
    Mock::given(wiremock::matchers::any())
        .respond_with(Front {
            moto: moto.to_string(),
            fault,
            seen: seen.clone(),
            log: log.clone(),
        })
        .mount(&server)
        .await;
    (server, seen, log)
}

/// How many of the probe's instances moto still has running.
async fn running_for_run(moto: &str, r: &ProbeResult) -> usize {
    let mut n = 0;
    for x in r
        .resources
        .iter()
        .filter(|x| x.kind == ResourceKind::Server)
    {
        let s = moto_xml(moto, "DescribeInstances", &[("InstanceId.1", &x.id)]).await;
        if !s.contains("<name>terminated</name>") {
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn throttled_calls_back_off_and_succeed() {
    let Some(m) = moto("ec2::throttled_calls_back_off_and_succeed") else {
        return;
    };
    let (f, seen) = front(
        &m,
        Fault::Throttle {
            action: "RunInstances",
            times: 2,
        },
    )
    .await;
    let k = Keys::new();
    let r = run::<VmLifecycle>(&k.argv(&f.uri(), &["--image", AMI, "-t", "60"])).await;
    assert_eq!(r.status, Status::Ok, "{:#?}", r.steps);
    assert_eq!(seen.load(Ordering::SeqCst), 3, "two throttled, one passed");
    all_cleaned(&r);
}

#[tokio::test]
async fn throttled_for_good_is_critical_at_create() {
    let Some(m) = moto("ec2::throttled_for_good_is_critical_at_create") else {
        return;
    };
    let (f, _) = front(
        &m,
        Fault::Throttle {
            action: "RunInstances",
            times: 1000,
        },
    )
    .await;
    let k = Keys::new();
    let r = run::<VmLifecycle>(&k.argv(&f.uri(), &["--image", AMI, "-t", "60"])).await;
    assert_eq!(r.status, Status::Critical, "{:#?}", r.steps);
    let s = step(&r, "VM-06");
    assert!(s.message.contains("throttled"), "{}", s.message);
    assert!(s.message.contains("RequestLimitExceeded"), "{}", s.message);
    assert_eq!(running_for_run(&m, &r).await, 0);
}

#[tokio::test]
async fn vm_stuck_pending_times_out_and_is_terminated() {
    let Some(m) = moto("ec2::vm_stuck_pending_times_out") else {
        return;
    };
    let (f, _) = front(
        &m,
        Fault::Rewrite {
            from: "<name>running</name>",
            to: "<name>pending</name>",
        },
    )
    .await;
    let k = Keys::new();
    let argv = k.argv(&f.uri(), &["--image", AMI, "-t", "30", "--vm-timeout", "3"]);
    let r = run::<VmLifecycle>(&argv).await;
    assert_eq!(r.status, Status::Critical, "{:#?}", r.steps);
    let s = step(&r, "VM-07");
    assert!(s.message.contains("pending"), "{}", s.message);
    all_cleaned(&r);
    assert_eq!(running_for_run(&m, &r).await, 0);
}

#[tokio::test]
async fn vm_failed_by_the_provider_names_its_reason() {
    let Some(m) = moto("ec2::vm_failed_by_the_provider") else {
        return;
    };
    let (f, _) = front(&m, Fault::ProviderFailed).await;
    let k = Keys::new();
    let r = run::<VmLifecycle>(&k.argv(&f.uri(), &["--image", AMI, "-t", "30"])).await;
    assert_eq!(r.status, Status::Critical, "{:#?}", r.steps);
    let s = step(&r, "VM-07");
    assert!(
        s.message.contains("Server.InsufficientInstanceCapacity"),
        "{}",
        s.message
    );
    all_cleaned(&r);
    assert_eq!(running_for_run(&m, &r).await, 0);
}

#[tokio::test]
async fn delete_never_completing_is_critical_at_delete() {
    let Some(m) = moto("ec2::delete_never_completing") else {
        return;
    };
    let (f, _) = front(
        &m,
        Fault::Rewrite {
            from: "<name>terminated</name>",
            to: "<name>shutting-down</name>",
        },
    )
    .await;
    let k = Keys::new();
    let r = run::<VmLifecycle>(&k.argv(&f.uri(), &["--image", AMI, "-t", "12"])).await;
    assert_eq!(r.status, Status::Critical, "{:#?}", r.steps);
    let s = step(&r, "VM-08");
    assert_ne!(s.status, Status::Ok, "{}", s.message);
    // Terminate was asked: moto (the truth behind the front) has it terminated.
    assert_eq!(running_for_run(&m, &r).await, 0);
}

#[tokio::test]
async fn expired_federated_token_is_unknown_at_the_exchange() {
    let Some(m) = moto("ec2::expired_federated_token_is_unknown") else {
        return;
    };
    let (f, _) = front(
        &m,
        Fault::Answer {
            action: "AssumeRoleWithWebIdentity",
            status: 400,
            body: "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
                   <Type>Sender</Type><Code>ExpiredTokenException</Code><Message>Token expired: \
                   current date/time 1764500000 must be before the expiration date/time \
                   1764400000</Message></Error><RequestId>r1</RequestId></ErrorResponse>",
        },
    )
    .await;
    let k = Keys::new();
    let uri = f.uri();
    let argv: Vec<String> = [
        "--cloud",
        "ec2",
        "--endpoint",
        &uri,
        "--access-token",
        &k.path("oidc"),
        "--ec2-role-arn",
        "arn:aws:iam::123456789012:role/fedprobe",
        "--image",
        AMI,
        "-t",
        "20",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let r = run::<VmLifecycle>(&argv).await;
    assert_eq!(r.status, Status::Unknown, "{:#?}", r.steps);
    let s = step(&r, "AUTH-02");
    assert!(s.message.contains("ExpiredTokenException"), "{}", s.message);
    assert!(r.resources.is_empty());
}

#[tokio::test]
async fn garbage_answer_is_critical_at_the_stage() {
    let Some(m) = moto("ec2::garbage_answer_is_critical") else {
        return;
    };
    let (f, _) = front(
        &m,
        Fault::Answer {
            action: "DescribeImages",
            status: 200,
            body: "<html><body><h1>It works!</h1></body></html>",
        },
    )
    .await;
    let k = Keys::new();
    let r = run::<VmLifecycle>(&k.argv(&f.uri(), &["--image", AMI, "-t", "20"])).await;
    assert_eq!(r.status, Status::Critical, "{:#?}", r.steps);
    let s = step(&r, "VM-02");
    assert!(s.message.contains("not the expected XML"), "{}", s.message);
    assert!(r.resources.is_empty());
}

#[tokio::test]
async fn check_usage_accounts_the_lifecycle_server() {
    let Some(m) = moto("ec2::check_usage_accounts_the_lifecycle_server") else {
        return;
    };
    let k = Keys::new();
    let r = run::<VmLifecycle>(&k.argv(&m, &["--image", AMI, "-t", "60"])).await;
    assert_eq!(r.status, Status::Ok, "{:#?}", r.steps);
    let id = r.resources[0].id.clone();
    let u = run::<probes::checks::usage::Usage>(&k.argv(&m, &["--server-id", &id])).await;
    assert_eq!(u.status, Status::Ok, "{:#?}", u.steps);
    let s = step(&u, "USAGE-02");
    assert!(
        s.message.contains("vcpus 2 memory 1024 MB"),
        "{}",
        s.message
    );
    step(&u, "USAGE-03");
    let u =
        run::<probes::checks::usage::Usage>(&k.argv(&m, &["--server-id", "i-0000000000000dead"]))
            .await;
    assert_eq!(u.status, Status::Critical, "{:#?}", u.steps);
    assert!(step(&u, "USAGE-02").message.contains("missing"));
}

/// check_usage --own-volume through the same seam on EC2/EBS: its volume is
/// listed by DescribeVolumes with its size, then deleted.
#[tokio::test]
async fn check_usage_own_volume_on_moto() {
    let Some(m) = moto("ec2::check_usage_own_volume_on_moto") else {
        return;
    };
    let k = Keys::new();
    let u =
        run::<probes::checks::usage::Usage>(&k.argv(&m, &["--own-volume", "--volume-size", "3"]))
            .await;
    assert_eq!(u.status, Status::Ok, "{:#?}", u.steps);
    let s = step(&u, "USAGE-03");
    assert!(s.message.contains("; own volume vol-"), "{}", s.message);
    assert!(
        s.message.contains(" listed with 3 GiB, deleted in "),
        "{}",
        s.message
    );
    assert_eq!(u.resources.len(), 1, "{:?}", u.resources);
    assert_eq!(u.resources[0].cleanup, probes::model::Cleanup::Deleted);
}

/// Every request the probes send (VM lifecycle with static keys and with
/// STS, image upload through EBS direct, usage, volumes) conforms to AWS's
/// own definitions: botocore's service models, checked by
/// ci/peers/ec2_model_check.py with the botocore moto.sh installed.
#[tokio::test]
async fn requests_conform_to_botocore_service_models() {
    let Some(m) = moto("ec2::requests_conform_to_botocore_service_models") else {
        return;
    };
    let env = std::fs::read_to_string(
        std::env::var("FEDPROBE_MOTO_ENV")
            .unwrap_or_else(|_| "/tmp/fedprobe-peers/moto.env".into()),
    )
    .unwrap();
    let venv = env
        .lines()
        .find_map(|l| l.strip_prefix("MOTO_VENV="))
        .expect("MOTO_VENV in moto.env")
        .trim()
        .to_string();
    let (f, _, log) = front_logged(&m, Fault::Pass).await;
    let uri = f.uri();
    let k = Keys::new();
    let r = run::<VmLifecycle>(&k.argv(&uri, &["--image", AMI, "-t", "60"])).await;
    assert_eq!(r.status, Status::Ok, "{:#?}", r.steps);
    let id = r.resources[0].id.clone();
    let u = run::<probes::checks::usage::Usage>(&k.argv(&uri, &["--server-id", &id])).await;
    assert_eq!(u.status, Status::Ok, "{:#?}", u.steps);
    let i = run::<ImageUpload>(&k.argv(&uri, &["--size", "600000", "-t", "60"])).await;
    assert_eq!(step(&i, "IMG-05").status, Status::Ok, "{:#?}", i.steps);
    let fed: Vec<String> = [
        "--cloud",
        "ec2",
        "--endpoint",
        &uri,
        "--access-token",
        &k.path("oidc"),
        "--ec2-role-arn",
        "arn:aws:iam::123456789012:role/fedprobe",
        "--image",
        AMI,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(run::<VmLifecycle>(&fed).await.status, Status::Ok);
    let args = ec2_args(&k, &uri);
    let v = execute(opts(60), pending(), move |ctx| async move {
        let b = ec2::login(&ctx, &args).await?;
        let vid = b
            .create_volume(&VolumeSpec {
                name: "fedprobe-model".into(),
                size_gb: 1,
                volume_type: None,
                metadata: BTreeMap::from([("fedprobe-run".to_string(), "model".to_string())]),
            })
            .await?;
        let img = b.find_image(&ImageQuery::IdOrName(AMI.into())).await?;
        let sid = b
            .create_server(&ServerSpec {
                name: "fedprobe-model".into(),
                image_id: img.id,
                flavor_id: b.pick_flavor(None, 0).await?.id,
                network: NetworkChoice::Auto,
                metadata: BTreeMap::from([("fedprobe-run".to_string(), "model".to_string())]),
            })
            .await?;
        ctx.track(ResourceKind::Server, &sid, None, &b, |c, id| async move {
            delete_server_and_wait(&c, &id).await.map(drop)
        });
        until("server running", || async {
            Ok(b.server(&sid).await?.map(|s| s.phase) == Some(ServerPhase::Active))
        })
        .await?;
        until("volume available", || async {
            Ok(b.volume(&vid).await?.map(|v| v.phase) == Some(VolumePhase::Available))
        })
        .await?;
        b.volumes_tagged("fedprobe-run").await?;
        b.attach_volume(&sid, &vid).await?;
        until("volume in use", || async {
            Ok(b.volume(&vid).await?.map(|v| v.phase) == Some(VolumePhase::InUse))
        })
        .await?;
        b.detach_volume(&sid, &vid).await?;
        until("volume detached", || async {
            Ok(b.volume(&vid).await?.map(|v| v.phase) == Some(VolumePhase::Available))
        })
        .await?;
        b.delete_volume(&vid).await?;
        Ok("volume made, attached, detached and deleted".to_string())
    })
    .await;
    assert_eq!(v.status, Status::Ok, "{:#?}", v.steps);
    let lines: Vec<String> = log.lock().unwrap().iter().map(|v| v.to_string()).collect();
    // The image's snapshot and AMI carry the probe's run tag (leftovers are found by it).
    let start = lines
        .iter()
        .find(|l| l.contains(r#""path":"/snapshots""#))
        .expect("StartSnapshot sent");
    assert!(start.contains("fedprobe-run"), "{start}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Action=CreateTags") && l.contains("fedprobe-run")),
        "AMI not tagged with the run"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), lines.join("\n")).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/peers/ec2_model_check.py");
    let out = std::process::Command::new(format!("{venv}/bin/python"))
        .arg(script)
        .arg(file.path())
        .output()
        .expect("run ec2_model_check.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(out.status.success(), "{text}");
    // The check itself catches drift: a misspelt member and a wrong Version.
    let bad = serde_json::json!({"service": "ec2", "method": "POST", "path": "/", "query": "",
        "headers": {}, "body": "Action=RunInstances&Version=2016-11-15&ImageID=ami-1&MinCount=1&MaxCount=x"});
    std::fs::write(file.path(), bad.to_string()).unwrap();
    let out2 = std::process::Command::new(format!("{venv}/bin/python"))
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/peers/ec2_model_check.py"),
        )
        .arg(file.path())
        .output()
        .unwrap();
    let t2 = String::from_utf8_lossy(&out2.stdout);
    assert!(!out2.status.success(), "{t2}");
    assert!(t2.contains("DRIFT RunInstances ImageID"), "{t2}");
    assert!(t2.contains("MaxCount: 'x' is not an integer"), "{t2}");
    for op in [
        "ec2:RunInstances",
        "ec2:AttachVolume",
        "ec2:DetachVolume",
        "sts:AssumeRoleWithWebIdentity",
        "ebs:PutSnapshotBlock",
        "ebs:CompleteSnapshot",
        "ec2:RegisterImage",
    ] {
        assert!(text.contains(op), "{op} not checked: {text}");
    }
}

#[tokio::test]
async fn check_token_auth_checks_the_sts_federated_login() {
    let Some(m) = moto("ec2::check_token_auth_checks_the_sts_federated_login") else {
        return;
    };
    let k = Keys::new();
    let base = [
        "--cloud",
        "ec2",
        "--endpoint",
        &m,
        "--access-token",
        &k.path("oidc"),
    ];
    let with_role: Vec<String> = base
        .iter()
        .chain(&["--ec2-role-arn", "arn:aws:iam::123456789012:role/fedprobe"])
        .map(|s| s.to_string())
        .collect();
    let r = run::<probes::checks::token_auth::TokenAuth>(&with_role).await;
    assert_eq!(r.status, Status::Ok, "{:#?}", r.steps);
    assert!(step(&r, "AUTH-02")
        .message
        .contains("AssumeRoleWithWebIdentity"));
    assert!(step(&r, "AUTH-04")
        .message
        .contains("role credentials accepted"));
    let no_role: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    let r = run::<probes::checks::token_auth::TokenAuth>(&no_role).await;
    assert_eq!(r.status, Status::Unknown, "{}", r.summary);
}
