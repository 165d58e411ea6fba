//! The demo cloud's state: per virtual site, tokens, servers and images.
//! Time-driven states (BUILD -> ACTIVE, deleting -> gone) are computed from
//! timestamps when read, so 500 sites need no timers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};

/// Switchable faults (all sites).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Boot takes this long instead of the normal boot delay.
    pub slow_boot: Option<Duration>,
    /// New servers go to ERROR with a fault.
    pub error_state: bool,
    /// Glance records a checksum that does not match the uploaded data.
    pub wrong_checksum: bool,
    /// GLUE objects are older than their Validity; the IS API drops the site.
    pub stale_glue: bool,
    /// Nova `POST /servers` answers 503 with an HTML page.
    pub http_5xx: bool,
    /// Glance image data upload (`PUT .../file`, `.../stage`) never answers.
    pub hang: bool,
    /// Keystone rejects the federated token exchange (401).
    pub bad_token: bool,
    /// The site's accounting was last updated 40 days ago (spool and portal).
    pub stale_accounting: bool,
}

pub const FAULT_NAMES: [&str; 8] = [
    "slow-boot",
    "error-state",
    "wrong-checksum",
    "stale-glue",
    "5xx",
    "hang",
    "bad-token",
    "stale-accounting",
];

impl Faults {
    pub fn set(&mut self, name: &str, slow: Duration) -> Result<(), String> {
        match name {
            "slow-boot" => self.slow_boot = Some(slow),
            "error-state" => self.error_state = true,
            "wrong-checksum" => self.wrong_checksum = true,
            "stale-glue" => self.stale_glue = true,
            "5xx" => self.http_5xx = true,
            "hang" => self.hang = true,
            "bad-token" => self.bad_token = true,
            "stale-accounting" => self.stale_accounting = true,
            other => {
                return Err(format!(
                    "unknown fault {other:?}; known: {}",
                    FAULT_NAMES.join(", ")
                ))
            }
        }
        Ok(())
    }
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
    pub data: Option<Vec<u8>>,
    pub checksum: Option<String>,
    pub sha512: Option<String>,
    pub created_at: SystemTime,
    pub status: &'static str,
    pub importing_since: Option<Instant>,
    pub owner: String,
}

impl Image {
    pub fn current_status(&self, now: Instant) -> &'static str {
        match self.importing_since {
            Some(t) if now < t + Duration::from_millis(300) => "importing",
            Some(_) => "active",
            None => self.status,
        }
    }
}

pub struct Site {
    pub index: usize,
    pub name: String,
    pub tokens: HashSet<String>,
    /// Unscoped tokens (federation exchange) -> user.
    pub unscoped: HashSet<String>,
    pub servers: HashMap<String, Server>,
    pub server_order: Vec<String>,
    pub images: HashMap<String, Image>,
    pub image_order: Vec<String>,
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// A fresh UUID-shaped id (not cryptographic: a fixture).
pub fn new_id() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let h = hex(&Md5::digest(format!("{n}-{t}-{}", std::process::id())));
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// A deterministic id from a seed (project ids, network ids).
pub fn stable_id(seed: &str) -> String {
    hex(&Md5::digest(seed.as_bytes()))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
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
        };
        let data = b"demo base image".to_vec();
        let id = stable_id(&format!("{}-base-image", s.name));
        let id = format!(
            "{}-{}-{}-{}-{}",
            &id[0..8],
            &id[8..12],
            &id[12..16],
            &id[16..20],
            &id[20..32]
        );
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
        let checksum = hex(&Md5::digest(&data));
        let sha = hex(&sha2::Sha512::digest(&data));
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
                data: Some(data),
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

    pub fn project_id(&self, name: &str) -> String {
        stable_id(&format!("{}-project-{name}", self.name))
    }
}
