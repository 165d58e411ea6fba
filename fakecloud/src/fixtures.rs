//! Fixed facts of the emulated sites: flavors, the identity provider, the
//! VOs, and how ids are made.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use md5::{Digest, Md5};

pub struct Flavor {
    pub id: &'static str,
    pub name: &'static str,
    pub vcpus: u32,
    pub ram_mb: u32,
    pub disk_gb: u32,
}

pub const FLAVORS: [Flavor; 3] = [
    Flavor {
        id: "1",
        name: "m1.tiny",
        vcpus: 1,
        ram_mb: 512,
        disk_gb: 1,
    },
    Flavor {
        id: "2",
        name: "m1.small",
        vcpus: 1,
        ram_mb: 2048,
        disk_gb: 20,
    },
    Flavor {
        id: "3",
        name: "m1.medium",
        vcpus: 2,
        ram_mb: 4096,
        disk_gb: 40,
    },
];

/// The flavor with this id, or the smallest one.
pub fn flavor(id: &str) -> &'static Flavor {
    FLAVORS.iter().find(|f| f.id == id).unwrap_or(&FLAVORS[0])
}

/// The federated identity provider (Keystone's id for it).
pub const IDP: &str = "egi.eu";
/// The OIDC client the monitor authenticates as.
pub const CLIENT_ID: &str = "fedprobe-demo";
/// The VOs; each site has one project per VO.
pub const VOS: [&str; 2] = ["ops", "vo.access.egi.eu"];

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// A fresh UUID-shaped id (not cryptographic: a fixture).
pub fn new_id() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let h = format!(
        "{:x}",
        Md5::digest(format!("{n}-{t}-{}", std::process::id()))
    );
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// A deterministic 32-hex id from a seed (project ids, network ids).
pub fn stable_id(seed: &str) -> String {
    format!("{:x}", Md5::digest(seed.as_bytes()))
}

/// [`stable_id`] in the 8-4-4-4-12 UUID layout.
pub fn stable_uuid(seed: &str) -> String {
    let h = stable_id(seed);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The id of the public base image every site starts with.
pub fn base_image_id(site_name: &str) -> String {
    stable_uuid(&format!("{site_name}-base-image"))
}

/// The base image's bytes (every site has the same copy).
pub const BASE_IMAGE_DATA: &[u8] = b"demo base image";
/// The image registry's reference of the base image (`eu.egi.cloud.image_ref`,
/// what `--registry-image` names).
pub const BASE_IMAGE_REF: &str = "egi.ubuntu.22.04";
/// The base image in the VO's HEPiX image list: its identifier, version
/// and marketplace URI, which the synchroniser copies into the site's
/// `APPLIANCE_ATTRIBUTES`.
pub const BASE_IMAGE_IDENTIFIER: &str = "5f0d7c2e-8a4b-4c1d-9e3f-2b6a8d4c1e07";
pub const BASE_IMAGE_VERSION: &str = "2026.01.01";
pub const BASE_IMAGE_MPURI: &str =
    "https://appdb.egi.eu/store/vo/image/5f0d7c2e-8a4b-4c1d-9e3f-2b6a8d4c1e07:1/";
pub const BASE_IMAGE_TITLE: &str = "EGI Ubuntu 22.04";

/// The base image's `APPLIANCE_ATTRIBUTES`: the registry's attributes as
/// atrope writes them (the list entry's `dc:`/`hv:`/`ad:` keys) with the
/// registry's `eu.egi.cloud.*` ones.
pub fn base_image_attributes() -> serde_json::Value {
    serde_json::json!({
        "eu.egi.cloud.image_ref": BASE_IMAGE_REF,
        "eu.egi.cloud.tag": BASE_IMAGE_VERSION,
        "dc:identifier": BASE_IMAGE_IDENTIFIER,
        "dc:title": BASE_IMAGE_TITLE,
        "hv:version": BASE_IMAGE_VERSION,
        "ad:mpuri": BASE_IMAGE_MPURI,
        "sl:checksum:sha512": base_image_sha512(),
    })
}

pub fn base_image_sha512() -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha512::digest(BASE_IMAGE_DATA))
}

/// The image list a VO subscribes the sites to, in the registry's HEPiX
/// JSON (the payload of the signed list): the base image, at its version
/// and checksum. What `check_appliances --appliances-list` reads.
pub fn image_list(vo: &str) -> serde_json::Value {
    serde_json::json!({"hv:imagelist": {
        "dc:identifier": stable_uuid(&format!("image-list-{vo}")),
        "dc:title": format!("Image list for VO {vo}"),
        "dc:date:created": "2026-01-01T00:00:00Z",
        "dc:date:expires": "2099-12-31T00:00:00Z",
        "hv:version": BASE_IMAGE_VERSION,
        "ad:vo": vo,
        "hv:images": [{"hv:image": {
            "dc:identifier": BASE_IMAGE_IDENTIFIER,
            "dc:title": BASE_IMAGE_TITLE,
            "hv:version": BASE_IMAGE_VERSION,
            "ad:mpuri": BASE_IMAGE_MPURI,
            "sl:checksum:sha512": base_image_sha512(),
            "hv:size": BASE_IMAGE_DATA.len(),
            "hv:format": "qcow2",
            "sl:arch": "x86_64",
            "sl:os": "Linux",
            "sl:osname": "Ubuntu",
            "sl:osversion": "22.04",
        }}],
    }})
}

/// A project's id at a site.
pub fn project_id(site_name: &str, vo: &str) -> String {
    stable_id(&format!("{site_name}-project-{vo}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_their_shapes() {
        let a = new_id();
        assert_eq!(a.len(), 36);
        assert_ne!(a, new_id());
        assert_eq!(stable_id("x"), "9dd4e461268c8034f5c8564e155c67a6");
        assert_eq!(stable_uuid("x"), "9dd4e461-268c-8034-f5c8-564e155c67a6");
        assert_eq!(flavor("3").name, "m1.medium");
        assert_eq!(flavor("nope").id, "1");
    }
}
