//! The cloud's state: per virtual site, tokens, servers and images.
//! Time-driven states (BUILD -> ACTIVE, deleting -> gone) are computed from
//! timestamps when read, so 500 sites need no timers.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use md5::{Digest, Md5};

use crate::faults::{Fault, Faults};
use crate::fixtures;

/// One process serving any number of virtual sites.
pub struct Cloud {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// What the OIDC provider issues and Keystone accepts.
    pub access_token: String,
    pub client_secret: String,
    pub boot_delay: Duration,
    pub faults: Faults,
    pub sites: Vec<Mutex<Site>>,
    pub started: SystemTime,
    /// The emulated orchestrator's deployments (`/im`).
    pub deployments: Mutex<Vec<Deployment>>,
}

/// One deployment of the emulated orchestrator: a server of one site.
pub struct Deployment {
    pub id: String,
    pub site: usize,
    /// The RADL system's name.
    pub system: String,
    pub server: String,
    pub radl: String,
}

impl Cloud {
    pub fn new(base: String, sites: usize, boot_delay: Duration, faults: Faults) -> Cloud {
        let seed = fixtures::new_id().replace('-', "");
        Cloud {
            base,
            // Secrets are scrubbed by any 8-byte window: no words shared
            // with flag names ("-access-" would hide "--access-token").
            access_token: format!("demoAT{seed}"),
            client_secret: format!("demoCS{}", &fixtures::new_id()[..8]),
            boot_delay,
            faults,
            sites: (0..sites.max(1))
                .map(|i| Mutex::new(Site::new(i, site_name(i))))
                .collect(),
            started: SystemTime::now(),
            deployments: Mutex::new(Vec::new()),
        }
    }

    pub fn fault(&self, f: Fault) -> bool {
        self.faults.has(f)
    }

    /// Site `i`'s state, `None` if out of range or its lock is poisoned.
    pub fn site(&self, i: usize) -> Option<MutexGuard<'_, Site>> {
        self.sites.get(i)?.lock().ok()
    }

    /// `{base}/s{i}`: where site `i`'s services live.
    pub fn site_base(&self, i: usize) -> String {
        format!("{}/s{i}", self.base)
    }

    /// Site `i`'s Keystone v3 URL.
    pub fn keystone(&self, i: usize) -> String {
        format!("{}/identity/v3", self.site_base(i))
    }
}

/// The name of virtual site `i`.
pub fn site_name(i: usize) -> String {
    format!("DEMO-{i:03}")
}

pub struct Server {
    pub id: String,
    pub name: String,
    pub flavor: String,
    pub image: String,
    pub metadata: serde_json::Value,
    pub created: Instant,
    pub created_at: SystemTime,
    pub boot: Duration,
    pub error: bool,
    pub deleted: Option<(Instant, SystemTime)>,
}

/// How long a deleted server stays visible (status DELETED, task deleting).
pub const DELETE_DELAY: Duration = Duration::from_millis(300);

impl Server {
    pub fn status(&self, now: Instant) -> &'static str {
        if let Some((t, _)) = self.deleted {
            return if now < t + DELETE_DELAY {
                "ACTIVE"
            } else {
                "DELETED"
            };
        }
        let boot = if self.error {
            Duration::from_millis(200)
        } else {
            self.boot
        };
        if now < self.created + boot {
            "BUILD"
        } else if self.error {
            "ERROR"
        } else {
            "ACTIVE"
        }
    }

    pub fn gone(&self, now: Instant) -> bool {
        self.deleted.is_some_and(|(t, _)| now >= t + DELETE_DELAY)
    }
}

pub struct Image {
    pub id: String,
    pub name: String,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub visibility: String,
    pub protected: bool,
    pub props: serde_json::Map<String, serde_json::Value>,
    pub data: Option<ImageData>,
    pub checksum: Option<String>,
    pub sha512: Option<String>,
    pub created_at: SystemTime,
    pub status: &'static str,
    pub importing_since: Option<Instant>,
    pub owner: String,
}

/// An image's bytes. Large ones live in an unlinked temporary file (the
/// demo serves a thousand sites uploading at once: page cache, not the
/// process's memory), freed with the handle, even if the process dies.
pub enum ImageData {
    Memory(bytes::Bytes),
    File { file: std::fs::File, len: u64 },
}

/// Images up to this size stay in memory.
const IN_MEMORY: usize = 64 * 1024;

impl ImageData {
    pub fn new(data: bytes::Bytes) -> ImageData {
        if data.len() <= IN_MEMORY {
            return ImageData::Memory(data);
        }
        match unlinked_file(&data) {
            Ok(file) => ImageData::File {
                file,
                len: data.len() as u64,
            },
            // No usable temp dir: keep serving from memory.
            Err(_) => ImageData::Memory(data),
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            ImageData::Memory(b) => b.len() as u64,
            ImageData::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, read back for one answer.
    pub fn read(&self) -> std::io::Result<bytes::Bytes> {
        match self {
            ImageData::Memory(b) => Ok(b.clone()),
            ImageData::File { file, len } => {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; *len as usize];
                file.read_exact_at(&mut buf, 0)?;
                Ok(buf.into())
            }
        }
    }
}

fn unlinked_file(data: &[u8]) -> std::io::Result<std::fs::File> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "fakecloud-image-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    let _ = std::fs::remove_file(&path);
    file.write_all(data)?;
    Ok(file)
}

impl Image {
    pub fn current_status(&self, now: Instant) -> &'static str {
        match self.importing_since {
            Some(t) if now < t + Duration::from_millis(300) => "importing",
            Some(_) => "active",
            None => self.status,
        }
    }

    /// The APPLIANCE_ATTRIBUTES property (a JSON text), parsed.
    pub fn appliance_attributes(&self) -> Option<serde_json::Value> {
        self.props
            .get("APPLIANCE_ATTRIBUTES")
            .and_then(serde_json::Value::as_str)
            .and_then(|s| serde_json::from_str(s).ok())
    }
}

pub struct Site {
    pub index: usize,
    pub name: String,
    /// Project-scoped tokens.
    pub tokens: HashSet<String>,
    /// Unscoped tokens (federation exchange).
    pub unscoped: HashSet<String>,
    pub servers: HashMap<String, Server>,
    pub server_order: Vec<String>,
    pub images: HashMap<String, Image>,
    pub image_order: Vec<String>,
    /// Neutron's security groups, floating IPs and ports.
    pub net: crate::neutron::Net,
}

impl Site {
    pub fn new(index: usize, name: String) -> Site {
        let mut s = Site {
            index,
            name,
            tokens: HashSet::new(),
            unscoped: HashSet::new(),
            servers: HashMap::new(),
            server_order: vec![],
            images: HashMap::new(),
            image_order: vec![],
            net: crate::neutron::Net::default(),
        };
        let data = bytes::Bytes::from_static(b"demo base image");
        let id = fixtures::base_image_id(&s.name);
        let mut props = serde_json::Map::new();
        props.insert(
            "APPLIANCE_ATTRIBUTES".into(),
            serde_json::Value::String(
                serde_json::json!({
                    "eu.egi.cloud.image_ref": "egi.ubuntu.22.04",
                    "eu.egi.cloud.tag": "2026.01.01",
                })
                .to_string(),
            ),
        );
        props.insert("os_distro".into(), "ubuntu".into());
        props.insert("os_version".into(), "22.04".into());
        props.insert("architecture".into(), "x86_64".into());
        let checksum = format!("{:x}", Md5::digest(&data));
        let sha = format!("{:x}", sha2::Sha512::digest(&data));
        s.images.insert(
            id.clone(),
            Image {
                id: id.clone(),
                name: "EGI Ubuntu 22.04".into(),
                disk_format: Some("qcow2".into()),
                container_format: Some("bare".into()),
                visibility: "public".into(),
                protected: true,
                props,
                data: Some(ImageData::new(data)),
                checksum: Some(checksum),
                sha512: Some(sha),
                created_at: SystemTime::now(),
                status: "active",
                importing_since: None,
                owner: "admin".into(),
            },
        );
        s.image_order.push(id);
        s
    }

    pub fn project_id(&self, vo: &str) -> String {
        fixtures::project_id(&self.name, vo)
    }

    /// The VO whose project has this id.
    pub fn vo_of(&self, project_id: &str) -> Option<&'static str> {
        fixtures::VOS
            .iter()
            .find(|v| self.project_id(v) == project_id)
            .copied()
    }

    /// A project-scoped token of this site.
    pub fn scoped(&self, token: Option<&str>) -> bool {
        token.is_some_and(|t| self.tokens.contains(t))
    }

    /// Any token of this site, scoped or not.
    pub fn known(&self, token: Option<&str>) -> bool {
        token.is_some_and(|t| self.tokens.contains(t) || self.unscoped.contains(t))
    }
}
