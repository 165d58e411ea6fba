//! The OpenNebula backend: VMs (`one.vm.*`), images and persistent DATABLOCK
//! images as volumes (`one.image.*`), usage from `one.vmpool.accounting`,
//! all over oned's XML-RPC API. Tags are template attributes
//! (`fedprobe-run` → `FEDPROBE_RUN`), which oned keeps in the VM's
//! USER_TEMPLATE and the image's TEMPLATE.

mod catalog;
mod images;
mod login;
mod states;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Mutex;

use super::{
    Backend, Compute, Flavor, ImageQuery, ImageRef, NetworkChoice, ServerSpec, ServerState, Usage,
    UsageRecord, VolumeSpec, VolumeState, Volumes,
};
use crate::auth::opennebula::OpenNebulaArgs;
use crate::clients::opennebula::{
    self as one, child, children, id_arg, int, int_at, string, text_at, Doc, One,
};
use crate::deadline::{Deadline, WithDeadline};
use crate::fail::Fail;

pub use login::login;

/// Pool filter: the connected user's resources.
const MINE: i64 = -3;

#[derive(Clone)]
pub struct OpenNebula {
    one: One,
    args: OpenNebulaArgs,
    version: Option<String>,
    /// Image uploads waiting for oned to fetch their bytes (see `images`).
    serving: Arc<Mutex<BTreeMap<String, images::Serving>>>,
}

impl OpenNebula {
    pub fn new(one: One, args: OpenNebulaArgs) -> OpenNebula {
        OpenNebula {
            one,
            args,
            version: None,
            serving: Arc::default(),
        }
    }

    async fn vm_doc(&self, id: &str) -> Result<Option<Doc>, Fail> {
        let r = self
            .one
            .try_call("one.vm.info", vec![id_arg(id)?, one::Value::Boolean(false)])
            .await?;
        match r {
            Ok(v) => Ok(Some(Doc::new(one::as_string("one.vm.info", v)?))),
            Err(r) if r.code == one::NO_EXISTS => Ok(None),
            Err(r) => Err(one::refused("one.vm.info", &r)),
        }
    }

    async fn image_doc(&self, id: &str) -> Result<Option<Doc>, Fail> {
        let r = self
            .one
            .try_call(
                "one.image.info",
                vec![id_arg(id)?, one::Value::Boolean(false)],
            )
            .await?;
        match r {
            Ok(v) => Ok(Some(Doc::new(one::as_string("one.image.info", v)?))),
            Err(r) if r.code == one::NO_EXISTS => Ok(None),
            Err(r) => Err(one::refused("one.image.info", &r)),
        }
    }

    async fn image_pool(&self) -> Result<Doc, Fail> {
        let xml = self
            .one
            .call_xml("one.imagepool.info", vec![int(MINE), int(-1), int(-1)])
            .await?;
        Ok(Doc::new(xml))
    }

    /// `one.image.delete`; false when it was already gone.
    async fn delete_image_id(&self, id: &str) -> Result<bool, Fail> {
        let r = self
            .one
            .try_call(
                "one.image.delete",
                vec![id_arg(id)?, one::Value::Boolean(false)],
            )
            .await?;
        match r {
            Ok(_) => Ok(true),
            Err(r) if r.code == one::NO_EXISTS => Ok(false),
            Err(r) => Err(one::refused("one.image.delete", &r)),
        }
    }
}

impl OpenNebula {
    /// A made-up secret for the logged-in user must be refused as oned
    /// refuses a bad session (error 0x100); accepted is CRITICAL.
    pub async fn garbage_session_refused(&self) -> Result<String, Fail> {
        // Random hex only: a Secret's 8-byte pieces are scrubbed from all
        // output, so a word in it ("fedprobe-...") would vanish from reports.
        let bogus = crate::secret::Secret::new(format!("{}{}", super::run_id(), super::run_id()));
        let r = self
            .one
            .with_secret(bogus)
            .try_call("one.user.info", vec![int(-1)])
            .await?;
        match r {
            Err(r) if r.code == one::AUTHENTICATION => Ok(format!(
                "a made-up secret was refused (oned error 0x{:04x})",
                r.code
            )),
            Err(r) => Err(Fail::critical(format!(
                "a made-up secret got oned error 0x{:04x}, not 0x0100 (authentication): {}",
                r.code,
                crate::text::one_line(&r.message, 200)
            ))),
            Ok(_) => Err(Fail::critical(
                "a made-up secret was ACCEPTED by one.user.info: the site authenticates nothing",
            )),
        }
    }
}

impl WithDeadline for OpenNebula {
    fn with_deadline(&self, deadline: Deadline) -> Self {
        let http = self.one_http().with_deadline(deadline);
        OpenNebula {
            one: self.one.with_http(http),
            ..self.clone()
        }
    }
}

impl OpenNebula {
    fn one_http(&self) -> crate::http::Http {
        self.one.http().clone()
    }
}

impl Backend for OpenNebula {
    fn describe(&self) -> String {
        format!(
            "OpenNebula XML-RPC {} (oned {})",
            crate::http::show_url(self.one.endpoint()),
            self.version.as_deref().unwrap_or("version unknown")
        )
    }
}

/// The user-visible tags of a template: our attributes back to keys.
fn tags(template: Option<roxmltree::Node<'_, '_>>) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let Some(t) = template else { return m };
    for c in t.children().filter(|c| c.is_element()) {
        let name = c.tag_name().name();
        // only leaf attributes; vectors (DISK=[...]) are not tags
        if c.children().any(|x| x.is_element()) {
            continue;
        }
        m.insert(
            one::key_name(name),
            c.text().unwrap_or("").trim().to_string(),
        );
    }
    m
}

fn tag_lines(metadata: &BTreeMap<String, String>) -> String {
    metadata
        .iter()
        .map(|(k, v)| format!("{}={}\n", one::attr_name(k), one::quote(v)))
        .collect()
}

fn server_state(vm: roxmltree::Node<'_, '_>) -> Result<Option<ServerState>, Fail> {
    let (Some(state), Some(lcm)) = (int_at(vm, "STATE"), int_at(vm, "LCM_STATE")) else {
        return Err(Fail::critical("VM document without STATE/LCM_STATE"));
    };
    if state == states::VM_DONE {
        return Ok(None);
    }
    let reason = text_at(vm, "USER_TEMPLATE/ERROR/MESSAGE")
        .or_else(|| text_at(vm, "USER_TEMPLATE/ERROR"))
        .or_else(|| text_at(vm, "TEMPLATE/ERROR"))
        .filter(|s| !s.is_empty())
        .map(String::from);
    let stime = int_at(vm, "STIME").filter(|t| *t > 0).map(|t| t as f64);
    Ok(Some(ServerState {
        id: text_at(vm, "ID").unwrap_or("").to_string(),
        name: text_at(vm, "NAME").unwrap_or("").to_string(),
        phase: states::server_phase(state, lcm, reason),
        status_text: states::vm_text(state, lcm),
        metadata: tags(child(vm, "USER_TEMPLATE")),
        created: stime,
        launched_at: None,
    }))
}

fn volume_state(img: roxmltree::Node<'_, '_>) -> VolumeState {
    let state = int_at(img, "STATE").unwrap_or(-1);
    let reason = text_at(img, "TEMPLATE/ERROR")
        .filter(|s| !s.is_empty())
        .map(String::from);
    let attached_to: Vec<String> = child(img, "VMS")
        .map(|v| {
            children(v, "ID")
                .map(|i| i.text().unwrap_or("").trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    let size_mb = int_at(img, "SIZE").unwrap_or(0).max(0) as u64;
    VolumeState {
        id: text_at(img, "ID").unwrap_or("").to_string(),
        name: text_at(img, "NAME").unwrap_or("").to_string(),
        phase: states::volume_phase(state, reason),
        status_text: states::image_text(state),
        size_gb: Some(size_mb.div_ceil(1024)),
        attached_to,
        metadata: tags(child(img, "TEMPLATE")),
        created: int_at(img, "REGTIME").map(|t| t as f64),
    }
}

impl Compute for OpenNebula {
    async fn api_version(&mut self) -> Result<String, Fail> {
        let v = self.one.call("one.system.version", vec![]).await?;
        self.version = Some(one::as_string("one.system.version", v)?);
        Ok(self.describe())
    }

    async fn find_image(&self, q: &ImageQuery) -> Result<ImageRef, Fail> {
        let ImageQuery::IdOrName(want) = q else {
            return Err(Fail::unknown(
                "OpenNebula images are found by --image ID or name only",
            ));
        };
        let xml = self
            .one
            .call_xml("one.imagepool.info", vec![int(-2), int(-1), int(-1)])
            .await?;
        let doc = Doc::new(xml);
        let d = doc.parse("one.imagepool.info")?;
        let all: Vec<_> = children(d.root_element(), "IMAGE").collect();
        let matching: Vec<_> = all
            .iter()
            .filter(|i| text_at(**i, "ID") == Some(want) || text_at(**i, "NAME") == Some(want))
            .collect();
        let usable = matching
            .iter()
            .find(|i| matches!(int_at(***i, "STATE"), Some(1) | Some(2)));
        match usable {
            Some(i) => Ok(ImageRef {
                id: text_at(**i, "ID").unwrap_or("").into(),
                name: text_at(**i, "NAME").unwrap_or("").into(),
            }),
            None if !matching.is_empty() => Err(Fail::critical(format!(
                "{} image(s) with id or name {want:?}, none READY or USED",
                matching.len()
            ))),
            None => Err(Fail::critical(format!(
                "no image with id or name {want:?} ({} images visible)",
                all.len()
            ))),
        }
    }

    async fn pick_flavor(&self, wanted: Option<&str>, _min_disk_gb: u64) -> Result<Flavor, Fail> {
        // OpenNebula has no flavors: CPU/MEMORY go into the VM template.
        if let Some(w) = wanted {
            return Err(Fail::unknown(format!(
                "--flavor {w}: OpenNebula has no flavors; use --opennebula-memory"
            )));
        }
        let mb = u64::from(self.args.memory_mb);
        Ok(Flavor {
            id: format!("memory={mb}"),
            name: format!("1 VCPU, {mb} MB"),
            vcpus: 1,
            ram_mb: mb,
            disk_gb: 0,
        })
    }

    async fn pick_network(&self) -> Result<NetworkChoice, Fail> {
        Ok(match &self.args.network {
            Some(n) => NetworkChoice::Network {
                id: n.clone(),
                name: n.clone(),
            },
            None => NetworkChoice::None,
        })
    }

    async fn create_server(&self, spec: &ServerSpec) -> Result<String, Fail> {
        let mut t = format!(
            "NAME={}\nCPU=\"0.1\"\nVCPU=\"1\"\nMEMORY=\"{}\"\nDISK=[IMAGE_ID=\"{}\"]\n",
            one::quote(&spec.name),
            self.args.memory_mb,
            one::as_int("image id", &id_arg(&spec.image_id)?)?
        );
        if let NetworkChoice::Network { id, .. } = &spec.network {
            t.push_str(&format!(
                "NIC=[NETWORK_ID=\"{}\"]\n",
                one::as_int("network id", &id_arg(id)?)?
            ));
        }
        t.push_str(&tag_lines(&spec.metadata));
        let id = self
            .one
            .call_id(
                "one.vm.allocate",
                vec![string(&t), one::Value::Boolean(false)],
            )
            .await?;
        Ok(id.to_string())
    }

    async fn server(&self, id: &str) -> Result<Option<ServerState>, Fail> {
        let Some(doc) = self.vm_doc(id).await? else {
            return Ok(None);
        };
        let d = doc.parse("one.vm.info")?;
        server_state(d.root_element())
    }

    async fn delete_server(&self, id: &str) -> Result<bool, Fail> {
        let r = self
            .one
            .try_call("one.vm.action", vec![string("terminate-hard"), id_arg(id)?])
            .await?;
        match r {
            Ok(_) => Ok(true),
            Err(r) if r.code == one::NO_EXISTS => Ok(false),
            // a VM already DONE refuses actions: it is gone
            Err(r) if r.code == one::ACTION && self.server(id).await?.is_none() => Ok(false),
            Err(r) => Err(one::refused("one.vm.action terminate-hard", &r)),
        }
    }

    async fn servers_tagged(&self, key: &str) -> Result<Vec<ServerState>, Fail> {
        let xml = self
            .one
            .call_xml(
                "one.vmpool.info",
                vec![int(MINE), int(-1), int(-1), int(-1)],
            )
            .await?;
        let doc = Doc::new(xml);
        let d = doc.parse("one.vmpool.info")?;
        let mut out = Vec::new();
        for vm in children(d.root_element(), "VM") {
            if let Some(s) = server_state(vm)? {
                if s.metadata.contains_key(key) {
                    out.push(s);
                }
            }
        }
        Ok(out)
    }
}

impl Volumes for OpenNebula {
    async fn create_volume(&self, spec: &VolumeSpec) -> Result<String, Fail> {
        let t = format!(
            "NAME={}\nTYPE=\"DATABLOCK\"\nPERSISTENT=\"YES\"\nSIZE=\"{}\"\n{}",
            one::quote(&spec.name),
            spec.size_gb.max(1) * 1024,
            tag_lines(&spec.metadata)
        );
        let id = self
            .one
            .call_id(
                "one.image.allocate",
                vec![
                    string(&t),
                    int(i64::from(self.args.datastore)),
                    one::Value::Boolean(false),
                ],
            )
            .await?;
        Ok(id.to_string())
    }

    async fn volume(&self, id: &str) -> Result<Option<VolumeState>, Fail> {
        let Some(doc) = self.image_doc(id).await? else {
            return Ok(None);
        };
        let d = doc.parse("one.image.info")?;
        Ok(Some(volume_state(d.root_element())))
    }

    async fn attach_volume(&self, server_id: &str, volume_id: &str) -> Result<(), Fail> {
        let image = one::as_int("volume id", &id_arg(volume_id)?)?;
        self.one
            .call(
                "one.vm.attach",
                vec![
                    id_arg(server_id)?,
                    string(&format!("DISK=[IMAGE_ID=\"{image}\"]")),
                ],
            )
            .await?;
        Ok(())
    }

    async fn detach_volume(&self, server_id: &str, volume_id: &str) -> Result<(), Fail> {
        let Some(doc) = self.vm_doc(server_id).await? else {
            return Err(Fail::critical(format!(
                "VM {server_id} is gone; cannot detach image {volume_id}"
            )));
        };
        let d = doc.parse("one.vm.info")?;
        let tmpl = child(d.root_element(), "TEMPLATE");
        let disk = tmpl
            .into_iter()
            .flat_map(|t| children(t, "DISK"))
            .find(|disk| text_at(*disk, "IMAGE_ID") == Some(volume_id.trim()));
        let Some(disk_id) = disk.and_then(|d| int_at(d, "DISK_ID")) else {
            return Err(Fail::critical(format!(
                "VM {server_id} has no DISK with IMAGE_ID {volume_id}"
            )));
        };
        self.one
            .call("one.vm.detach", vec![id_arg(server_id)?, int(disk_id)])
            .await?;
        Ok(())
    }

    async fn delete_volume(&self, id: &str) -> Result<bool, Fail> {
        self.delete_image_id(id).await
    }

    async fn volumes_tagged(&self, key: &str) -> Result<Vec<VolumeState>, Fail> {
        let doc = self.image_pool().await?;
        let d = doc.parse("one.imagepool.info")?;
        Ok(children(d.root_element(), "IMAGE")
            .map(volume_state)
            .filter(|v| v.metadata.contains_key(key))
            .collect())
    }
}

impl Usage for OpenNebula {
    /// `one.vmpool.accounting`: the history records (one per host stay) of
    /// the user's VMs in the window, summed per VM.
    async fn server_usage(&self, start: f64, end: f64) -> Result<Vec<UsageRecord>, Fail> {
        let xml = self
            .one
            .call_xml(
                "one.vmpool.accounting",
                vec![int(MINE), int(start as i64), int(end as i64)],
            )
            .await?;
        let doc = Doc::new(xml);
        let d = doc.parse("one.vmpool.accounting")?;
        let mut by_vm: BTreeMap<String, UsageRecord> = BTreeMap::new();
        for h in children(d.root_element(), "HISTORY") {
            let id = text_at(h, "OID").unwrap_or("").to_string();
            let stime = int_at(h, "STIME").unwrap_or(0) as f64;
            let etime = int_at(h, "ETIME").unwrap_or(0) as f64;
            let to = if etime > 0.0 { etime.min(end) } else { end };
            let hours = (to - stime.max(start)).max(0.0) / 3600.0;
            let vm = child(h, "VM");
            let r = by_vm.entry(id.clone()).or_insert_with(|| UsageRecord {
                id: id.clone(),
                name: vm
                    .and_then(|v| text_at(v, "NAME"))
                    .unwrap_or("")
                    .to_string(),
                vcpus: vm
                    .and_then(|v| int_at(v, "TEMPLATE/VCPU"))
                    .map(|x| x as u64),
                ram_mb: vm
                    .and_then(|v| int_at(v, "TEMPLATE/MEMORY"))
                    .map(|x| x as u64),
                size_gb: None,
                started: Some(stime),
                ended: None,
                hours: Some(0.0),
            });
            r.started = Some(r.started.unwrap_or(stime).min(stime));
            r.ended = (etime > 0.0).then_some(etime);
            r.hours = Some(r.hours.unwrap_or(0.0) + hours);
        }
        Ok(by_vm.into_values().collect())
    }

    /// Persistent DATABLOCK images (what this backend calls volumes) with
    /// their sizes from `one.imagepool.info`.
    async fn volume_usage(&self) -> Result<Vec<UsageRecord>, Fail> {
        let doc = self.image_pool().await?;
        let d = doc.parse("one.imagepool.info")?;
        Ok(children(d.root_element(), "IMAGE")
            .filter(|i| int_at(*i, "TYPE") == Some(states::IMAGE_DATABLOCK))
            .map(|i| {
                let v = volume_state(i);
                UsageRecord {
                    id: v.id,
                    name: v.name,
                    size_gb: v.size_gb,
                    started: v.created,
                    ..UsageRecord::default()
                }
            })
            .collect())
    }
}
