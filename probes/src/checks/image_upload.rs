//! check_image_upload: upload a private image (raw or OVA, any size) through
//! the site's image API, check what the site stored against what was sent
//! (size, MD5, os_hash), download it back, delete it and confirm it is gone.
//! The payload is streamed both ways: generated and hashed while it is
//! uploaded, regenerated and compared while it is downloaded.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::auth::AuthArgs;
use crate::backend::cloud;
use crate::backend::payload::{self, Compare, Digests, Hashes, Payload};
use crate::backend::{
    delete_image_and_wait, delete_image_within, run_id, ImagePhase, ImageState, ImageStore, Import,
    ListedImage, NewImage, Transfer,
};
use crate::checks::vm_lifecycle::{
    machine_hostname, run_may_be_going, run_owner, tag_age, CREATED_KEY, HOST_KEY, NAME_PREFIX,
    OWNER_KEY, RUN_KEY, UNTIL_KEY,
};
use crate::clock::now_unix;
use crate::http::{body_channel, BodySender, BodyStream};
use crate::model::{Cleanup, Perf, ResourceKind, Status, Uom};
use crate::poll::{wait_for, Poll, Wait};
use crate::probe::Probe;
use crate::units::parse_duration;
use crate::{Ctx, Done, Fail};

crate::check_ids! { "EOSC-IAAS-IMAGE";
    REAP = "IMG-07", "leftovers of earlier runs";
    CREATE = "IMG-01", "create image record";
    UPLOAD = "IMG-02", "upload image data";
    ACTIVE = "IMG-03", "image becomes active";
    VERIFY = "IMG-04", "stored size and checksums";
    DOWNLOAD = "IMG-05", "download matches upload";
    DELETE = "IMG-06", "delete image";
}

/// Why a 403 is the site's problem, not the monitor's.
const POLICY: &str = "the site's policy lets only admins upload images, but the EOSC IaaS \
                      guideline requires users to upload images through the API";
/// Largest disk accepted: streamed both ways, memory does not grow with it.
pub const MAX_SIZE: u64 = 1 << 40;

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
    /// Disk size: bytes, or with a suffix (64K, 1MiB, 10G; up to 1T)
    #[arg(long = "size", value_name = "BYTES", default_value = "1MiB", value_parser = image_size)]
    pub size: u64,
    /// Use the interoperable import (OpenStack: glance-direct, stage then import) when offered
    #[arg(long = "import")]
    pub import: bool,
    /// Longest wait for the image to become active
    #[arg(long = "image-timeout", value_name = "DURATION", default_value = "120", value_parser = parse_duration)]
    pub image_timeout: Duration,
    /// Fixed status poll interval (default: adaptive, 100 ms growing to 2 s)
    #[arg(long = "poll-interval", value_name = "DURATION", value_parser = parse_duration)]
    pub poll_interval: Option<Duration>,
    /// Monitoring host name put in the image's properties (its leftovers are
    /// reaped by this host's next run); default: this machine's name
    #[arg(long = "argo-host-name", value_name = "HOST")]
    pub argo_host_name: Option<String>,
    /// Delete other monitoring hosts' probe images older than this
    #[arg(long = "reap-ttl", value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    pub reap_ttl: Duration,
}

/// `--size`: a size (`64K`, `1MiB`) up to [`MAX_SIZE`].
pub fn image_size(s: &str) -> Result<u64, String> {
    let v = crate::units::parse_size(s)?;
    if v > MAX_SIZE {
        return Err(format!("{s:?}: must be between 1 byte and 1 TiB"));
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
    /// The monitoring host tagged on the image (`argo-mon-host`).
    pub host: String,
    pub reap_ttl: Duration,
    /// Unix time by which this run is over, cleanup included (`fedprobe-until`).
    pub ends_by: f64,
}

pub struct ImageUpload;

impl Probe for ImageUpload {
    const BIN: &'static str = "check_image_upload";
    const LABEL: &'static str = "IMAGE_UPLOAD";
    const ABOUT: &'static str = "Upload, verify, download and delete a private image";
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
    type Args = Args;

    fn checks() -> Vec<crate::model::CheckId> {
        crate::auth::checks()
            .into_iter()
            .chain(ALL.iter().copied())
            .collect()
    }

    async fn run(args: Args, ctx: Ctx) -> Result<String, Fail> {
        let plan = Plan {
            format: args.format,
            size: args.size,
            import: args.import,
            image_timeout: args.image_timeout,
            poll_interval: args.poll_interval,
            run_id: run_id(),
            host: args
                .argo_host_name
                .clone()
                .or_else(machine_hostname)
                .unwrap_or_else(|| "unknown-host".into()),
            reap_ttl: args.reap_ttl,
            // As check_vm_lifecycle: the cleanup grace is at most the work
            // time, so twice the work time left bounds the whole run.
            ends_by: now_unix() + 2.0 * ctx.deadline().remaining().as_secs_f64(),
        };
        let connected = cloud::connect(&ctx, &args.auth).await?;
        crate::with_backend!(connected, store => image_cycle(&ctx, &store, &plan).await)
    }
}

/// The probe logic, for any [`ImageStore`].
pub async fn image_cycle<S: ImageStore>(ctx: &Ctx, store: &S, plan: &Plan) -> Result<String, Fail> {
    ctx.detail(format!(
        "monitoring host {:?}, run {}, {}",
        plan.host,
        plan.run_id,
        store.describe()
    ));
    ctx.step(REAP, reap(ctx, store, plan)).await?;
    let seed = payload::seed_of(&plan.run_id);
    let (payload, disk_format, container) = match plan.format {
        Format::Raw => (Payload::raw(seed, plan.size), "raw", "bare"),
        // disk_format names the disk inside the OVA; the package is stored as sent.
        Format::Ova => (Payload::ova(seed, plan.size), "raw", "ova"),
    };
    let total = payload.len();
    let name = format!("{NAME_PREFIX}{}", plan.run_id);
    let mut props = BTreeMap::new();
    props.insert(RUN_KEY.to_string(), plan.run_id.clone());
    props.insert(
        CREATED_KEY.to_string(),
        format!("{}", now_unix().floor() as u64),
    );
    // The keys check_vm_lifecycle tags its servers with: whose, and until
    // when (or while which process lives) a run may still own it.
    props.insert(HOST_KEY.to_string(), plan.host.clone());
    props.insert(
        UNTIL_KEY.to_string(),
        format!("{}", plan.ends_by.ceil() as u64),
    );
    if let Some(owner) = run_owner(std::process::id()) {
        props.insert(OWNER_KEY.to_string(), owner);
    }
    let spec = NewImage {
        name: name.clone(),
        disk_format: disk_format.into(),
        container_format: container.into(),
        properties: props,
    };
    let (id, handle) = ctx
        .step(CREATE, async {
            // The create runs as its own task, so a signal while it is in
            // flight does not drop it: the cleanup waits for its answer (the
            // runner bounds that wait) and deletes the image it names. Looking
            // the image up by name at once can run before the site has made
            // it (the image soak saw Glance commit one a second later). When
            // no answer names one (failed, lost, cut by the deadline), the
            // cleanup finds the image by its run's name.
            let (tx, rx) = tokio::sync::watch::channel(None::<Option<String>>);
            let create = {
                let (s, spec) = (store.clone(), spec.clone());
                tokio::spawn(async move {
                    let r = s.create_image(&spec).await;
                    let _ = tx.send(Some(r.as_ref().ok().map(|i| i.id.clone())));
                    r
                })
            };
            let owner = ctx.clone();
            let in_flight = ctx.track(
                ResourceKind::ImageRequest,
                &name,
                Some(&name),
                store,
                move |s, name| async move {
                    let mut rx = rx;
                    let answered = rx
                        .wait_for(Option::is_some)
                        .await
                        .ok()
                        .and_then(|v| v.clone().flatten());
                    let ids = match answered {
                        Some(id) => vec![id],
                        None => s.images_named(&name).await?,
                    };
                    for id in ids {
                        // Listed as its own resource, settled here.
                        let rid = owner.track(ResourceKind::Image, &id, Some(&name), &s, |_, _| async {
                            Ok(())
                        });
                        let deleted = delete_image_and_wait(&s, &id).await;
                        owner.settle_result(rid, &deleted);
                        deleted.map_err(|f| f.context(format!("image {id}")))?;
                    }
                    Ok(())
                },
            );
            let created = create
                .await
                .unwrap_or_else(|e| Err(Fail::unknown(format!("the image create task failed: {e}"))));
            let img = match created {
                Ok(img) => img,
                Err(f) => {
                    // A lost answer may hide a created image: adopt what the
                    // run's name finds; if that listing fails too, the
                    // placeholder stays and the runner's cleanup looks again.
                    if let Ok(ids) = store.images_named(&name).await {
                        for id in ids {
                            ctx.track_retried(ResourceKind::Image, &id, Some(&name), store, |s, id| async move {
                                delete_image_and_wait(&s, &id).await.map(drop)
                            });
                        }
                        ctx.forget(in_flight);
                    }
                    return Err(if f.http_status() == Some(403) {
                        f.context(format!("{POLICY}; creating the image record was refused"))
                    } else {
                        f
                    });
                }
            };
            let handle = ctx.track_retried(
                ResourceKind::Image,
                &img.id,
                Some(&name),
                store,
                |s, id| async move { delete_image_and_wait(&s, &id).await.map(drop) },
            );
            ctx.forget(in_flight);
            let msg = format!(
                "{} ({name}, {disk_format}/{container}), status {}",
                img.id, img.status_text
            );
            Ok(Done::ok((img.id, handle), msg))
        })
        .await?;

    let t_upload = Instant::now();
    let sent = ctx
        .step(UPLOAD, upload(store, plan, &id, payload.clone()))
        .await?;
    let upload_time = t_upload.elapsed();
    ctx.perf(Perf::seconds("upload", upload_time));
    ctx.perf(Perf::mb_per_s("upload_rate", total, upload_time));

    let stored = ctx
        .step(ACTIVE, wait_active(ctx, store, plan, &id, t_upload))
        .await?;
    let to_active = t_upload.elapsed();
    ctx.perf(Perf::seconds("active", to_active).thresholds(ctx.warning(), ctx.critical()));
    ctx.perf(Perf::new("size", total as f64, Uom::Bytes).min(0.0));

    ctx.step(VERIFY, async {
        // A Glance hashing with another SHA-2 than its default: one more pass
        // over the payload, regenerated, off the runtime's threads.
        let other = match stored.hash_algo.clone() {
            Some(algo) if sent.get(&algo).is_none() => {
                let p = payload.clone();
                tokio::task::spawn_blocking(move || payload::digest_of(p, &algo))
                    .await
                    .ok()
                    .flatten()
            }
            _ => None,
        };
        verify(&stored, total, &sent, other.as_deref())
    })
    .await?;

    let t_down = Instant::now();
    ctx.step(DOWNLOAD, async {
        let mut cmp = Compare::new(payload);
        store.download(&id, &mut |piece| cmp.feed(piece)).await?;
        let got = cmp.received();
        let secs = t_down.elapsed().as_secs_f64();
        match cmp.first_difference() {
            None => Ok(Done::ok(
                (),
                format!("{got} bytes identical ({})", mb_per_s(got, secs)),
            )),
            Some(at) if got > total => Err(Fail::critical(format!(
                "downloaded more than the {total} bytes sent; first difference at byte {at}"
            ))),
            Some(at) => Err(Fail::critical(format!(
                "downloaded {got} bytes, sent {total}; first difference at byte {at}"
            ))),
        }
    })
    .await?;
    let download_time = t_down.elapsed();
    ctx.perf(Perf::seconds("download", download_time));
    ctx.perf(Perf::mb_per_s("download_rate", total, download_time));

    let t_delete = Instant::now();
    ctx.step(DELETE, async {
        let wait = Wait::bounded(ctx.deadline(), plan.image_timeout, plan.poll_interval);
        delete_image_within(store, &id, wait).await?;
        Ok(Done::ok(
            (),
            format!("gone (404) after {:.2}s", t_delete.elapsed().as_secs_f64()),
        ))
    })
    .await?;
    ctx.settle(handle, Cleanup::Deleted);
    ctx.perf(Perf::seconds("delete", t_delete.elapsed()));
    Ok(format!(
        "image {id} ({total} bytes {}) uploaded, active in {:.2}s, verified and deleted",
        match plan.format {
            Format::Raw => "raw",
            Format::Ova => "OVA",
        },
        to_active.as_secs_f64()
    ))
}

/// IMG-07: delete this host's images left by earlier runs (WARNING, as
/// check_vm_lifecycle's VM-05) and other hosts' probe images older than the
/// TTL. Only images this probe made (its name prefix and run tag), and never
/// one a run still going may own: check_vm_lifecycle's rule.
async fn reap<S: ImageStore>(ctx: &Ctx, store: &S, plan: &Plan) -> Result<Done<()>, Fail> {
    let Some(tagged) = store.images_tagged(RUN_KEY).await? else {
        return Ok(Done::ok(
            (),
            "this cloud's backend cannot list images: leftovers not looked for",
        ));
    };
    let now = now_unix();
    let (mut mine, mut stale) = (Vec::new(), Vec::new());
    let (mut live, mut kept) = (0, 0);
    for img in tagged {
        let ours = img.name.starts_with(NAME_PREFIX);
        let host = img.properties.get(HOST_KEY);
        if !ours || run_may_be_going(&img.properties, img.created, now) {
            if ours && host == Some(&plan.host) {
                live += 1;
            } else {
                kept += 1;
            }
        } else if host == Some(&plan.host) {
            mine.push(img);
        } else if tag_age(&img.properties, img.created, now) > Some(plan.reap_ttl.as_secs_f64()) {
            stale.push(img);
        } else {
            kept += 1;
        }
    }
    let bounded = store.with_deadline(ctx.deadline().within(Duration::from_secs(120)));
    let mut failed = Vec::new();
    for img in mine.iter().chain(stale.iter()) {
        if let Err(f) = delete_image_and_wait(&bounded, &img.id).await {
            failed.push(format!("{}: {}", img.id, f.message));
        }
    }
    ctx.perf(Perf::count(
        "reaped",
        (mine.len() + stale.len() - failed.len()) as u64,
    ));
    let names = |v: &[ListedImage]| {
        v.iter()
            .map(|i| format!("{} ({}, {})", i.id, i.name, i.status_text))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut msg = Vec::new();
    if !mine.is_empty() {
        msg.push(format!(
            "deleted {} leftover image(s) of {} from earlier runs: {}",
            mine.len(),
            plan.host,
            names(&mine)
        ));
    }
    if !stale.is_empty() {
        msg.push(format!(
            "deleted {} probe image(s) of other hosts older than {}: {}",
            stale.len(),
            humantime::format_duration(plan.reap_ttl),
            names(&stale)
        ));
    }
    let alone = format!(
        "{live} image(s) of {} runs still going and {kept} other tagged image(s) left alone",
        plan.host
    );
    if msg.is_empty() {
        return Ok(Done::ok((), format!("none for {} ({alone})", plan.host)));
    }
    msg.push(alone);
    if !failed.is_empty() {
        msg.push(format!("could not delete {}", failed.join("; ")));
    }
    let status = if mine.is_empty() && failed.is_empty() {
        Status::Ok
    } else {
        Status::Warning
    };
    Ok(Done::with(status, (), msg.join("; ")))
}

fn mb_per_s(bytes: u64, secs: f64) -> String {
    format!("{:.1} MB/s", bytes as f64 / 1e6 / secs.max(1e-6))
}

/// Generate the payload into `tx`, hashing each chunk on the way out.
/// `None` if the request ended before all of it was taken.
async fn produce(tx: BodySender, payload: Payload) -> Option<Digests> {
    let mut hashes = Hashes::default();
    let all = payload.send(tx, |chunk| hashes.update(chunk)).await;
    all.then(|| hashes.finish())
}

/// Send `payload` through `transfer` (an upload or a stage) while it is
/// generated; the digests of what was sent.
async fn stream<F, Fut>(payload: Payload, transfer: F) -> Result<(Transfer, Digests), Fail>
where
    F: FnOnce(BodyStream) -> Fut,
    Fut: std::future::Future<Output = Result<Transfer, Fail>>,
{
    let (tx, body) = body_channel(payload.len());
    let (outcome, digests) = tokio::join!(transfer(body), produce(tx, payload));
    match (outcome?, digests) {
        (Transfer::Done, None) => Err(Fail::unknown(
            "the site answered the upload before all the data was sent",
        )),
        (t, d) => Ok((t, d.unwrap_or_default())),
    }
}

async fn upload<S: ImageStore>(
    store: &S,
    plan: &Plan,
    id: &str,
    payload: Payload,
) -> Result<Done<Digests>, Fail> {
    let n = payload.len();
    let t0 = Instant::now();
    let ((outcome, digests), how, status) = if plan.import {
        match store.import_support().await? {
            Import::Offered { method } => {
                let t = stream(payload, |b| store.stage_and_import(id, b)).await?;
                (t, format!("staged and imported ({method})"), Status::Ok)
            }
            Import::NotOffered { wanted, advertised } => {
                let t = stream(payload, |b| store.upload(id, b)).await?;
                let adv = if advertised.is_empty() {
                    "none".to_string()
                } else {
                    advertised.join(", ")
                };
                (
                    t,
                    format!("{wanted} import not advertised (advertised: {adv}); plain upload"),
                    Status::Warning,
                )
            }
        }
    } else {
        let t = stream(payload, |b| store.upload(id, b)).await?;
        (t, "uploaded".to_string(), Status::Ok)
    };
    let speed = mb_per_s(n, t0.elapsed().as_secs_f64());
    match outcome {
        Transfer::Done => Ok(Done::with(
            status,
            digests,
            format!("{how}: {n} bytes ({speed})"),
        )),
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
    let wait = Wait::bounded(ctx.deadline(), plan.image_timeout, plan.poll_interval);
    let waited = wait_for(wait, || {
        let fut = store.image(id);
        async move {
            let Some(img) = fut.await? else {
                return Err(Fail::critical(format!("image {id} disappeared (404)")));
            };
            match img.phase {
                ImagePhase::Active => Ok(Poll::Ready(img)),
                ImagePhase::Killed => Err(Fail::critical(format!(
                    "image {id} went to status {}: the site failed to store the data",
                    img.status_text
                ))),
                ImagePhase::Deleted => Err(Fail::critical(format!(
                    "image {id} went to status {} while waiting for active",
                    img.status_text
                ))),
                _ => Ok(Poll::Pending(img.status_text)),
            }
        }
    })
    .await?;
    let (value, polls) = waited.or_fail(|l| {
        format!(
            "image {id} not active after {:.0}s; last status {}",
            l.limit.as_secs_f64(),
            l.last
        )
    })?;
    let secs = t0.elapsed().as_secs_f64();
    let msg = format!("active after {secs:.2}s, {polls} status polls");
    Ok(Done::with(ctx.threshold_status(secs), value, msg))
}

/// Compare what the site says it stored with what was sent (`n` bytes).
/// `other`: the digest by the site's `os_hash_algo` when it is not one of `sent`.
fn verify(img: &ImageState, n: u64, sent: &Digests, other: Option<&str>) -> Result<Done<()>, Fail> {
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
        (Some(algo), Some(v)) => match sent.get(algo).or(other) {
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
        use super::image_size as parse_size;
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("0").is_err());
        // Streamed: gigabytes are fine, up to the 1 TiB cap.
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert!(parse_size("2T").is_err());
    }

    #[test]
    fn verify_catches_each_mismatch() {
        let sent = Digests::of(b"hello");
        let good = ImageState {
            id: "i".into(),
            phase: ImagePhase::Active,
            status_text: "active".into(),
            size: Some(5),
            checksum: Some("5d41402abc4b2a76b9719d911017c592".into()),
            hash_algo: Some("sha512".into()),
            hash_value: Some(sent.sha512.clone()),
        };
        assert_eq!(verify(&good, 5, &sent, None).unwrap().status, Status::Ok);
        let mut wrong = good.clone();
        wrong.checksum = Some("00".repeat(16));
        let Err(f) = verify(&wrong, 5, &sent, None) else {
            panic!("a wrong checksum must fail")
        };
        assert!(f.message.contains("checksum (MD5)"), "{}", f.message);
        let mut wrong = good.clone();
        wrong.hash_value = Some("ab".repeat(64));
        assert!(verify(&wrong, 5, &sent, None).is_err());
        // garbage (non-ASCII) hash values are reported, not a panic
        wrong.hash_value = Some("é".repeat(20));
        assert!(verify(&wrong, 5, &sent, None).is_err());
        // a Glance hashing with sha256: compared with the regenerated digest
        let mut sha256 = good.clone();
        sha256.hash_algo = Some("sha256".into());
        sha256.hash_value =
            Some("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824".into());
        let regenerated = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert_eq!(
            verify(&sha256, 5, &sent, Some(regenerated)).unwrap().status,
            Status::Ok
        );
        assert!(verify(&sha256, 5, &sent, Some(&"0".repeat(64))).is_err());
        assert_eq!(
            verify(&sha256, 5, &sent, None).unwrap().status,
            Status::Warning
        );
        let mut missing = good.clone();
        missing.hash_value = None;
        assert_eq!(
            verify(&missing, 5, &sent, None).unwrap().status,
            Status::Warning
        );
    }
}
