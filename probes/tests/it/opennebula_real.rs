//! check_vm_lifecycle against a real oned (dummy VMM/IM drivers) started by
//! `ci/peers/opennebula.sh oned-start` from an OpenNebula install made
//! beforehand. oned's source is in no package registry, so where no oned
//! was installed this SKIPs (listed on ci/skip-allowlist.txt).

use crate::realpeers::run_bin;

const VM: &str = env!("CARGO_BIN_EXE_check_vm_lifecycle");

fn oned_env(test: &str) -> Option<std::collections::HashMap<String, String>> {
    let peers = std::env::var("FEDPROBE_PEERS_DIR").unwrap_or("/tmp/fedprobe-peers".into());
    let file = format!("{peers}/opennebula/oned.env");
    let Ok(text) = std::fs::read_to_string(&file) else {
        eprintln!("SKIP {test}: no {file} (no oned installed; see ci/peers/opennebula.sh)");
        return None;
    };
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[tokio::test]
async fn vm_lifecycle_on_real_oned() {
    let Some(e) = oned_env("vm_lifecycle_on_real_oned") else {
        return;
    };
    let args: Vec<String> = [
        "--cloud",
        "opennebula",
        "--endpoint",
        &e["ONED_URL"],
        "--opennebula-session",
        &e["ONED_SESSION_FILE"],
        "--image",
        &e["ONED_IMAGE"],
        "--argo-host-name",
        "one-real",
        "--poll-interval",
        "1s",
        "-t",
        "180",
        "-v",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, out, _, _) = run_bin(VM, &args).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("VM_LIFECYCLE OK"), "{out}");
    assert!(
        out.contains(&format!("oned {}", e["ONED_VERSION"])),
        "{out}"
    );
}
