//! check_object_storage: a drop-in for the federation's `swiftprobe` (same
//! command line) that checks more: create a tagged container, put an object
//! of `--size` bytes, read it back and compare bytes and MD5/ETag, see it in
//! the listing, delete object and container and confirm both are gone. What
//! it creates is deleted on every exit path. The object is generated from the
//! run id while it is sent (MD5 on the way out) and regenerated to compare
//! while it is read back, so memory stays the same whatever `--size`.

use std::time::Duration;

use md5::{Digest, Md5};
use tokio::time::Instant;

use crate::auth::AuthArgs;
use crate::backend::openstack;
use crate::backend::payload::{self, Compare, Payload};
use crate::backend::{empty_and_delete_container, run_id, ObjectStore};
use crate::clock::now_unix;
use crate::http::{body_channel, BodySender};
use crate::model::{Cleanup, Perf, ResourceKind, Status, Uom};
use crate::poll::{gone, wait_for, Poll, Wait};
use crate::probe::Probe;
use crate::{Ctx, Done, Fail};

crate::check_ids! { "EOSC-IAAS-STORAGE";
    CREATE = "OBJ-01", "create container";
    PUT = "OBJ-02", "store object";
    READ = "OBJ-03", "read object back";
    LIST = "OBJ-04", "object listed in container";
    DELETE_OBJECT = "OBJ-05", "delete object";
    DELETE_CONTAINER = "OBJ-06", "delete container";
}

/// Largest object: Swift's default limit for one object (`max_file_size`,
/// 5 GiB); larger ones take segments, which this probe does not write.
pub const MAX_SIZE: u64 = 5 << 30;
/// Longest wait for a deletion to show.
const GONE_WAIT: Duration = Duration::from_secs(30);

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Object size: bytes, or with a suffix (64K, 1M, 1GiB), at most 5 GiB
    #[arg(long = "size", value_name = "BYTES", default_value = "4K", value_parser = object_size)]
    pub size: u64,
}

/// `--size`: a size (`64K`, `1MiB`) up to [`MAX_SIZE`].
pub fn object_size(s: &str) -> Result<u64, String> {
    let v = crate::units::parse_size(s)?;
    if v > MAX_SIZE {
        return Err(format!("{s:?}: must be between 1 byte and 5 GiB"));
    }
    Ok(v)
}

/// What one run stores, backend-independent.
#[derive(Clone, Debug)]
pub struct Plan {
    pub size: u64,
    pub run_id: String,
}

impl Plan {
    pub fn container(&self) -> String {
        format!("fedprobe-{}", self.run_id)
    }
    pub fn object(&self) -> String {
        format!("probe-{}.bin", self.run_id)
    }
}

pub struct ObjectStorage;

impl Probe for ObjectStorage {
    const BIN: &'static str = "check_object_storage";
    const LABEL: &'static str = "OBJECT_STORAGE";
    const ABOUT: &'static str =
        "Create a container, store, read back, list and delete an object (swiftprobe drop-in)";
    /// swiftprobe's default `-t`.
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
    type Args = Args;

    fn checks() -> Vec<crate::model::CheckId> {
        crate::auth::checks()
            .into_iter()
            .chain(ALL.iter().copied())
            .collect()
    }

    async fn run(args: Args, ctx: Ctx) -> Result<String, Fail> {
        args.auth.require_openstack(Self::BIN)?;
        let plan = Plan {
            size: args.size,
            run_id: run_id(),
        };
        let store = openstack::login(&ctx, &args.auth).await?;
        let Some(u) = store.object_store_url() else {
            // The guideline asks for object storage where a site offers it;
            // a site that lists none is told so, not failed.
            let why = "the catalog lists no public object-store endpoint: \
                       object storage not offered here, nothing checked";
            ctx.note(CREATE, Status::Warning, why);
            return Ok(format!("no object storage: {why}"));
        };
        ctx.detail(format!("object store {u}"));
        object_cycle(&ctx, &store, &plan).await
    }
}

/// Generate the object into `tx`, MD5 on the way out; `None` if the
/// request ended before all of it was taken.
async fn produce(tx: BodySender, payload: Payload) -> Option<String> {
    let mut md5 = Md5::new();
    let all = payload.send(tx, |chunk| md5.update(chunk)).await;
    all.then(|| format!("{:x}", md5.finalize()))
}

/// The PUT's verdict on the ETag answered; the MD5 sent, for what follows.
fn put_verdict(
    object: &str,
    n: u64,
    etag: Option<String>,
    md5: String,
) -> Result<Done<String>, Fail> {
    match etag {
        Some(e) if e == md5 => Ok(Done::ok(md5, format!("{object}: {n} bytes, ETag = MD5"))),
        Some(e) => Err(Fail::critical(format!(
            "{object}: stored {n} bytes, but the ETag answered is {} and the MD5 sent {md5}",
            crate::text::one_line(&e, 40)
        ))),
        None => Ok(Done::warn(
            md5,
            format!("{object}: {n} bytes stored, no ETag answered"),
        )),
    }
}

/// What a read-back received, compared on the way in.
struct Read {
    bytes: u64,
    /// MD5 of the bytes received.
    md5: String,
    /// Where they first differ from what was sent (a short read differs at its end).
    first_difference: Option<u64>,
}

/// The probe logic, for any [`ObjectStore`].
pub async fn object_cycle<S: ObjectStore>(
    ctx: &Ctx,
    store: &S,
    plan: &Plan,
) -> Result<String, Fail> {
    let container = plan.container();
    let object = plan.object();
    let created = format!("{}", now_unix().floor() as u64);
    let tags = [
        ("Fedprobe-Run", plan.run_id.as_str()),
        ("Fedprobe-Created", created.as_str()),
    ];
    ctx.detail(format!("run {}, {}", plan.run_id, store.describe()));

    // Tracked before the request: a PUT cut short may still have made it.
    let c_handle = ctx.track(
        ResourceKind::Container,
        &container,
        None,
        store,
        |s, name| async move { empty_and_delete_container(&s, &name).await },
    );
    let t = Instant::now();
    ctx.step(CREATE, async {
        store.create_container(&container, &tags).await?;
        Ok(Done::ok((), format!("{container}, tagged with the run id")))
    })
    .await?;
    ctx.perf(Perf::seconds("create", t.elapsed()));

    let payload = Payload::raw(payload::seed_of(&plan.run_id), plan.size);
    let n = payload.len();
    let o_handle = ctx.track(
        ResourceKind::Object,
        &format!("{container}/{object}"),
        None,
        store,
        {
            let (c, o) = (container.clone(), object.clone());
            |s, _| async move { s.delete_object(&c, &o).await.map(drop) }
        },
    );
    let t = Instant::now();
    let md5 = ctx
        .step(PUT, async {
            let (tx, body) = body_channel(n);
            let (put, sent) = tokio::join!(
                store.put_object(&container, &object, body, &tags[..1]),
                produce(tx, payload.clone())
            );
            let etag = put?;
            let Some(md5) = sent else {
                return Err(Fail::unknown(
                    "the site answered the PUT before all the data was sent",
                ));
            };
            put_verdict(&object, n, etag, md5)
        })
        .await?;
    let put_time = t.elapsed();
    ctx.perf(Perf::seconds("put", put_time).thresholds(ctx.warning(), ctx.critical()));
    ctx.perf(Perf::new("size", n as f64, Uom::Bytes).min(0.0));
    ctx.perf(Perf::mb_per_s("put_rate", n, put_time));

    let t = Instant::now();
    ctx.step(READ, async {
        let mut cmp = Compare::new(payload);
        let mut read_md5 = Md5::new();
        let got = store
            .get_object(&container, &object, &mut |piece| {
                read_md5.update(piece);
                cmp.feed(piece)
            })
            .await?;
        let Some(got) = got else {
            return Err(Fail::critical(format!(
                "{object} not found (404) right after it was stored"
            )));
        };
        let read = Read {
            bytes: got.bytes,
            md5: format!("{:x}", read_md5.finalize()),
            first_difference: cmp.first_difference(),
        };
        compare(&read, n, got.hash.as_deref(), &md5)
    })
    .await?;
    let get_time = t.elapsed();
    ctx.perf(Perf::seconds("get", get_time));
    ctx.perf(Perf::mb_per_s("get_rate", n, get_time));

    let t = Instant::now();
    ctx.step(LIST, async {
        let Some(listed) = store.list_objects(&container).await? else {
            return Err(Fail::critical(format!(
                "container {container} not found (404) when listed"
            )));
        };
        let total = listed.len();
        let Some(mine) = listed.into_iter().find(|o| o.name == object) else {
            return Err(Fail::critical(format!(
                "{object} missing from the listing of {container} ({total} objects listed)"
            )));
        };
        let mut bad = Vec::new();
        if mine.bytes.is_some_and(|b| b != n) {
            bad.push(format!("bytes {:?}, stored {n}", mine.bytes.unwrap_or(0)));
        }
        if mine.hash.as_deref().is_some_and(|h| h != md5) {
            bad.push(format!("hash differs from the MD5 {md5}"));
        }
        if !bad.is_empty() {
            return Err(Fail::critical(format!(
                "{object} listed with {}",
                bad.join("; ")
            )));
        }
        Ok(Done::ok((), format!("{object} listed, {n} bytes")))
    })
    .await?;
    ctx.perf(Perf::seconds("list", t.elapsed()));

    let t = Instant::now();
    ctx.step(DELETE_OBJECT, async {
        store.delete_object(&container, &object).await?;
        let polls = gone(ctx.deadline(), GONE_WAIT, || {
            store.object_exists(&container, &object)
        })
        .await?;
        Ok(Done::ok((), format!("{object} gone (404), {polls} checks")))
    })
    .await?;
    ctx.settle(o_handle, Cleanup::Deleted);
    ctx.perf(Perf::seconds("delete_object", t.elapsed()));

    let t = Instant::now();
    ctx.step(DELETE_CONTAINER, async {
        delete_when_empty(ctx, store, &container).await?;
        let polls = gone(ctx.deadline(), GONE_WAIT, || {
            store.container_exists(&container)
        })
        .await?;
        Ok(Done::ok(
            (),
            format!("{container} gone (404), {polls} checks"),
        ))
    })
    .await?;
    ctx.settle(c_handle, Cleanup::Deleted);
    ctx.perf(Perf::seconds("delete_container", t.elapsed()));

    Ok(format!(
        "container {container}: object of {n} bytes stored in {:.2}s, read back identical, listed, deleted",
        put_time.as_secs_f64()
    ))
}

/// Read-back verdict: bytes first, then the ETag against what was sent and
/// against what came back (a site may keep the upload's ETag for bad bytes).
fn compare(got: &Read, sent: u64, etag: Option<&str>, md5: &str) -> Result<Done<()>, Fail> {
    if let Some(at) = got.first_difference {
        let etag_note = match etag {
            Some(e) if e == md5 => "; the ETag still claims the MD5 of what was sent",
            _ => "",
        };
        return Err(Fail::critical(format!(
            "object corrupted: read {} bytes (MD5 {}), sent {sent} (MD5 {md5}); first difference at byte {at}{etag_note}",
            got.bytes, got.md5
        )));
    }
    match etag {
        Some(e) if e == md5 => Ok(Done::ok(
            (),
            format!("{} bytes identical, ETag = MD5", got.bytes),
        )),
        Some(e) => Err(Fail::critical(format!(
            "bytes identical but the ETag is {}, not the MD5 {md5}",
            crate::text::one_line(e, 40)
        ))),
        None => Ok(Done::warn(
            (),
            format!("{} bytes identical, no ETag answered", got.bytes),
        )),
    }
}

/// Delete the (now empty) container; a 409 while the listing catches up
/// with the object's deletion is waited out, within [`GONE_WAIT`].
async fn delete_when_empty<S: ObjectStore>(ctx: &Ctx, store: &S, c: &str) -> Result<(), Fail> {
    let wait = Wait::bounded(ctx.deadline(), GONE_WAIT, None);
    let waited = wait_for(wait, || async move {
        match store.delete_container(c).await {
            Ok(_) => Ok(Poll::Ready(())),
            Err(f) if f.http_status() == Some(409) => Ok(Poll::Pending("not empty (409)".into())),
            Err(f) => Err(f),
        }
    })
    .await?;
    waited
        .or_fail(|l| {
            format!(
                "container still not empty (409) {:.0}s after its only object was deleted",
                l.limit.as_secs_f64()
            )
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Invocation;

    #[test]
    fn sizes() {
        assert_eq!(object_size("4K"), Ok(4096));
        assert_eq!(object_size("48M"), Ok(48 << 20));
        assert_eq!(object_size("5GiB"), Ok(5 << 30));
        assert!(object_size("0").is_err());
        assert!(object_size("6GiB").is_err());
    }

    /// ARGO's swiftprobe command lines parse unchanged.
    #[test]
    fn swiftprobe_command_line_parses() {
        for line in [
            "swiftprobe --endpoint https://k.example:5000/v3 --access-token /etc/nagios/globus/oidc -t 300",
            "swiftprobe --endpoint https://k.example:5000/v3 --cert /etc/grid-security/ca.pem --access-token /tmp/t --identity-provider egi.eu -v",
            "swiftprobe --endpoint https://k.example:5000/v3 --access-token=/tmp/t --timeout 120 --verbose",
        ] {
            let argv: Vec<String> = line.split(' ').map(String::from).collect();
            let inv = Invocation::<Args>::parse(ObjectStorage::BIN, &argv)
                .unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(
                inv.args.auth.endpoint.as_ref().map(|u| u.as_str()),
                Some("https://k.example:5000/v3")
            );
            assert!(inv.args.auth.access_token.is_some());
            assert_eq!(inv.args.size, 4096);
        }
        let argv: Vec<String> = "swiftprobe --endpoint https://k/v3 --access-token /t -t 300 -v --identity-provider egi.eu"
            .split(' ')
            .map(String::from)
            .collect();
        let inv = Invocation::<Args>::parse(ObjectStorage::BIN, &argv).unwrap();
        assert_eq!(inv.common.timeout, Some(Duration::from_secs(300)));
        assert_eq!(inv.common.verbose, 1);
        assert_eq!(inv.args.auth.identity_provider, "egi.eu");
    }

    /// What `get` received of `sent`, fed in pieces as a download would be.
    fn read_of(sent: &Payload, got: &[u8]) -> Read {
        let mut cmp = Compare::new(sent.clone());
        for piece in got.chunks(5) {
            cmp.feed(piece);
        }
        Read {
            bytes: got.len() as u64,
            md5: format!("{:x}", Md5::digest(got)),
            first_difference: cmp.first_difference(),
        }
    }

    #[test]
    fn read_back_verdicts() {
        let p = Payload::raw(7, 11);
        let mut sent = vec![0u8; 11];
        assert_eq!(p.clone().read(&mut sent), 11);
        let md5 = format!("{:x}", Md5::digest(&sent));
        let ok = read_of(&p, &sent);
        assert_eq!(
            compare(&ok, 11, Some(&md5), &md5).unwrap().status,
            Status::Ok
        );
        assert_eq!(
            compare(&ok, 11, None, &md5).unwrap().status,
            Status::Warning
        );
        let mut bad = sent.clone();
        bad[3] ^= 1;
        let Err(f) = compare(&read_of(&p, &bad), 11, Some(&md5), &md5) else {
            panic!("corruption must fail")
        };
        assert!(
            f.message.contains("first difference at byte 3"),
            "{}",
            f.message
        );
        assert!(f.message.contains("ETag still claims"), "{}", f.message);
        let bad_md5 = format!("{:x}", Md5::digest(&bad));
        assert!(
            f.message.contains(&bad_md5),
            "the MD5 of what was read: {}",
            f.message
        );
        let Err(f) = compare(&read_of(&p, &sent[..4]), 11, None, &md5) else {
            panic!("a short read must fail")
        };
        assert!(f.message.contains("read 4 bytes"), "{}", f.message);
        assert!(
            f.message.contains("first difference at byte 4"),
            "{}",
            f.message
        );
        let mut long = sent.clone();
        long.push(0);
        assert!(compare(&read_of(&p, &long), 11, Some(&md5), &md5).is_err());
        assert!(compare(&ok, 11, Some("00"), &md5).is_err());
    }

    #[test]
    fn put_verdicts() {
        let md5 = "5d41402abc4b2a76b9719d911017c592".to_string();
        let ok = put_verdict("o", 5, Some(md5.clone()), md5.clone()).unwrap();
        assert_eq!((ok.status, ok.value.as_str()), (Status::Ok, md5.as_str()));
        let none = put_verdict("o", 5, None, md5.clone()).unwrap();
        assert_eq!(none.status, Status::Warning);
        let Err(f) = put_verdict("o", 5, Some("00".into()), md5.clone()) else {
            panic!("a wrong ETag must fail")
        };
        assert!(f.message.contains("ETag answered is 00"), "{}", f.message);
    }
}
