//! The seam between probe logic (stages, deadlines, cleanup, reporting) and
//! a cloud's API. A backend answers plain questions ("find this image",
//! "create this server", "is it gone?") in cloud-neutral words (phases,
//! capabilities); the probes in `checks` decide what is OK. A cloud's own
//! vocabulary (status strings, headers, import method names) stays inside
//! its backend. Each cloud is one module implementing the same traits;
//! [`cloud`] picks the one `--cloud` names and hands it to the probe logic.

pub mod azure;
pub mod cloud;
pub mod ec2;
pub mod gce;
pub mod opennebula;
pub mod openstack;
pub mod ova;
pub mod payload;

use std::collections::BTreeMap;
use std::future::Future;

use crate::deadline::WithDeadline;
use crate::fail::Fail;
use crate::http::BodyStream;
use crate::poll::{wait_for, Poll, Wait, Waited};

/// How the operator named the image to boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageQuery {
    /// An id, or failing that an exact name.
    IdOrName(String),
    /// A registry reference (`eu.egi.cloud.image_ref` in EGI's attributes).
    Registry(String),
    /// An AppDB appliance id (`ad:appid`).
    AppDb(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: u64,
    pub ram_mb: u64,
    pub disk_gb: u64,
}

/// One compute quota as one more server meets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaUse {
    /// `instances`, `cores`, `RAM MB`.
    pub resource: &'static str,
    pub in_use: u64,
    /// `None`: unlimited.
    pub limit: Option<u64>,
    /// What one more server of the chosen flavor takes.
    pub need: u64,
}

impl QuotaUse {
    /// No room for `need` more.
    pub fn exhausted(&self) -> bool {
        self.limit
            .is_some_and(|l| self.in_use.saturating_add(self.need) > l)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkChoice {
    /// Boot on this network.
    Network { id: String, name: String },
    /// Boot without a network (what the API version allows).
    None,
    /// Let the cloud allocate one.
    Auto,
}

#[derive(Clone, Debug)]
pub struct ServerSpec {
    pub name: String,
    pub image_id: String,
    pub flavor_id: String,
    pub network: NetworkChoice,
    pub metadata: BTreeMap<String, String>,
}

/// Where a server is in its life, in any cloud's terms. A server that is
/// gone is `None` where a backend returns `Option<ServerState>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ServerPhase {
    /// Being created (Nova BUILD, EC2 pending, ...).
    #[default]
    Building,
    /// Running and usable.
    Active,
    /// Failed, with the cloud's reason when it gives one.
    Error { reason: Option<String> },
    /// Being deleted, or deleted but still listed.
    Deleting,
    /// Anything else (stopped, paused, rebooting...): not what a probe waits for.
    Other,
}

/// A server as the probes see it.
#[derive(Clone, Debug, Default)]
pub struct ServerState {
    pub id: String,
    pub name: String,
    pub phase: ServerPhase,
    /// The cloud's own words for the state, for messages only
    /// (e.g. `BUILD (task_state spawning)`).
    pub status_text: String,
    pub metadata: BTreeMap<String, String>,
    /// Unix times, when the cloud says.
    pub created: Option<f64>,
    pub launched_at: Option<f64>,
}

/// What every backend is: re-bindable to a deadline (cleanup runs on the
/// runner's), and describable in one line for the details.
pub trait Backend: WithDeadline {
    /// One line for the details (endpoint, API version).
    fn describe(&self) -> String;
}

/// VM operations a lifecycle probe needs.
pub trait Compute: Backend {
    /// Settle the API version this run speaks (negotiated where the cloud
    /// has versions); one line for the details.
    fn api_version(&mut self) -> impl Future<Output = Result<String, Fail>> + Send;
    fn find_image(&self, q: &ImageQuery) -> impl Future<Output = Result<ImageRef, Fail>> + Send;
    /// The named flavor, else the smallest with at least `min_disk_gb`.
    fn pick_flavor(
        &self,
        wanted: Option<&str>,
        min_disk_gb: u64,
    ) -> impl Future<Output = Result<Flavor, Fail>> + Send;
    fn pick_network(&self) -> impl Future<Output = Result<NetworkChoice, Fail>> + Send;
    /// Returns the new server's id as soon as the cloud accepted it.
    fn create_server(&self, spec: &ServerSpec)
        -> impl Future<Output = Result<String, Fail>> + Send;
    /// `None` once the server is gone.
    fn server(&self, id: &str) -> impl Future<Output = Result<Option<ServerState>, Fail>> + Send;
    /// Ask for deletion; false if it was already gone.
    fn delete_server(&self, id: &str) -> impl Future<Output = Result<bool, Fail>> + Send;
    /// The project's servers carrying metadata key `key`.
    fn servers_tagged(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Vec<ServerState>, Fail>> + Send;
    /// The compute quota one more server of `flavor` meets; `None` where
    /// this cloud's API has no quota to read (the create then tells).
    fn compute_quota(
        &self,
        _flavor: &Flavor,
    ) -> impl Future<Output = Result<Option<Vec<QuotaUse>>, Fail>> + Send {
        async { Ok(None) }
    }
}

/// A new volume: size, and tags to find it again (leftovers, reaping).
#[derive(Clone, Debug)]
pub struct VolumeSpec {
    pub name: String,
    pub size_gb: u64,
    /// The cloud's volume type (Cinder type, EBS VolumeType...), if asked for.
    pub volume_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// Room for volumes in the project, as far as the cloud says; `None` max
/// is unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeLimits {
    pub max_volumes: Option<u64>,
    pub used_volumes: u64,
    pub max_gb: Option<u64>,
    pub used_gb: u64,
}

/// Where a volume is in its life, in any cloud's terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum VolumePhase {
    /// Being created (Cinder creating, EBS creating, ...).
    #[default]
    Creating,
    /// Ready and not attached.
    Available,
    /// Being attached.
    Attaching,
    /// Attached to a server.
    InUse,
    /// Being detached.
    Detaching,
    /// Failed, with the cloud's reason when it gives one.
    Error {
        reason: Option<String>,
    },
    /// Being deleted, or deleted but still listed.
    Deleting,
    Other,
}

/// A volume as the probes see it.
#[derive(Clone, Debug, Default)]
pub struct VolumeState {
    pub id: String,
    pub name: String,
    pub phase: VolumePhase,
    /// The cloud's own word for the state, for messages only.
    pub status_text: String,
    pub size_gb: Option<u64>,
    /// Servers it is attached to.
    pub attached_to: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub created: Option<f64>,
}

/// Block-storage operations a volume probe needs.
pub trait Volumes: Backend {
    /// Returns the new volume's id as soon as the cloud accepted it.
    fn create_volume(&self, spec: &VolumeSpec)
        -> impl Future<Output = Result<String, Fail>> + Send;
    /// `None` once the volume is gone.
    fn volume(&self, id: &str) -> impl Future<Output = Result<Option<VolumeState>, Fail>> + Send;
    /// Ask to attach; the phase shows when it is done.
    fn attach_volume(
        &self,
        server_id: &str,
        volume_id: &str,
    ) -> impl Future<Output = Result<(), Fail>> + Send;
    /// Ask to detach; the phase shows when it is done.
    fn detach_volume(
        &self,
        server_id: &str,
        volume_id: &str,
    ) -> impl Future<Output = Result<(), Fail>> + Send;
    /// Ask for deletion; false if it was already gone.
    fn delete_volume(&self, id: &str) -> impl Future<Output = Result<bool, Fail>> + Send;
    /// The project's volumes carrying metadata key `key`.
    fn volumes_tagged(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Vec<VolumeState>, Fail>> + Send;
    /// The project's volume limits; `None` where the cloud has no limits API.
    fn volume_limits(&self) -> impl Future<Output = Result<Option<VolumeLimits>, Fail>> + Send {
        async { Ok(None) }
    }
    /// The volumes a server lists as attached, as the compute side sees
    /// them: `Ok(None)` where the cloud has no such view, `Some(empty)` when
    /// the server is gone.
    fn server_volumes(
        &self,
        _server_id: &str,
    ) -> impl Future<Output = Result<Option<Vec<String>>, Fail>> + Send {
        async { Ok(None) }
    }
}

/// Remove a volume whatever state it is in: wait out a transition, detach it
/// from every server it is attached to, delete it, and poll until it is
/// gone. The cleanup of a probe's volume. Bounded by the backend's deadline.
pub async fn remove_volume<V: Volumes>(v: &V, id: &str) -> Result<(), Fail> {
    // Asked once each; a refused ask (the volume moved meanwhile) is retried.
    let asked = std::sync::Mutex::new((std::collections::BTreeSet::<String>::new(), false));
    let asked = &asked;
    let waited = wait_for(Wait::until_deadline(), || async move {
        let Some(s) = v.volume(id).await? else {
            return Ok(Poll::Ready(()));
        };
        let (detached, deleted) = asked.lock().map(|g| g.clone()).unwrap_or_default();
        match &s.phase {
            VolumePhase::InUse => {
                for server in s.attached_to.iter().filter(|x| !detached.contains(*x)) {
                    match v.detach_volume(server, id).await {
                        Ok(()) => {
                            if let Ok(mut g) = asked.lock() {
                                g.0.insert(server.clone());
                            }
                        }
                        Err(f) if matches!(f.http_status(), Some(400 | 404 | 409)) => {}
                        Err(f) => return Err(f),
                    }
                }
            }
            // Creating too: a volume stuck there may still be deletable.
            VolumePhase::Available
            | VolumePhase::Error { .. }
            | VolumePhase::Creating
            | VolumePhase::Other
                if !deleted =>
            {
                match v.delete_volume(id).await {
                    Ok(_) => {
                        if let Ok(mut g) = asked.lock() {
                            g.1 = true;
                        }
                    }
                    Err(f) if matches!(f.http_status(), Some(400 | 409)) => {}
                    Err(f) => return Err(f),
                }
            }
            _ => {}
        }
        Ok(Poll::Pending(s.status_text))
    })
    .await?;
    match waited {
        Waited::Ready { .. } => Ok(()),
        Waited::TimedOut { polls, last, .. } => Err(Fail::timeout(format!(
            "volume {id} not gone after {polls} polls: last status {last}"
        ))),
    }
}

/// One VM's or volume's usage as a cloud's API reports it (per-VM usage,
/// block-storage usage), or the nearest equivalent the API offers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UsageRecord {
    pub id: String,
    pub name: String,
    pub vcpus: Option<u64>,
    pub ram_mb: Option<u64>,
    pub size_gb: Option<u64>,
    /// Unix times.
    pub started: Option<f64>,
    pub ended: Option<f64>,
    /// Hours accounted in the window asked for, when the API counts them.
    pub hours: Option<f64>,
}

/// Usage reading for accounting checks. On OpenStack check_usage reads
/// Nova's usage and Cinder's summary with `clients::usage` for USAGE-01..03
/// and uses this for its own volume (`--own-volume`); elsewhere for all.
pub trait Usage: Backend {
    /// Servers' usage between two unix times.
    fn server_usage(
        &self,
        start: f64,
        end: f64,
    ) -> impl Future<Output = Result<Vec<UsageRecord>, Fail>> + Send;
    /// The project's volumes with their sizes.
    fn volume_usage(&self) -> impl Future<Output = Result<Vec<UsageRecord>, Fail>> + Send;
}

/// A thing of the live site (project, image, flavor): its id and name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Named {
    pub id: String,
    pub name: String,
}

/// The live site as the probe's login sees it, to compare an
/// information-system (GLUE) publication with.
#[derive(Clone, Debug, Default)]
pub struct SiteView {
    /// The projects the login belongs to (OpenNebula: the user's groups).
    pub projects: Vec<Named>,
    /// What the site's GLUE producer publishes as images (OpenNebula: the
    /// VM templates cloud-info-provider reads).
    pub images: Vec<Named>,
    /// `None` where the cloud has no flavors.
    pub flavors: Option<Vec<Named>>,
    /// The cloud's words, for messages: "group", "VM template".
    pub project_word: &'static str,
    pub image_word: &'static str,
}

/// What a GLUE publication of the site is compared with, on clouds whose
/// live view is not Keystone's (OpenStack's is read in `checks::glue`).
pub trait SiteCatalog: Backend {
    fn site_view(&self) -> impl Future<Output = Result<SiteView, Fail>> + Send;
}

/// A new image's record.
#[derive(Clone, Debug)]
pub struct NewImage {
    pub name: String,
    pub disk_format: String,
    pub container_format: String,
    pub properties: BTreeMap<String, String>,
}

/// Where an image is in its life, in any cloud's terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ImagePhase {
    /// Record made, no data yet.
    #[default]
    Queued,
    /// Data arriving or being stored.
    Saving,
    /// An import is running.
    Importing,
    Active,
    /// The cloud failed to store the data.
    Killed,
    /// Deleted, being deleted, or deactivated.
    Deleted,
    Other,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageState {
    pub id: String,
    pub phase: ImagePhase,
    /// The cloud's own word for the state, for messages only.
    pub status_text: String,
    pub size: Option<u64>,
    pub checksum: Option<String>,
    pub hash_algo: Option<String>,
    pub hash_value: Option<String>,
}

/// An image as the project's listing shows it: enough to tell a probe's
/// leftover (name, tags it set, age) from anything else.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListedImage {
    pub id: String,
    pub name: String,
    /// The cloud's word for its state, for messages only.
    pub status_text: String,
    /// The image's string properties (tags).
    pub properties: BTreeMap<String, String>,
    /// Unix time the cloud says it was created.
    pub created: Option<f64>,
}

/// How a data transfer went: done, or refused by policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transfer {
    Done,
    Forbidden(String),
}

/// Whether an image service offers an interoperable import (upload to a
/// staging area, then import) besides the plain upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Import {
    /// Offered; `method` names it for messages.
    Offered { method: String },
    /// Not offered: `wanted` names the import looked for, `advertised` what
    /// the service offers instead, for messages.
    NotOffered {
        wanted: String,
        advertised: Vec<String>,
    },
}

/// Where downloaded data goes, piece by piece; false stops the download.
pub use crate::http::Sink;

/// Image-service operations an upload probe needs. Data moves as streams:
/// an upload takes a [`BodyStream`] the caller feeds while it is sent, a
/// download hands each piece to a sink, so no image is held whole.
pub trait ImageStore: Backend {
    fn create_image(
        &self,
        spec: &NewImage,
    ) -> impl Future<Output = Result<ImageState, Fail>> + Send;
    fn upload(
        &self,
        id: &str,
        body: BodyStream,
    ) -> impl Future<Output = Result<Transfer, Fail>> + Send;
    /// Whether the interoperable import is offered.
    fn import_support(&self) -> impl Future<Output = Result<Import, Fail>> + Send;
    /// Stage data, then import it (see [`ImageStore::import_support`]).
    fn stage_and_import(
        &self,
        id: &str,
        body: BodyStream,
    ) -> impl Future<Output = Result<Transfer, Fail>> + Send;
    /// `None` once the image is gone.
    fn image(&self, id: &str) -> impl Future<Output = Result<Option<ImageState>, Fail>> + Send;
    /// The image's data into `sink`; returns the bytes received.
    fn download(&self, id: &str, sink: Sink<'_>) -> impl Future<Output = Result<u64, Fail>> + Send;
    fn delete_image(&self, id: &str) -> impl Future<Output = Result<bool, Fail>> + Send;
    /// Ids of the images named `name` (a run's unique name): what a create
    /// whose answer never came back made. A backend that cannot list by name
    /// finds none, and such an image is left to the next reaping.
    fn images_named(&self, name: &str) -> impl Future<Output = Result<Vec<String>, Fail>> + Send {
        let _ = name;
        async { Ok(Vec::new()) }
    }
    /// The project's own images carrying property `key`, for reaping a
    /// killed run's leftover. `None` where this backend cannot list them
    /// (the probe then says leftovers were not looked for).
    fn images_tagged(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Vec<ListedImage>>, Fail>> + Send {
        let _ = key;
        async { Ok(None) }
    }
}

/// An object as listed in its container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedObject {
    pub name: String,
    pub bytes: Option<u64>,
    /// The content hash the listing gives (Swift: MD5 hex), lower case.
    pub hash: Option<String>,
}

/// An object as read back (its bytes went to the caller's sink): how many
/// came, and the content hash the service sent along.
#[derive(Clone, Debug)]
pub struct ReadObject {
    pub bytes: u64,
    /// Swift's ETag (MD5 hex of the content), lower case, quotes removed.
    pub hash: Option<String>,
}

/// Object-storage operations (containers or buckets, and their objects)
/// an object probe needs. Names are the caller's; `metadata` tags them.
pub trait ObjectStore: Backend {
    fn create_container(
        &self,
        name: &str,
        metadata: &[(&str, &str)],
    ) -> impl Future<Output = Result<(), Fail>> + Send;
    fn container_exists(&self, name: &str) -> impl Future<Output = Result<bool, Fail>> + Send;
    /// Store an object streamed from `body` (its length declared); returns
    /// the content hash the service answered.
    fn put_object(
        &self,
        container: &str,
        name: &str,
        body: BodyStream,
        metadata: &[(&str, &str)],
    ) -> impl Future<Output = Result<Option<String>, Fail>> + Send;
    /// Read an object into `sink` as it arrives; `None` when it is not there.
    fn get_object(
        &self,
        container: &str,
        name: &str,
        sink: Sink<'_>,
    ) -> impl Future<Output = Result<Option<ReadObject>, Fail>> + Send;
    fn object_exists(
        &self,
        container: &str,
        name: &str,
    ) -> impl Future<Output = Result<bool, Fail>> + Send;
    /// `None` when the container is not there.
    fn list_objects(
        &self,
        container: &str,
    ) -> impl Future<Output = Result<Option<Vec<ListedObject>>, Fail>> + Send;
    /// False if it was already gone.
    fn delete_object(
        &self,
        container: &str,
        name: &str,
    ) -> impl Future<Output = Result<bool, Fail>> + Send;
    /// False if it was already gone; a non-empty container is an error.
    fn delete_container(&self, name: &str) -> impl Future<Output = Result<bool, Fail>> + Send;
}

/// Delete whatever a container still holds, then the container; used as the
/// cleanup of a probe's container, whatever stage the run stopped in.
/// Bounded by the backend's deadline.
pub async fn empty_and_delete_container<S: ObjectStore>(s: &S, name: &str) -> Result<(), Fail> {
    // Objects deleted a moment ago may still be counted (409): list, delete
    // and try again until the deadline of the backend.
    let waited = wait_for(Wait::until_deadline(), || async move {
        let Some(objects) = s.list_objects(name).await? else {
            return Ok(Poll::Ready(()));
        };
        for o in &objects {
            s.delete_object(name, &o.name).await?;
        }
        match s.delete_container(name).await {
            Ok(_) => Ok(Poll::Ready(())),
            Err(f) if f.http_status() == Some(409) => {
                Ok(Poll::Pending("container not empty (409)".into()))
            }
            Err(f) => Err(f),
        }
    })
    .await?;
    match waited {
        Waited::Ready { .. } => Ok(()),
        Waited::TimedOut { polls, last, .. } => Err(Fail::timeout(format!(
            "container {name} not deleted after {polls} attempts: {last}"
        ))),
    }
}

/// Delete a server and poll until the cloud says it is gone. Returns the
/// number of polls. Bounded by the backend's deadline.
pub async fn delete_server_and_wait<C: Compute>(c: &C, id: &str) -> Result<u64, Fail> {
    delete_server_within(c, id, Wait::until_deadline()).await
}

/// Delete and look until the server is gone, within `wait`: still listed
/// when a bounded wait runs out is the site's failure (CRITICAL: it accepted
/// the delete and did not do it), not the monitor's timeout.
pub async fn delete_server_within<C: Compute>(c: &C, id: &str, wait: Wait) -> Result<u64, Fail> {
    c.delete_server(id).await?;
    wait_gone(wait, || c.server(id)).await
}

pub async fn delete_image_and_wait<S: ImageStore>(s: &S, id: &str) -> Result<u64, Fail> {
    delete_image_within(s, id, Wait::until_deadline()).await
}

/// [`delete_server_within`] for an image.
pub async fn delete_image_within<S: ImageStore>(s: &S, id: &str, wait: Wait) -> Result<u64, Fail> {
    s.delete_image(id).await?;
    wait_gone(wait, || s.image(id)).await
}

async fn wait_gone<T, F, Fut>(wait: Wait, mut get: F) -> Result<u64, Fail>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, Fail>>,
{
    // An unbounded wait never times out here: it ends when its requests
    // fail on the backend's own deadline.
    let polled = wait_for(wait, || {
        let fut = get();
        async move {
            Ok(match fut.await? {
                None => Poll::Ready(()),
                Some(_) => Poll::Pending("still listed".to_string()),
            })
        }
    })
    .await?;
    polled
        .or_fail(|l| {
            format!(
                "still listed {:.0}s after the delete was accepted ({} checks{})",
                l.limit.as_secs_f64(),
                l.polls,
                if l.cut_by_deadline {
                    "; all -t left"
                } else {
                    ""
                }
            )
        })
        .map(|(_, polls)| polls)
}

/// A short id for this run: time and pid, hex.
pub fn run_id() -> String {
    let nanos = crate::clock::now_nanos();
    let mix = (nanos as u64) ^ ((std::process::id() as u64) << 40);
    format!("{:010x}", mix & 0xff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_short_hex() {
        let r = run_id();
        assert_eq!(r.len(), 10);
        assert!(r.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
