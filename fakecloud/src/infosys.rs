//! GLUE 2.1 cloud JSON as cloud-info-provider publishes it, and the
//! information-system API.

use std::time::{Duration, SystemTime};

use hyper::StatusCode;
use serde_json::{json, Value};

use crate::dates::iso;
use crate::faults::Fault;
use crate::fixtures::{FLAVORS, VOS};
use crate::http::{not_found, reply, Req, Resp};
use crate::state::Cloud;

fn glue_creation(c: &Cloud) -> SystemTime {
    if c.fault(Fault::StaleGlue) {
        SystemTime::now() - Duration::from_secs(2 * 86_400)
    } else {
        c.started
    }
}

pub fn glue(c: &Cloud, i: usize) -> Resp {
    let Some(site) = c.site(i) else {
        return not_found();
    };
    let keystone = c.keystone(i);
    let created = iso(glue_creation(c));
    let svc_id = format!("{keystone}_cloud.compute");
    let ep_id = format!("{keystone}_OpenStack_v3");
    let obj = |id: &str, name: &str| json!({"ID": id, "Name": name, "CreationTime": created, "Validity": 43200, "OtherInfo": {}, "Associations": {}});
    let mut svc = obj(&svc_id, &format!("Cloud Compute service at {}", site.name));
    svc["Type"] = json!("org.cloud.iaas");
    svc["QualityLevel"] = json!("production");
    svc["StatusInfo"] = json!("");
    svc["Capability"] = json!(["executionmanagement.dynamicvmdeploy", "security.accounting"]);
    svc["TotalVM"] = json!(site
        .servers
        .values()
        .filter(|s| s.deleted.is_none())
        .count());
    svc["OtherInfo"] = json!({"gocdb_id": format!("{}G0", 1000 + i), "site_name": site.name});
    svc["Associations"] = json!({"AdminDomain": [site.name]});
    let mut ep = obj(&ep_id, "OpenStack Keystone v3");
    for (k, v) in [
        ("URL", json!(keystone)),
        ("InterfaceName", json!("org.openstack.nova")),
        ("InterfaceVersion", json!("v2.1")),
        ("QualityLevel", json!("production")),
        ("HealthState", json!("ok")),
        ("ServingState", json!("production")),
        ("Technology", json!("webservice")),
        ("Implementor", json!("OpenStack Foundation")),
        ("ImplementationName", json!("OpenStack Nova")),
        ("ImplementationVersion", json!("30.0.0")),
        ("Authentication", json!("oidc")),
        ("IssuerCA", json!("")),
        ("TrustedCA", json!([])),
        ("Associations", json!({"CloudComputingService": [svc_id]})),
    ] {
        ep[k] = v;
    }
    let mut shares = Vec::new();
    let mut policies = Vec::new();
    for vo in VOS {
        let pid = site.project_id(vo);
        let sid = format!("{ep_id}_share_{vo}_{pid}");
        let mut sh = obj(&sid, vo);
        for (k, v) in [
            ("ProjectID", json!(pid)),
            ("InstanceMaxCPU", json!(2)),
            ("InstanceMaxRAM", json!(4096)),
            ("SLA", json!(null)),
            ("TotalVM", json!(0)),
            ("NetworkInfo", json!("private")),
            ("DefaultNetworkType", json!("private")),
            ("PublicNetworkName", json!("public")),
            (
                "OtherInfo",
                json!({"project_name": vo, "project_domain_name": "default", "quotas": {"instances": 10, "cores": 20}}),
            ),
            ("Associations", json!({"CloudComputingService": [svc_id]})),
        ] {
            sh[k] = v;
        }
        let mut pol = obj(&format!("{sid}_Policy"), &format!("Policy for {vo}"));
        pol["Rule"] = json!([format!("VO:{vo}")]);
        pol["Scheme"] = json!("org.glite.standard");
        pol["Associations"] = json!({"Share": [sid], "PolicyUserDomain": [vo]});
        shares.push(sh);
        policies.push(pol);
    }
    let images: Vec<Value> = site
        .image_order
        .iter()
        .filter_map(|id| site.images.get(id))
        .filter(|img| img.visibility == "public")
        .map(|img| {
            let mut o = obj(&img.id, &img.name);
            o["MarketplaceURL"] = json!("https://registry.egi.eu/egi_vm_images/ubuntu");
            o["OSPlatform"] = json!("x86_64");
            o["OSName"] = json!("ubuntu");
            o["OSVersion"] = json!("22.04");
            o["Description"] = json!(img.name);
            o["AccessInfo"] = json!("none");
            o["OtherInfo"] = img.appliance_attributes().unwrap_or(json!({}));
            o["Associations"] = json!({"CloudComputingService": [svc_id]});
            o
        })
        .collect();
    let flavors: Vec<Value> = FLAVORS
        .iter()
        .map(|f| {
            let mut o = obj(f.id, f.name);
            o["Platform"] = json!("amd64");
            o["CPU"] = json!(f.vcpus);
            o["RAM"] = json!(f.ram_mb);
            o["Disk"] = json!(f.disk_gb);
            // As cloud-info-provider publishes it.
            o["NetworkIn"] = json!("UNKNOWN");
            o["NetworkOut"] = json!(true);
            o["Associations"] = json!({"CloudComputingService": [svc_id]});
            o
        })
        .collect();
    let mut mgr = obj(
        &format!("{keystone}_cloud.compute_manager"),
        "Cloud Compute Manager",
    );
    mgr["Associations"] = json!({"CloudComputingService": [svc_id]});
    reply(
        StatusCode::OK,
        json!({
            "CloudComputingService": [svc],
            "CloudComputingManager": [mgr],
            "CloudComputingEndpoint": [ep],
            "CloudComputingImage": images,
            "CloudComputingInstanceType": flavors,
            "CloudComputingVirtualAccelerator": [],
            "Share": shares,
            "MappingPolicy": policies,
            "AccessPolicy": []
        }),
    )
}

fn is_site(c: &Cloud, i: usize, with_projects: bool) -> Option<Value> {
    let site = c.site(i)?;
    let mut v = json!({"id": format!("{}G0", 1000 + i), "name": site.name,
        "url": c.keystone(i), "state": "", "hostname": "127.0.0.1"});
    if with_projects {
        v["projects"] = VOS
            .iter()
            .map(|vo| json!({"id": site.project_id(vo), "name": vo}))
            .collect();
    }
    Some(v)
}

fn is_images(c: &Cloud, i: usize) -> Value {
    let Some(site) = c.site(i) else {
        return json!([]);
    };
    site.image_order
        .iter()
        .filter_map(|id| site.images.get(id))
        .filter(|img| img.visibility == "public")
        .map(|img| {
            let attrs = img.appliance_attributes().unwrap_or(json!({}));
            json!({"appdb_id": attrs["eu.egi.cloud.image_ref"], "id": img.id, "name": img.name,
                "mpuri": "https://registry.egi.eu/egi_vm_images/ubuntu", "version": attrs["eu.egi.cloud.tag"],
                "site": site.name})
        })
        .collect()
}

/// `?include_projects=` as FastAPI reads a bool.
fn with_projects(r: &Req) -> bool {
    r.query
        .get("include_projects")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on"))
}

pub fn is_api(c: &Cloud, r: &Req, rest: &[&str]) -> Resp {
    // Stale publications drop out of the information system.
    let visible = !c.fault(Fault::StaleGlue);
    let find = |name: &str| {
        c.sites
            .iter()
            .position(|s| s.lock().map(|s| s.name == name).unwrap_or(false))
            .filter(|_| visible)
    };
    let nf = |what: &str| {
        reply(
            StatusCode::NOT_FOUND,
            json!({"detail": format!("{what} not found")}),
        )
    };
    match rest {
        ["sites"] => {
            let list: Vec<Value> = if visible {
                (0..c.sites.len())
                    .filter_map(|i| is_site(c, i, true))
                    .collect()
            } else {
                vec![]
            };
            reply(StatusCode::OK, json!(list))
        }
        ["site", name] => match find(name).and_then(|i| is_site(c, i, with_projects(r))) {
            Some(v) => reply(StatusCode::OK, v),
            None => nf("Site"),
        },
        ["site", name, "projects"] => match find(name).and_then(|i| is_site(c, i, true)) {
            Some(v) => reply(StatusCode::OK, v["projects"].clone()),
            None => nf("Site"),
        },
        ["site", name, vo, "project"] => match find(name).and_then(|i| is_site(c, i, true)) {
            Some(v) => match v["projects"]
                .as_array()
                .and_then(|p| p.iter().find(|p| p["name"] == *vo))
            {
                Some(p) => reply(StatusCode::OK, p.clone()),
                None => nf("VO"),
            },
            None => nf("Site"),
        },
        ["site", name, vo, "images"] => match find(name) {
            Some(i) if VOS.contains(vo) => reply(StatusCode::OK, is_images(c, i)),
            Some(_) => nf("VO"),
            None => nf("Site"),
        },
        ["images"] => {
            let all: Vec<Value> = if visible {
                (0..c.sites.len())
                    .flat_map(|i| is_images(c, i).as_array().cloned().unwrap_or_default())
                    .collect()
            } else {
                vec![]
            };
            reply(StatusCode::OK, json!(all))
        }
        ["vos"] => reply(StatusCode::OK, json!(VOS)),
        _ => nf("Resource"),
    }
}
