//! The cloud's state: per virtual site, tokens, servers and images.
//! Time-driven states (BUILD -> ACTIVE, deleting -> gone) are computed from
//! timestamps when read, so 500 sites need no timers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

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

/// A Cinder volume. Its status follows from timestamps like a server's.
pub struct Volume {
    pub id: String,
    pub name: String,
    pub size: u64,
    pub volume_type: String,
    pub metadata: serde_json::Value,
    pub created: Instant,
    pub created_at: SystemTime,
    /// Never leaves `creating` ([`Fault::VolumeStuckCreating`]).
    pub stuck: bool,
    /// Server and when the attach was asked; `fails`: rolls back to available.
    pub attach: Option<(String, Instant, bool)>,
    pub detach: Option<Instant>,
    pub deleted: Option<Instant>,
}

/// How long a volume transition (create, attach, detach, delete) takes.
pub const VOLUME_STEP: Duration = Duration::from_millis(300);
/// How long a failing attach stays `attaching` before it rolls back.
pub const ATTACH_ROLLBACK: Duration = Duration::from_millis(1500);

impl Volume {
    pub fn status(&self, now: Instant) -> &'static str {
        if let Some(t) = self.deleted {
            return if now < t + VOLUME_STEP {
                "deleting"
            } else {
                "deleted"
            };
        }
        if self.stuck || now < self.created + VOLUME_STEP {
            return "creating";
        }
        match (&self.attach, self.detach) {
            (None, _) => "available",
            (Some(_), Some(d)) if now < d + VOLUME_STEP => "detaching",
            (Some(_), Some(_)) => "available",
            (Some((_, t, true)), None) if now < *t + ATTACH_ROLLBACK => "attaching",
            (Some((_, _, true)), None) => "available",
            (Some((_, t, false)), None) if now < *t + VOLUME_STEP => "attaching",
            (Some(_), None) => "in-use",
        }
    }

    /// The server it is attached to now, if any.
    pub fn attached_to(&self, now: Instant) -> Option<&str> {
        match self.status(now) {
            "in-use" | "detaching" => self.attach.as_ref().map(|(s, _, _)| s.as_str()),
            _ => None,
        }
    }

    pub fn gone(&self, now: Instant) -> bool {
        self.deleted.is_some_and(|t| now >= t + VOLUME_STEP)
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
/// process's memory), freed with the last handle, even if the process dies.
#[derive(Clone)]
pub enum ImageData {
    Memory(bytes::Bytes),
    File { file: Arc<std::fs::File>, len: u64 },
}

/// Images up to this size stay in memory.
const IN_MEMORY: usize = 64 * 1024;

impl ImageData {
    pub fn len(&self) -> u64 {
        match self {
            ImageData::Memory(b) => b.len() as u64,
            ImageData::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Image data read off the wire as it arrives: hashed on the way in and
/// kept in memory up to [`IN_MEMORY`], then in an unlinked file, so a
/// thousand concurrent uploads do not each hold their whole body.
#[derive(Clone)]
pub struct Upload {
    pub data: ImageData,
    pub md5: String,
    pub sha512: String,
}

/// Why an upload was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum UploadError {
    TooLarge,
    Unreadable,
}

impl Upload {
    /// A body that is already in memory (tests, small requests).
    pub fn of(data: bytes::Bytes) -> Upload {
        use md5::Digest;
        let md5 = format!("{:x}", md5::Md5::digest(&data));
        let sha512 = format!("{:x}", sha2::Sha512::digest(&data));
        Upload {
            data: ImageData::Memory(data),
            md5,
            sha512,
        }
    }

    /// Read `body` frame by frame, at most `max` bytes.
    pub async fn spool<B>(mut body: B, max: usize) -> Result<Upload, UploadError>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Unpin,
    {
        use http_body_util::BodyExt;
        use md5::Digest;
        use std::io::Write;
        let (mut md5, mut sha512) = (md5::Md5::new(), sha2::Sha512::new());
        let mut mem = bytes::BytesMut::new();
        let mut file: Option<std::fs::File> = None;
        // No usable temp dir: keep the data in memory.
        let mut memory_only = false;
        let mut len = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| UploadError::Unreadable)?;
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            len += chunk.len();
            if len > max {
                return Err(UploadError::TooLarge);
            }
            md5.update(&chunk);
            sha512.update(&chunk);
            match file.as_mut() {
                Some(f) => f.write_all(&chunk).map_err(|_| UploadError::Unreadable)?,
                None if memory_only || mem.len() + chunk.len() <= IN_MEMORY => {
                    mem.extend_from_slice(&chunk)
                }
                None => match unlinked_file(&mem) {
                    Ok(mut f) => {
                        f.write_all(&chunk).map_err(|_| UploadError::Unreadable)?;
                        mem = bytes::BytesMut::new();
                        file = Some(f);
                    }
                    Err(_) => {
                        memory_only = true;
                        mem.extend_from_slice(&chunk);
                    }
                },
            }
        }
        let data = match file {
            Some(f) => ImageData::File {
                file: Arc::new(f),
                len: len as u64,
            },
            None => ImageData::Memory(mem.freeze()),
        };
        Ok(Upload {
            data,
            md5: format!("{:x}", md5.finalize()),
            sha512: format!("{:x}", sha512.finalize()),
        })
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
    pub volumes: HashMap<String, Volume>,
    pub volume_order: Vec<String>,
    /// Neutron's security groups, floating IPs and ports.
    pub net: crate::neutron::Net,
    /// Swift's accounts, containers and objects.
    pub swift: crate::swift::Store,
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
            volumes: HashMap::new(),
            volume_order: vec![],
            net: crate::neutron::Net::default(),
            swift: crate::swift::Store::default(),
        };
        let data = bytes::Bytes::from_static(fixtures::BASE_IMAGE_DATA);
        let id = fixtures::base_image_id(&s.name);
        let mut props = serde_json::Map::new();
        props.insert(
            "APPLIANCE_ATTRIBUTES".into(),
            serde_json::Value::String(fixtures::base_image_attributes().to_string()),
        );
        props.insert("os_distro".into(), "ubuntu".into());
        props.insert("os_version".into(), "22.04".into());
        props.insert("architecture".into(), "x86_64".into());
        let up = Upload::of(data);
        s.images.insert(
            id.clone(),
            Image {
                id: id.clone(),
                name: fixtures::BASE_IMAGE_TITLE.into(),
                disk_format: Some("qcow2".into()),
                container_format: Some("bare".into()),
                visibility: "public".into(),
                protected: true,
                props,
                data: Some(up.data),
                checksum: Some(up.md5),
                sha512: Some(up.sha512),
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
