//! The Google Compute Engine backend: compute v1 instances, disks, images
//! and their zone and global operations; image archives staged in Cloud
//! Storage (GCE makes images from a `rawDisk.source` there, it has no
//! upload of its own). Names are the ids: GCE addresses every resource by
//! name. What the probes tag goes into labels (values folded to what GCE
//! accepts) and, on instances, unchanged into metadata items.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use base64::Engine;
use reqwest::Url;
use serde_json::{json, Value};

use super::{
    Backend, Compute, Flavor, ImagePhase, ImageQuery, ImageRef, ImageState, ImageStore, Import,
    NetworkChoice, NewImage, ServerPhase, ServerSpec, ServerState, Sink, Transfer, Usage,
    UsageRecord, VolumePhase, VolumeSpec, VolumeState, Volumes,
};
use crate::auth::{gce as login, AuthArgs};
use crate::clients::gce::{self as api, label_value, last_segment, Api, Operation};
use crate::clock::{now_unix, parse_utc};
use crate::deadline::{Deadline, WithDeadline};
use crate::fail::Fail;
use crate::http::{show_url, BodyStream};
use crate::model::Perf;
use crate::poll::{wait_for, Poll, Wait, Waited};
use crate::Ctx;

/// Default compute API root.
pub const COMPUTE_URL: &str = "https://compute.googleapis.com/compute/v1/";
/// Pages read from one list, at most.
const MAX_PAGES: usize = 20;

#[derive(Clone)]
pub struct Gce {
    compute: Api,
    storage: Api,
    project: String,
    zone: String,
    network: String,
    bucket: Option<String>,
    method: String,
    /// Labels of images announced by `create_image`, used at insert.
    image_labels: Arc<Mutex<HashMap<String, Value>>>,
}

/// Log in (recording the AUTH steps and `auth` perfdata) and return the backend.
pub async fn connect(ctx: &Ctx, args: &AuthArgs) -> Result<Gce, Fail> {
    let g = &args.gce;
    let missing = |f: &str| Fail::unknown(format!("--cloud gce needs {f}"));
    let project = g.project.clone().ok_or_else(|| missing("--gce-project"))?;
    let zone = g.zone.clone().ok_or_else(|| missing("--gce-zone"))?;
    let compute_url = match &args.endpoint {
        Some(u) => u.clone(),
        None => Url::parse(COMPUTE_URL).map_err(|e| Fail::unknown(e.to_string()))?,
    };
    let storage_url = g
        .storage_url
        .clone()
        .ok_or_else(|| missing("--gce-storage-url"))?;
    // A bearer token never travels in clear off this host (as for Keystone).
    let mut sent_to = vec![&compute_url, &storage_url];
    sent_to.extend(g.sts_url.iter().chain(&g.iam_url).chain(&g.token_url));
    for u in sent_to {
        let (status, msg) = crate::auth::url_verdict(u, args.allow_http);
        if status == crate::model::Status::Critical {
            return Err(Fail::unknown(format!("--cloud gce: {msg}")));
        }
    }
    let t0 = tokio::time::Instant::now();
    let session = login::login(ctx, args).await?;
    ctx.perf(Perf::seconds("auth", t0.elapsed()));
    let http = ctx.http().clone();
    Ok(Gce {
        compute: Api::new(http.clone(), &compute_url, session.token.clone()),
        storage: Api::new(http, &storage_url, session.token),
        project,
        zone,
        network: g.network.clone().unwrap_or_else(|| "default".into()),
        bucket: g.bucket.clone(),
        method: session.method,
        image_labels: Arc::default(),
    })
}

impl Gce {
    /// The same backend speaking with another token (check_token_auth's garbage token).
    pub fn with_token(&self, token: crate::secret::Secret) -> Gce {
        Gce {
            compute: Api::new(
                self.compute.http.clone(),
                self.compute.base(),
                token.clone(),
            ),
            storage: Api::new(self.storage.http.clone(), self.storage.base(), token),
            ..self.clone()
        }
    }

    /// How the login was done, for messages.
    pub fn method(&self) -> &str {
        &self.method
    }

    fn zonal(&self, rest: &[&str]) -> Result<Url, Fail> {
        let mut s = vec!["projects", &self.project, "zones", &self.zone];
        s.extend_from_slice(rest);
        self.compute.url(&s)
    }

    fn global(&self, rest: &[&str]) -> Result<Url, Fail> {
        let mut s = vec!["projects", &self.project, "global"];
        s.extend_from_slice(rest);
        self.compute.url(&s)
    }

    /// Poll `op` until DONE (bounded by the backend's deadline); its error, if
    /// any, is a CRITICAL naming what it was for.
    async fn finish(&self, op: Operation, what: &str) -> Result<(), Fail> {
        if let Some(e) = op.failure() {
            return Err(Fail::critical(format!("{what}: operation failed: {e}")));
        }
        if op.done() {
            return Ok(());
        }
        let url = match op.zone.is_some() {
            true => self.zonal(&["operations", &op.name])?,
            false => self.global(&["operations", &op.name])?,
        };
        let waited = wait_for(Wait::until_deadline(), || {
            let url = url.clone();
            async move {
                let o: Option<Operation> = self.compute.get_opt(url).await?;
                let Some(o) = o else {
                    return Err(Fail::critical(format!("{what}: operation vanished (404)")));
                };
                match o.failure() {
                    Some(e) => Err(Fail::critical(format!("{what}: operation failed: {e}"))),
                    None if o.done() => Ok(Poll::Ready(())),
                    None => Ok(Poll::Pending(format!("operation {}", o.status))),
                }
            }
        })
        .await?;
        match waited {
            Waited::Ready { .. } => Ok(()),
            Waited::TimedOut { polls, last, .. } => Err(Fail::timeout(format!(
                "{what}: operation {} not DONE after {polls} polls ({last})",
                op.name
            ))),
        }
    }

    fn labels(metadata: &BTreeMap<String, String>) -> Value {
        let l: BTreeMap<String, String> = metadata
            .iter()
            .map(|(k, v)| (label_value(k), label_value(v)))
            .collect();
        json!(l)
    }

    fn staged(&self, image: &str) -> Result<(String, String), Fail> {
        let bucket = self.bucket.clone().ok_or_else(|| {
            Fail::unknown(
                "--gce-bucket is needed: GCE makes images from an archive in Cloud Storage",
            )
        })?;
        Ok((bucket, format!("{image}.tar.gz")))
    }

    async fn machine_types(&self) -> Result<Vec<api::MachineType>, Fail> {
        api::list_all(
            &self.compute,
            self.zonal(&["machineTypes"])?,
            None,
            MAX_PAGES,
        )
        .await
    }
}

impl WithDeadline for Gce {
    fn with_deadline(&self, deadline: Deadline) -> Self {
        Gce {
            compute: self
                .compute
                .with_http(self.compute.http.with_deadline(deadline)),
            storage: self
                .storage
                .with_http(self.storage.http.with_deadline(deadline)),
            ..self.clone()
        }
    }
}

impl Backend for Gce {
    fn describe(&self) -> String {
        format!(
            "GCE compute {} (v1), project {}, zone {}; login: {}",
            show_url(self.compute.base()),
            self.project,
            self.zone,
            self.method
        )
    }
}

fn instance_state(i: api::Instance) -> ServerState {
    let phase = match i.status.as_str() {
        "PROVISIONING" | "STAGING" | "PENDING" => ServerPhase::Building,
        "RUNNING" => ServerPhase::Active,
        // A new instance that stops by itself failed; GCE says why in statusMessage.
        "TERMINATED" => ServerPhase::Error {
            reason: i.status_message.clone(),
        },
        "STOPPING" | "DEPROVISIONING" => ServerPhase::Deleting,
        _ => ServerPhase::Other,
    };
    let mut metadata: BTreeMap<String, String> = i.labels.clone();
    // Metadata items carry the tags unfolded: they win over labels.
    for item in i.metadata.iter().flat_map(|m| m.items.iter()) {
        if let Some(v) = &item.value {
            metadata.insert(item.key.clone(), v.clone());
        }
    }
    let status_text = match &i.status_message {
        Some(m) => format!("{} ({})", i.status, crate::text::one_line(m, 160)),
        None => i.status.clone(),
    };
    ServerState {
        id: i.name.clone(),
        name: i.name,
        phase,
        status_text,
        metadata,
        created: i.creation_timestamp.as_deref().and_then(parse_utc),
        launched_at: i.last_start_timestamp.as_deref().and_then(parse_utc),
    }
}

impl Compute for Gce {
    async fn api_version(&mut self) -> Result<String, Fail> {
        #[derive(serde::Deserialize)]
        struct Zone {
            #[serde(default)]
            status: String,
        }
        let z: Zone = self.compute.get(self.zonal(&[])?, &[]).await?;
        if z.status != "UP" {
            return Err(Fail::critical(format!(
                "zone {} is {} (not UP)",
                self.zone, z.status
            )));
        }
        Ok(format!("{}; zone UP", self.describe()))
    }

    async fn find_image(&self, q: &ImageQuery) -> Result<ImageRef, Fail> {
        let ImageQuery::IdOrName(s) = q else {
            return Err(Fail::unknown(
                "--registry-image and --appdb-image name Glance properties; on GCE give --image \
                 (a name in the project, or projects/P/global/images/NAME)",
            ));
        };
        let url = if s.contains('/') {
            let segs: Vec<&str> = s.trim_matches('/').split('/').collect();
            if segs.first() != Some(&"projects") || !s.contains("/global/images/") {
                return Err(Fail::unknown(format!(
                    "--image {s:?}: give a name or projects/P/global/images/NAME"
                )));
            }
            self.compute.url(&segs)?
        } else {
            self.global(&["images", s])?
        };
        let img: Option<api::Image> = self.compute.get_opt(url).await?;
        let img = img.ok_or_else(|| Fail::critical(format!("image {s} not found (404)")))?;
        if img.status != "READY" {
            return Err(Fail::critical(format!(
                "image {s} is {}, not READY",
                img.status
            )));
        }
        let id = if s.contains('/') {
            s.trim_matches('/').to_string()
        } else {
            format!("projects/{}/global/images/{}", self.project, img.name)
        };
        Ok(ImageRef { id, name: img.name })
    }

    async fn pick_flavor(&self, wanted: Option<&str>, min_disk_gb: u64) -> Result<Flavor, Fail> {
        let all = self.machine_types().await?;
        // GCE machine types have no disk: the boot disk is made at min_disk_gb.
        let convert = |m: api::MachineType| Flavor {
            id: m.name.clone(),
            name: m.name,
            vcpus: m.guest_cpus,
            ram_mb: m.memory_mb,
            disk_gb: min_disk_gb,
        };
        if let Some(w) = wanted {
            let names: Vec<String> = all.iter().map(|m| m.name.clone()).collect();
            return all
                .into_iter()
                .find(|m| m.name == w)
                .map(convert)
                .ok_or_else(|| {
                    Fail::critical(format!(
                        "machine type {w:?} not in zone {} (have: {})",
                        self.zone,
                        names.join(", ")
                    ))
                });
        }
        let mut all = all;
        all.sort_by_key(|m| (m.guest_cpus, m.memory_mb));
        all.into_iter()
            .next()
            .map(convert)
            .ok_or_else(|| Fail::critical(format!("no machine types in zone {}", self.zone)))
    }

    async fn pick_network(&self) -> Result<NetworkChoice, Fail> {
        Ok(NetworkChoice::Network {
            id: format!("global/networks/{}", self.network),
            name: self.network.clone(),
        })
    }

    async fn create_server(&self, spec: &ServerSpec) -> Result<String, Fail> {
        let items: Vec<Value> = spec
            .metadata
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        let mut body = json!({
            "name": spec.name,
            "machineType": format!("zones/{}/machineTypes/{}", self.zone, spec.flavor_id),
            "labels": Self::labels(&spec.metadata),
            "metadata": {"items": items},
            "disks": [{
                "boot": true,
                "autoDelete": true,
                // The boot disk takes the image's size.
                "initializeParams": {"sourceImage": spec.image_id},
            }],
        });
        if let NetworkChoice::Network { id, .. } = &spec.network {
            body["networkInterfaces"] = json!([{ "network": id }]);
        }
        let op = self
            .compute
            .post(self.zonal(&["instances"])?, &[], Some(&body))
            .await?;
        // Accepted; a failure of the insert shows when it is DONE.
        self.finish(op, &format!("insert of instance {}", spec.name))
            .await?;
        Ok(spec.name.clone())
    }

    async fn server(&self, id: &str) -> Result<Option<ServerState>, Fail> {
        let i: Option<api::Instance> = self
            .compute
            .get_opt(self.zonal(&["instances", id])?)
            .await?;
        Ok(i.map(instance_state))
    }

    async fn delete_server(&self, id: &str) -> Result<bool, Fail> {
        // Gone is what the caller polls for; the operation is not waited on.
        Ok(self
            .compute
            .delete(self.zonal(&["instances", id])?)
            .await?
            .is_some())
    }

    async fn servers_tagged(&self, key: &str) -> Result<Vec<ServerState>, Fail> {
        let filter = format!("labels.{}:*", label_value(key));
        let all: Vec<api::Instance> = api::list_all(
            &self.compute,
            self.zonal(&["instances"])?,
            Some(&filter),
            MAX_PAGES,
        )
        .await?;
        Ok(all
            .into_iter()
            .map(instance_state)
            .filter(|s| s.metadata.contains_key(key))
            .collect())
    }
}

fn disk_state(d: api::Disk) -> VolumeState {
    let phase = match (d.status.as_str(), d.users.is_empty()) {
        ("CREATING", _) | ("RESTORING", _) => VolumePhase::Creating,
        ("READY", true) => VolumePhase::Available,
        ("READY", false) => VolumePhase::InUse,
        ("DELETING", _) => VolumePhase::Deleting,
        ("FAILED", _) => VolumePhase::Error { reason: None },
        _ => VolumePhase::Other,
    };
    VolumeState {
        id: d.name.clone(),
        name: d.name,
        phase,
        status_text: d.status,
        size_gb: d.size_gb.as_deref().and_then(|s| s.parse().ok()),
        attached_to: d
            .users
            .iter()
            .map(|u| last_segment(u).to_string())
            .collect(),
        metadata: d.labels,
        created: d.creation_timestamp.as_deref().and_then(parse_utc),
    }
}

impl Volumes for Gce {
    async fn create_volume(&self, spec: &VolumeSpec) -> Result<String, Fail> {
        let body = json!({
            "name": spec.name,
            "sizeGb": spec.size_gb.to_string(),
            "labels": Self::labels(&spec.metadata),
        });
        let op = self
            .compute
            .post(self.zonal(&["disks"])?, &[], Some(&body))
            .await?;
        if let Some(e) = op.failure() {
            return Err(Fail::critical(format!("insert of disk {}: {e}", spec.name)));
        }
        Ok(spec.name.clone())
    }

    async fn volume(&self, id: &str) -> Result<Option<VolumeState>, Fail> {
        let d: Option<api::Disk> = self.compute.get_opt(self.zonal(&["disks", id])?).await?;
        Ok(d.map(disk_state))
    }

    async fn attach_volume(&self, server_id: &str, volume_id: &str) -> Result<(), Fail> {
        let source = format!(
            "projects/{}/zones/{}/disks/{volume_id}",
            self.project, self.zone
        );
        let body = json!({"source": source, "deviceName": volume_id});
        let op = self
            .compute
            .post(
                self.zonal(&["instances", server_id, "attachDisk"])?,
                &[],
                Some(&body),
            )
            .await?;
        self.finish(op, &format!("attach of disk {volume_id} to {server_id}"))
            .await
    }

    async fn detach_volume(&self, server_id: &str, volume_id: &str) -> Result<(), Fail> {
        let op = self
            .compute
            .post(
                self.zonal(&["instances", server_id, "detachDisk"])?,
                &[("deviceName", volume_id)],
                None,
            )
            .await?;
        self.finish(op, &format!("detach of disk {volume_id} from {server_id}"))
            .await
    }

    async fn delete_volume(&self, id: &str) -> Result<bool, Fail> {
        Ok(self
            .compute
            .delete(self.zonal(&["disks", id])?)
            .await?
            .is_some())
    }

    async fn volumes_tagged(&self, key: &str) -> Result<Vec<VolumeState>, Fail> {
        let filter = format!("labels.{}:*", label_value(key));
        let all: Vec<api::Disk> = api::list_all(
            &self.compute,
            self.zonal(&["disks"])?,
            Some(&filter),
            MAX_PAGES,
        )
        .await?;
        Ok(all.into_iter().map(disk_state).collect())
    }
}

impl Usage for Gce {
    /// Compute v1 has no usage API: the nearest is the project's instances
    /// with their machine types' sizes and times (billing export is outside
    /// the API). Hours are counted from creation, or the last start, to now.
    async fn server_usage(&self, start: f64, end: f64) -> Result<Vec<UsageRecord>, Fail> {
        let types = self.machine_types().await?;
        let all: Vec<api::Instance> =
            api::list_all(&self.compute, self.zonal(&["instances"])?, None, MAX_PAGES).await?;
        let now = now_unix();
        Ok(all
            .into_iter()
            .map(|i| {
                let mt = i
                    .machine_type
                    .as_deref()
                    .map(last_segment)
                    .and_then(|n| types.iter().find(|t| t.name == n));
                let started = i
                    .last_start_timestamp
                    .as_deref()
                    .or(i.creation_timestamp.as_deref())
                    .and_then(parse_utc);
                let hours = started.map(|s| ((end.min(now) - s.max(start)).max(0.0)) / 3600.0);
                UsageRecord {
                    id: i.name.clone(),
                    name: i.name,
                    vcpus: mt.map(|t| t.guest_cpus),
                    ram_mb: mt.map(|t| t.memory_mb),
                    size_gb: None,
                    started,
                    ended: None,
                    hours,
                }
            })
            .collect())
    }

    async fn volume_usage(&self) -> Result<Vec<UsageRecord>, Fail> {
        let all: Vec<api::Disk> =
            api::list_all(&self.compute, self.zonal(&["disks"])?, None, MAX_PAGES).await?;
        Ok(all
            .into_iter()
            .map(|d| UsageRecord {
                id: d.name.clone(),
                size_gb: d.size_gb.as_deref().and_then(|s| s.parse().ok()),
                started: d.creation_timestamp.as_deref().and_then(parse_utc),
                name: d.name,
                ..Default::default()
            })
            .collect())
    }
}

fn image_state(i: api::Image) -> ImageState {
    let phase = match i.status.as_str() {
        "PENDING" => ImagePhase::Saving,
        "READY" => ImagePhase::Active,
        "FAILED" => ImagePhase::Killed,
        "DELETING" => ImagePhase::Deleted,
        _ => ImagePhase::Other,
    };
    ImageState {
        id: i.name,
        phase,
        status_text: i.status,
        size: i.archive_size_bytes.as_deref().and_then(|s| s.parse().ok()),
        ..Default::default()
    }
}

impl ImageStore for Gce {
    /// GCE has no image record without data: nothing is asked yet; the
    /// name is the id the image gets when the archive is imported.
    async fn create_image(&self, spec: &NewImage) -> Result<ImageState, Fail> {
        self.staged(&spec.name)?;
        if let Ok(mut m) = self.image_labels.lock() {
            m.insert(spec.name.clone(), Self::labels(&spec.properties));
        }
        Ok(ImageState {
            id: spec.name.clone(),
            phase: ImagePhase::Queued,
            status_text: "to be inserted from its Cloud Storage archive".into(),
            ..Default::default()
        })
    }

    async fn upload(&self, id: &str, body: BodyStream) -> Result<Transfer, Fail> {
        let (bucket, object) = self.staged(id)?;
        let reply = self.storage.upload_object(&bucket, &object, body).await?;
        if reply.status.as_u16() == 403 {
            return Ok(Transfer::Forbidden(api::google_error(&reply).message));
        }
        api::ok(reply)?;
        let labels = self
            .image_labels
            .lock()
            .ok()
            .and_then(|m| m.get(id).cloned())
            .unwrap_or_else(|| json!({}));
        let body = json!({
            "name": id,
            "labels": labels,
            "rawDisk": {"source": format!("https://storage.googleapis.com/{bucket}/{object}")},
        });
        let reply = self
            .compute
            .post(self.global(&["images"])?, &[], Some(&body))
            .await;
        match reply {
            Ok(op) => match op.failure() {
                Some(e) => Err(Fail::critical(format!("insert of image {id}: {e}"))),
                None => Ok(Transfer::Done),
            },
            Err(f) if f.http_status() == Some(403) => Ok(Transfer::Forbidden(f.message)),
            Err(f) => Err(f),
        }
    }

    async fn import_support(&self) -> Result<Import, Fail> {
        Ok(Import::Offered {
            method: "rawDisk.source from Cloud Storage".into(),
        })
    }

    /// GCE's only way in is stage-then-import: the same as [`Gce::upload`].
    async fn stage_and_import(&self, id: &str, body: BodyStream) -> Result<Transfer, Fail> {
        self.upload(id, body).await
    }

    async fn image(&self, id: &str) -> Result<Option<ImageState>, Fail> {
        let i: Option<api::Image> = self.compute.get_opt(self.global(&["images", id])?).await?;
        let Some(mut st) = i.map(image_state) else {
            return Ok(None);
        };
        if st.phase == ImagePhase::Active {
            // The archive's MD5 as Cloud Storage stored it: GCE keeps none.
            let (bucket, object) = self.staged(id)?;
            if let Some(o) = self.storage.object(&bucket, &object).await? {
                st.checksum = o
                    .md5_hash
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .map(|d| d.iter().map(|b| format!("{b:02x}")).collect());
            }
        }
        Ok(Some(st))
    }

    /// GCE images cannot be downloaded: the staged archive is read back.
    async fn download(&self, id: &str, sink: Sink<'_>) -> Result<u64, Fail> {
        let (bucket, object) = self.staged(id)?;
        self.storage.download_object(&bucket, &object, sink).await
    }

    async fn delete_image(&self, id: &str) -> Result<bool, Fail> {
        let (bucket, object) = self.staged(id)?;
        self.storage.delete_object(&bucket, &object).await?;
        Ok(self
            .compute
            .delete(self.global(&["images", id])?)
            .await?
            .is_some())
    }
}
