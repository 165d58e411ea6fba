//! check_appliances: the appliance-repository step of the provider
//! integration. The images the site's VOs subscribe to in the federation's
//! image registry (image lists in the registry's HEPiX format, from a URL or
//! a file) must be at the site: present, active, at the listed version and
//! checksum, with the registry's attributes. Missing or outdated ones are named.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

use crate::auth::{self, AuthArgs};
use crate::clients::glance::Glance;
use crate::formats::imagelist::{self, Finding, List, SiteImage};
use crate::model::Perf;
use crate::probe::{Optional, Probe};
use crate::{Ctx, Done, Fail};

crate::check_ids! { "EGI-APPLIANCES";
    READ = "APPL-01", "read the subscribed image lists";
    SITE = "APPL-02", "list the site's images";
    MATCH = "APPL-03", "subscribed images present, active, current";
}

/// Images named per failing message, at most.
const SHOW: usize = 20;
/// The Glance property the synchroniser (atrope, cloudkeeper) writes.
pub const APPLIANCE_ATTRIBUTES: &str = "APPLIANCE_ATTRIBUTES";

#[derive(clap::Args, Clone, Debug, Default)]
pub struct Args {
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Image list (HEPiX JSON, as the registry publishes per VO): a file or an https URL; repeatable
    #[arg(long = "appliances-list", value_name = "FILE|URL", required = true)]
    pub lists: Vec<String>,
}

pub struct Appliances;

impl Probe for Appliances {
    const BIN: &'static str = "check_appliances";
    const LABEL: &'static str = "APPLIANCES";
    const ABOUT: &'static str =
        "Check that the images the site's VOs subscribe to in the image registry are at the site";
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
            check: "APPL-01",
            flags: &["appliances-list"],
            how: "--appliances-list FILE|URL, the VO's image list from the federation's registry (profile: [probe.check_appliances] appliances-list = \"https://...\")",
        },
        Optional {
            check: "APPL-02",
            flags: &["appliances-list"],
            how: "--appliances-list FILE|URL, the VO's image list from the federation's registry (profile: [probe.check_appliances] appliances-list = \"https://...\")",
        },
        Optional {
            check: "APPL-03",
            flags: &["appliances-list"],
            how: "--appliances-list FILE|URL, the VO's image list from the federation's registry (profile: [probe.check_appliances] appliances-list = \"https://...\")",
        },
    ];

    const REQUIRES: Option<&'static str> = Some("appliances-list");

    async fn run(args: Args, ctx: Ctx) -> Result<String, Fail> {
        let lists = ctx.step(READ, read_lists(&ctx, &args.lists)).await?;
        let session = auth::login(&ctx, &args.auth).await?;
        let glance = session.endpoint("image")?;
        let site = ctx
            .step(SITE, async {
                let images = Glance::new(session.http.clone(), &glance, session.token.clone())
                    .images(&[])
                    .await?;
                let n = images.len();
                let site: Vec<SiteImage> = images
                    .into_iter()
                    .map(|i| {
                        let attributes = i
                            .property(APPLIANCE_ATTRIBUTES)
                            .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
                            .and_then(|v| v.as_object().cloned());
                        let sha512 = (i.os_hash_algo.as_deref() == Some("sha512"))
                            .then(|| i.os_hash_value.clone())
                            .flatten()
                            .or_else(|| i.property("sha512").map(String::from));
                        SiteImage {
                            name: i.name.clone().unwrap_or_default(),
                            id: i.id,
                            status: i.status,
                            attributes,
                            sha512,
                        }
                    })
                    .collect();
                let synced = site.iter().filter(|s| s.attributes.is_some()).count();
                Ok(Done::ok(
                    site,
                    format!(
                        "{n} image(s) visible to {}, {synced} with {APPLIANCE_ATTRIBUTES}",
                        session.project_name
                    ),
                ))
            })
            .await?;
        ctx.step(MATCH, async {
            let mut ok = 0;
            let mut bad = Vec::new();
            for l in &lists {
                for (listed, f) in imagelist::compare(l, &site) {
                    match f {
                        Finding::Ok { .. } => ok += 1,
                        other => bad.push(imagelist::describe(&listed, &other)),
                    }
                }
            }
            ctx.perf(Perf::count("subscribed", (ok + bad.len()) as u64));
            ctx.perf(Perf::count("not_current", bad.len() as u64));
            if bad.is_empty() {
                return Ok(Done::ok(
                    (),
                    format!("{ok} subscribed image(s) present, active and current"),
                ));
            }
            let shown: Vec<&str> = bad.iter().take(SHOW).map(String::as_str).collect();
            let more = bad.len().saturating_sub(SHOW);
            Err(Fail::critical(format!(
                "{} of {} subscribed image(s) not current: {}{}",
                bad.len(),
                ok + bad.len(),
                shown.join("; "),
                if more > 0 {
                    format!("; and {more} more")
                } else {
                    String::new()
                }
            )))
        })
        .await?;
        let n: usize = lists.iter().map(|l| l.images.len()).sum();
        Ok(format!(
            "{n} subscribed image(s) from {} list(s) at the site",
            lists.len()
        ))
    }
}

/// Read and parse every list: one that cannot be read or parsed is the
/// monitor's trouble (UNKNOWN), not the site's.
async fn read_lists(ctx: &Ctx, sources: &[String]) -> Result<Done<Vec<List>>, Fail> {
    let mut out = Vec::new();
    let mut said = Vec::new();
    for s in sources {
        let bytes = if s.starts_with("https://") || s.starts_with("http://") {
            let url =
                Url::parse(s).map_err(|e| Fail::unknown(format!("--appliances-list {s}: {e}")))?;
            let reply = ctx
                .http()
                .send(ctx.http().get(url))
                .await
                .map_err(|f| Fail::unknown(format!("image list {s}: {}", f.message)))?;
            if !reply.status.is_success() {
                return Err(Fail::unknown(format!(
                    "image list {s}: HTTP {}",
                    reply.status
                )));
            }
            reply.body
        } else {
            crate::files::read(&PathBuf::from(s), crate::files::DOCUMENT)
                .map_err(|e| Fail::unknown(format!("image list {s}: {e}")))?
        };
        let list =
            imagelist::parse(&bytes).map_err(|e| Fail::unknown(format!("image list {s}: {e}")))?;
        said.push(format!(
            "{} ({}{} image(s))",
            if list.title.is_empty() {
                s.as_str()
            } else {
                list.title.as_str()
            },
            list.vo
                .as_deref()
                .map(|v| format!("VO {v}, "))
                .unwrap_or_default(),
            list.images.len()
        ));
        out.push(list);
    }
    Ok(Done::ok(out, said.join("; ")))
}
