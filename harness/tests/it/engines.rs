//! The engine definitions the packages ship: the Icinga 2 CheckCommands are
//! what the probes' option definitions generate, and every Sensu check's
//! command parses with the shipped probe's own options.

use std::path::{Path, PathBuf};

use serde_json::Value;

const PROBE_DIR: &str = "/usr/libexec/argo/probes/fedcloud/";

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

#[test]
fn shipped_icinga_commands_are_the_generated_ones() {
    let shipped = std::fs::read_to_string(repo("packaging/icinga2/fedprobe-commands.conf"))
        .expect("packaging/icinga2/fedprobe-commands.conf");
    let generated = fedprobe::gendocs::icinga2();
    assert!(
        shipped == generated,
        "packaging/icinga2/fedprobe-commands.conf is stale: regenerate it with \
         `fedprobe gen-docs DIR` (DIR/icinga2/fedprobe-commands.conf)"
    );
    // One command per probe and drop-in, each option a custom variable.
    for e in probes::checks::ALL {
        let name = fedprobe::gendocs::icinga_name(e.name);
        assert!(
            shipped.contains(&format!("object CheckCommand \"{name}\"")),
            "{name}"
        );
        assert!(
            shipped.contains(&format!("\"${name}_timeout$\"")),
            "{name} -t"
        );
        assert!(
            shipped.contains(&format!("PluginDir + \"/{}\"", e.name)),
            "{name}"
        );
    }
    for d in probes::checks::dropin::ALL {
        let name = fedprobe::gendocs::icinga_name(d.name);
        assert!(
            shipped.contains(&format!("object CheckCommand \"{name}\"")),
            "{name}"
        );
    }
    assert!(shipped.contains("\"$fedprobe_novaprobe_appdb_image$\""));
    assert!(shipped.contains("\"$fedprobe_cloudinfo_is_cache_ttl$\""));
    assert!(shipped.contains("set_if = \"$fedprobe_vm_lifecycle_insecure$\""));
}

/// A Sensu command line with its `{{ ... }}` tokens filled as an entity would.
fn fill(command: &str) -> Vec<String> {
    let mut out = String::new();
    let mut rest = command;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let j = rest[i..].find("}}").expect("closed token") + i;
        let token = rest[i + 2..j].trim();
        out.push_str(match token.split_whitespace().next().unwrap_or("") {
            ".labels.os_keystone_url" | ".labels.reference_keystone_url" => {
                "https://cloud.example.org:443/v3"
            }
            ".labels.region__os_region" => "--region RegionOne",
            ".labels.site" => "EXAMPLE-SITE",
            ".labels.accounting_last_update_url" => "https://accounting.example.org/site",
            ".labels.oidc_client_id" => "monitoring-client",
            other => panic!("unknown token {other} in {command}"),
        });
        rest = &rest[j + 2..];
    }
    out.push_str(rest);
    shlex::split(&out).expect("balanced quotes")
}

#[test]
fn sensu_checks_parse_with_the_shipped_probes() {
    let text = std::fs::read_to_string(repo("packaging/sensu/checks.json")).unwrap();
    let checks: Vec<Value> = serde_json::from_str(&text).expect("checks.json is JSON");
    let names: Vec<&str> = checks
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap())
        .collect();
    for want in [
        "eu.egi.cloud.OpenStack-VM",
        "eu.egi.cloud.OpenStack-Swift",
        "eu.egi.cloud.InfoProvider",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    for c in &checks {
        let name = c["metadata"]["name"].as_str().unwrap();
        assert_eq!(c["timeout"], 900, "{name}: Sensu's hard timeout");
        assert_eq!(c["pipelines"][0]["name"], "hard_state", "{name}");
        if let Some(p) = c.get("proxy_requests") {
            let attrs = p["entity_attributes"].as_array().unwrap();
            assert_eq!(attrs[0], "entity.entity_class == 'proxy'", "{name}");
            assert!(
                attrs[1]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("== '{name}'")),
                "{name}"
            );
        }
        let argv = fill(c["command"].as_str().unwrap());
        let bin = argv[0]
            .strip_prefix(PROBE_DIR)
            .unwrap_or_else(|| panic!("{name}: not under {PROBE_DIR}: {}", argv[0]));
        let mut argv = argv.clone();
        argv[0] = bin.to_string();
        if let Some(e) = probes::checks::find(bin) {
            if let Err(why) = (e.parse)(&argv) {
                panic!("{name}: {why}: {argv:?}");
            }
        } else {
            let d = probes::checks::dropin::ALL
                .iter()
                .find(|d| d.name == bin)
                .unwrap_or_else(|| panic!("{name}: {bin} is not shipped"));
            if let Err(e) = (d.command)().try_get_matches_from(&argv) {
                panic!("{name}: {e}: {argv:?}");
            }
        }
        // The token file path the federation's agents hold.
        if argv.iter().any(|a| a == "--access-token") {
            assert!(
                argv.contains(&"/etc/sensu/certs/oidc".to_string()),
                "{name}"
            );
        }
    }
}
