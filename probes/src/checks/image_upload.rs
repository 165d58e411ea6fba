//! check_image_upload: upload a small private image (raw or OVA) through the
//! site's image API, check what the site stored against what was sent
//! (size, MD5, os_hash), download it back, delete it and confirm it is gone.

use std::collections::BTreeMap;
use std::time::Duration;

use md5::Md5;
use sha2::{Digest, Sha256, Sha384, Sha512};
use tokio::time::Instant;

use crate::auth::{self, AuthArgs};
use crate::backend::openstack::OpenStack;
use crate::backend::{
    delete_image_and_wait, ova, run_id, ImageState, ImageStore, NewImage, Transfer,
};
use crate::cli::{parse_duration, Probe};
use crate::clock::now_unix;
use crate::model::{CheckId, Cleanup, Status};
use crate::nagios::{Perf, Uom};
use crate::poll::Backoff;
use crate::{Ctx, Done, Fail};

const REQ: &str = "EOSC-IAAS-IMAGE";
pub const CREATE: CheckId = CheckId {
    id: "IMG-01",
    requirement: REQ,
    name: "create image record",
};
pub const UPLOAD: CheckId = CheckId {
    id: "IMG-02",
    requirement: REQ,
    name: "upload image data",
};
pub const ACTIVE: CheckId = CheckId {
    id: "IMG-03",
    requirement: REQ,
    name: "image becomes active",
};
pub const VERIFY: CheckId = CheckId {
    id: "IMG-04",
    requirement: REQ,
    name: "stored size and checksums",
};
pub const DOWNLOAD: CheckId = CheckId {
    id: "IMG-05",
    requirement: REQ,
    name: "download matches upload",
};
pub const DELETE: CheckId = CheckId {
    id: "IMG-06",
    requirement: REQ,
    name: "delete image",
};

pub const IMPORT_METHOD: &str = "glance-direct";
/// Why a 403 is the site's problem, not the monitor's.
const POLICY: &str = "the site's policy lets only admins upload images, but the EOSC IaaS \
                      guideline requires users to upload images through the API";
/// Largest payload accepted (the HTTP layer reads at most 64 MiB back).
pub const MAX_SIZE: u64 = 48 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A raw disk of pseudo-random bytes
    Raw,
    /// An OVA: OVF descriptor plus the raw disk, in a tar
    Ova,
}

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub auth: AuthArgs,
    /// What to upload
    #[arg(long = "format", value_enum, default_value = "raw")]
    pub format: Format,
    /// Disk size: bytes, or with a suffix (64K, 1M, 1MiB)
    #[arg(long = "size", value_name = "BYTES", default_value = "1MiB", value_parser = parse_size)]
    pub size: u64,
    /// Use interoperable import (glance-direct: stage, then import) when advertised
    #[arg(long = "import")]
    pub import: bool,
    /// Longest wait for the image to become active
    #[arg(long = "image-timeout", value_name = "DURATION", default_value = "120", value_parser = parse_duration)]
    pub image_timeout: Duration,
    /// Fixed status poll interval (default: adaptive, 250 ms growing to 2 s)
    #[arg(long = "poll-interval", value_name = "DURATION", value_parser = parse_duration)]
    pub poll_interval: Option<Duration>,
}

/// `1048576`, `64K`, `1M`, `1MiB`, `2MB` (binary multiples).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?}: not a size"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        _ => return Err(format!("{s:?}: unknown unit (use K or M)")),
    };
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| format!("{s:?}: too large"))?;
    if v == 0 || v > MAX_SIZE {
        return Err(format!("{s:?}: must be between 1 byte and 48 MiB"));
    }
    Ok(v)
}

/// What one run uploads, backend-independent.
#[derive(Clone, Debug)]
pub struct Plan {
    pub format: Format,
    pub size: u64,
    pub import: bool,
    pub image_timeout: Duration,
    pub poll_interval: Option<Duration>,
    pub run_id: String,
}

pub struct ImageUpload;

impl Probe for ImageUpload {
    const BIN: &'static str = "check_image_upload";
    const LABEL: &'static str = "IMAGE_UPLOAD";
    const ABOUT: &'static str = "Upload, verify, download and delete a private image";
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
    type Args = Args;

    async fn run(args: Args, ctx: Ctx) -> Result<String, Fail> {
        let plan = Plan {
            format: args.format,
            size: args.size,
            import: args.import,
            image_timeout: args.image_timeout,
            poll_interval: args.poll_interval,
            run_id: run_id(),
        };
        let t0 = Instant::now();
        let session = auth::login(&ctx, &args.auth).await?;
        ctx.perf(Perf::seconds("auth", t0.elapsed()));
        let store = OpenStack::new(session.http.clone(), &session);
        image_cycle(&ctx, &store, &plan).await
    }
}

/// Digests of what was sent.
struct Sent {
    data: Vec<u8>,
    md5: String,
    sha256: String,
    sha384: String,
    sha512: String,
}

impl Sent {
    fn new(data: Vec<u8>) -> Sent {
        Sent {
            md5: format!("{:x}", Md5::digest(&data)),
            sha256: format!("{:x}", Sha256::digest(&data)),
            sha384: format!("{:x}", Sha384::digest(&data)),
            sha512: format!("{:x}", Sha512::digest(&data)),
            data,
        }
    }

    fn hash(&self, algo: &str) -> Option<&str> {
        match algo.to_ascii_lowercase().as_str() {
            "sha512" => Some(&self.sha512),
            "sha384" => Some(&self.sha384),
            "sha256" => Some(&self.sha256),
            "md5" => Some(&self.md5),
            _ => None,
        }
    }
}

/// The probe logic, for any [`ImageStore`].
pub async fn image_cycle<S: ImageStore>(ctx: &Ctx, store: &S, plan: &Plan) -> Result<String, Fail> {
    ctx.detail(format!("run {}, {}", plan.run_id, store.describe()));
    let disk = ova::disk_bytes(plan.size as usize);
    let (payload, disk_format, container) = match plan.format {
        Format::Raw => (disk, "raw", "bare"),
        // disk_format names the disk inside the OVA; the package is stored as sent.
        Format::Ova => (ova::ova(&disk), "raw", "ova"),
    };
    let sent = Sent::new(payload);
    let name = format!("fedprobe-{}", plan.run_id);
    let mut props = BTreeMap::new();
    props.insert("fedprobe-run".to_string(), plan.run_id.clone());
    props.insert(
        "fedprobe-created".to_string(),
        format!("{}", now_unix().floor() as u64),
    );
    let spec = NewImage {
        name: name.clone(),
        disk_format: disk_format.into(),
        container_format: container.into(),
        properties: props,
    };
    let (id, handle) = ctx
        .step(CREATE, async {
            let img = store.create_image(&spec).await.map_err(|f| {
                if f.message.contains("HTTP 403") {
                    f.context(format!("{POLICY}; creating the image record was refused"))
                } else {
                    f
                }
            })?;
            let s = store.clone();
            let iid = img.id.clone();
            let handle = ctx.track(
                "image",
                &img.id,
                Some(&name),
                Box::new(move |http| {
                    Box::pin(async move {
                        delete_image_and_wait(&s.rebind(http), &iid)
                            .await
                            .map(|_| ())
                            .map_err(|f| f.message)
                    })
                }),
            );
            let msg = format!(
                "{} ({name}, {disk_format}/{container}), status {}",
                img.id, img.status
            );
            Ok(Done::ok((img.id, handle), msg))
        })
        .await?;

    let t_upload = Instant::now();
    ctx.step(UPLOAD, upload(store, plan, &id, &sent)).await?;
    let upload_time = t_upload.elapsed();
    ctx.perf(Perf::seconds("upload", upload_time));

    let stored = ctx
        .step(ACTIVE, wait_active(ctx, store, plan, &id, t_upload))
        .await?;
    let to_active = t_upload.elapsed();
    ctx.perf(Perf::seconds("active", to_active).thresholds(ctx.warning, ctx.critical));
    ctx.perf(Perf::new("size", sent.data.len() as f64, Uom::Bytes).min(0.0));

    ctx.step(VERIFY, async { verify(&stored, &sent) }).await?;

    let t_down = Instant::now();
    ctx.step(DOWNLOAD, async {
        let got = store.download(&id).await?;
        if got == sent.data {
            return Ok(Done::ok((), format!("{} bytes identical", got.len())));
        }
        let at = got
            .iter()
            .zip(sent.data.iter())
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(sent.data.len()));
        Err(Fail::critical(format!(
            "downloaded {} bytes, sent {}; first difference at byte {at}",
            got.len(),
            sent.data.len()
        )))
    })
    .await?;
    ctx.perf(Perf::seconds("download", t_down.elapsed()));

    let t_delete = Instant::now();
    ctx.step(DELETE, async {
        delete_image_and_wait(store, &id).await?;
        Ok(Done::ok(
            (),
            format!("gone (404) after {:.2}s", t_delete.elapsed().as_secs_f64()),
        ))
    })
    .await?;
    ctx.settle(handle, Cleanup::Deleted);
    ctx.perf(Perf::seconds("delete", t_delete.elapsed()));
    Ok(format!(
        "image {id} ({} bytes {}) uploaded, active in {:.2}s, verified and deleted",
        sent.data.len(),
        match plan.format {
            Format::Raw => "raw",
            Format::Ova => "OVA",
        },
        to_active.as_secs_f64()
    ))
}

async fn upload<S: ImageStore>(
    store: &S,
    plan: &Plan,
    id: &str,
    sent: &Sent,
) -> Result<Done<()>, Fail> {
    let n = sent.data.len();
    let (outcome, how, status) = if plan.import {
        let methods = store.import_methods().await?;
        if methods.iter().any(|m| m == IMPORT_METHOD) {
            let t = store
                .stage_and_import(id, sent.data.clone(), IMPORT_METHOD)
                .await?;
            (
                t,
                format!("staged and imported ({IMPORT_METHOD})"),
                Status::Ok,
            )
        } else {
            let t = store.upload(id, sent.data.clone()).await?;
            let adv = if methods.is_empty() {
                "none".to_string()
            } else {
                methods.join(", ")
            };
            (
                t,
                format!("{IMPORT_METHOD} import not advertised (advertised: {adv}); plain upload"),
                Status::Warning,
            )
        }
    } else {
        let t = store.upload(id, sent.data.clone()).await?;
        (t, "uploaded".to_string(), Status::Ok)
    };
    match outcome {
        Transfer::Done => Ok(Done::with(status, (), format!("{how}: {n} bytes"))),
        Transfer::Forbidden(body) => Err(Fail::critical(format!(
            "upload refused with HTTP 403 ({body}): {POLICY}"
        ))),
    }
}

async fn wait_active<S: ImageStore>(
    ctx: &Ctx,
    store: &S,
    plan: &Plan,
    id: &str,
    t0: Instant,
) -> Result<Done<ImageState>, Fail> {
    let left = ctx.deadline().remaining();
    let reserve = (left / 5).clamp(Duration::from_secs(2), Duration::from_secs(30));
    let limit = plan.image_timeout.min(left.saturating_sub(reserve));
    let end = Instant::now() + limit;
    let mut backoff = Backoff::from_option(plan.poll_interval);
    let mut polls = 0u64;
    loop {
        polls += 1;
        let Some(img) = store.image(id).await? else {
            return Err(Fail::critical(format!("image {id} disappeared (404)")));
        };
        match img.status.as_str() {
            "active" => {
                let msg = format!(
                    "active after {:.2}s, {polls} status polls",
                    t0.elapsed().as_secs_f64()
                );
                let secs = t0.elapsed().as_secs_f64();
                let status = ctx.threshold_status(secs);
                return Ok(Done::with(status, img, msg));
            }
            "killed" => {
                return Err(Fail::critical(format!(
                    "image {id} went to status killed: the site failed to store the data"
                )))
            }
            "deleted" | "pending_delete" | "deactivated" => {
                return Err(Fail::critical(format!(
                    "image {id} went to status {} while waiting for active",
                    img.status
                )))
            }
            other => {
                let now = Instant::now();
                if now >= end {
                    return Err(Fail::critical(format!(
                        "image {id} not active after {:.0}s; last status {other}",
                        limit.as_secs_f64()
                    )));
                }
                tokio::time::sleep(backoff.next_delay().min(end - now)).await;
            }
        }
    }
}

/// Compare what the site says it stored with what was sent.
fn verify(img: &ImageState, sent: &Sent) -> Result<Done<()>, Fail> {
    let n = sent.data.len() as u64;
    let mut bad = Vec::new();
    let mut unverified = Vec::new();
    match img.size {
        Some(s) if s == n => {}
        Some(s) => bad.push(format!("size {s}, sent {n}")),
        None => unverified.push("size not reported".to_string()),
    }
    match img.checksum.as_deref() {
        Some(c) if c.eq_ignore_ascii_case(&sent.md5) => {}
        Some(c) => bad.push(format!("checksum (MD5) {c}, sent {}", sent.md5)),
        None => unverified.push("checksum not reported".to_string()),
    }
    match (img.hash_algo.as_deref(), img.hash_value.as_deref()) {
        (Some(algo), Some(v)) => match sent.hash(algo) {
            Some(mine) if v.eq_ignore_ascii_case(mine) => {}
            Some(mine) => bad.push(format!(
                "os_hash_value ({algo}) {}..., sent {}...",
                v.chars().take(16).collect::<String>(),
                mine.chars().take(16).collect::<String>()
            )),
            None => unverified.push(format!("os_hash_algo {algo} not supported here")),
        },
        _ => unverified.push("os_hash_value not reported".to_string()),
    }
    if !bad.is_empty() {
        return Err(Fail::critical(format!(
            "stored image differs from upload: {}",
            bad.join("; ")
        )));
    }
    let algo = img.hash_algo.as_deref().unwrap_or("-");
    if unverified.is_empty() {
        Ok(Done::ok(
            (),
            format!("size {n}, MD5 and {algo} match what was sent"),
        ))
    } else {
        Ok(Done::warn((), unverified.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1G").is_err());
        assert!(parse_size("49M").is_err());
    }

    #[test]
    fn verify_catches_each_mismatch() {
        let sent = Sent::new(b"hello".to_vec());
        let good = ImageState {
            id: "i".into(),
            status: "active".into(),
            size: Some(5),
            checksum: Some("5d41402abc4b2a76b9719d911017c592".into()),
            hash_algo: Some("sha512".into()),
            hash_value: Some(sent.sha512.clone()),
        };
        assert_eq!(verify(&good, &sent).unwrap().status, Status::Ok);
        let mut wrong = good.clone();
        wrong.checksum = Some("00".repeat(16));
        let Err(f) = verify(&wrong, &sent) else {
            panic!("a wrong checksum must fail")
        };
        assert!(f.message.contains("checksum (MD5)"), "{}", f.message);
        let mut wrong = good.clone();
        wrong.hash_value = Some("ab".repeat(64));
        assert!(verify(&wrong, &sent).is_err());
        // garbage (non-ASCII) hash values are reported, not a panic
        wrong.hash_value = Some("é".repeat(20));
        assert!(verify(&wrong, &sent).is_err());
        let mut missing = good.clone();
        missing.hash_value = None;
        assert_eq!(verify(&missing, &sent).unwrap().status, Status::Warning);
    }
}
