//! The Amazon EC2/EBS backend: instances, EBS volumes, AMIs through the EC2
//! Query API; image data through the EBS direct API (a snapshot written
//! block by block, then registered as an AMI: EC2's ImportImage needs S3
//! and a service role, and is not what a monitor should lean on).
//! Probe metadata becomes EC2 tags, so leftovers are found by tag.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use base64::Engine;
use reqwest::{Method, Url};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::{
    Backend, Compute, Flavor, ImagePhase, ImageQuery, ImageRef, ImageState, ImageStore, Import,
    NetworkChoice, NewImage, ServerPhase, ServerSpec, ServerState, Sink, Transfer, Usage,
    UsageRecord, VolumePhase, VolumeSpec, VolumeState, Volumes,
};
use crate::auth::{self, AuthArgs};
use crate::clients::ec2::{self as api, Signed, EC2_VERSION};
use crate::clients::service::join;
use crate::clients::sigv4::Keys;
use crate::clock::parse_utc;
use crate::deadline::{Deadline, WithDeadline};
use crate::fail::Fail;
use crate::http::{show_url, BodyStream};
use crate::model::Perf;
use crate::poll::{wait_for, Poll, Wait, Waited};
use crate::{Ctx, Done};

/// EBS direct blocks are 512 KiB.
pub const BLOCK: usize = 512 * 1024;
const GIB: u64 = 1 << 30;
/// Tag naming the probe's image on its snapshot and AMI.
pub const IMAGE_TAG: &str = "fedprobe-image";
/// Tag holding the image's length in bytes (EBS stores whole blocks).
pub const BYTES_TAG: &str = "fedprobe-bytes";
const DEVICE: &str = "/dev/sdf";
const DEFAULT_TYPE: &str = "t3.micro";
const DEFAULT_REGION: &str = "us-east-1";

/// Probe image name -> (snapshot id, AMI id), as far as made.
type ImageParts = HashMap<String, (Option<String>, Option<String>)>;

#[derive(Clone)]
pub struct Ec2 {
    ec2: Signed,
    ebs: Url,
    zone: String,
    instance_type: String,
    login: String,
    /// Instances this run asked to terminate: a terminated one is gone,
    /// not failed.
    terminated: Arc<Mutex<HashSet<String>>>,
    /// Probe image name -> its snapshot and AMI, once made.
    images: Arc<Mutex<ImageParts>>,
    /// Probe image name -> the properties its snapshot and AMI are tagged with.
    image_tags: Arc<Mutex<HashMap<String, BTreeMap<String, String>>>>,
}

/// The login prologue: keys (static, or from STS with the OIDC token),
/// then the availability zone to use.
pub async fn login(ctx: &Ctx, args: &AuthArgs) -> Result<Ec2, Fail> {
    let t0 = Instant::now();
    let a = &args.ec2;
    let endpoint = args.endpoint.clone().ok_or_else(|| {
        ctx.fail_at(
            auth::READ_TOKEN,
            Fail::unknown("--cloud ec2 needs --endpoint (the EC2 API URL)"),
        )
    })?;
    let region = args.region.clone().unwrap_or_else(|| DEFAULT_REGION.into());
    let (keys, http, login) =
        match (&a.role_arn, &a.access_key_file, &a.secret_key_file) {
            (Some(role), _, _) => {
                let (token, how, http) = auth::federation_token(ctx, args).await?;
                let sts = a.sts_endpoint.clone().unwrap_or_else(|| endpoint.clone());
                let session = a.session_name.clone().unwrap_or_else(|| "fedprobe".into());
                let assumed = ctx
                    .step(auth::EXCHANGE, async {
                        let r = api::assume_role_with_web_identity(
                            &http, &sts, role, &session, &token, 3600,
                        )
                        .await?;
                        let msg =
                            format!(
                        "{how} exchanged at STS {} (AssumeRoleWithWebIdentity): {} until {}",
                        show_url(&sts),
                        if r.arn.is_empty() { role } else { &r.arn },
                        if r.expiration.is_empty() { "?" } else { &r.expiration }
                    );
                        Ok(Done::ok(r, msg))
                    })
                    .await?;
                let login = format!("{how} via STS role {role}");
                (assumed.keys, http, login)
            }
            (None, Some(ak), Some(sk)) => {
                let keys = ctx
                    .step(auth::READ_TOKEN, async {
                        let access = auth::config::read_secret_file(ak, "access key file")?;
                        let secret = auth::config::read_secret_file(sk, "secret key file")?;
                        if access.is_empty() || secret.is_empty() {
                            return Err(Fail::unknown("empty AWS access key or secret key file"));
                        }
                        let keys = Keys {
                            access_key: access.expose().to_string(),
                            secret,
                            session_token: None,
                        };
                        Ok(Done::ok(
                            keys,
                            format!("static access keys from {}", ak.display()),
                        ))
                    })
                    .await?;
                (keys, ctx.http().clone(), "static access keys".to_string())
            }
            _ => {
                return Err(ctx.fail_at(
                    auth::READ_TOKEN,
                    Fail::unknown(
                        "--cloud ec2 needs --ec2-role-arn (with an OIDC token source) or \
                     --ec2-access-key-file with --ec2-secret-key-file",
                    ),
                ))
            }
        };
    ctx.perf(Perf::seconds("auth", t0.elapsed()));
    let mut b = Ec2 {
        ec2: Signed {
            http,
            endpoint: endpoint.clone(),
            region,
            keys,
        },
        ebs: a.ebs_endpoint.clone().unwrap_or(endpoint),
        zone: a.availability_zone.clone().unwrap_or_default(),
        instance_type: a
            .instance_type
            .clone()
            .unwrap_or_else(|| DEFAULT_TYPE.into()),
        login,
        terminated: Arc::default(),
        images: Arc::default(),
        image_tags: Arc::default(),
    };
    if b.zone.is_empty() {
        b.zone = b.first_zone().await?;
    }
    Ok(b)
}

// --- the EC2 answers this backend reads (element names as EC2 writes them)

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
struct Items<T> {
    item: Vec<T>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default, rename_all = "camelCase")]
struct Tag {
    key: String,
    value: String,
}

fn tags(t: &Items<Tag>) -> BTreeMap<String, String> {
    t.item
        .iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect()
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct Reservations {
    reservation_set: Items<Reservation>,
    next_token: Option<String>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct Reservation {
    instances_set: Items<Instance>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct Instance {
    instance_id: String,
    instance_type: String,
    instance_state: InstanceStateXml,
    state_reason: Option<StateReason>,
    launch_time: Option<String>,
    tag_set: Items<Tag>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
struct InstanceStateXml {
    name: String,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
struct StateReason {
    code: String,
    message: String,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct RunResponse {
    instances_set: Items<Instance>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct Zones {
    availability_zone_info: Items<Zone>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct Zone {
    zone_name: String,
    zone_state: String,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct Images {
    images_set: Items<Ami>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct Ami {
    image_id: String,
    image_state: String,
    name: String,
    creation_date: String,
    state_reason: Option<StateReason>,
    tag_set: Items<Tag>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct InstanceTypes {
    instance_type_set: Items<InstanceTypeXml>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct InstanceTypeXml {
    instance_type: String,
    v_cpu_info: VcpuInfo,
    memory_info: MemoryInfo,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct VcpuInfo {
    default_v_cpus: u64,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct MemoryInfo {
    size_in_mi_b: u64,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct VolumesXml {
    volume_set: Items<VolumeXml>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct VolumeXml {
    volume_id: String,
    size: Option<u64>,
    status: String,
    create_time: Option<String>,
    attachment_set: Items<Attachment>,
    tag_set: Items<Tag>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct Attachment {
    instance_id: String,
    device: String,
    status: String,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct Created {
    volume_id: String,
    image_id: String,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct Snapshots {
    snapshot_set: Items<SnapshotXml>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct SnapshotXml {
    snapshot_id: String,
    status: String,
    tag_set: Items<Tag>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
struct Ignored {}

// --- EBS direct answers (JSON)

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct Started {
    snapshot_id: String,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "PascalCase")]
struct BlockList {
    blocks: Vec<BlockEntry>,
    next_token: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "PascalCase")]
struct BlockEntry {
    block_index: u64,
    block_token: String,
}

/// Query parameters in EC2's numbered-list style.
struct Params(Vec<(String, String)>);

impl Params {
    fn new() -> Params {
        Params(Vec::new())
    }
    fn set(mut self, k: impl Into<String>, v: impl Into<String>) -> Params {
        self.0.push((k.into(), v.into()));
        self
    }
    fn filter(self, n: usize, name: &str, value: &str) -> Params {
        self.set(format!("Filter.{n}.Name"), name)
            .set(format!("Filter.{n}.Value.1"), value)
    }
    fn tags(mut self, prefix: &str, tags: &BTreeMap<String, String>) -> Params {
        for (i, (k, v)) in tags.iter().enumerate() {
            self = self
                .set(format!("{prefix}.{}.Key", i + 1), k)
                .set(format!("{prefix}.{}.Value", i + 1), v);
        }
        self
    }
}

fn unix(t: &Option<String>) -> Option<f64> {
    t.as_deref().and_then(parse_utc)
}

/// How many pages of a listing are read at most.
const MAX_PAGES: usize = 50;

impl Ec2 {
    async fn call<T: serde::de::DeserializeOwned + Default>(
        &self,
        action: &str,
        p: Params,
    ) -> Result<T, Fail> {
        self.ec2.query("ec2", EC2_VERSION, action, &p.0).await
    }

    /// A call whose `*.NotFound` error means "gone": `None`.
    async fn call_opt<T: serde::de::DeserializeOwned + Default>(
        &self,
        action: &str,
        p: Params,
    ) -> Result<Option<T>, Fail> {
        let reply = self.ec2.query_raw("ec2", EC2_VERSION, action, &p.0).await?;
        if reply.is_success() {
            return api::parse_xml(&reply, action).map(Some);
        }
        match api::parse_error(&reply.body) {
            Some(e) if e.code.ends_with(".NotFound") => Ok(None),
            _ => Err(api::error_fail(&reply, action)),
        }
    }

    async fn first_zone(&self) -> Result<String, Fail> {
        let z: Zones = self
            .call("DescribeAvailabilityZones", Params::new())
            .await?;
        z.availability_zone_info
            .item
            .into_iter()
            .find(|z| z.zone_state == "available")
            .map(|z| z.zone_name)
            .ok_or_else(|| Fail::critical("DescribeAvailabilityZones: no zone available"))
    }

    async fn instances(&self, p: Params) -> Result<Vec<Instance>, Fail> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut q = Params(p.0.clone());
            if let Some(t) = &token {
                q = q.set("NextToken", t);
            }
            let r: Reservations = self.call("DescribeInstances", q).await?;
            out.extend(
                r.reservation_set
                    .item
                    .into_iter()
                    .flat_map(|r| r.instances_set.item),
            );
            token = r.next_token.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
        Ok(out)
    }

    fn state(&self, i: Instance) -> Option<ServerState> {
        let reason = i
            .state_reason
            .as_ref()
            .map(|r| format!("{}: {}", r.code, r.message));
        let asked = self
            .terminated
            .lock()
            .map(|s| s.contains(&i.instance_id))
            .unwrap_or(false);
        let phase = match i.instance_state.name.as_str() {
            "pending" => ServerPhase::Building,
            "running" => ServerPhase::Active,
            "shutting-down" => ServerPhase::Deleting,
            // Terminated without our asking, for the provider's reason
            // (Server.InternalError, Server.InsufficientInstanceCapacity...).
            "terminated"
                if !asked
                    && i.state_reason
                        .as_ref()
                        .is_some_and(|r| r.code.starts_with("Server.")) =>
            {
                ServerPhase::Error { reason }
            }
            "terminated" => return None,
            _ => ServerPhase::Other,
        };
        let metadata = tags(&i.tag_set);
        Some(ServerState {
            name: metadata.get("Name").cloned().unwrap_or_default(),
            status_text: i.instance_state.name.clone(),
            created: unix(&i.launch_time),
            launched_at: unix(&i.launch_time),
            id: i.instance_id,
            phase,
            metadata,
        })
    }

    async fn instance_type(&self, name: &str) -> Result<Option<Flavor>, Fail> {
        let r: Option<InstanceTypes> = self
            .call_opt(
                "DescribeInstanceTypes",
                Params::new().set("InstanceType.1", name),
            )
            .await?;
        Ok(r.and_then(|t| t.instance_type_set.item.into_iter().next())
            .map(|t| Flavor {
                id: t.instance_type.clone(),
                name: t.instance_type,
                vcpus: t.v_cpu_info.default_v_cpus,
                ram_mb: t.memory_info.size_in_mi_b,
                // The root disk is an EBS volume of the image's size.
                disk_gb: 0,
            }))
    }

    async fn volumes(&self, p: Params) -> Result<Option<Vec<VolumeXml>>, Fail> {
        let r: Option<VolumesXml> = self.call_opt("DescribeVolumes", p).await?;
        Ok(r.map(|v| v.volume_set.item))
    }

    fn ebs_url(&self, segments: &[&str]) -> Result<Url, Fail> {
        join(&self.ebs, segments)
    }

    async fn ebs_send(
        &self,
        what: &str,
        method: Method,
        url: Url,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        unsigned_body: bool,
    ) -> Result<crate::http::Reply, Fail> {
        let reply = api::send_retrying(&self.ec2.http, what, || {
            self.ec2
                .request(
                    "ebs",
                    method.clone(),
                    url.clone(),
                    headers,
                    &body,
                    unsigned_body,
                )
                .body(body.clone())
        })
        .await?;
        if !reply.is_success() {
            return Err(api::error_fail(&reply, what));
        }
        Ok(reply)
    }

    /// The snapshot and AMI of a probe image: from this run's memory, else
    /// found by tag (a reaper's view).
    async fn parts(&self, name: &str) -> Result<(Option<SnapshotXml>, Option<Ami>), Fail> {
        let snaps: Snapshots = self
            .call(
                "DescribeSnapshots",
                Params::new()
                    .set("Owner.1", "self")
                    .filter(1, &format!("tag:{IMAGE_TAG}"), name),
            )
            .await?;
        let amis: Images = self
            .call(
                "DescribeImages",
                Params::new()
                    .set("Owner.1", "self")
                    .filter(1, &format!("tag:{IMAGE_TAG}"), name),
            )
            .await?;
        Ok((
            snaps.snapshot_set.item.into_iter().next(),
            amis.images_set.item.into_iter().next(),
        ))
    }

    async fn tag(&self, id: &str, t: &BTreeMap<String, String>) -> Result<(), Fail> {
        let _: Ignored = self
            .call(
                "CreateTags",
                Params::new().set("ResourceId.1", id).tags("Tag", t),
            )
            .await?;
        Ok(())
    }

    /// The probe's properties for image `name` (run id, creation time).
    fn tags_of(&self, name: &str) -> BTreeMap<String, String> {
        self.image_tags
            .lock()
            .ok()
            .and_then(|m| m.get(name).cloned())
            .unwrap_or_default()
    }

    /// Write `body` into a new EBS snapshot, block by block.
    async fn write_snapshot(&self, name: &str, mut body: BodyStream) -> Result<String, Fail> {
        let len = body.len();
        let size_gib = len.div_ceil(GIB).max(1);
        let mut tags: Vec<serde_json::Value> = self
            .tags_of(name)
            .into_iter()
            .map(|(k, v)| serde_json::json!({"Key": k, "Value": v}))
            .collect();
        tags.push(serde_json::json!({"Key": IMAGE_TAG, "Value": name}));
        tags.push(serde_json::json!({"Key": BYTES_TAG, "Value": len.to_string()}));
        let start = serde_json::json!({
            "VolumeSize": size_gib,
            "ClientToken": name,
            "Timeout": 60,
            "Description": format!("fedprobe image {name}"),
            "Tags": tags,
        })
        .to_string()
        .into_bytes();
        let reply = self
            .ebs_send(
                "EBS StartSnapshot",
                Method::POST,
                self.ebs_url(&["snapshots"])?,
                &[("content-type", "application/json")],
                start,
                false,
            )
            .await?;
        let snap = reply.json::<Started>()?.snapshot_id;
        if let Ok(mut m) = self.images.lock() {
            m.entry(name.to_string()).or_default().0 = Some(snap.clone());
        }
        let mut blocks = 0u64;
        let mut sent = 0u64;
        // A chunk may straddle two blocks: its rest starts the next one.
        let mut carry: Vec<u8> = Vec::new();
        while sent < len {
            let mut block = std::mem::take(&mut carry);
            while block.len() < BLOCK && sent + (block.len() as u64) < len {
                match next_chunk(&mut body).await {
                    Some(c) => block.extend_from_slice(&c),
                    None => break,
                }
            }
            if block.is_empty() {
                return Err(Fail::critical(format!(
                    "image data ended after {sent} of {len} bytes"
                )));
            }
            if block.len() > BLOCK {
                carry = block.split_off(BLOCK);
            }
            sent += block.len() as u64;
            block.resize(BLOCK, 0);
            let sum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&block));
            let len_s = BLOCK.to_string();
            let progress = ((sent * 100) / len.max(1)).to_string();
            self.ebs_send(
                "EBS PutSnapshotBlock",
                Method::PUT,
                self.ebs_url(&["snapshots", &snap, "blocks", &blocks.to_string()])?,
                &[
                    ("content-type", "application/octet-stream"),
                    ("x-amz-checksum", &sum),
                    ("x-amz-checksum-algorithm", "SHA256"),
                    ("x-amz-data-length", &len_s),
                    ("x-amz-progress", &progress),
                ],
                block,
                true,
            )
            .await?;
            blocks += 1;
        }
        self.ebs_send(
            "EBS CompleteSnapshot",
            Method::POST,
            self.ebs_url(&["snapshots", "completion", &snap])?,
            &[("x-amz-changedblockscount", &blocks.to_string())],
            Vec::new(),
            false,
        )
        .await?;
        Ok(snap)
    }

    /// Wait for the snapshot to complete, then register it as an AMI.
    async fn register(&self, name: &str, snap: &str) -> Result<String, Fail> {
        let waited = wait_for(Wait::until_deadline(), || async move {
            let s: Snapshots = self
                .call("DescribeSnapshots", Params::new().set("SnapshotId.1", snap))
                .await?;
            match s.snapshot_set.item.first().map(|s| s.status.as_str()) {
                Some("completed") => Ok(Poll::Ready(())),
                Some("error") => Err(Fail::critical(format!(
                    "EBS snapshot {snap} of the image went to status error"
                ))),
                Some(other) => Ok(Poll::Pending(format!("snapshot {other}"))),
                None => Err(Fail::critical(format!("EBS snapshot {snap} disappeared"))),
            }
        })
        .await?;
        if let Waited::TimedOut { last, .. } = waited {
            return Err(Fail::timeout(format!(
                "EBS snapshot {snap} not completed: {last}"
            )));
        }
        let p = Params::new()
            .set("Name", name)
            .set("Architecture", "x86_64")
            .set("VirtualizationType", "hvm")
            .set("RootDeviceName", "/dev/xvda")
            .set("BlockDeviceMapping.1.DeviceName", "/dev/xvda")
            .set("BlockDeviceMapping.1.Ebs.SnapshotId", snap)
            .set("BlockDeviceMapping.1.Ebs.DeleteOnTermination", "true");
        let c: Created = self.call("RegisterImage", p).await?;
        if c.image_id.is_empty() {
            return Err(Fail::critical("RegisterImage answered no imageId"));
        }
        let mut t = self.tags_of(name);
        t.insert(IMAGE_TAG.to_string(), name.to_string());
        self.tag(&c.image_id, &t).await?;
        if let Ok(mut m) = self.images.lock() {
            m.entry(name.to_string()).or_default().1 = Some(c.image_id.clone());
        }
        Ok(c.image_id)
    }
}

/// The next piece of a streamed body, `None` at its end.
async fn next_chunk(body: &mut BodyStream) -> Option<bytes::Bytes> {
    use http_body::Body;
    let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_frame(cx)).await?;
    frame.ok()?.into_data().ok()
}

impl WithDeadline for Ec2 {
    fn with_deadline(&self, deadline: Deadline) -> Self {
        let mut b = self.clone();
        b.ec2.http = self.ec2.http.with_deadline(deadline);
        b
    }
}

impl Backend for Ec2 {
    fn describe(&self) -> String {
        format!(
            "EC2 {} (API {EC2_VERSION}, region {}, zone {}), EBS direct {}, login: {}",
            show_url(&self.ec2.endpoint),
            self.ec2.region,
            self.zone,
            show_url(&self.ebs),
            self.login
        )
    }
}

impl Compute for Ec2 {
    async fn api_version(&mut self) -> Result<String, Fail> {
        // EC2 has one Query API version per request; check the endpoint speaks it.
        let _: Zones = self
            .call("DescribeAvailabilityZones", Params::new())
            .await?;
        Ok(Backend::describe(self))
    }

    async fn find_image(&self, q: &ImageQuery) -> Result<ImageRef, Fail> {
        let (p, what) = match q {
            ImageQuery::IdOrName(s) if s.starts_with("ami-") => {
                (Params::new().set("ImageId.1", s), format!("id {s}"))
            }
            ImageQuery::IdOrName(s) => (Params::new().filter(1, "name", s), format!("name {s:?}")),
            ImageQuery::Registry(r) => (
                Params::new().filter(1, &format!("tag:{}", super::openstack::IMAGE_REF), r),
                format!("tag {} {r}", super::openstack::IMAGE_REF),
            ),
            ImageQuery::AppDb(a) => (
                Params::new().filter(1, &format!("tag:{}", super::openstack::APPDB_ID), a),
                format!("tag {} {a}", super::openstack::APPDB_ID),
            ),
        };
        let found: Images = self
            .call_opt("DescribeImages", p)
            .await?
            .unwrap_or_default();
        let n = found.images_set.item.len();
        let mut ok: Vec<Ami> = found
            .images_set
            .item
            .into_iter()
            .filter(|i| i.image_state == "available")
            .collect();
        ok.sort_by(|a, b| b.creation_date.cmp(&a.creation_date));
        match ok.into_iter().next() {
            Some(i) => Ok(ImageRef {
                id: i.image_id,
                name: i.name,
            }),
            None if n > 0 => Err(Fail::critical(format!(
                "{n} AMI(s) with {what}, none available"
            ))),
            None => Err(Fail::critical(format!("no AMI with {what}"))),
        }
    }

    async fn pick_flavor(&self, wanted: Option<&str>, _min_disk_gb: u64) -> Result<Flavor, Fail> {
        let name = wanted.unwrap_or(&self.instance_type);
        self.instance_type(name)
            .await?
            .ok_or_else(|| Fail::critical(format!("instance type {name:?} not offered")))
    }

    async fn pick_network(&self) -> Result<NetworkChoice, Fail> {
        // The default VPC's subnet in the zone: EC2 picks it.
        Ok(NetworkChoice::Auto)
    }

    async fn create_server(&self, spec: &ServerSpec) -> Result<String, Fail> {
        let mut t = spec.metadata.clone();
        t.insert("Name".into(), spec.name.clone());
        let mut p = Params::new()
            .set("ImageId", &spec.image_id)
            .set("InstanceType", &spec.flavor_id)
            .set("MinCount", "1")
            .set("MaxCount", "1")
            .set("ClientToken", &spec.name)
            .set("Placement.AvailabilityZone", &self.zone)
            .set("TagSpecification.1.ResourceType", "instance")
            .tags("TagSpecification.1.Tag", &t);
        if let NetworkChoice::Network { id, .. } = &spec.network {
            p = p.set("SubnetId", id);
        }
        let r: RunResponse = self.call("RunInstances", p).await?;
        r.instances_set
            .item
            .into_iter()
            .next()
            .map(|i| i.instance_id)
            .filter(|i| !i.is_empty())
            .ok_or_else(|| Fail::critical("RunInstances answered no instance id"))
    }

    async fn server(&self, id: &str) -> Result<Option<ServerState>, Fail> {
        let r: Option<Reservations> = self
            .call_opt("DescribeInstances", Params::new().set("InstanceId.1", id))
            .await?;
        let Some(r) = r else { return Ok(None) };
        let found = r
            .reservation_set
            .item
            .into_iter()
            .flat_map(|r| r.instances_set.item)
            .find(|i| i.instance_id == id);
        Ok(found.and_then(|i| self.state(i)))
    }

    async fn delete_server(&self, id: &str) -> Result<bool, Fail> {
        if let Ok(mut s) = self.terminated.lock() {
            s.insert(id.to_string());
        }
        let r: Option<Ignored> = self
            .call_opt("TerminateInstances", Params::new().set("InstanceId.1", id))
            .await?;
        Ok(r.is_some())
    }

    async fn servers_tagged(&self, key: &str) -> Result<Vec<ServerState>, Fail> {
        let all = self
            .instances(Params::new().filter(1, "tag-key", key))
            .await?;
        Ok(all.into_iter().filter_map(|i| self.state(i)).collect())
    }
}

fn volume_state(v: VolumeXml) -> VolumeState {
    let att = v.attachment_set.item.first();
    let phase = match (v.status.as_str(), att.map(|a| a.status.as_str())) {
        ("creating", _) => VolumePhase::Creating,
        ("available", _) => VolumePhase::Available,
        ("in-use", Some("attaching")) => VolumePhase::Attaching,
        ("in-use", Some("detaching")) => VolumePhase::Detaching,
        ("in-use", Some("detached")) => VolumePhase::Available,
        ("in-use", _) => VolumePhase::InUse,
        ("deleting", _) => VolumePhase::Deleting,
        ("error", _) => VolumePhase::Error { reason: None },
        _ => VolumePhase::Other,
    };
    let status_text = match att {
        Some(a) if !a.status.is_empty() => format!("{} ({})", v.status, a.status),
        _ => v.status.clone(),
    };
    let metadata = tags(&v.tag_set);
    VolumeState {
        name: metadata.get("Name").cloned().unwrap_or_default(),
        phase,
        status_text,
        size_gb: v.size,
        attached_to: v
            .attachment_set
            .item
            .iter()
            .map(|a| a.instance_id.clone())
            .collect(),
        created: unix(&v.create_time),
        id: v.volume_id,
        metadata,
    }
}

impl Volumes for Ec2 {
    async fn create_volume(&self, spec: &VolumeSpec) -> Result<String, Fail> {
        let mut t = spec.metadata.clone();
        t.insert("Name".into(), spec.name.clone());
        let mut p = Params::new()
            .set("Size", spec.size_gb.max(1).to_string())
            .set("AvailabilityZone", &self.zone)
            .set("TagSpecification.1.ResourceType", "volume")
            .tags("TagSpecification.1.Tag", &t);
        if let Some(vt) = &spec.volume_type {
            p = p.set("VolumeType", vt);
        }
        let c: Created = self.call("CreateVolume", p).await?;
        if c.volume_id.is_empty() {
            return Err(Fail::critical("CreateVolume answered no volumeId"));
        }
        Ok(c.volume_id)
    }

    async fn volume(&self, id: &str) -> Result<Option<VolumeState>, Fail> {
        let v = self
            .volumes(Params::new().set("VolumeId.1", id))
            .await?
            .unwrap_or_default();
        Ok(v.into_iter()
            .find(|v| v.volume_id == id && v.status != "deleted")
            .map(volume_state))
    }

    async fn attach_volume(&self, server_id: &str, volume_id: &str) -> Result<(), Fail> {
        let p = Params::new()
            .set("VolumeId", volume_id)
            .set("InstanceId", server_id)
            .set("Device", DEVICE);
        let _: Ignored = self.call("AttachVolume", p).await?;
        Ok(())
    }

    async fn detach_volume(&self, server_id: &str, volume_id: &str) -> Result<(), Fail> {
        // The device as attached (moto needs it, and AWS takes it).
        let device = self
            .volumes(Params::new().set("VolumeId.1", volume_id))
            .await?
            .unwrap_or_default()
            .into_iter()
            .flat_map(|v| v.attachment_set.item)
            .find(|a| a.instance_id == server_id)
            .map(|a| a.device)
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| DEVICE.into());
        let p = Params::new()
            .set("VolumeId", volume_id)
            .set("InstanceId", server_id)
            .set("Device", device);
        let _: Ignored = self.call("DetachVolume", p).await?;
        Ok(())
    }

    async fn delete_volume(&self, id: &str) -> Result<bool, Fail> {
        let r: Option<Ignored> = self
            .call_opt("DeleteVolume", Params::new().set("VolumeId", id))
            .await?;
        Ok(r.is_some())
    }

    async fn volumes_tagged(&self, key: &str) -> Result<Vec<VolumeState>, Fail> {
        let v = self
            .volumes(Params::new().filter(1, "tag-key", key))
            .await?
            .unwrap_or_default();
        Ok(v.into_iter().map(volume_state).collect())
    }
}

impl Usage for Ec2 {
    /// EC2 has no usage API of its own (billing lives in Cost Explorer):
    /// the nearest equivalent is each instance's type (vCPUs, memory) and
    /// its launch time, with hours counted from launch to now or to the
    /// end of the window.
    async fn server_usage(&self, start: f64, end: f64) -> Result<Vec<UsageRecord>, Fail> {
        let all = self.instances(Params::new()).await?;
        let mut types: HashMap<String, Option<Flavor>> = HashMap::new();
        let mut out = Vec::new();
        for i in all {
            if !types.contains_key(&i.instance_type) {
                let f = self.instance_type(&i.instance_type).await?;
                types.insert(i.instance_type.clone(), f);
            }
            let f = types.get(&i.instance_type).cloned().flatten();
            let started = unix(&i.launch_time);
            let gone = matches!(
                i.instance_state.name.as_str(),
                "terminated" | "stopped" | "shutting-down"
            );
            let hours = started.map(|s| {
                let until = end.min(crate::clock::now_unix());
                ((until - s.max(start)).max(0.0)) / 3600.0
            });
            let t = tags(&i.tag_set);
            out.push(UsageRecord {
                name: t.get("Name").cloned().unwrap_or_default(),
                id: i.instance_id,
                vcpus: f.as_ref().map(|f| f.vcpus),
                ram_mb: f.as_ref().map(|f| f.ram_mb),
                size_gb: None,
                started,
                // EC2 does not say when an instance ended, only that it did.
                ended: None,
                hours: if gone { None } else { hours },
            });
        }
        Ok(out)
    }

    async fn volume_usage(&self) -> Result<Vec<UsageRecord>, Fail> {
        let v = self.volumes(Params::new()).await?.unwrap_or_default();
        Ok(v.into_iter()
            .map(|v| {
                let t = tags(&v.tag_set);
                UsageRecord {
                    name: t.get("Name").cloned().unwrap_or_default(),
                    id: v.volume_id,
                    size_gb: v.size,
                    started: unix(&v.create_time),
                    ..UsageRecord::default()
                }
            })
            .collect())
    }
}

fn image_state(name: &str, snap: Option<SnapshotXml>, ami: Option<Ami>) -> Option<ImageState> {
    let (phase, text) = match (&snap, &ami) {
        (_, Some(a)) => (
            match a.image_state.as_str() {
                "available" => ImagePhase::Active,
                "pending" => ImagePhase::Saving,
                "failed" | "error" => ImagePhase::Killed,
                "deregistered" | "disabled" => ImagePhase::Deleted,
                _ => ImagePhase::Other,
            },
            format!(
                "AMI {} {}{}",
                a.image_id,
                a.image_state,
                a.state_reason
                    .as_ref()
                    .map(|r| format!(" ({}: {})", r.code, r.message))
                    .unwrap_or_default()
            ),
        ),
        (Some(s), None) => (
            match s.status.as_str() {
                "error" => ImagePhase::Killed,
                _ => ImagePhase::Saving,
            },
            format!("snapshot {} {}, no AMI yet", s.snapshot_id, s.status),
        ),
        (None, None) => return None,
    };
    // EBS keeps whole 512 KiB blocks and no whole-image checksum: the
    // download comparison is the check of what was stored.
    Some(ImageState {
        id: name.to_string(),
        phase,
        status_text: text,
        ..ImageState::default()
    })
}

impl ImageStore for Ec2 {
    /// EC2 has no image record without data: the probe's image is its name,
    /// the tag its snapshot and AMI will carry.
    async fn create_image(&self, spec: &NewImage) -> Result<ImageState, Fail> {
        if let Ok(mut m) = self.images.lock() {
            m.insert(spec.name.clone(), (None, None));
        }
        if let Ok(mut m) = self.image_tags.lock() {
            m.insert(spec.name.clone(), spec.properties.clone());
        }
        Ok(ImageState {
            id: spec.name.clone(),
            phase: ImagePhase::Queued,
            status_text: "queued (EBS snapshot and AMI are made at upload)".into(),
            ..ImageState::default()
        })
    }

    async fn upload(&self, id: &str, body: BodyStream) -> Result<Transfer, Fail> {
        let snap = match self.write_snapshot(id, body).await {
            Err(f) if matches!(f.http_status(), Some(403)) => {
                return Ok(Transfer::Forbidden(f.message))
            }
            r => r?,
        };
        self.register(id, &snap).await?;
        Ok(Transfer::Done)
    }

    async fn import_support(&self) -> Result<Import, Fail> {
        // ImportImage needs the data in S3 and the vmimport service role;
        // the EBS direct upload is what fedprobe uses on EC2.
        Ok(Import::NotOffered {
            wanted: "ImportImage".into(),
            advertised: vec!["EBS direct snapshot + RegisterImage".into()],
        })
    }

    async fn stage_and_import(&self, id: &str, body: BodyStream) -> Result<Transfer, Fail> {
        self.upload(id, body).await
    }

    async fn image(&self, id: &str) -> Result<Option<ImageState>, Fail> {
        let known = self.images.lock().ok().and_then(|m| m.get(id).cloned());
        if let Some((None, None)) = known {
            return Ok(Some(ImageState {
                id: id.to_string(),
                phase: ImagePhase::Queued,
                status_text: "queued (no data yet)".into(),
                ..ImageState::default()
            }));
        }
        let (snap, ami) = self.parts(id).await?;
        Ok(image_state(id, snap, ami))
    }

    async fn download(&self, id: &str, sink: Sink<'_>) -> Result<u64, Fail> {
        let (snap, _) = self.parts(id).await?;
        let snap =
            snap.ok_or_else(|| Fail::critical(format!("no EBS snapshot tagged {IMAGE_TAG}={id}")))?;
        let len: u64 = tags(&snap.tag_set)
            .get(BYTES_TAG)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                Fail::critical(format!(
                    "snapshot {} lost its {BYTES_TAG} tag",
                    snap.snapshot_id
                ))
            })?;
        let sid = snap.snapshot_id;
        let mut tokens: BTreeMap<u64, String> = BTreeMap::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = self.ebs_url(&["snapshots", &sid, "blocks"])?;
            if let Some(t) = &next {
                url.query_pairs_mut().append_pair("pageToken", t);
            }
            let r = self
                .ebs_send(
                    "EBS ListSnapshotBlocks",
                    Method::GET,
                    url,
                    &[],
                    vec![],
                    false,
                )
                .await?;
            let l: BlockList = r.json()?;
            tokens.extend(l.blocks.into_iter().map(|b| (b.block_index, b.block_token)));
            next = l.next_token.filter(|t| !t.is_empty());
            if next.is_none() {
                break;
            }
        }
        let mut got = 0u64;
        let n_blocks = len.div_ceil(BLOCK as u64);
        for idx in 0..n_blocks {
            let want = (len - got).min(BLOCK as u64) as usize;
            let data = match tokens.get(&idx) {
                // A block never written reads as zeros.
                None => vec![0u8; BLOCK],
                Some(tok) => {
                    let mut url = self.ebs_url(&["snapshots", &sid, "blocks", &idx.to_string()])?;
                    url.query_pairs_mut().append_pair("blockToken", tok);
                    self.ebs_send("EBS GetSnapshotBlock", Method::GET, url, &[], vec![], false)
                        .await?
                        .body
                }
            };
            let piece = &data[..want.min(data.len())];
            got += piece.len() as u64;
            if !sink(piece) || piece.len() < want {
                break;
            }
        }
        Ok(got)
    }

    async fn delete_image(&self, id: &str) -> Result<bool, Fail> {
        let (snap, ami) = self.parts(id).await?;
        let any = snap.is_some() || ami.is_some();
        if let Some(a) = ami {
            let _: Option<Ignored> = self
                .call_opt("DeregisterImage", Params::new().set("ImageId", &a.image_id))
                .await?;
        }
        if let Some(s) = snap {
            let _: Option<Ignored> = self
                .call_opt(
                    "DeleteSnapshot",
                    Params::new().set("SnapshotId", &s.snapshot_id),
                )
                .await?;
        }
        if let Ok(mut m) = self.images.lock() {
            m.remove(id);
        }
        Ok(any)
    }
}
