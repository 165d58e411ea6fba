//! The OpenStack backend: Nova for servers, Glance for images, Neutron for
//! networks, Cinder for volumes, all from a Keystone session's catalog.

use reqwest::Url;
use serde_json::{json, Map, Value};

use super::{
    Backend, Compute, Flavor, ImagePhase, ImageQuery, ImageRef, ImageState, ImageStore, Import,
    ListedImage, ListedObject, NetworkChoice, NewImage, ObjectStore, QuotaUse, ReadObject,
    ServerPhase, ServerSpec, ServerState, Sink, Transfer, Usage, UsageRecord, VolumeLimits,
    VolumePhase, VolumeSpec, VolumeState, Volumes,
};
use crate::auth::{self, AuthArgs, Session};
use crate::clients::cinder::{self, Cinder};
use crate::clients::glance::{self, Glance, Image};
use crate::clients::neutron::Neutron;
use crate::clients::nova::{self, Nova};
use crate::clients::swift::Swift;
use crate::clock::parse_utc;
use crate::deadline::{Deadline, WithDeadline};
use crate::fail::Fail;
use crate::http::{BodyStream, Http};
use crate::model::Perf;
use crate::secret::Secret;
use crate::Ctx;

/// Property holding EGI's appliance attributes as a JSON string.
pub const APPLIANCE_ATTRIBUTES: &str = "APPLIANCE_ATTRIBUTES";
pub const IMAGE_REF: &str = "eu.egi.cloud.image_ref";
pub const APPDB_ID: &str = "ad:appid";

#[derive(Clone)]
pub struct OpenStack {
    http: Http,
    token: Secret,
    project_id: String,
    compute: Endpoint,
    image: Endpoint,
    network: Endpoint,
    object_store: Endpoint,
    volume: Endpoint,
    /// Negotiated compute microversion and the site's maximum.
    microversion: Option<String>,
    max_version: Option<String>,
}

/// A catalog endpoint: `None` where the catalog has none, `Some(Err)` where
/// it has one a probe may not use (plain http without `--allow-http`, not a
/// URL with a host): that reason is the failure of the stage that needs it.
type Endpoint = Option<Result<Url, Fail>>;

/// The endpoint a client needs, or why it cannot have one.
fn need(ep: &Endpoint, what: &str) -> Result<Url, Fail> {
    ep.clone().unwrap_or_else(|| {
        Err(Fail::critical(format!(
            "no public {what} endpoint in the catalog"
        )))
    })
}

/// The interoperable import method fedprobe uses (stage, then import).
const IMPORT_METHOD: &str = "glance-direct";

/// The login prologue of every OpenStack probe: log in (recording AUTH-0x
/// steps and `auth` perfdata), then the backend on the session's catalog.
pub async fn login(ctx: &Ctx, args: &AuthArgs) -> Result<OpenStack, Fail> {
    let t0 = tokio::time::Instant::now();
    let session = auth::login(ctx, args).await?;
    ctx.perf(Perf::seconds("auth", t0.elapsed()));
    Ok(OpenStack::from_session(&session))
}

impl OpenStack {
    /// Endpoints from the session's catalog; missing ones fail when used.
    pub fn from_session(session: &Session) -> OpenStack {
        OpenStack {
            http: session.http.clone(),
            token: session.token.clone(),
            project_id: session.project_id.clone(),
            compute: session.listed("compute"),
            image: session.listed("image"),
            network: session.listed("network"),
            object_store: session.listed("object-store"),
            volume: crate::clients::usage::VOLUME_TYPES
                .iter()
                .find_map(|t| session.listed(t)),
            microversion: None,
            max_version: None,
        }
    }

    /// Read the compute endpoint's version document and pick our microversion.
    pub async fn negotiate_compute(&mut self) -> Result<String, Fail> {
        let v = self.nova()?.version().await?;
        let max = nova::parse_version(&v.version);
        let min = nova::parse_version(&v.min_version);
        self.max_version = Some(v.version.clone()).filter(|s| !s.is_empty());
        self.microversion = match (min, max) {
            (_, Some(max)) if max >= nova::MICROVERSION => Some(fmt_version(nova::MICROVERSION)),
            // An old Nova: no `networks: none`; speak its newest version.
            (_, Some(max)) => Some(fmt_version(max)),
            (_, None) => None,
        };
        Ok(Backend::describe(self))
    }

    fn nova(&self) -> Result<Nova, Fail> {
        let url = need(&self.compute, "compute")?;
        Ok(Nova::new(
            self.http.clone(),
            &url,
            self.token.clone(),
            self.microversion.as_deref(),
        ))
    }

    fn glance(&self) -> Result<Glance, Fail> {
        let url = need(&self.image, "image")?;
        Ok(Glance::new(self.http.clone(), &url, self.token.clone()))
    }

    fn swift(&self) -> Result<Swift, Fail> {
        let url = need(&self.object_store, "object-store")?;
        Ok(Swift::new(self.http.clone(), &url, self.token.clone()))
    }

    fn cinder(&self) -> Result<Cinder, Fail> {
        let url = need(&self.volume, "block-storage (volumev3)")?;
        Cinder::new(
            self.http.clone(),
            &url,
            self.token.clone(),
            &self.project_id,
        )
    }

    /// The block-storage URL, for messages.
    pub fn volume_url(&self) -> Option<&Url> {
        self.volume.as_ref().and_then(|r| r.as_ref().ok())
    }

    /// Neutron at the catalog's network endpoint.
    pub fn neutron(&self) -> Result<Neutron, Fail> {
        let url = need(&self.network, "network")?;
        Ok(Neutron::new(self.http.clone(), &url, self.token.clone()))
    }

    /// The project the session is scoped to.
    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    /// [`Compute::create_server`] in the named security groups (Nova puts
    /// the server's ports in them at boot).
    pub async fn create_server_in_groups(
        &self,
        spec: &ServerSpec,
        groups: &[&str],
    ) -> Result<String, Fail> {
        let mut server = self.server_body(spec);
        let groups: Vec<Value> = groups.iter().map(|g| json!({ "name": g })).collect();
        server.insert("security_groups".into(), Value::Array(groups));
        self.nova()?
            .create_server(&json!({ "server": server }))
            .await
    }

    fn server_body(&self, spec: &ServerSpec) -> Map<String, Value> {
        let mut server = Map::new();
        server.insert("name".into(), json!(spec.name));
        server.insert("imageRef".into(), json!(spec.image_id));
        server.insert("flavorRef".into(), json!(spec.flavor_id));
        server.insert("metadata".into(), json!(spec.metadata));
        match &spec.network {
            NetworkChoice::Network { id, .. } => {
                server.insert("networks".into(), json!([{ "uuid": id }]));
            }
            NetworkChoice::None if self.networks_none_allowed() => {
                server.insert("networks".into(), json!("none"));
            }
            NetworkChoice::Auto if self.networks_none_allowed() => {
                server.insert("networks".into(), json!("auto"));
            }
            // Before 2.37 leaving `networks` out lets Nova decide.
            NetworkChoice::None | NetworkChoice::Auto => {}
        }
        server
    }

    /// The object-store account URL, for messages.
    pub fn object_store_url(&self) -> Option<&Url> {
        self.object_store.as_ref().and_then(|r| r.as_ref().ok())
    }

    fn networks_none_allowed(&self) -> bool {
        self.microversion
            .as_deref()
            .and_then(nova::parse_version)
            .is_some_and(|v| v >= nova::MICROVERSION)
    }
}

fn fmt_version(v: (u32, u32)) -> String {
    format!("{}.{}", v.0, v.1)
}

/// The registry reference in an image's `APPLIANCE_ATTRIBUTES`, if any.
pub fn registry_ref(img: &Image) -> Option<String> {
    attribute(img, IMAGE_REF)
}

/// A registry reference without a tag (`registry.egi.eu/egi_vm_images/monitoring`)
/// matches every tag of that repository; with a tag or digest, only itself.
/// The registry host is compared only when both name one (atrope writes
/// `egi_vm_images/ubuntu:22.04`, without it).
pub fn ref_matches(have: &str, want: &str) -> bool {
    let (have, want) = match (registry_host(have), registry_host(want)) {
        (Some(_), Some(_)) | (None, None) => (have, want),
        (Some(h), None) => (&have[h.len() + 1..], want),
        (None, Some(w)) => (have, &want[w.len() + 1..]),
    };
    let last = want.rsplit('/').next().unwrap_or(want);
    if last.contains(':') || last.contains('@') {
        return have == want;
    }
    have == want
        || have
            .strip_prefix(want)
            .is_some_and(|t| t.starts_with(':') || t.starts_with('@'))
}

/// The registry host of a reference: a first component with a dot or a
/// port, or `localhost` (the container tools' rule).
fn registry_host(r: &str) -> Option<&str> {
    let (first, _) = r.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

fn attribute(img: &Image, key: &str) -> Option<String> {
    let raw = img.property(APPLIANCE_ATTRIBUTES)?;
    let v: Value = serde_json::from_str(raw).ok()?;
    v.get(key)?.as_str().map(String::from)
}

fn appdb_id(img: &Image) -> Option<String> {
    img.property(APPDB_ID)
        .map(String::from)
        .or_else(|| attribute(img, APPDB_ID))
}

/// The newest active image among `matches`, or a message saying why none.
fn choose(matches: Vec<Image>, what: &str, scanned: usize) -> Result<ImageRef, Fail> {
    let n = matches.len();
    let mut active: Vec<Image> = matches
        .into_iter()
        .filter(|i| i.status == "active")
        .collect();
    active.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    match active.into_iter().next() {
        Some(i) => Ok(ImageRef {
            name: i.name.clone().unwrap_or_default(),
            id: i.id,
        }),
        None if n > 0 => Err(Fail::critical(format!(
            "{n} image(s) with {what}, none active"
        ))),
        None => Err(Fail::critical(format!(
            "no image with {what} ({scanned} images visible)"
        ))),
    }
}

impl WithDeadline for OpenStack {
    /// Keep our own client (it may trust the cloud's CA); take the deadline.
    fn with_deadline(&self, deadline: Deadline) -> Self {
        OpenStack {
            http: self.http.with_deadline(deadline),
            ..self.clone()
        }
    }
}

impl Backend for OpenStack {
    fn describe(&self) -> String {
        let url = |u: &Endpoint| {
            u.as_ref()
                .and_then(|r| r.as_ref().ok())
                .map(crate::http::show_url)
                .unwrap_or_else(|| "-".into())
        };
        format!(
            "compute {} (microversion {}, site max {}), image {}",
            url(&self.compute),
            self.microversion.as_deref().unwrap_or("none"),
            self.max_version.as_deref().unwrap_or("unknown"),
            url(&self.image)
        )
    }
}

impl Compute for OpenStack {
    async fn api_version(&mut self) -> Result<String, Fail> {
        self.negotiate_compute().await
    }

    async fn find_image(&self, q: &ImageQuery) -> Result<ImageRef, Fail> {
        let g = match (self.glance(), q) {
            (Ok(g), _) => g,
            // Without Glance an id can still be tried as given.
            (Err(_), ImageQuery::IdOrName(id)) => {
                return Ok(ImageRef {
                    id: id.clone(),
                    name: id.clone(),
                })
            }
            (Err(f), _) => return Err(f),
        };
        match q {
            ImageQuery::IdOrName(s) => {
                if let Some(img) = g.image(s).await? {
                    return choose(vec![img], &format!("id {s}"), 1);
                }
                let named = g.images(&[("name", s)]).await?;
                choose(named, &format!("id or name {s:?}"), 0)
            }
            ImageQuery::Registry(r) => {
                let all = g.images(&[]).await?;
                let n = all.len();
                let m = all
                    .into_iter()
                    .filter(|i| registry_ref(i).is_some_and(|have| ref_matches(&have, r)))
                    .collect();
                choose(m, &format!("{IMAGE_REF} {r}"), n)
            }
            ImageQuery::AppDb(a) => {
                let all = g.images(&[]).await?;
                let n = all.len();
                let m = all
                    .into_iter()
                    .filter(|i| appdb_id(i).as_deref() == Some(a.as_str()))
                    .collect();
                choose(m, &format!("{APPDB_ID} {a}"), n)
            }
        }
    }

    async fn pick_flavor(&self, wanted: Option<&str>, min_disk_gb: u64) -> Result<Flavor, Fail> {
        let nova = self.nova()?;
        let convert = |f: nova::Flavor| Flavor {
            id: f.id,
            name: f.name,
            vcpus: f.vcpus,
            ram_mb: f.ram,
            disk_gb: f.disk,
        };
        if let Some(w) = wanted {
            let all = nova.flavors(&[]).await?;
            let names: Vec<String> = all.iter().map(|f| f.name.clone()).collect();
            return all
                .into_iter()
                .find(|f| f.id == w || f.name == w)
                .map(convert)
                .ok_or_else(|| {
                    Fail::critical(format!(
                        "flavor {w:?} not found (have: {})",
                        names.join(", ")
                    ))
                });
        }
        let mut fit: Vec<nova::Flavor> = nova
            .flavors(&[("minDisk", &min_disk_gb.to_string())])
            .await?
            .into_iter()
            .filter(|f| f.disk >= min_disk_gb)
            .collect();
        fit.sort_by_key(|f| (f.vcpus, f.ram));
        fit.into_iter().next().map(convert).ok_or_else(|| {
            Fail::critical(format!(
                "no flavor with a disk of at least {min_disk_gb} GB"
            ))
        })
    }

    async fn pick_network(&self) -> Result<NetworkChoice, Fail> {
        if self.network.is_none() {
            return Ok(NetworkChoice::None);
        }
        let url = need(&self.network, "network")?;
        let nets = Neutron::new(self.http.clone(), &url, self.token.clone())
            .networks()
            .await?;
        Ok(nets
            .into_iter()
            .find(|n| n.status == "ACTIVE" && n.owner() == Some(self.project_id.as_str()))
            .map(|n| NetworkChoice::Network {
                id: n.id,
                name: n.name,
            })
            .unwrap_or(NetworkChoice::None))
    }

    async fn create_server(&self, spec: &ServerSpec) -> Result<String, Fail> {
        let server = self.server_body(spec);
        self.nova()?
            .create_server(&json!({ "server": server }))
            .await
    }

    async fn server(&self, id: &str) -> Result<Option<ServerState>, Fail> {
        Ok(self.nova()?.server(id).await?.map(state))
    }

    async fn delete_server(&self, id: &str) -> Result<bool, Fail> {
        self.nova()?.delete_server(id).await
    }

    async fn servers_tagged(&self, key: &str) -> Result<Vec<ServerState>, Fail> {
        Ok(self
            .nova()?
            .servers_detail()
            .await?
            .into_iter()
            .filter(|s| s.metadata.contains_key(key))
            .map(state)
            .collect())
    }

    async fn compute_quota(&self, flavor: &Flavor) -> Result<Option<Vec<QuotaUse>>, Fail> {
        let l = self.nova()?.limits().await?;
        let one = |resource, used: Option<i64>, max: Option<i64>, need| {
            // A negative limit is Nova's "unlimited"; a missing one is not known.
            let max = max?;
            Some(QuotaUse {
                resource,
                in_use: used.unwrap_or(0).max(0) as u64,
                limit: (max >= 0).then_some(max as u64),
                need,
            })
        };
        let q: Vec<QuotaUse> = [
            one(
                "instances",
                l.total_instances_used,
                l.max_total_instances,
                1,
            ),
            one("cores", l.total_cores_used, l.max_total_cores, flavor.vcpus),
            one(
                "RAM MB",
                l.total_ram_used,
                l.max_total_ram_size,
                flavor.ram_mb,
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        Ok(Some(q))
    }
}

/// Nova's status words as phases.
fn state(s: nova::Server) -> ServerState {
    let status = s.status.to_ascii_uppercase();
    let phase = match status.as_str() {
        "BUILD" => ServerPhase::Building,
        "ACTIVE" => ServerPhase::Active,
        "ERROR" => ServerPhase::Error {
            reason: s
                .fault
                .and_then(|f| match (f.message, f.code) {
                    (Some(m), Some(c)) => Some(format!("{m} (code {c})")),
                    (m, _) => m,
                })
                .filter(|m| !m.is_empty()),
        },
        "DELETED" | "SOFT_DELETED" => ServerPhase::Deleting,
        _ => ServerPhase::Other,
    };
    let status_text = match &s.task_state {
        Some(t) => format!("{status} (task_state {t})"),
        None => status,
    };
    ServerState {
        phase,
        status_text,
        created: s.created.as_deref().and_then(parse_utc),
        launched_at: s.launched_at.as_deref().and_then(parse_utc),
        id: s.id,
        name: s.name,
        metadata: s.metadata,
    }
}

/// Glance's status words as phases.
fn image_state(i: Image) -> ImageState {
    let status = i.status.to_ascii_lowercase();
    // An interoperable import is over when its task lets go of the image:
    // Glance answers `active` while the task still holds its lock and lists
    // stores left to import to, and a delete in that window races the task
    // (the real Glance then answers 500).
    let busy = |key: &str| i.property(key).is_some_and(|v| !v.trim().is_empty());
    let importing = busy("os_glance_import_task") || busy("os_glance_importing_to_stores");
    let phase = match status.as_str() {
        "queued" => ImagePhase::Queued,
        "saving" | "uploading" => ImagePhase::Saving,
        "importing" => ImagePhase::Importing,
        "active" if importing => ImagePhase::Importing,
        "active" => ImagePhase::Active,
        "killed" => ImagePhase::Killed,
        "deleted" | "pending_delete" | "deactivated" => ImagePhase::Deleted,
        _ => ImagePhase::Other,
    };
    let status = if importing && status == "active" {
        "active, import task still running".to_string()
    } else {
        status
    };
    ImageState {
        id: i.id,
        phase,
        status_text: status,
        size: i.size,
        checksum: i.checksum,
        hash_algo: i.os_hash_algo,
        hash_value: i.os_hash_value,
    }
}

fn transfer(t: glance::Transfer) -> Transfer {
    match t {
        glance::Transfer::Done => Transfer::Done,
        glance::Transfer::Forbidden(why) => Transfer::Forbidden(why),
    }
}

impl ImageStore for OpenStack {
    async fn create_image(&self, spec: &NewImage) -> Result<ImageState, Fail> {
        let mut body = Map::new();
        body.insert("name".into(), json!(spec.name));
        body.insert("disk_format".into(), json!(spec.disk_format));
        body.insert("container_format".into(), json!(spec.container_format));
        body.insert("visibility".into(), json!("private"));
        for (k, v) in &spec.properties {
            body.insert(k.clone(), json!(v));
        }
        Ok(image_state(
            self.glance()?.create(&Value::Object(body)).await?,
        ))
    }

    async fn upload(&self, id: &str, body: BodyStream) -> Result<Transfer, Fail> {
        Ok(transfer(self.glance()?.upload(id, body).await?))
    }

    async fn images_named(&self, name: &str) -> Result<Vec<String>, Fail> {
        let found = self.glance()?.images(&[("name", name)]).await?;
        Ok(found
            .into_iter()
            .filter(|i| i.name.as_deref() == Some(name))
            .map(|i| i.id)
            .collect())
    }

    /// Private images only: the probe makes its images private, and a
    /// site's public catalogue can be long.
    async fn images_tagged(&self, key: &str) -> Result<Option<Vec<ListedImage>>, Fail> {
        let found = self.glance()?.images(&[("visibility", "private")]).await?;
        Ok(Some(
            found
                .into_iter()
                .filter(|i| i.property(key).is_some())
                .map(|i| ListedImage {
                    created: i.created_at.as_deref().and_then(parse_utc),
                    properties: i
                        .properties
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect(),
                    name: i.name.unwrap_or_default(),
                    status_text: i.status,
                    id: i.id,
                })
                .collect(),
        ))
    }

    async fn import_support(&self) -> Result<Import, Fail> {
        let methods = self.glance()?.import_methods().await?;
        Ok(if methods.iter().any(|m| m == IMPORT_METHOD) {
            Import::Offered {
                method: IMPORT_METHOD.into(),
            }
        } else {
            Import::NotOffered {
                wanted: IMPORT_METHOD.into(),
                advertised: methods,
            }
        })
    }

    async fn stage_and_import(&self, id: &str, body: BodyStream) -> Result<Transfer, Fail> {
        let g = self.glance()?;
        match transfer(g.stage(id, body).await?) {
            Transfer::Done => {}
            refused => return Ok(refused),
        }
        g.import(id, IMPORT_METHOD).await?;
        Ok(Transfer::Done)
    }

    async fn image(&self, id: &str) -> Result<Option<ImageState>, Fail> {
        Ok(self.glance()?.image(id).await?.map(image_state))
    }

    async fn download(&self, id: &str, sink: Sink<'_>) -> Result<u64, Fail> {
        self.glance()?.download(id, sink).await
    }

    async fn delete_image(&self, id: &str) -> Result<bool, Fail> {
        self.glance()?.delete(id).await
    }
}

impl ObjectStore for OpenStack {
    async fn create_container(&self, name: &str, metadata: &[(&str, &str)]) -> Result<(), Fail> {
        self.swift()?.put_container(name, metadata).await
    }

    async fn container_exists(&self, name: &str) -> Result<bool, Fail> {
        self.swift()?.container_exists(name).await
    }

    async fn put_object(
        &self,
        container: &str,
        name: &str,
        body: BodyStream,
        metadata: &[(&str, &str)],
    ) -> Result<Option<String>, Fail> {
        self.swift()?
            .put_object(container, name, body, metadata)
            .await
    }

    async fn get_object(
        &self,
        container: &str,
        name: &str,
        sink: Sink<'_>,
    ) -> Result<Option<ReadObject>, Fail> {
        let got = self.swift()?.get_object(container, name, sink).await?;
        Ok(got.map(|f| ReadObject {
            bytes: f.bytes,
            hash: f.etag,
        }))
    }

    async fn object_exists(&self, container: &str, name: &str) -> Result<bool, Fail> {
        self.swift()?.object_exists(container, name).await
    }

    async fn list_objects(&self, container: &str) -> Result<Option<Vec<ListedObject>>, Fail> {
        let listed = self.swift()?.list(container).await?;
        Ok(listed.map(|l| {
            l.into_iter()
                .map(|o| ListedObject {
                    name: o.name,
                    bytes: o.bytes,
                    hash: o.hash.as_deref().map(crate::clients::swift::bare_etag),
                })
                .collect()
        }))
    }

    async fn delete_object(&self, container: &str, name: &str) -> Result<bool, Fail> {
        self.swift()?.delete_object(container, name).await
    }

    async fn delete_container(&self, name: &str) -> Result<bool, Fail> {
        self.swift()?.delete_container(name).await
    }
}

/// Cinder's status words as phases.
fn volume_state(v: cinder::Volume) -> VolumeState {
    let status = v.status.to_ascii_lowercase();
    let phase = match status.as_str() {
        "creating" | "downloading" => VolumePhase::Creating,
        "available" => VolumePhase::Available,
        "attaching" | "reserved" => VolumePhase::Attaching,
        "in-use" => VolumePhase::InUse,
        "detaching" => VolumePhase::Detaching,
        "deleting" => VolumePhase::Deleting,
        s if s.starts_with("error") => VolumePhase::Error { reason: None },
        _ => VolumePhase::Other,
    };
    VolumeState {
        phase,
        status_text: status,
        size_gb: v.size,
        attached_to: v
            .attachments
            .into_iter()
            .filter_map(|a| a.server_id)
            .collect(),
        created: v.created_at.as_deref().and_then(parse_utc),
        name: v.name.unwrap_or_default(),
        metadata: v.metadata,
        id: v.id,
    }
}

impl Volumes for OpenStack {
    async fn create_volume(&self, spec: &VolumeSpec) -> Result<String, Fail> {
        let mut volume = Map::new();
        volume.insert("name".into(), json!(spec.name));
        volume.insert("size".into(), json!(spec.size_gb));
        volume.insert("metadata".into(), json!(spec.metadata));
        if let Some(t) = &spec.volume_type {
            volume.insert("volume_type".into(), json!(t));
        }
        self.cinder()?
            .create_volume(&json!({ "volume": volume }))
            .await
    }

    async fn volume(&self, id: &str) -> Result<Option<VolumeState>, Fail> {
        let c = self.cinder()?;
        let Some(mut s) = c.volume(id).await?.map(volume_state) else {
            return Ok(None);
        };
        if let VolumePhase::Error { reason } = &mut s.phase {
            // Cinder keeps the why in its user messages; the last one is the latest.
            *reason = c.messages(id).await.ok().and_then(|m| m.last().cloned());
        }
        Ok(Some(s))
    }

    async fn attach_volume(&self, server_id: &str, volume_id: &str) -> Result<(), Fail> {
        self.nova()?.attach_volume(server_id, volume_id).await
    }

    async fn detach_volume(&self, server_id: &str, volume_id: &str) -> Result<(), Fail> {
        self.nova()?
            .detach_volume(server_id, volume_id)
            .await
            .map(drop)
    }

    async fn delete_volume(&self, id: &str) -> Result<bool, Fail> {
        self.cinder()?.delete_volume(id).await
    }

    async fn volumes_tagged(&self, key: &str) -> Result<Vec<VolumeState>, Fail> {
        Ok(self
            .cinder()?
            .volumes_detail()
            .await?
            .into_iter()
            .filter(|v| v.metadata.contains_key(key))
            .map(volume_state)
            .collect())
    }

    async fn volume_limits(&self) -> Result<Option<VolumeLimits>, Fail> {
        let l = self.cinder()?.limits().await?;
        Ok(Some(VolumeLimits {
            max_volumes: l.max_volumes,
            used_volumes: l.used_volumes,
            max_gb: l.max_gb,
            used_gb: l.used_gb,
        }))
    }

    async fn server_volumes(&self, server_id: &str) -> Result<Option<Vec<String>>, Fail> {
        Ok(Some(
            self.nova()?
                .volume_attachments(server_id)
                .await?
                .unwrap_or_default(),
        ))
    }
}

/// Nova's `os-simple-tenant-usage` and Cinder's volume list, in the seam's
/// words (check_usage's own volume is judged through these).
impl Usage for OpenStack {
    async fn server_usage(&self, start: f64, end: f64) -> Result<Vec<UsageRecord>, Fail> {
        let url = need(&self.compute, "compute")?;
        let (servers, _) =
            crate::clients::usage::TenantUsage::new(self.http.clone(), &url, self.token.clone())
                .servers(&self.project_id, start as i64, end as i64, 0)
                .await?;
        let n = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
        let t = |s: Option<String>| s.as_deref().and_then(parse_utc);
        Ok(servers
            .into_iter()
            .map(|s| UsageRecord {
                id: s.instance_id,
                name: s.name.unwrap_or_default(),
                vcpus: n(s.vcpus),
                ram_mb: n(s.memory_mb),
                size_gb: n(s.local_gb),
                started: t(s.started_at),
                ended: t(s.ended_at),
                hours: s.hours,
            })
            .collect())
    }

    async fn volume_usage(&self) -> Result<Vec<UsageRecord>, Fail> {
        Ok(self
            .cinder()?
            .volumes_detail()
            .await?
            .into_iter()
            .map(|v| UsageRecord {
                started: v.created_at.as_deref().and_then(parse_utc),
                name: v.name.unwrap_or_default(),
                size_gb: v.size,
                id: v.id,
                ..UsageRecord::default()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::{image_state, ref_matches};
    use crate::backend::ImagePhase;

    #[test]
    fn an_active_image_whose_import_task_still_holds_it_is_not_active_yet() {
        let img = |extra: serde_json::Value| {
            let mut v = serde_json::json!({"id": "i", "status": "active"});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            image_state(serde_json::from_value(v).unwrap())
        };
        let busy = img(serde_json::json!({"os_glance_import_task": "t-1"}));
        assert_eq!(busy.phase, ImagePhase::Importing);
        let stores = img(serde_json::json!({"os_glance_importing_to_stores": "fs"}));
        assert_eq!(stores.phase, ImagePhase::Importing);
        let done = img(
            serde_json::json!({"os_glance_importing_to_stores": "", "os_glance_failed_import": ""}),
        );
        assert_eq!(done.phase, ImagePhase::Active);
        assert_eq!(img(serde_json::json!({})).phase, ImagePhase::Active);
    }

    #[test]
    fn a_reference_without_a_tag_matches_every_tag_of_its_repository() {
        let repo = "registry.egi.eu/egi_vm_images/monitoring";
        assert!(ref_matches(&format!("{repo}:1.0"), repo));
        assert!(ref_matches(&format!("{repo}@sha256:ab"), repo));
        assert!(ref_matches(repo, repo));
        assert!(!ref_matches(&format!("{repo}-old:1.0"), repo));
        assert!(ref_matches(&format!("{repo}:1.0"), &format!("{repo}:1.0")));
        assert!(!ref_matches(&format!("{repo}:1.1"), &format!("{repo}:1.0")));
        // a registry port is not a tag
        assert!(ref_matches("reg:5000/a/b:2", "reg:5000/a/b"));
        // without a registry host on one side, the rest is compared
        assert!(ref_matches("egi_vm_images/monitoring:1.0", repo));
        assert!(!ref_matches("other.eu/egi_vm_images/monitoring:1.0", repo));
    }
}
