//! check_certificates: after login, every distinct https host:port of the
//! catalog's public endpoints (the interface the probes use), the Keystone
//! URL and any `--check-endpoint` gets one TLS handshake verified against
//! the probes' trust roots; the leaf's expiry gives `days_left` per endpoint.
//! `--insecure` does not apply here: the certificate is what is checked.
//! On another `--cloud` (no catalog) the cloud's API endpoint is checked.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Url;
use tokio::time::Instant;

use crate::auth::{self, AuthArgs};
use crate::clients::tlscert::{Inspected, Inspector, Problem, Unreachable};
use crate::clock::now_unix;
use crate::http::trust_roots;
use crate::model::{Perf, Range, Status, Uom};
use crate::probe::Probe;
use crate::text::one_line;
use crate::{Ctx, Done, Fail};

crate::check_ids! { "EOSC-IAAS-API";
    LIST = "CERT-01", "https endpoints of the catalog";
    CHAIN = "CERT-02", "certificate chain and host name";
    DAYS = "CERT-03", "certificate days left";
}

/// Endpoints checked at most (a catalog of thousands stays bounded).
pub const MAX_ENDPOINTS: usize = 100;
/// Endpoints named in a message, and with perfdata, at most (output under 16 KB).
const SHOW: usize = 8;
const MAX_PERF: usize = 40;
/// Handshakes at once.
const PARALLEL: usize = 8;
/// One handshake's longest wait.
const HANDSHAKE_WAIT: Duration = Duration::from_secs(15);
const DAY: f64 = 86_400.0;

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Another https URL whose certificate to check too (repeatable); without a
    /// login configured only these are checked
    #[arg(long = "check-endpoint", value_name = "URL")]
    pub check_endpoint: Vec<Url>,
    /// WARNING when a certificate has fewer days left than this
    #[arg(long = "cert-warning", value_name = "DAYS", default_value_t = 30.0)]
    pub cert_warning: f64,
    /// CRITICAL when a certificate has fewer days left than this
    #[arg(long = "cert-critical", value_name = "DAYS", default_value_t = 7.0)]
    pub cert_critical: f64,
}

pub struct Certificates;

impl Probe for Certificates {
    const BIN: &'static str = "check_certificates";
    const LABEL: &'static str = "CERTIFICATES";
    const ABOUT: &'static str = "Check the TLS certificate of every https endpoint of the catalog: \
        chain, host name, days left (verified even with --insecure: the certificates are what it checks)";
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
    type Args = Args;

    fn checks() -> Vec<crate::model::CheckId> {
        auth::checks()
            .into_iter()
            .chain(ALL.iter().copied())
            .collect()
    }

    async fn run(args: Args, ctx: Ctx) -> Result<String, Fail> {
        if args.cert_critical > args.cert_warning {
            return Err(Fail::unknown(format!(
                "--cert-critical {} is above --cert-warning {}",
                args.cert_critical, args.cert_warning
            )));
        }
        let openstack = args.auth.cloud == auth::cloud::CloudKind::OpenStack;
        let login = openstack && (args.auth.configures_login() || args.check_endpoint.is_empty());
        let (mut targets, tls) = if !openstack {
            // No catalog on other clouds: their API endpoint is what there is.
            let api = args.auth.endpoint.iter();
            let urls = api.map(|u| (format!("{} API", args.auth.cloud), u.to_string()));
            (urls.collect(), ctx.http().tls().clone())
        } else if login {
            let t0 = Instant::now();
            let session = auth::login(&ctx, &args.auth).await?;
            ctx.perf(Perf::seconds("auth", t0.elapsed()));
            let mut urls: Vec<(String, String)> =
                vec![("identity".into(), session.keystone.to_string())];
            for s in &session.catalog.services {
                for e in &s.endpoints {
                    let in_region = session.region.as_deref().is_none_or(|r| e.in_region(r));
                    if e.interface == "public" && in_region {
                        urls.push((s.service_type.clone(), e.url.clone()));
                    }
                }
            }
            (urls, session.http.tls().clone())
        } else {
            (Vec::new(), ctx.http().tls().clone())
        };
        targets.extend(
            args.check_endpoint
                .iter()
                .map(|u| ("--check-endpoint".to_string(), u.to_string())),
        );
        let plan = ctx.step(LIST, async { endpoints(&targets) }).await?;
        // --insecure is ignored on purpose: the roots are those the probes trust.
        let inspector = Inspector::new(trust_roots(&tls)?)?;
        let seen = inspect_all(&ctx, &inspector, &plan).await;
        judge(&ctx, &args, &seen)
    }
}

/// One https host:port and the catalog's names for it.
#[derive(Clone, Debug)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub services: Vec<String>,
}

impl Target {
    pub fn name(&self) -> String {
        format!("{}:{} ({})", self.host, self.port, self.services.join(", "))
    }
}

/// The distinct https host:ports of `(service, url)` pairs, at most [`MAX_ENDPOINTS`].
fn endpoints(urls: &[(String, String)]) -> Result<Done<Vec<Target>>, Fail> {
    if urls.is_empty() {
        // A check of nothing is no pass: the monitor named no endpoint.
        return Err(Fail::unknown(
            "nothing to check: no endpoint given (--endpoint, --check-endpoint) and no catalog",
        ));
    }
    let mut by: BTreeMap<(String, u16), Vec<String>> = BTreeMap::new();
    let mut plain = Vec::new();
    let mut bad = Vec::new();
    for (service, raw) in urls {
        let Ok(u) = Url::parse(raw) else {
            bad.push(one_line(raw, 60));
            continue;
        };
        let Some(host) = u.host_str() else {
            bad.push(one_line(raw, 60));
            continue;
        };
        match u.scheme() {
            "https" => {
                let port = u.port_or_known_default().unwrap_or(443);
                let names = by.entry((host.to_string(), port)).or_default();
                if !names.contains(service) {
                    names.push(service.clone());
                }
            }
            _ => plain.push((service.clone(), host.to_string(), u.port_or_known_default())),
        }
    }
    let total = by.len();
    let targets: Vec<Target> = by
        .into_iter()
        .take(MAX_ENDPOINTS)
        .map(|((host, port), services)| Target {
            host,
            port,
            services,
        })
        .collect();
    let mut msg = format!("{total} distinct https host:port");
    if total > MAX_ENDPOINTS {
        msg.push_str(&format!(", the first {MAX_ENDPOINTS} checked"));
    }
    let mut status = Status::Ok;
    if !bad.is_empty() {
        status = Status::Warning;
        msg.push_str(&format!(
            "; {} unparsable URL(s): {}",
            bad.len(),
            shown(&bad)
        ));
    }
    // Plain http on loopback is a lab; elsewhere it sends tokens in clear.
    let remote: Vec<String> = plain
        .iter()
        .filter(|(_, h, _)| !is_loopback(h))
        .map(|(s, h, p)| format!("{h}:{} ({s})", p.unwrap_or(80)))
        .collect();
    if !remote.is_empty() {
        status = Status::Warning;
        msg.push_str(&format!("; plain http, no certificate: {}", shown(&remote)));
    } else if !plain.is_empty() {
        msg.push_str(&format!(
            "; {} plain-http loopback endpoint(s) not checked",
            plain.len()
        ));
    }
    if targets.is_empty() {
        msg = format!("no https endpoint to check; {msg}");
    }
    Ok(Done::with(status, targets, msg))
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// At most [`SHOW`] items, then how many more.
fn shown(items: &[String]) -> String {
    let mut s = items
        .iter()
        .take(SHOW)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > SHOW {
        s.push_str(&format!("; and {} more", items.len() - SHOW));
    }
    s
}

type Seen = (Target, Result<Inspected, Unreachable>);

/// Every target's handshake, [`PARALLEL`] at a time, in the targets' order.
async fn inspect_all(ctx: &Ctx, inspector: &Inspector, targets: &[Target]) -> Vec<Seen> {
    let end = ctx.deadline().end();
    let mut set = tokio::task::JoinSet::new();
    let mut out: Vec<Option<Seen>> = vec![None; targets.len()];
    let mut next = 0;
    loop {
        while set.len() < PARALLEL && next < targets.len() {
            let (i, t, insp) = (next, targets[next].clone(), inspector.clone());
            let until = end.min(Instant::now() + HANDSHAKE_WAIT);
            set.spawn(async move {
                let r = insp.inspect(&t.host, t.port, until).await;
                (i, t, r)
            });
            next += 1;
        }
        match set.join_next().await {
            Some(Ok((i, t, r))) => out[i] = Some((t, r)),
            // A panicked handshake task: its slot stays empty and is reported.
            Some(Err(_)) => {}
            None => break,
        }
    }
    out.into_iter()
        .zip(targets)
        .map(|(s, t)| {
            s.unwrap_or_else(|| {
                (
                    t.clone(),
                    Err(Unreachable::Handshake("check failed".into())),
                )
            })
        })
        .collect()
}

fn date(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// Days left for a leaf's `not_after`, one decimal.
fn days_left(not_after: i64) -> f64 {
    ((not_after as f64 - now_unix()) / DAY * 10.0).floor() / 10.0
}

fn problem_words(p: &Problem, i: &Inspected, host: &str) -> String {
    let leaf = i.leaf.as_ref();
    match (p, leaf) {
        (Problem::Expired, Some(l)) => format!(
            "certificate expired {:.1} days ago (not after {})",
            -days_left(l.not_after),
            date(l.not_after)
        ),
        (Problem::NotYetValid, Some(l)) => {
            format!("certificate not valid before {}", date(l.not_before))
        }
        (Problem::WrongHost, Some(l)) => format!(
            "certificate not valid for {host} (it names {})",
            if l.names.is_empty() {
                l.subject.clone()
            } else {
                one_line(&l.names.join(", "), 120)
            }
        ),
        (Problem::Untrusted, Some(l)) => format!(
            "certificate chain not trusted (issuer {}, {} certificate(s) sent)",
            l.issuer, i.chain_len
        ),
        _ => String::new(),
    }
}

fn judge(ctx: &Ctx, args: &Args, seen: &[Seen]) -> Result<String, Fail> {
    let mut bad = Vec::new();
    let mut days: Vec<(f64, &Target, i64)> = Vec::new();
    for (t, r) in seen {
        match r {
            Err(u) => bad.push(format!("{}: {u}", t.name())),
            Ok(i) => {
                if let Some(l) = &i.leaf {
                    ctx.detail(format!(
                        "{}: {}, issuer {}, not after {}, {} certificate(s) sent, handshake {:.3}s",
                        t.name(),
                        l.subject,
                        l.issuer,
                        date(l.not_after),
                        i.chain_len,
                        i.handshake.as_secs_f64()
                    ));
                }
                if let Some((p, detail)) = &i.problem {
                    let words = problem_words(p, i, &t.host);
                    let why = if words.is_empty() {
                        detail.clone()
                    } else {
                        format!("{words}; {detail}")
                    };
                    bad.push(format!("{}: {why}", t.name()));
                }
                if let Some(l) = &i.leaf {
                    days.push((days_left(l.not_after), t, l.not_after));
                }
            }
        }
    }
    let n = seen.len();
    if bad.is_empty() {
        ctx.note(
            CHAIN,
            Status::Ok,
            format!("{n} endpoint(s): chain trusted, host name matches"),
        );
    } else {
        ctx.note(
            CHAIN,
            Status::Critical,
            format!("{} of {n} endpoint(s) failed: {}", bad.len(), shown(&bad)),
        );
    }
    let warn = Range {
        start: Some(args.cert_warning),
        end: None,
        inside: false,
    };
    let crit = Range {
        start: Some(args.cert_critical),
        end: None,
        inside: false,
    };
    days.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (d, t, _) in days.iter().take(MAX_PERF) {
        ctx.perf(
            Perf::new(format!("days_left_{}_{}", t.host, t.port), *d, Uom::None)
                .thresholds(Some(warn), Some(crit)),
        );
    }
    ctx.perf(Perf::count("endpoints", n as u64));
    let Some((fewest, t, end)) = days.first() else {
        ctx.note(DAYS, Status::Ok, "no certificate read: nothing to count");
        return Ok(format!("{n} endpoint(s), no certificate read"));
    };
    let status = crate::model::verdict(*fewest, Some(warn), Some(crit));
    let short: Vec<String> = days
        .iter()
        .filter(|(d, ..)| *d < args.cert_warning)
        .map(|(d, t, _)| format!("{} {d:.1} days", t.name()))
        .collect();
    let msg = match status {
        Status::Ok => format!(
            "fewest days left {fewest:.1} at {} (expires {}); all at least {}",
            t.name(),
            date(*end),
            args.cert_warning
        ),
        _ => format!(
            "{} certificate(s) under {} days: {}",
            short.len(),
            args.cert_warning,
            shown(&short)
        ),
    };
    ctx.note(DAYS, status, msg);
    Ok(format!(
        "{n} endpoint(s), fewest days left {fewest:.1} at {}",
        t.name()
    ))
}
