//! `fedprobe demo`: a reference cloud served in-process on loopback (plain
//! http on 127.0.0.1), any number of virtual sites, switchable faults. A
//! fixture for the demo and the scale benchmark, not a substitute for the
//! real services in tests.

mod accounting;
mod glance;
mod infosys;
mod keystone;
mod nova;
pub mod server;
pub mod state;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

pub use server::Cloud;
pub use state::{Faults, FAULT_NAMES};

use crate::profile::Profile;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub sites: usize,
    pub boot_delay: Duration,
    pub faults: Faults,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            sites: 1,
            boot_delay: Duration::from_secs(1),
            faults: Faults::default(),
        }
    }
}

pub struct Demo {
    pub addr: SocketAddr,
    pub cloud: Arc<Cloud>,
    /// Holds the monitor's access token (and the OIDC client secret).
    pub token_file: PathBuf,
    pub client_secret_file: PathBuf,
    dir: tempfile::TempDir,
    shutdown: watch::Sender<bool>,
}

pub fn site_name(i: usize) -> String {
    format!("DEMO-{i:03}")
}

impl Demo {
    pub async fn start(opts: DemoOptions) -> std::io::Result<Demo> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let base = format!("http://{addr}");
        let seed = state::new_id();
        let cloud = Arc::new(Cloud {
            base,
            // Secrets are scrubbed by any 8-byte window: no words shared
            // with flag names ("-access-" would hide "--access-token").
            access_token: format!("demoAT{}", seed.replace('-', "")),
            client_secret: format!("demoCS{}", &state::new_id()[..8]),
            boot_delay: opts.boot_delay,
            faults: opts.faults,
            sites: (0..opts.sites.max(1))
                .map(|i| Mutex::new(state::Site::new(i, site_name(i))))
                .collect(),
            started: SystemTime::now(),
        });
        // The token is a secret like any other: scrub it from every output.
        let _ = probes::secret::Secret::new(cloud.access_token.clone());
        let _ = probes::secret::Secret::new(cloud.client_secret.clone());
        let dir = tempfile::Builder::new()
            .prefix("fedprobe-demo-")
            .tempdir()?;
        let token_file = dir.path().join("access-token");
        crate::profile::write_private(&token_file, &cloud.access_token)?;
        let client_secret_file = dir.path().join("client-secret");
        crate::profile::write_private(&client_secret_file, &cloud.client_secret)?;
        // What cASO left in each site's spool at its last run.
        let last = accounting::last_update(&cloud);
        for (i, site) in cloud.sites.iter().enumerate() {
            if let Ok(site) = site.lock() {
                accounting::write_spool(&accounting::spool_dir(dir.path(), i), &site, last)?;
            }
        }
        let (shutdown, rx) = watch::channel(false);
        let c = cloud.clone();
        tokio::spawn(async move {
            let mut stop = rx.clone();
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stop.wait_for(|s| *s) => return,
                };
                let Ok((stream, _)) = accepted else { continue };
                let c = c.clone();
                let mut stop = rx.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| server::handle(c.clone(), req));
                    let conn = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = stop.wait_for(|s| *s) => {}
                    }
                });
            }
        });
        Ok(Demo {
            addr,
            cloud,
            token_file,
            client_secret_file,
            dir,
            shutdown,
        })
    }

    pub fn base(&self) -> &str {
        &self.cloud.base
    }

    pub fn sites(&self) -> usize {
        self.cloud.sites.len()
    }

    pub fn keystone(&self, i: usize) -> String {
        format!("{}/s{i}/identity/v3", self.base())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Site `i`'s APEL spool (cASO's dirq layout).
    pub fn apel_dir(&self, i: usize) -> PathBuf {
        accounting::spool_dir(self.dir.path(), i)
    }

    /// A site profile for virtual site `i`, as a user would write it.
    pub fn profile_text(&self, i: usize, probe_timeout: Option<&str>) -> String {
        let b = self.base();
        let timeout = probe_timeout
            .map(|t| format!("timeout = \"{t}\"\n"))
            .unwrap_or_default();
        format!(
            r#"# Generated by `fedprobe demo` for its in-process reference site.
site = "{name}"
guideline = "{guideline}"
vos = ["ops", "vo.access.egi.eu"]

[endpoints]
keystone = "{keystone}"
glue = "{b}/s{i}/glue.json"
glue-url = "{b}/s{i}/glue.json"
is = "{b}/is"
is-url = "{b}/is"
oidc-issuer = "{b}/oidc"

[credentials.access_token]
file = "{token}"

[defaults]
{timeout}identity-provider = "{idp}"
site-name = "{name}"
site = "{name}"

[probe.check_vm_lifecycle]
registry-image = "egi.ubuntu.22.04"

[probe.check_usage]
apel-dir = "{apel}"
last-update-url = "{b}/s{i}/accounting/last-update"
"#,
            name = site_name(i),
            guideline = crate::guideline::DEFAULT_ID,
            keystone = self.keystone(i),
            token = self.token_file.display(),
            apel = self.apel_dir(i).display(),
            idp = server::IDP,
        )
    }

    pub fn profile(&self, i: usize, probe_timeout: Option<&str>) -> Result<Profile, String> {
        Profile::parse(
            &self.profile_text(i, probe_timeout),
            &format!("demo profile {}", site_name(i)),
        )
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
