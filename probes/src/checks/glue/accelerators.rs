//! ACCEL-01/02: the accelerator properties of the flavors the project sees,
//! and whether each publication carries the same accelerators.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Url;

use super::{Published, ACCEL_MATCH, ACCEL_SPEC};
use crate::auth::Session;
use crate::clients::nova::{Flavor, Nova};
use crate::formats::accelerators::{self as acc, LiveFlavor, Spec};
use crate::model::{Perf, Status};
use crate::{Ctx, Done, Fail};

/// Microversion that lists extra specs with the flavors.
const SPECS_MICROVERSION: &str = "2.61";
/// Flavors whose extra specs are read one by one on an older Nova.
const MAX_ONE_BY_ONE: usize = 200;
const SHOW: usize = 5;

/// The flavors with their properties as strings, and how many flavors'
/// properties were left unread (an older Nova with very many flavors).
async fn live_flavors(
    session: &Session,
    nova: &Url,
) -> Result<(Vec<(Flavor, BTreeMap<String, String>)>, usize), Fail> {
    let new = Nova::new(
        session.http.clone(),
        nova,
        session.token.clone(),
        Some(SPECS_MICROVERSION),
    );
    let all = [("is_public", "None")];
    let (flavors, listed) = match new.flavors(&all).await {
        Ok(f) => {
            let listed = f.iter().all(|f| f.extra_specs.is_some());
            (f, listed)
        }
        // An older Nova refuses the microversion (406/400): read them one by
        // one. Any other failure is the answer's, not the version's.
        Err(f) if matches!(f.http_status(), Some(400 | 406)) => {
            let old = Nova::new(session.http.clone(), nova, session.token.clone(), None);
            (old.flavors(&all).await?, false)
        }
        Err(f) => return Err(f),
    };
    let old = Nova::new(session.http.clone(), nova, session.token.clone(), None);
    let mut out = Vec::with_capacity(flavors.len());
    let mut unread = 0;
    for (i, mut f) in flavors.into_iter().enumerate() {
        let specs = match f.extra_specs.take() {
            Some(s) if listed => s,
            _ if i < MAX_ONE_BY_ONE => old.extra_specs(&f.id).await?.unwrap_or_default(),
            _ => {
                unread += 1;
                BTreeMap::new()
            }
        };
        let specs = specs
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect();
        out.push((f, specs));
    }
    Ok((out, unread))
}

/// Long-output lines at most, so the output stays under 16 KB.
const MAX_DETAILS: usize = 30;

fn show_details(ctx: &Ctx, lines: &[String]) {
    for l in lines.iter().take(MAX_DETAILS) {
        ctx.detail(crate::text::one_line(l, 300));
    }
    if lines.len() > MAX_DETAILS {
        ctx.detail(format!("... {} more", lines.len() - MAX_DETAILS));
    }
}

fn who(f: &Flavor) -> String {
    format!("{} ({})", f.name, f.id)
}

pub(super) async fn check(
    ctx: &Ctx,
    session: &Session,
    nova: &Url,
    published: &[Published],
) -> Result<String, Fail> {
    let read: Vec<(Flavor, Option<Spec>)> = ctx
        .step(ACCEL_SPEC, async {
            let (flavors, unread) = live_flavors(session, nova).await?;
            let total = flavors.len();
            if unread > 0 {
                ctx.detail(format!(
                    "older Nova: the extra specs of the first {MAX_ONE_BY_ONE} flavors were read, {unread} more not"
                ));
            }
            let read: Vec<(Flavor, Option<Spec>)> = flavors
                .into_iter()
                .map(|(f, specs)| {
                    let s = acc::read(&specs);
                    (f, s)
                })
                .collect();
            let seen: Vec<&(Flavor, Option<Spec>)> =
                read.iter().filter(|(_, s)| s.is_some()).collect();
            let mut problems = Vec::new();
            let mut notes = Vec::new();
            let mut good = Vec::new();
            for (f, s) in &seen {
                let Some(s) = s else { continue };
                for p in &s.problems {
                    problems.push(format!("flavor {}: {p}", who(f)));
                }
                for n in &s.notes {
                    notes.push(format!("flavor {}: {n}", who(f)));
                }
                if let Some(a) = &s.accelerator {
                    good.push(format!("{} {a}", f.name));
                }
            }
            let bad = seen
                .iter()
                .filter(|(_, s)| s.as_ref().is_some_and(|s| s.accelerator.is_none()))
                .count();
            ctx.perf(Perf::count("accelerator_flavors", seen.len() as u64));
            ctx.perf(Perf::count("accelerator_malformed", bad as u64));
            if seen.is_empty() {
                let msg =
                    format!("no accelerator flavors among the {total} flavor(s) the project sees");
                return Ok(Done::ok(read, msg));
            }
            let (status, mut lines) = if !problems.is_empty() {
                (Status::Critical, problems)
            } else if !notes.is_empty() {
                (Status::Warning, notes.clone())
            } else {
                (Status::Ok, Vec::new())
            };
            // What the message leaves out goes to the long output, bounded.
            let mut rest: Vec<String> = lines.iter().skip(SHOW).cloned().collect();
            if status == Status::Critical {
                rest.extend(notes);
            }
            show_details(ctx, &rest);
            let more = lines.len().saturating_sub(SHOW);
            lines.truncate(SHOW);
            let msg = if status == Status::Ok {
                format!(
                    "{} accelerator flavor(s) well formed: {}",
                    seen.len(),
                    good.iter()
                        .take(SHOW)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                let what = if status == Status::Critical {
                    "malformed"
                } else {
                    "incomplete"
                };
                let more = if more > 0 {
                    format!("; {more} more")
                } else {
                    String::new()
                };
                format!(
                    "{} accelerator flavor(s), {what} properties: {}{more}",
                    seen.len(),
                    lines.join("; ")
                )
            };
            Ok(Done::with(status, read, msg))
        })
        .await?;
    ctx.step(ACCEL_MATCH, async {
        let live: Vec<LiveFlavor<'_>> = read
            .iter()
            .map(|(f, s)| LiveFlavor {
                id: &f.id,
                name: &f.name,
                accelerator: s.as_ref().map(|s| s.accelerator.as_ref()),
            })
            .collect();
        let mut all = Vec::new();
        let mut compared = Vec::new();
        for p in published {
            let Some(accs) = &p.accelerators else {
                continue;
            };
            compared.push(p.source);
            let types: BTreeSet<String> = p.instance_types.iter().map(|i| i.id.clone()).collect();
            for m in acc::mismatches(&live, &types, accs) {
                all.push(format!("{}: {m}", p.source));
            }
        }
        ctx.perf(Perf::count("accelerator_mismatches", all.len() as u64));
        let n = live.iter().filter(|f| f.accelerator.is_some()).count();
        if compared.is_empty() {
            return Ok(Done::ok(
                String::new(),
                "no publication lists flavors (information-system API only)",
            ));
        }
        if all.is_empty() {
            let published: usize = published
                .iter()
                .filter_map(|p| p.accelerators.as_ref())
                .map(|a| a.len())
                .max()
                .unwrap_or(0);
            let msg = if n == 0 && published == 0 {
                format!(
                    "no accelerators live or published ({})",
                    compared.join(", ")
                )
            } else {
                format!(
                    "{n} accelerator flavor(s) published alike in {}",
                    compared.join(", ")
                )
            };
            return Ok(Done::ok(msg.clone(), msg));
        }
        show_details(ctx, &all[SHOW.min(all.len())..]);
        let more = all.len().saturating_sub(SHOW);
        let msg = format!(
            "{} accelerator mismatch(es) between Nova and the publication: {}{}",
            all.len(),
            all.iter()
                .take(SHOW)
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
            if more > 0 {
                format!("; {more} more")
            } else {
                String::new()
            }
        );
        Ok(Done::warn(
            format!("{} accelerator mismatch(es)", all.len()),
            msg,
        ))
    })
    .await
}
