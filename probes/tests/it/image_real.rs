//! check_image_upload end to end against the real peers: real OIDC token,
//! Apache + mod_auth_openidc, Keystone and Glance over https.

use crate::realpeers;

use realpeers::{assert_no_token, run_bin, run_sampling_rss, Peers};

const BIN: &str = env!("CARGO_BIN_EXE_check_image_upload");

/// The image id in `IMAGE_UPLOAD OK - image <id> (...`.
fn image_id(out: &str) -> String {
    out.split_whitespace()
        .skip_while(|w| *w != "image")
        .nth(1)
        .unwrap_or("")
        .to_string()
}

async fn run_format(test: &str, extra: &[&str]) {
    let Some(p) = Peers::load(test) else {
        return;
    };
    let Some(token) = p.access_token(test).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oidc");
    std::fs::write(&file, &token).unwrap();
    let mut args: Vec<String> = [
        "-t",
        "120",
        "-vvv",
        "--access-token",
        &file.display().to_string(),
        "--endpoint",
        p.get("KEYSTONE_URL"),
        "--region",
        p.get("REGION"),
        "--ca-cert",
        p.get("CA_CERT"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let (code, out, cpu, wall) = run_bin(BIN, &args).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("IMAGE_UPLOAD OK - image "), "{out}");
    assert!(out.contains("MD5 and sha512 match what was sent"), "{out}");
    assert!(out.contains("bytes identical"), "{out}");
    assert_no_token(&out, &token);
    let id = image_id(&out);
    assert!(
        out.contains(&format!("created image {id}: deleted")),
        "{out}"
    );
    // Glance agrees the image is gone.
    let admin = p.admin_token().await;
    let status = p.image_status(&admin, &id).await;
    assert!(
        status.is_none() || status.as_deref() == Some("deleted"),
        "image {id} still there: {status:?}"
    );
    eprintln!("BENCH check_image_upload {extra:?}: wall {wall:.3}s, cpu {cpu:.3}s");
}

/// A few hundred MiB through the real Glance: streamed both ways, so the
/// probe's peak RSS stays under 20 MB (it would be 600 MB+ buffered).
#[tokio::test]
async fn large_upload_streams_in_bounded_memory() {
    let test = "large_upload_streams_in_bounded_memory";
    let Some(p) = Peers::load(test) else {
        return;
    };
    let Some(token) = p.access_token(test).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oidc");
    std::fs::write(&file, &token).unwrap();
    let args: Vec<String> = [
        "-t",
        "600",
        "--access-token",
        &file.display().to_string(),
        "--endpoint",
        p.get("KEYSTONE_URL"),
        "--region",
        p.get("REGION"),
        "--ca-cert",
        p.get("CA_CERT"),
        "--size",
        "300M",
        "-v",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, out, peak_kb) = run_sampling_rss(BIN, &args).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("IMAGE_UPLOAD OK - image "), "{out}");
    assert!(out.contains("(314572800 bytes raw)"), "{out}");
    assert!(out.contains("314572800 bytes identical"), "{out}");
    assert!(out.contains("MD5 and sha512 match what was sent"), "{out}");
    assert!(out.contains(" upload_rate="), "{out}");
    assert!(out.contains(" download_rate="), "{out}");
    assert_no_token(&out, &token);
    assert!(peak_kb > 0, "no VmHWM read");
    assert!(
        peak_kb < 20 * 1024,
        "peak RSS {peak_kb} kB for a 300 MiB image: {out}"
    );
    let id = image_id(&out);
    let admin = p.admin_token().await;
    let status = p.image_status(&admin, &id).await;
    assert!(
        status.is_none() || status.as_deref() == Some("deleted"),
        "image {id} still there: {status:?}"
    );
    eprintln!("BENCH check_image_upload 300 MiB: peak RSS {peak_kb} kB");
}

#[tokio::test]
async fn raw_upload_ok() {
    run_format("raw_upload_ok", &["--format", "raw"]).await;
}

#[tokio::test]
async fn ova_upload_ok() {
    run_format("ova_upload_ok", &["--format", "ova", "--size", "2M"]).await;
}

#[tokio::test]
async fn glance_direct_import_ok() {
    run_format("glance_direct_import_ok", &["--import"]).await;
}
