//! The seam between probe logic (stages, deadlines, cleanup, reporting) and
//! a cloud's API. A backend answers plain questions ("find this image",
//! "create this server", "is it gone?"); the probes in `checks` decide what
//! is OK. Only OpenStack is implemented; EC2, OpenNebula, Azure or GCE
//! backends implement the same traits.

pub mod openstack;
pub mod ova;

use std::collections::BTreeMap;
use std::future::Future;

use crate::fail::Fail;
use crate::http::Http;
use crate::poll::Backoff;

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

/// A server as the probes see it.
#[derive(Clone, Debug, Default)]
pub struct ServerState {
    pub id: String,
    pub name: String,
    /// Upper case: BUILD, ACTIVE, ERROR, ...
    pub status: String,
    /// Why it failed, when it did (Nova's `fault.message`).
    pub fault: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Unix times, when the cloud says.
    pub created: Option<f64>,
    pub launched_at: Option<f64>,
    /// Extra state for messages (e.g. `task_state spawning`).
    pub detail: Option<String>,
}

/// VM operations a lifecycle probe needs.
pub trait Compute: Clone + Send + Sync + 'static {
    /// The same backend sending through another (deadline-bound) client;
    /// cleanup runs on the runner's.
    fn rebind(&self, http: Http) -> Self;
    /// One line for the details (endpoint, API version).
    fn describe(&self) -> String;
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
}

/// A new image's record.
#[derive(Clone, Debug)]
pub struct NewImage {
    pub name: String,
    pub disk_format: String,
    pub container_format: String,
    pub properties: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageState {
    pub id: String,
    /// Lower case: queued, saving, importing, active, killed, ...
    pub status: String,
    pub size: Option<u64>,
    pub checksum: Option<String>,
    pub hash_algo: Option<String>,
    pub hash_value: Option<String>,
}

/// How a data transfer went: done, or refused by policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transfer {
    Done,
    Forbidden(String),
}

/// Image-service operations an upload probe needs.
pub trait ImageStore: Clone + Send + Sync + 'static {
    fn rebind(&self, http: Http) -> Self;
    fn describe(&self) -> String;
    fn create_image(
        &self,
        spec: &NewImage,
    ) -> impl Future<Output = Result<ImageState, Fail>> + Send;
    fn upload(
        &self,
        id: &str,
        data: Vec<u8>,
    ) -> impl Future<Output = Result<Transfer, Fail>> + Send;
    /// Interoperable import methods the service advertises.
    fn import_methods(&self) -> impl Future<Output = Result<Vec<String>, Fail>> + Send;
    /// Stage data then import it with `method` (e.g. glance-direct).
    fn stage_and_import(
        &self,
        id: &str,
        data: Vec<u8>,
        method: &str,
    ) -> impl Future<Output = Result<Transfer, Fail>> + Send;
    /// `None` once the image is gone.
    fn image(&self, id: &str) -> impl Future<Output = Result<Option<ImageState>, Fail>> + Send;
    fn download(&self, id: &str) -> impl Future<Output = Result<Vec<u8>, Fail>> + Send;
    fn delete_image(&self, id: &str) -> impl Future<Output = Result<bool, Fail>> + Send;
}

/// Delete a server and poll until the cloud says it is gone. Returns the
/// number of polls. Bounded by the backend's deadline.
pub async fn delete_server_and_wait<C: Compute>(c: &C, id: &str) -> Result<u64, Fail> {
    c.delete_server(id).await?;
    wait_gone(|| c.server(id)).await
}

pub async fn delete_image_and_wait<S: ImageStore>(s: &S, id: &str) -> Result<u64, Fail> {
    s.delete_image(id).await?;
    wait_gone(|| s.image(id)).await
}

async fn wait_gone<T, F, Fut>(mut get: F) -> Result<u64, Fail>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, Fail>>,
{
    let mut backoff = Backoff::adaptive();
    let mut polls = 0;
    loop {
        polls += 1;
        if get().await?.is_none() {
            return Ok(polls);
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
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
