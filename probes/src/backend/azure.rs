//! The Azure backend: ARM Microsoft.Compute virtual machines, managed disks
//! (volumes, and the upload disk behind an image) and images, logged in at
//! Entra ID. A server's, volume's and image's id is its resource name in the
//! probe's resource group; the probe's metadata are the resource's tags.

use std::collections::BTreeMap;

use reqwest::{Method, Url};
use serde_json::{json, Value};

use super::{
    Backend, Compute, Flavor, ImagePhase, ImageQuery, ImageRef, ImageState, ImageStore, Import,
    NetworkChoice, NewImage, ServerPhase, ServerSpec, ServerState, Sink, Transfer, Usage,
    UsageRecord, VolumePhase, VolumeSpec, VolumeState, Volumes,
};
use crate::auth::azure::{self as login, url_ok};
use crate::auth::AuthArgs;
use crate::backend::openstack::{APPDB_ID, IMAGE_REF};
use crate::clients::azure::{Arm, COMPUTE_API, DISK_API};
use crate::clock::parse_utc;
use crate::deadline::{Deadline, WithDeadline};
use crate::fail::Fail;
use crate::http::{show_url, BodyStream};
use crate::model::Perf;
use crate::text;
use crate::Ctx;

/// Pages of a list read at most.
const MAX_PAGES: usize = 50;
/// Put Page takes at most 4 MiB, in 512-byte pages.
const PAGE: u64 = 512;
const MAX_PUT: usize = 4 << 20;
/// How long a disk SAS is asked for.
const SAS_SECONDS: u64 = 3600;

#[derive(Clone)]
pub struct Azure {
    arm: Arm,
    location: String,
    subnet: Option<String>,
    method: String,
    sizes: usize,
}

/// The login prologue: Entra ID token, then the backend on ARM.
pub async fn login(ctx: &Ctx, args: &AuthArgs) -> Result<Azure, Fail> {
    let t0 = tokio::time::Instant::now();
    let s = login::settings(args).map_err(|f| ctx.fail_at(crate::auth::READ_TOKEN, f))?;
    let l = login::login(ctx, args, &s).await?;
    ctx.perf(Perf::seconds("auth", t0.elapsed()));
    Ok(Azure {
        arm: Arm::new(l.http, &s.arm, l.token, &s.subscription, &s.resource_group),
        location: s.location,
        subnet: args.azure.subnet.clone(),
        method: l.method,
        sizes: 0,
    })
}

impl Azure {
    /// How the login was done, for messages.
    pub fn login_method(&self) -> &str {
        &self.method
    }

    /// An ARM read with the login's token (the VM sizes of the location):
    /// the number of sizes listed.
    pub async fn token_works(&self) -> Result<usize, Fail> {
        Ok(self
            .arm
            .list(self.arm.sizes_url(&self.location)?, 1)
            .await?
            .len())
    }

    /// The same read with `bogus` as the bearer token: ARM's answer.
    pub async fn with_token(&self, bogus: &str) -> Result<crate::http::Reply, Fail> {
        let url = self.arm.sizes_url(&self.location)?;
        let http = &self.arm.http;
        http.send(
            http.get(url)
                .bearer_auth(bogus)
                .header("Accept", "application/json"),
        )
        .await
    }
}

impl WithDeadline for Azure {
    fn with_deadline(&self, deadline: Deadline) -> Self {
        let mut a = self.clone();
        a.arm.http = a.arm.http.with_deadline(deadline);
        a
    }
}

impl Backend for Azure {
    fn describe(&self) -> String {
        format!(
            "ARM {} (Microsoft.Compute api-version {COMPUTE_API}, disks {DISK_API}), subscription {}, \
             resource group {}, location {}, login {}",
            show_url(self.arm.base()),
            self.arm.subscription,
            self.arm.resource_group,
            self.location,
            self.method
        )
    }
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn u(v: &Value, path: &[&str]) -> Option<u64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_u64()
}

fn tags(v: &Value) -> BTreeMap<String, String> {
    v.get("tags")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The resource's name, from `name` or the last segment of `id`.
fn name_of(v: &Value) -> String {
    s(v, &["name"])
        .or_else(|| s(v, &["id"]).and_then(|i| i.rsplit('/').next()))
        .unwrap_or("")
        .to_string()
}

/// A VM in the neutral words. ARM: provisioningState (Creating, Updating,
/// Succeeded, Failed, Deleting), and with `$expand=instanceView` the
/// PowerState and, for a failure, the status carrying ARM's reason.
pub fn server_state(v: &Value) -> ServerState {
    let ps = s(v, &["properties", "provisioningState"]).unwrap_or("");
    let statuses: Vec<&Value> = v
        .pointer("/properties/instanceView/statuses")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let power = statuses
        .iter()
        .filter_map(|st| s(st, &["code"]))
        .find(|c| c.starts_with("PowerState/"));
    let phase = match ps {
        "Creating" | "Updating" | "Migrating" => ServerPhase::Building,
        "Succeeded" => match power {
            None | Some("PowerState/running") => ServerPhase::Active,
            Some("PowerState/starting") => ServerPhase::Building,
            Some(_) => ServerPhase::Other,
        },
        "Failed" => ServerPhase::Error {
            reason: statuses
                .iter()
                .find(|st| s(st, &["level"]) == Some("Error"))
                .map(|st| {
                    format!(
                        "{}: {}",
                        s(st, &["code"]).unwrap_or("error"),
                        text::one_line(s(st, &["message"]).unwrap_or("no message"), 300)
                    )
                }),
        },
        "Deleting" => ServerPhase::Deleting,
        _ => ServerPhase::Other,
    };
    ServerState {
        id: name_of(v),
        name: name_of(v),
        phase,
        status_text: match power {
            Some(p) => format!("{ps} ({p})"),
            None => ps.to_string(),
        },
        metadata: tags(v),
        created: s(v, &["properties", "timeCreated"]).and_then(parse_utc),
        launched_at: None,
    }
}

/// A managed disk in the neutral words: provisioningState, then diskState.
pub fn volume_state(v: &Value) -> VolumeState {
    let ps = s(v, &["properties", "provisioningState"]).unwrap_or("");
    let ds = s(v, &["properties", "diskState"]).unwrap_or("");
    let phase = match (ps, ds) {
        ("Failed", _) => VolumePhase::Error {
            reason: Some(format!("provisioningState Failed (diskState {ds})")),
        },
        ("Deleting", _) => VolumePhase::Deleting,
        ("Creating" | "Updating", _) => VolumePhase::Creating,
        (_, "Unattached") => VolumePhase::Available,
        (_, "Attached") => VolumePhase::InUse,
        _ => VolumePhase::Other,
    };
    VolumeState {
        id: name_of(v),
        name: name_of(v),
        phase,
        status_text: format!("{ps}/{ds}"),
        size_gb: u(v, &["properties", "diskSizeGB"]),
        attached_to: s(v, &["managedBy"])
            .and_then(|m| m.rsplit('/').next())
            .map(|m| vec![m.to_string()])
            .unwrap_or_default(),
        metadata: tags(v),
        created: s(v, &["properties", "timeCreated"]).and_then(parse_utc),
    }
}

fn image_phase(ps: &str) -> ImagePhase {
    match ps {
        "Succeeded" => ImagePhase::Active,
        "Creating" | "Updating" => ImagePhase::Saving,
        "Failed" => ImagePhase::Killed,
        "Deleting" => ImagePhase::Deleted,
        _ => ImagePhase::Other,
    }
}

/// The upload disk behind image `name`.
fn disk_of(image: &str) -> String {
    format!("{image}-disk")
}

impl Azure {
    async fn vm(&self, name: &str) -> Result<Option<Value>, Fail> {
        let mut url = self
            .arm
            .url("virtualMachines", Some(name), None, COMPUTE_API)?;
        url.query_pairs_mut().append_pair("$expand", "instanceView");
        self.arm.get_opt(url).await
    }

    async fn disk(&self, name: &str) -> Result<Option<Value>, Fail> {
        self.arm
            .get_opt(self.arm.url("disks", Some(name), None, DISK_API)?)
            .await
    }

    /// A SAS URL for the disk's data (Write for an upload, Read for a download).
    async fn grant(&self, disk: &str, access: &str) -> Result<Url, Fail> {
        let url = self
            .arm
            .url("disks", Some(disk), Some("beginGetAccess"), DISK_API)?;
        let body = json!({"access": access, "durationInSeconds": SAS_SECONDS});
        let started = self.arm.write(Method::POST, url, &body).await?;
        let done = match self.arm.wait_lro(&started).await? {
            Some(v) => v,
            None => started.json().unwrap_or(Value::Null),
        };
        let sas = s(&done, &["accessSAS"]).ok_or_else(|| {
            Fail::critical(format!("disk {disk}: beginGetAccess gave no accessSAS"))
        })?;
        let sas = Url::parse(sas)
            .map_err(|_| Fail::critical(format!("disk {disk}: accessSAS is not a URL")))?;
        url_ok(&sas)?;
        Ok(sas)
    }

    async fn revoke(&self, disk: &str) -> Result<(), Fail> {
        let url = self
            .arm
            .url("disks", Some(disk), Some("endGetAccess"), DISK_API)?;
        let started = self.arm.write(Method::POST, url, &json!({})).await?;
        self.arm.wait_lro(&started).await.map(drop)
    }

    /// Put Page requests of at most 4 MiB, fed from the stream as it comes.
    async fn put_pages(&self, sas: &Url, mut body: BodyStream) -> Result<Transfer, Fail> {
        let mut buf: Vec<u8> = Vec::with_capacity(MAX_PUT);
        let mut offset = 0u64;
        loop {
            let chunk = next_chunk(&mut body).await?;
            let end = chunk.is_none();
            if let Some(c) = chunk {
                buf.extend_from_slice(&c);
            }
            while buf.len() >= MAX_PUT || (end && !buf.is_empty()) {
                let n = buf.len().min(MAX_PUT);
                let piece: Vec<u8> = buf.drain(..n).collect();
                if let Transfer::Forbidden(why) = self.put_page(sas, offset, piece).await? {
                    return Ok(Transfer::Forbidden(why));
                }
                offset += n as u64;
            }
            if end {
                return Ok(Transfer::Done);
            }
        }
    }

    async fn put_page(&self, sas: &Url, offset: u64, data: Vec<u8>) -> Result<Transfer, Fail> {
        let mut url = sas.clone();
        url.query_pairs_mut().append_pair("comp", "page");
        let last = offset + data.len() as u64 - 1;
        let http = &self.arm.http;
        let reply = http
            .send(
                http.request(Method::PUT, url)
                    .header("x-ms-page-write", "update")
                    .header("x-ms-range", format!("bytes={offset}-{last}"))
                    .header("x-ms-version", "2021-08-06")
                    .body(data),
            )
            .await?;
        if reply.status == reqwest::StatusCode::FORBIDDEN {
            return Ok(Transfer::Forbidden(reply.describe_body()));
        }
        reply.success()?;
        Ok(Transfer::Done)
    }
}

/// The next piece of a streamed body, `None` at its end.
async fn next_chunk(body: &mut BodyStream) -> Result<Option<bytes::Bytes>, Fail> {
    use http_body::Body;
    let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_frame(cx)).await;
    match frame {
        None => Ok(None),
        Some(Ok(f)) => Ok(f.into_data().ok()),
        Some(Err(e)) => Err(Fail::unknown(format!("image data: {e}"))),
    }
}

impl Compute for Azure {
    async fn api_version(&mut self) -> Result<String, Fail> {
        // The api-version is the client's choice in ARM: check the endpoint serves it.
        let sizes = self
            .arm
            .list(self.arm.sizes_url(&self.location)?, 1)
            .await?;
        self.sizes = sizes.len();
        Ok(format!(
            "Microsoft.Compute api-version {COMPUTE_API} served ({} VM sizes in {}); {}",
            self.sizes,
            self.location,
            self.describe()
        ))
    }

    async fn find_image(&self, q: &ImageQuery) -> Result<ImageRef, Fail> {
        let pick = |v: &Value| ImageRef {
            id: s(v, &["id"]).unwrap_or("").to_string(),
            name: name_of(v),
        };
        if let ImageQuery::IdOrName(n) = q {
            // A full resource id names the image by its last segment, in our group.
            let name = n.rsplit('/').next().unwrap_or(n);
            let url = self.arm.url("images", Some(name), None, COMPUTE_API)?;
            if let Some(v) = self.arm.get_opt::<Value>(url).await? {
                return Ok(pick(&v));
            }
        }
        let all = self
            .arm
            .list(self.arm.url("images", None, None, COMPUTE_API)?, MAX_PAGES)
            .await?;
        let (key, want) = match q {
            ImageQuery::IdOrName(n) => ("", n.as_str()),
            ImageQuery::Registry(r) => (IMAGE_REF, r.as_str()),
            ImageQuery::AppDb(a) => (APPDB_ID, a.as_str()),
        };
        all.iter()
            .find(|v| !key.is_empty() && tags(v).get(key).map(String::as_str) == Some(want))
            .map(pick)
            .ok_or_else(|| {
                Fail::critical(format!(
                    "no image {}{want} among the {} images of resource group {}",
                    if key.is_empty() {
                        String::new()
                    } else {
                        format!("tagged {key}=")
                    },
                    all.len(),
                    self.arm.resource_group
                ))
            })
    }

    async fn pick_flavor(&self, wanted: Option<&str>, min_disk_gb: u64) -> Result<Flavor, Fail> {
        let sizes = self
            .arm
            .list(self.arm.sizes_url(&self.location)?, 1)
            .await?;
        let flavor = |v: &Value| Flavor {
            id: name_of(v),
            name: name_of(v),
            vcpus: u(v, &["numberOfCores"]).unwrap_or(0),
            ram_mb: u(v, &["memoryInMB"]).unwrap_or(0),
            disk_gb: u(v, &["osDiskSizeInMB"]).unwrap_or(0) / 1024,
        };
        let all: Vec<Flavor> = sizes.iter().map(flavor).collect();
        if let Some(w) = wanted {
            return all.into_iter().find(|f| f.name == w).ok_or_else(|| {
                Fail::critical(format!("VM size {w} is not offered in {}", self.location))
            });
        }
        all.into_iter()
            .filter(|f| f.disk_gb >= min_disk_gb && f.vcpus > 0)
            .min_by_key(|f| (f.vcpus, f.ram_mb))
            .ok_or_else(|| {
                Fail::critical(format!(
                    "no VM size in {} takes a {min_disk_gb} GB OS disk",
                    self.location
                ))
            })
    }

    async fn pick_network(&self) -> Result<NetworkChoice, Fail> {
        Ok(match &self.subnet {
            Some(id) => NetworkChoice::Network {
                id: id.clone(),
                name: id.rsplit('/').next().unwrap_or(id).to_string(),
            },
            None => NetworkChoice::None,
        })
    }

    async fn create_server(&self, spec: &ServerSpec) -> Result<String, Fail> {
        let mut props = json!({
            "hardwareProfile": {"vmSize": spec.flavor_id},
            "storageProfile": {
                "imageReference": {"id": spec.image_id},
                "osDisk": {"createOption": "FromImage", "deleteOption": "Delete"}
            },
            "osProfile": {
                "computerName": spec.name,
                "adminUsername": "fedprobe",
                // Never used: no SSH key is given and nobody logs in; Azure requires one.
                "adminPassword": admin_password(&spec.name),
            }
        });
        if let NetworkChoice::Network { id, .. } = &spec.network {
            props["networkProfile"] = json!({
                "networkApiVersion": "2020-11-01",
                "networkInterfaceConfigurations": [{
                    "name": format!("{}-nic", spec.name),
                    "properties": {"primary": true, "deleteOption": "Delete",
                        "ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": id}}}]}
                }]
            });
        }
        let body = json!({"location": self.location, "tags": spec.metadata, "properties": props});
        let url = self
            .arm
            .url("virtualMachines", Some(&spec.name), None, COMPUTE_API)?;
        let reply = self.arm.write(Method::PUT, url, &body).await?;
        let v: Value = reply.json()?;
        let name = name_of(&v);
        if name != spec.name {
            return Err(Fail::critical(format!(
                "ARM answered the create of {} with VM {:?}",
                spec.name,
                text::one_line(&name, 80)
            )));
        }
        Ok(name)
    }

    async fn server(&self, id: &str) -> Result<Option<ServerState>, Fail> {
        Ok(self.vm(id).await?.map(|v| server_state(&v)))
    }

    async fn delete_server(&self, id: &str) -> Result<bool, Fail> {
        let url = self
            .arm
            .url("virtualMachines", Some(id), None, COMPUTE_API)?;
        Ok(self.arm.delete(url).await?.0)
    }

    async fn servers_tagged(&self, key: &str) -> Result<Vec<ServerState>, Fail> {
        let all = self
            .arm
            .list(
                self.arm.url("virtualMachines", None, None, COMPUTE_API)?,
                MAX_PAGES,
            )
            .await?;
        Ok(all
            .iter()
            .map(server_state)
            .filter(|s| s.metadata.contains_key(key))
            .collect())
    }
}

/// A throwaway admin password meeting Azure's rules (upper, lower, digit,
/// special; 12+ characters), different for each VM; never printed.
fn admin_password(name: &str) -> String {
    use sha2::Digest;
    let nanos = crate::clock::now_nanos();
    let h = sha2::Sha256::digest(format!("{name}{nanos}{}", std::process::id()).as_bytes());
    let hex: String = h.iter().take(12).map(|b| format!("{b:02x}")).collect();
    let p = format!("Fp-{hex}x9");
    crate::secret::Secret::new(p.clone());
    p
}

impl Volumes for Azure {
    async fn create_volume(&self, spec: &VolumeSpec) -> Result<String, Fail> {
        let body = json!({
            "location": self.location,
            "tags": spec.metadata,
            "sku": {"name": "Standard_LRS"},
            "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": spec.size_gb}
        });
        let url = self.arm.url("disks", Some(&spec.name), None, DISK_API)?;
        self.arm.write(Method::PUT, url, &body).await?;
        Ok(spec.name.clone())
    }

    async fn volume(&self, id: &str) -> Result<Option<VolumeState>, Fail> {
        Ok(self.disk(id).await?.map(|v| volume_state(&v)))
    }

    async fn attach_volume(&self, server_id: &str, volume_id: &str) -> Result<(), Fail> {
        let url = self.arm.url(
            "virtualMachines",
            Some(server_id),
            Some("attachDetachDataDisks"),
            COMPUTE_API,
        )?;
        let body =
            json!({"dataDisksToAttach": [{"diskId": self.arm.resource_id("disks", volume_id)}]});
        self.arm.write(Method::POST, url, &body).await.map(drop)
    }

    async fn detach_volume(&self, server_id: &str, volume_id: &str) -> Result<(), Fail> {
        let url = self.arm.url(
            "virtualMachines",
            Some(server_id),
            Some("attachDetachDataDisks"),
            COMPUTE_API,
        )?;
        let body =
            json!({"dataDisksToDetach": [{"diskId": self.arm.resource_id("disks", volume_id)}]});
        self.arm.write(Method::POST, url, &body).await.map(drop)
    }

    async fn delete_volume(&self, id: &str) -> Result<bool, Fail> {
        let url = self.arm.url("disks", Some(id), None, DISK_API)?;
        Ok(self.arm.delete(url).await?.0)
    }

    async fn volumes_tagged(&self, key: &str) -> Result<Vec<VolumeState>, Fail> {
        let all = self
            .arm
            .list(self.arm.url("disks", None, None, DISK_API)?, MAX_PAGES)
            .await?;
        Ok(all
            .iter()
            .map(volume_state)
            .filter(|v| v.metadata.contains_key(key))
            .collect())
    }
}

/// Microsoft.Compute has no per-VM accounting API (that is Cost Management's):
/// the nearest is the resource group's VMs with their size (cores, memory)
/// and creation time, and its disks with their sizes.
impl Usage for Azure {
    async fn server_usage(&self, start: f64, end: f64) -> Result<Vec<UsageRecord>, Fail> {
        let sizes = self
            .arm
            .list(self.arm.sizes_url(&self.location)?, 1)
            .await?;
        let vms = self
            .arm
            .list(
                self.arm.url("virtualMachines", None, None, COMPUTE_API)?,
                MAX_PAGES,
            )
            .await?;
        Ok(vms
            .iter()
            .map(|v| {
                let size = s(v, &["properties", "hardwareProfile", "vmSize"]).unwrap_or("");
                let spec = sizes.iter().find(|z| name_of(z) == size);
                let started = s(v, &["properties", "timeCreated"]).and_then(parse_utc);
                UsageRecord {
                    id: name_of(v),
                    name: name_of(v),
                    vcpus: spec.and_then(|z| u(z, &["numberOfCores"])),
                    ram_mb: spec.and_then(|z| u(z, &["memoryInMB"])),
                    size_gb: None,
                    started,
                    ended: None,
                    hours: started.map(|t| ((end - t.max(start)).max(0.0)) / 3600.0),
                }
            })
            .filter(|r| r.started.is_none_or(|t| t <= end))
            .collect())
    }

    async fn volume_usage(&self) -> Result<Vec<UsageRecord>, Fail> {
        let disks = self
            .arm
            .list(self.arm.url("disks", None, None, DISK_API)?, MAX_PAGES)
            .await?;
        Ok(disks
            .iter()
            .map(|v| UsageRecord {
                id: name_of(v),
                name: name_of(v),
                size_gb: u(v, &["properties", "diskSizeGB"]),
                started: s(v, &["properties", "timeCreated"]).and_then(parse_utc),
                ..Default::default()
            })
            .collect())
    }
}

/// An image is uploaded the way Azure takes one: a managed disk created for
/// upload, its data written through a write SAS (Put Page), the SAS revoked,
/// an image made from the disk. The record exists only once the data is in,
/// so [`ImageStore::create_image`] only names it.
impl ImageStore for Azure {
    async fn create_image(&self, spec: &NewImage) -> Result<ImageState, Fail> {
        Ok(ImageState {
            id: spec.name.clone(),
            phase: ImagePhase::Queued,
            status_text: "named (Azure makes the image from its disk after the upload)".into(),
            ..Default::default()
        })
    }

    async fn upload(&self, id: &str, body: BodyStream) -> Result<Transfer, Fail> {
        let n = body.len();
        if n == 0 || n % PAGE != 0 {
            return Err(Fail::unknown(format!(
                "--size {n}: an Azure disk upload is whole 512-byte pages; give a multiple of 512"
            )));
        }
        let disk = disk_of(id);
        let tags = json!({"fedprobe-image": id});
        let body_json = json!({
            "location": self.location, "tags": tags, "sku": {"name": "Standard_LRS"},
            "properties": {"osType": "Linux", "creationData": {"createOption": "Upload", "uploadSizeBytes": n}}
        });
        let url = self.arm.url("disks", Some(&disk), None, DISK_API)?;
        let started = self.arm.write(Method::PUT, url, &body_json).await?;
        self.arm.wait_lro(&started).await?;
        let sas = self.grant(&disk, "Write").await?;
        let sent = self.put_pages(&sas, body).await;
        // The SAS is revoked whatever the upload did: a disk with an active SAS cannot be used.
        let revoked = self.revoke(&disk).await;
        let sent = sent?;
        revoked?;
        if let Transfer::Forbidden(_) = sent {
            return Ok(sent);
        }
        let img = json!({
            "location": self.location,
            "tags": {"fedprobe-image": id},
            "properties": {"storageProfile": {"osDisk": {
                "osType": "Linux", "osState": "Generalized",
                "managedDisk": {"id": self.arm.resource_id("disks", &disk)}
            }}}
        });
        let url = self.arm.url("images", Some(id), None, COMPUTE_API)?;
        let reply = self.arm.write(Method::PUT, url, &img).await?;
        if reply.status == reqwest::StatusCode::FORBIDDEN {
            return Ok(Transfer::Forbidden(reply.describe_body()));
        }
        Ok(Transfer::Done)
    }

    async fn import_support(&self) -> Result<Import, Fail> {
        Ok(Import::NotOffered {
            wanted: "staged import".into(),
            advertised: vec!["disk upload (Put Page through a SAS)".into()],
        })
    }

    async fn stage_and_import(&self, id: &str, body: BodyStream) -> Result<Transfer, Fail> {
        self.upload(id, body).await
    }

    async fn image(&self, id: &str) -> Result<Option<ImageState>, Fail> {
        let url = self.arm.url("images", Some(id), None, COMPUTE_API)?;
        let Some(v) = self.arm.get_opt::<Value>(url).await? else {
            return Ok(None);
        };
        let ps = s(&v, &["properties", "provisioningState"]).unwrap_or("");
        // The stored size is the disk's: ARM reports bytes for an uploaded disk.
        let size = match self.disk(&disk_of(id)).await? {
            Some(d) => u(&d, &["properties", "diskSizeBytes"]),
            None => None,
        };
        Ok(Some(ImageState {
            id: id.to_string(),
            phase: image_phase(ps),
            status_text: ps.to_string(),
            size,
            ..Default::default()
        }))
    }

    async fn download(&self, id: &str, sink: Sink<'_>) -> Result<u64, Fail> {
        let disk = disk_of(id);
        let sas = self.grant(&disk, "Read").await?;
        let http = &self.arm.http;
        let got = http.send_into(http.get(sas), sink).await;
        let revoked = self.revoke(&disk).await;
        let reply = got?.success()?;
        revoked?;
        Ok(reply.streamed)
    }

    async fn delete_image(&self, id: &str) -> Result<bool, Fail> {
        let url = self.arm.url("images", Some(id), None, COMPUTE_API)?;
        let (was, started) = self.arm.delete(url).await?;
        if was {
            self.arm.wait_lro(&started).await?;
        }
        // The upload disk goes with it (it may be all there is after a failed upload).
        let url = self.arm.url("disks", Some(&disk_of(id)), None, DISK_API)?;
        let (disk_was, started) = self.arm.delete(url).await?;
        if disk_was {
            self.arm.wait_lro(&started).await?;
        }
        Ok(was || disk_was)
    }
}
