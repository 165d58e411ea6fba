//! check_glue: a site's GLUE 2.1 publication, read from a JSON document, the
//! information-system API and/or an LDAP BDII; validated (schema, IDs,
//! associations, policies, expiry, endpoint URL) and, with credentials,
//! compared with what the live site says.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

use crate::auth::cloud::CloudKind;
use crate::auth::{self, AuthArgs};
use crate::backend::opennebula;
use crate::backend::{Named, SiteCatalog};
use crate::clients::glance::Glance;
use crate::clients::nova::Nova;
use crate::clients::{is_api, ldap};
use crate::formats::accelerators as acc;
use crate::formats::glue::{self, Item, Producer, Rules, ShareInfo};
use crate::model::Status;
use crate::model::{Perf, Range, Uom};
use crate::probe::{Optional, Probe};
use crate::{Ctx, Done, Fail};

crate::check_ids! { "EOSC-IAAS-INFOSYS";
    READ = "GLUE-01", "read publication";
    VALIDATE = "GLUE-02", "publication valid";
    IS_SITE = "GLUE-03", "site in the information system";
    PROJECTS = "GLUE-04", "published project matches the site";
    DRIFT = "GLUE-05", "published images and flavors exist";
    ACCEL_SPEC = "ACCEL-01", "accelerator flavor properties well formed";
    ACCEL_MATCH = "ACCEL-02", "published accelerators match the flavors";
}

mod accelerators;

const SHOW: usize = 30;

/// Flags that give the probe a login of its own (see `AuthArgs::configures_login`).
const LOGIN_FLAGS: &[&str] = &[
    "opennebula-session",
    "access-token",
    "refresh-token",
    "client-id",
    "username",
    "app-cred-id",
    "os-cloud",
];

#[derive(clap::Args, Clone, Debug, Default)]
#[command(group(clap::ArgGroup::new("source").required(true).multiple(true).args(["glue_file", "glue_url", "is_url", "ldap_url"])))]
pub struct Args {
    #[command(flatten)]
    pub auth: AuthArgs,
    /// GLUE 2.1 JSON document (as cloud-info-provider writes it)
    #[arg(long = "glue-file", value_name = "FILE")]
    pub glue_file: Option<PathBuf>,
    /// URL of the GLUE 2.1 JSON document
    #[arg(long = "glue-url", value_name = "URL")]
    pub glue_url: Option<Url>,
    /// Information-system API base URL (cloud-info-api)
    #[arg(long = "is-url", value_name = "URL", requires = "site")]
    pub is_url: Option<Url>,
    /// Site name (GOCDB) in the information system
    #[arg(long = "site", value_name = "NAME")]
    pub site: Option<String>,
    /// LDAP BDII, e.g. ldap://bdii.example.org:2170
    #[arg(long = "ldap-url", value_name = "URL")]
    pub ldap_url: Option<String>,
    /// LDAP search base
    #[arg(long = "ldap-base", default_value = "o=glue")]
    pub ldap_base: String,
    /// VO name as published (MappingPolicy VO:<name>, IS API); default: --vo
    #[arg(long = "glue-vo", value_name = "VO")]
    pub glue_vo: Option<String>,
}

impl Args {
    /// The VO to look for in the publication.
    pub fn published_vo(&self) -> Option<&str> {
        self.glue_vo.as_deref().or(self.auth.project.as_deref())
    }
}

const LOGIN_HOW: &str = "a login to compare with the live site: --endpoint URL with --access-token FILE or --os-cloud NAME (profile: endpoints.keystone and a credential); on OpenNebula --cloud opennebula --endpoint RPC2-URL with --opennebula-session FILE";

pub struct Glue;

/// Whether the probe has a login of its own to compare with the live site.
fn compares_live(a: &AuthArgs) -> bool {
    a.configures_login()
        || (a.cloud == CloudKind::OpenNebula
            && a.endpoint.is_some()
            && a.opennebula.session.is_some())
}

/// What one source publishes, for the live comparison.
struct Published {
    source: &'static str,
    shares: Vec<ShareInfo>,
    images: Vec<Item>,
    instance_types: Vec<Item>,
    /// `None`: the source does not publish flavors (information-system API).
    accelerators: Option<Vec<acc::Published>>,
}

impl Probe for Glue {
    const BIN: &'static str = "check_glue";
    const LABEL: &'static str = "GLUE";
    const ABOUT: &'static str = "Check a site's GLUE 2.1 publication";
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
    type Args = Args;

    fn checks() -> Vec<crate::model::CheckId> {
        crate::auth::checks()
            .into_iter()
            .chain(ALL.iter().copied())
            .collect()
    }

    const OPTIONAL: &'static [Optional] = &[
        Optional {
            check: "GLUE-03",
            flags: &["is-url"],
            how: "--is-url URL with --site NAME, the information-system API that lists the site",
        },
        Optional {
            check: "GLUE-04",
            flags: LOGIN_FLAGS,
            how: LOGIN_HOW,
        },
        Optional {
            check: "GLUE-05",
            flags: LOGIN_FLAGS,
            how: LOGIN_HOW,
        },
        Optional {
            check: "ACCEL-01",
            flags: LOGIN_FLAGS,
            how: "a login to read the flavors' Accelerator:* properties: --endpoint URL with --access-token FILE or --os-cloud NAME (profile: endpoints.keystone and a credential)",
        },
        Optional {
            check: "ACCEL-02",
            flags: LOGIN_FLAGS,
            how: "a login to compare the published accelerators with the flavors: --endpoint URL with --access-token FILE or --os-cloud NAME (profile: endpoints.keystone and a credential)",
        },
    ];

    async fn run(args: Args, ctx: Ctx) -> Result<String, Fail> {
        if let Some(u) = &args.ldap_url {
            check_ldap_url(u)?;
        }
        let rules = Rules {
            now: crate::clock::now_secs(),
            endpoint: args.auth.endpoint.as_ref().map(|u| u.to_string()),
            producer: match args.auth.cloud {
                CloudKind::OpenNebula => Producer::OpenNebula,
                _ => Producer::OpenStack,
            },
        };
        let mut published = Vec::new();
        let mut summary = Vec::new();
        if let Some(f) = &args.glue_file {
            let doc = ctx
                .step(READ, async {
                    let bytes = crate::files::read(f, crate::files::DOCUMENT)
                        .map_err(|e| Fail::unknown(format!("cannot read {}: {e}", f.display())))?;
                    let doc = glue::parse(&bytes)
                        .map_err(|e| Fail::critical(format!("{}: {e}", f.display())))?;
                    Ok(Done::ok(
                        doc,
                        format!("{} ({} bytes)", f.display(), bytes.len()),
                    ))
                })
                .await?;
            let (p, s) = validate(&ctx, "file", &doc, &rules);
            published.push(p);
            summary.push(s);
        }
        if let Some(u) = &args.glue_url {
            let doc = ctx
                .step(READ, async {
                    let reply = ctx
                        .http()
                        .send(ctx.http().get(u.clone()))
                        .await?
                        .success()?;
                    let doc = glue::parse(&reply.body).map_err(|e| {
                        let e = e.quoting(&reply.body);
                        Fail::critical(format!("{}: {e}", crate::http::show_url(u)))
                    })?;
                    Ok(Done::ok(
                        doc,
                        format!("{} ({} bytes)", crate::http::show_url(u), reply.body.len()),
                    ))
                })
                .await?;
            let (p, s) = validate(&ctx, "url", &doc, &rules);
            published.push(p);
            summary.push(s);
        }
        if let Some(u) = &args.ldap_url {
            let doc = ctx
                .step(READ, async {
                    let left = ctx.deadline().remaining();
                    let entries = ldap::fetch(u, &args.ldap_base, left).await?;
                    let doc = ldap::to_glue(&entries);
                    let n = doc.as_object().map_or(0, |o| {
                        o.values()
                            .filter_map(|v| v.as_array())
                            .map(|a| a.len())
                            .sum::<usize>()
                    });
                    if n == 0 {
                        return Err(Fail::critical(format!(
                            "{u}: {} entries under {}, none of a GLUE 2.1 cloud class",
                            entries.len(),
                            args.ldap_base
                        )));
                    }
                    Ok(Done::ok(
                        doc,
                        format!("{u}: {} entries, {n} cloud objects", entries.len()),
                    ))
                })
                .await?;
            let (p, s) = validate(&ctx, "ldap", &doc, &rules);
            published.push(p);
            summary.push(s);
        }
        if let (Some(is), Some(site)) = (&args.is_url, &args.site) {
            let (p, s) = is_checks(&ctx, is, site, args.published_vo()).await?;
            published.push(p);
            summary.push(s);
        }
        if compares_live(&args.auth) {
            summary.push(match args.auth.cloud {
                CloudKind::OpenStack => live(&ctx, &args, &published).await?,
                CloudKind::OpenNebula => {
                    let b = opennebula::login(&ctx, &args.auth).await?;
                    live_view(&ctx, &b, &args, &published).await?
                }
                other => {
                    return Err(Fail::unknown(format!(
                        "check_glue compares a publication with the live site on OpenStack and \
                         OpenNebula only (cloud-info-provider publishes no other API), not --cloud {}",
                        other.name()
                    )))
                }
            });
        }
        Ok(summary.join("; "))
    }
}

/// A bad `--ldap-url` is the monitor's mistake (UNKNOWN), not the site's.
pub fn check_ldap_url(u: &str) -> Result<(), Fail> {
    let url = Url::parse(u).map_err(|e| Fail::unknown(format!("--ldap-url {u:?}: {e}")))?;
    match url.scheme() {
        "ldap" if url.host_str().is_some() => Ok(()),
        "ldap" => Err(Fail::unknown(format!("--ldap-url {u:?}: no host"))),
        "ldaps" => Err(Fail::unknown(
            "--ldap-url: ldaps:// is not supported (built without TLS); BDIIs answer plain ldap:// on 2170",
        )),
        other => Err(Fail::unknown(format!("--ldap-url {u:?}: scheme {other}, expected ldap://"))),
    }
}

/// Validate one document; record the verdict and perfdata; never stop the probe.
fn validate(
    ctx: &Ctx,
    source: &'static str,
    doc: &serde_json::Value,
    rules: &Rules,
) -> (Published, String) {
    let r = glue::validate(doc, rules);
    let status = r.status();
    let count = |c: &str| r.counts.get(c).copied().unwrap_or(0) as u64;
    ctx.perf(Perf::count(format!("{source}_shares"), count("Share")));
    ctx.perf(Perf::count(
        format!("{source}_images"),
        r.images.len() as u64,
    ));
    ctx.perf(Perf::count(
        format!("{source}_flavors"),
        r.instance_types.len() as u64,
    ));
    ctx.perf(Perf::count(
        format!("{source}_findings"),
        r.findings.len() as u64,
    ));
    if let Some(left) = r.time_left {
        let warn = Range {
            start: Some(glue::EXPIRY_WARNING_SECS as f64),
            end: None,
            inside: false,
        };
        let crit = Range {
            start: Some(0.0),
            end: None,
            inside: false,
        };
        ctx.perf(
            Perf::new(format!("{source}_time_left"), left as f64, Uom::Seconds)
                .thresholds(Some(warn), Some(crit)),
        );
    }
    if let Some(age) = r.age {
        ctx.perf(Perf::new(format!("{source}_age"), age as f64, Uom::Seconds));
    }
    let mut sorted = r.findings.clone();
    sorted.sort_by_key(|f| std::cmp::Reverse(f.status));
    for f in sorted.iter().skip(3).take(SHOW) {
        ctx.detail(format!("{source}: {} {f}", f.status));
    }
    if sorted.len() > SHOW + 3 {
        ctx.detail(format!(
            "{source}: ... {} more finding(s)",
            sorted.len() - SHOW - 3
        ));
    }
    let objects: usize = r.counts.values().sum();
    let msg = if sorted.is_empty() {
        format!(
            "{source}: {objects} objects, {} share(s), {} image(s), {} flavor(s) valid{}",
            count("Share"),
            r.images.len(),
            r.instance_types.len(),
            r.time_left
                .map(|l| format!(", {l}s until expiry"))
                .unwrap_or_default()
        )
    } else {
        let first: Vec<String> = sorted.iter().take(3).map(|f| f.to_string()).collect();
        format!(
            "{source}: {} finding(s): {}",
            sorted.len(),
            first.join("; ")
        )
    };
    ctx.note(VALIDATE, status, msg.clone());
    let summary = if status == Status::Ok {
        format!("{source} publication valid ({} share(s))", count("Share"))
    } else {
        msg
    };
    (
        Published {
            source,
            shares: r.shares,
            images: r.images,
            instance_types: r.instance_types,
            accelerators: Some(acc::published(doc)),
        },
        summary,
    )
}

async fn is_checks(
    ctx: &Ctx,
    is: &Url,
    site: &str,
    vo: Option<&str>,
) -> Result<(Published, String), Fail> {
    let (found, published_vo) = ctx
        .step(IS_SITE, async {
            let api = is_api::IsApi::new(ctx.http().clone(), is);
            // The site's own route first: the whole list grows with the
            // federation (a harness over N sites would fetch N lists of N).
            // The list is the fallback: a site given by its GOCDB id, an
            // API older than `/site/{name}/?include_projects`, or a miss.
            let s = match api.site(site).await? {
                Some(s) if s.name == site && !s.projects.is_empty() => s,
                _ => {
                    let sites = api.sites().await?;
                    let n = sites.len();
                    let Some(s) = sites.into_iter().find(|s| s.name == site || s.id == site)
                    else {
                        return Err(Fail::critical(format!(
                            "site {site} is not listed ({n} sites listed; stale or missing publication)"
                        )));
                    };
                    s
                }
            };
            if s.projects.is_empty() {
                return Err(Fail::critical(format!(
                    "site {site} is listed without any VO/project"
                )));
            }
            if let Some(vo) = vo {
                if !s.projects.iter().any(|p| p.name == vo || p.id == vo) {
                    let names: Vec<&str> = s.projects.iter().map(|p| p.name.as_str()).collect();
                    return Err(Fail::critical(format!(
                        "VO {vo} not published for {site} (has: {})",
                        names.join(", ")
                    )));
                }
            }
            // The VO's project and images are read within the step: a
            // broken answer to them names GLUE-03 (and a deadline cuts it).
            let published_vo = match vo {
                Some(vo) => Some((
                    vo,
                    api.vo_project(&s.name, vo).await?,
                    api.vo_images(&s.name, vo).await?,
                )),
                None => None,
            };
            let msg = format!("{site} listed with {} project(s)", s.projects.len());
            Ok(Done::ok((s, published_vo), msg))
        })
        .await?;
    ctx.perf(Perf::count("is_projects", found.projects.len() as u64));
    let mut shares: Vec<ShareInfo> = found
        .projects
        .iter()
        .map(|p| ShareInfo {
            id: String::new(),
            vo: Some(p.name.clone()),
            project_id: p.id.clone(),
            project_name: None,
        })
        .collect();
    let mut images = Vec::new();
    if let Some((vo, project, vo_images)) = published_vo {
        shares.retain(|s| s.vo.as_deref() != Some(vo));
        shares.push(ShareInfo {
            id: String::new(),
            vo: Some(vo.to_string()),
            project_id: project.id,
            project_name: None,
        });
        images = vo_images
            .into_iter()
            .map(|i| Item {
                id: i.id,
                name: i.name,
            })
            .collect();
    }
    let s = format!(
        "{site} in the information system with {} project(s)",
        found.projects.len()
    );
    Ok((
        Published {
            source: "is",
            shares,
            images,
            instance_types: Vec::new(),
            accelerators: None,
        },
        s,
    ))
}

/// Compare each source with the live site: project ids, images, flavors.
async fn live(ctx: &Ctx, args: &Args, published: &[Published]) -> Result<String, Fail> {
    let session = auth::login(ctx, &args.auth).await?;
    let vo = args.published_vo();
    ctx.step(PROJECTS, async {
        let mut bad = Vec::new();
        let mut good = Vec::new();
        for p in published {
            // The share for the VO (or project name) asked for, else the
            // one naming the scoped project, else any share of its id.
            let share = vo
                .and_then(|v| p.shares.iter().find(|s| s.serves(v)))
                .or_else(|| {
                    let v = args.auth.project.as_deref()?;
                    p.shares.iter().find(|s| s.serves(v))
                })
                .or_else(|| p.shares.iter().find(|s| s.serves(&session.project_name)))
                .or_else(|| p.shares.iter().find(|s| s.project_id == session.project_id));
            match share {
                Some(s) if s.project_id == session.project_id => good.push(p.source),
                Some(s) => bad.push(format!(
                    "{}: VO {} published with project {}, the token exchange yields {} ({})",
                    p.source,
                    s.vo.as_deref().unwrap_or("?"),
                    s.project_id,
                    session.project_id,
                    session.project_name
                )),
                None => bad.push(format!(
                    "{}: no share {} (token exchange yields project {} {})",
                    p.source,
                    vo.map(|v| format!("for VO {v}"))
                        .unwrap_or_else(|| "for this project".into()),
                    session.project_id,
                    session.project_name
                )),
            }
        }
        if !bad.is_empty() {
            return Err(Fail::critical(bad.join("; ")));
        }
        Ok(Done::ok(
            (),
            format!(
                "project {} published in {}",
                session.project_id,
                good.join(", ")
            ),
        ))
    })
    .await?;
    let nova = session.endpoint("compute")?;
    let glance = session.endpoint("image")?;
    ctx.step(DRIFT, async {
        let flavors: Vec<Item> =
            Nova::new(session.http.clone(), &nova, session.token.clone(), None)
                .flavors(&[("is_public", "None")])
                .await?
                .into_iter()
                .map(|f| Item {
                    id: f.id,
                    name: f.name,
                })
                .collect();
        let images: Vec<Item> = Glance::new(session.http.clone(), &glance, session.token.clone())
            .images(&[("status", "active")])
            .await?
            .into_iter()
            .map(|i| Item {
                name: i.name.clone().unwrap_or_default(),
                id: i.id,
            })
            .collect();
        let mut drift = Vec::new();
        for p in published {
            let gone_i = glue::drift(&p.images, &images);
            let gone_f = glue::drift(&p.instance_types, &flavors);
            if !gone_i.is_empty() {
                drift.push(format!(
                    "{}: {} published image(s) not in Glance: {}",
                    p.source,
                    gone_i.len(),
                    names(&gone_i)
                ));
            }
            if !gone_f.is_empty() {
                drift.push(format!(
                    "{}: {} published flavor(s) not in Nova: {}",
                    p.source,
                    gone_f.len(),
                    names(&gone_f)
                ));
            }
        }
        ctx.perf(Perf::count("live_images", images.len() as u64));
        ctx.perf(Perf::count("live_flavors", flavors.len() as u64));
        if drift.is_empty() {
            Ok(Done::ok(
                (),
                format!(
                    "published items exist ({} images, {} flavors live)",
                    images.len(),
                    flavors.len()
                ),
            ))
        } else {
            Ok(Done::warn((), drift.join("; ")))
        }
    })
    .await?;
    let accel = accelerators::check(ctx, &session, &nova, published).await?;
    Ok(format!(
        "consistent with the live site (project {}){}",
        session.project_name,
        if accel.is_empty() {
            String::new()
        } else {
            format!("; {accel}")
        }
    ))
}

/// Up to five items, `name (id)`.
fn names(v: &[Item]) -> String {
    v.iter()
        .take(5)
        .map(|i| {
            if i.name.is_empty() {
                i.id.clone()
            } else {
                format!("{} ({})", i.name, i.id)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn items(v: &[Named]) -> Vec<Item> {
    v.iter()
        .map(|n| Item {
            id: n.id.clone(),
            name: n.name.clone(),
        })
        .collect()
}

/// Compare each source with the live site through the backend seam (clouds
/// other than OpenStack): a share for the VO naming one of the login's
/// projects (OpenNebula: the user's groups, by name or id), and the
/// published images among what the cloud lists (OpenNebula: VM templates).
async fn live_view<S: SiteCatalog>(
    ctx: &Ctx,
    b: &S,
    args: &Args,
    published: &[Published],
) -> Result<String, Fail> {
    let vo = args.published_vo();
    let view = ctx
        .step(PROJECTS, async {
            let view = b.site_view().await?;
            let word = view.project_word;
            let mine = |pid: &str| {
                view.projects
                    .iter()
                    .any(|p| !pid.is_empty() && (p.id == pid || p.name == pid))
            };
            let listed = names(&items(&view.projects));
            let (mut good, mut bad) = (Vec::new(), Vec::new());
            for p in published {
                let share = vo
                    .and_then(|v| p.shares.iter().find(|s| s.serves(v)))
                    .or_else(|| p.shares.iter().find(|s| mine(&s.project_id)));
                match share {
                    Some(s) if mine(&s.project_id) => good.push(format!(
                        "{}: {word} {}",
                        p.source, s.project_id
                    )),
                    Some(s) => bad.push(format!(
                        "{}: VO {} published with project {}, not a {word} of this login (has: {listed})",
                        p.source,
                        s.vo.as_deref().unwrap_or("?"),
                        s.project_id
                    )),
                    None => bad.push(format!(
                        "{}: no share {} (the login's {word}s: {listed})",
                        p.source,
                        vo.map(|v| format!("for VO {v}"))
                            .unwrap_or_else(|| format!("for any {word} of this login"))
                    )),
                }
            }
            if !bad.is_empty() {
                return Err(Fail::critical(bad.join("; ")));
            }
            let msg = format!("published project is the login's {}", good.join(", "));
            Ok(Done::ok(view, msg))
        })
        .await?;
    ctx.step(DRIFT, async {
        let live = items(&view.images);
        let mut drift = Vec::new();
        let mut notes = Vec::new();
        for p in published {
            let gone = glue::drift(&p.images, &live);
            if !gone.is_empty() {
                drift.push(format!(
                    "{}: {} published image(s) not among the site's {}s: {}",
                    p.source,
                    gone.len(),
                    view.image_word,
                    names(&gone)
                ));
            }
            if view.flavors.is_none() && !p.instance_types.is_empty() {
                notes.push(format!(
                    "{}: {} instance type(s) not compared (this API has no flavors)",
                    p.source,
                    p.instance_types.len()
                ));
            }
        }
        ctx.perf(Perf::count("live_images", live.len() as u64));
        let tail = if notes.is_empty() {
            String::new()
        } else {
            format!("; {}", notes.join("; "))
        };
        if drift.is_empty() {
            Ok(Done::ok(
                (),
                format!(
                    "published images exist ({} {}s live){tail}",
                    live.len(),
                    view.image_word
                ),
            ))
        } else {
            Ok(Done::warn((), format!("{}{tail}", drift.join("; "))))
        }
    })
    .await?;
    Ok(format!(
        "consistent with the live site ({} {}s)",
        view.images.len(),
        view.image_word
    ))
}
