//! The probe logic runs on any `Compute` backend: an in-memory cloud (no
//! HTTP at all) gets the same stages, reaping, deadlines and cleanup.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use probes::backend::{
    Backend, Compute, Flavor, ImageQuery, ImageRef, NetworkChoice, ServerPhase, ServerSpec,
    ServerState,
};
use probes::checks::vm_lifecycle::{lifecycle, Plan, HOST_KEY};
use probes::ctx::Settings;
use probes::deadline::{Deadline, WithDeadline};
use probes::http::TlsOptions;
use probes::model::Cleanup;
use probes::runner::{execute, RunOptions};
use probes::{Fail, Status};

#[derive(Default)]
struct Cloud {
    servers: BTreeMap<String, (ServerState, u32)>,
    next: u32,
    deletes: Vec<String>,
}

#[derive(Clone, Default)]
struct Memory(Arc<Mutex<Cloud>>);

impl WithDeadline for Memory {
    fn with_deadline(&self, _deadline: Deadline) -> Self {
        self.clone()
    }
}

impl Backend for Memory {
    fn describe(&self) -> String {
        "in-memory cloud".into()
    }
}

impl Compute for Memory {
    async fn api_version(&mut self) -> Result<String, Fail> {
        Ok("memory v1".into())
    }

    async fn find_image(&self, q: &ImageQuery) -> Result<ImageRef, Fail> {
        match q {
            ImageQuery::AppDb(a) if a == "1017" => Ok(ImageRef {
                id: "ami-1".into(),
                name: "monitoring".into(),
            }),
            _ => Err(Fail::critical("no such image")),
        }
    }
    async fn pick_flavor(&self, _w: Option<&str>, min: u64) -> Result<Flavor, Fail> {
        Ok(Flavor {
            id: "t3.small".into(),
            name: "t3.small".into(),
            vcpus: 2,
            ram_mb: 2048,
            disk_gb: min,
        })
    }
    async fn pick_network(&self) -> Result<NetworkChoice, Fail> {
        Ok(NetworkChoice::Auto)
    }
    async fn create_server(&self, spec: &ServerSpec) -> Result<String, Fail> {
        let mut c = self.0.lock().unwrap();
        c.next += 1;
        let id = format!("i-{}", c.next);
        let s = ServerState {
            id: id.clone(),
            name: spec.name.clone(),
            phase: ServerPhase::Building,
            status_text: "pending".into(),
            metadata: spec.metadata.clone(),
            ..Default::default()
        };
        c.servers.insert(id.clone(), (s, 2));
        Ok(id)
    }
    async fn server(&self, id: &str) -> Result<Option<ServerState>, Fail> {
        let mut c = self.0.lock().unwrap();
        Ok(c.servers.get_mut(id).map(|(s, left)| {
            if *left == 0 {
                s.phase = ServerPhase::Active;
                s.status_text = "running".into();
            } else {
                *left -= 1;
            }
            s.clone()
        }))
    }
    async fn delete_server(&self, id: &str) -> Result<bool, Fail> {
        let mut c = self.0.lock().unwrap();
        c.deletes.push(id.into());
        Ok(c.servers.remove(id).is_some())
    }
    async fn servers_tagged(&self, key: &str) -> Result<Vec<ServerState>, Fail> {
        let c = self.0.lock().unwrap();
        Ok(c.servers
            .values()
            .filter(|(s, _)| s.metadata.contains_key(key))
            .map(|(s, _)| s.clone())
            .collect())
    }
}

fn opts() -> RunOptions {
    RunOptions {
        probe: "check_vm_lifecycle".into(),
        label: "VM_LIFECYCLE".into(),
        timeout: Duration::from_secs(20),
        timeout_status: Status::Unknown,
        cleanup_grace: None,
        tls: TlsOptions::default(),
        settings: Settings {
            verbosity: 1,
            ..Default::default()
        },
        events: None,
    }
}

fn plan() -> Plan {
    Plan {
        image: ImageQuery::AppDb("1017".into()),
        flavor: None,
        vm_timeout: Duration::from_secs(10),
        poll_interval: Some(Duration::from_millis(10)),
        host: "mon.example".into(),
        reap_ttl: Duration::from_secs(86400),
        run_id: "0000000abc".into(),
        ends_by: probes::clock::now_unix() + 60.0,
    }
}

#[tokio::test]
async fn lifecycle_runs_unchanged_on_another_backend() {
    let cloud = Memory::default();
    // a leftover of this monitoring host
    let mut meta = BTreeMap::new();
    meta.insert(HOST_KEY.to_string(), "mon.example".to_string());
    cloud.0.lock().unwrap().servers.insert(
        "i-old".into(),
        (
            ServerState {
                id: "i-old".into(),
                name: "fedprobe-old".into(),
                phase: ServerPhase::Active,
                metadata: meta,
                ..Default::default()
            },
            0,
        ),
    );
    let c2 = cloud.clone();
    let r = execute(opts(), std::future::pending(), move |ctx| async move {
        lifecycle(&ctx, &c2, &plan()).await
    })
    .await;
    assert_eq!(r.status, Status::Warning, "{}", r.summary);
    assert!(r.summary.contains("i-old"), "{}", r.summary);
    assert_eq!(r.resources[0].id, "i-1");
    assert_eq!(r.resources[0].cleanup, Cleanup::Deleted);
    let c = cloud.0.lock().unwrap();
    assert!(c.servers.is_empty());
    assert_eq!(c.deletes, vec!["i-old".to_string(), "i-1".to_string()]);
    let polls = r.perfdata.iter().find(|p| p.label == "polls").unwrap();
    assert_eq!(polls.value, Some(3.0));
}
