//! check_orchestrator: can the federation's orchestrator (the
//! Infrastructure Manager) use this site? Log in to the site (as every
//! probe does, so a site refusing the monitor's token is told apart from
//! one refusing the orchestrator), pick image and flavor, then ask the
//! orchestrator to deploy a one-VM infrastructure there with the monitor's
//! OIDC access token, wait until it runs, destroy it and confirm at the site
//! that its servers are gone.
//!
//! Who is at fault: the orchestrator is the federation's service, not the
//! site's. When it is unreachable, broken or refuses the monitor's own IM
//! credentials nothing is learnt about the site: UNKNOWN. When the site
//! refuses what the orchestrator asks (the token, the image, the VM), the
//! site fails: CRITICAL, with the orchestrator's own words (cut, cleaned).

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use tokio::time::Instant;

use crate::auth::{self, AuthArgs, Session};
use crate::backend::openstack::OpenStack;
use crate::backend::{delete_server_and_wait, run_id, Compute, Flavor, ImageQuery, ImageRef};
use crate::clients::im::{self, AuthHeader, Im, InfState, OidcSite};
use crate::fail::FailKind;
use crate::model::{Cleanup, Perf, ResourceKind, Status};
use crate::poll::{wait_for, Poll, Wait};
use crate::probe::Probe;
use crate::record::ResourceId;
use crate::secret::Secret;
use crate::units::parse_duration;
use crate::{Ctx, Done, Fail};

mod teardown;

use teardown::{instance_ids, track_infrastructure, track_request};

crate::check_ids! { "EOSC-IAAS-ORCH";
    REACH = "ORCH-01", "orchestrator reachable";
    IMAGE = "ORCH-02", "image for the deployment";
    FLAVOR = "ORCH-03", "flavor for the deployment";
    DEPLOY = "ORCH-04", "orchestrator deploys on the site";
    RUNNING = "ORCH-05", "deployment running";
    DESTROY = "ORCH-06", "orchestrator destroys the deployment";
    GONE = "ORCH-07", "servers gone at the site";
}

/// Smallest root disk an EGI monitoring image needs (as check_vm_lifecycle).
const MIN_DISK_GB: u64 = 8;
/// Longest wait for the site to show the servers gone after the destroy.
const GONE_WAIT: Duration = Duration::from_secs(60);
/// How often the orchestrator's state is read.
const STATE_EVERY: Duration = Duration::from_secs(2);

#[derive(clap::Args, Clone, Debug)]
#[command(group(clap::ArgGroup::new("which_image").required(true).multiple(true).args(["image", "registry_image", "appdb_image"])))]
pub struct Args {
    #[command(flatten)]
    pub auth: AuthArgs,
    /// The orchestrator's REST API (Infrastructure Manager), e.g. https://im.example.org:8800
    #[arg(long = "orchestrator", value_name = "URL")]
    pub orchestrator: Url,
    /// The monitor's own user at the orchestrator
    #[arg(long = "orchestrator-user", value_name = "NAME")]
    pub orchestrator_user: String,
    /// File holding the monitor's password at the orchestrator
    #[arg(long = "orchestrator-password-file", value_name = "FILE")]
    pub orchestrator_password_file: PathBuf,
    /// Image id or name to deploy
    #[arg(long = "image", value_name = "ID")]
    pub image: Option<String>,
    /// Registry reference of the image (eu.egi.cloud.image_ref in APPLIANCE_ATTRIBUTES)
    #[arg(long = "registry-image", value_name = "REF")]
    pub registry_image: Option<String>,
    /// AppDB id of the image (Glance property ad:appid)
    #[arg(long = "appdb-image", value_name = "ID")]
    pub appdb_image: Option<String>,
    /// Flavor name or id; default: fewest vCPUs, then least RAM, with >= 8 GB disk
    #[arg(long = "flavor", value_name = "NAME")]
    pub flavor: Option<String>,
    /// Longest wait for the deployment to run
    #[arg(long = "vm-timeout", value_name = "DURATION", default_value = "300", value_parser = parse_duration)]
    pub vm_timeout: Duration,
}

pub struct Orchestrator;

impl Probe for Orchestrator {
    const BIN: &'static str = "check_orchestrator";
    const LABEL: &'static str = "ORCHESTRATOR";
    const ABOUT: &'static str =
        "Have the federation's orchestrator (IM) deploy a one-VM infrastructure on the site and destroy it";
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
    type Args = Args;

    fn checks() -> Vec<crate::model::CheckId> {
        crate::auth::checks()
            .into_iter()
            .chain(ALL.iter().copied())
            .collect()
    }

    async fn run(args: Args, ctx: Ctx) -> Result<String, Fail> {
        let image = image_query(&args)?;
        let password = crate::auth::config::read_secret_file(
            &args.orchestrator_password_file,
            "the orchestrator password file",
        )
        .map_err(|f| ctx.fail_at(REACH, f))?;
        // No credentials on this call: reachability only.
        let probe_im = Im::new(ctx.http().clone(), &args.orchestrator, AuthHeader::none());
        let t = Instant::now();
        let version = ctx
            .step(REACH, async {
                let v = probe_im.version().await.map_err(orchestrator_fault)?;
                let at = crate::http::show_url(probe_im.base());
                Ok(Done::ok(v.clone(), format!("IM {v} at {at}")))
            })
            .await?;
        ctx.perf(Perf::seconds("reach", t.elapsed()));

        let t = Instant::now();
        let session = auth::login(&ctx, &args.auth).await?;
        ctx.perf(Perf::seconds("auth", t.elapsed()));
        let cloud = OpenStack::from_session(&session);
        let Some(token) = session.bearer.clone() else {
            return Err(ctx.fail_at(
                DEPLOY,
                Fail::unknown(format!(
                    "the orchestrator is handed the monitor's OIDC access token, and this login \
                     used {}: give --access-token, --refresh-token or OIDC client credentials",
                    session.method
                )),
            ));
        };
        let header = site_header(&session, &token, &args.orchestrator_user, &password)
            .map_err(|f| ctx.fail_at(DEPLOY, f))?;
        let im = Im::new(ctx.http().clone(), &args.orchestrator, header);
        let plan = Plan {
            run_id: run_id(),
            image,
            flavor: args.flavor.clone(),
            vm_timeout: args.vm_timeout,
            site_host: session.keystone.host_str().unwrap_or("").to_string(),
        };
        ctx.detail(format!(
            "run {}, orchestrator IM {version}, site project {} ({}), {}",
            plan.run_id,
            session.project_name,
            session.project_id,
            crate::backend::Backend::describe(&cloud)
        ));
        deploy_cycle(&ctx, &cloud, &im, &plan).await
    }
}

fn image_query(args: &Args) -> Result<ImageQuery, Fail> {
    if let Some(i) = &args.image {
        Ok(ImageQuery::IdOrName(i.clone()))
    } else if let Some(r) = &args.registry_image {
        Ok(ImageQuery::Registry(r.clone()))
    } else if let Some(a) = &args.appdb_image {
        Ok(ImageQuery::AppDb(a.clone()))
    } else {
        // clap's ArgGroup makes this unreachable from a command line.
        Err(Fail::unknown(
            "one of --image, --registry-image or --appdb-image is required",
        ))
    }
}

/// IM's Authorization header for this site and login.
fn site_header(
    s: &Session,
    token: &Secret,
    user: &str,
    password: &Secret,
) -> Result<AuthHeader, Fail> {
    let protocol = s.protocol.as_deref().unwrap_or("openid");
    // libcloud scopes by project name or id; the id cannot be ambiguous.
    im::auth_header(
        user,
        password,
        &OidcSite {
            keystone: &s.keystone,
            identity_provider: &s.identity_provider,
            protocol,
            project: &s.project_id,
            region: s.region.as_deref(),
            token,
        },
    )
}

/// What one run deploys.
#[derive(Clone, Debug)]
pub struct Plan {
    pub run_id: String,
    pub image: ImageQuery,
    pub flavor: Option<String>,
    pub vm_timeout: Duration,
    /// The site's host as the orchestrator's credentials name it (image URLs
    /// must use the same).
    pub site_host: String,
}

impl Plan {
    /// The RADL system name: also the prefix of the site's server names.
    pub fn system(&self) -> String {
        format!("fedprobe-{}", self.run_id)
    }
}

/// A one-VM RADL with contextualization off (no SSH, no Ansible). Values
/// from the site are checked to be plain before they go into RADL strings.
pub fn radl(plan: &Plan, image: &ImageRef, flavor: &Flavor) -> Result<String, Fail> {
    for (what, v) in [
        ("image id", image.id.as_str()),
        ("flavor name", flavor.name.as_str()),
        ("site host", plan.site_host.as_str()),
    ] {
        let plain = !v.is_empty()
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
        if !plain {
            return Err(Fail::critical(format!(
                "{what} {:?} cannot be written into a RADL string",
                crate::text::one_line(v, 60)
            )));
        }
    }
    let sys = plan.system();
    Ok(format!(
        "network public ( outbound = 'yes' )\n\
         system {sys} (\n\
         cpu.count >= {cpus} and\n\
         memory.size >= {ram}m and\n\
         instance_type = '{flavor}' and\n\
         net_interface.0.connection = 'public' and\n\
         disk.0.os.name = 'linux' and\n\
         disk.0.image.url = 'ost://{host}/{image}' and\n\
         disk.0.os.credentials.username = 'cloudadm'\n\
         )\n\
         contextualize ()\n\
         deploy {sys} 1\n",
        cpus = flavor.vcpus.max(1),
        ram = flavor.ram_mb.max(1),
        flavor = flavor.name,
        host = plan.site_host,
        image = image.id,
    ))
}

/// Who is at fault in an orchestrator's error text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blame {
    /// The site refused or failed what the orchestrator asked.
    Site,
    /// The orchestrator itself (or the monitor's account at it).
    Orchestrator,
}

/// IM's texts name the cloud when the cloud said no: "Error launching the
/// VMs of type X to cloud ID Y", "Invalid credentials with the provider",
/// the connector's "No ... found" for the cloud's image or flavor.
pub fn blame(text: &str) -> Blame {
    let t = text.to_ascii_lowercase();
    let site = [
        "to cloud id",
        "with the provider",
        "error launching the vms",
        "no image found",
        "no instance type",
        "no flavor",
        "quota",
    ];
    if site.iter().any(|s| t.contains(s)) {
        Blame::Site
    } else {
        Blame::Orchestrator
    }
}

/// The cloud's own answer inside IM's text: its first launch attempt's
/// error ("Attempt 1: 400 Bad Request Flavor's memory is too small ...").
pub fn site_words(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("Attempt 1:")?;
    let first = rest.split("Attempt 2:").next().unwrap_or(rest).trim();
    let first = first.strip_prefix("Error:").unwrap_or(first).trim();
    (!first.is_empty()).then(|| crate::text::one_line(first, 160))
}

/// A failure talking to the orchestrator, judged: its own trouble is
/// UNKNOWN, the site's refusal (in its words) CRITICAL. Timeouts stay.
fn orchestrator_fault(f: Fail) -> Fail {
    if f.kind == FailKind::Timeout {
        return f;
    }
    let own = |what: &str, f: Fail| Fail {
        status: Status::Unknown,
        kind: FailKind::Monitor,
        message: format!("{what}: {}", f.message),
        ..f
    };
    match f.http_status() {
        None => own("orchestrator unreachable", f),
        Some(401) | Some(403) => own("the orchestrator refused the monitor's own credentials", f),
        Some(_) if blame(&f.message) == Blame::Site => Fail {
            message: match site_words(&f.message) {
                Some(w) => format!(
                    "the site refused the VM the orchestrator asked for: {w} (orchestrator: {})",
                    f.message
                ),
                None => format!("the site refused the orchestrator: {}", f.message),
            },
            ..f
        },
        Some(_) => own("orchestrator error (not the site's)", f),
    }
}

/// Deploy, wait, destroy, confirm at the site.
pub async fn deploy_cycle<C: Compute>(
    ctx: &Ctx,
    cloud: &C,
    im: &Im,
    plan: &Plan,
) -> Result<String, Fail> {
    let image = ctx
        .step(IMAGE, async {
            let i = cloud.find_image(&plan.image).await?;
            let msg = format!("{} ({})", i.id, i.name);
            Ok(Done::ok(i, msg))
        })
        .await?;
    let flavor = ctx
        .step(FLAVOR, async {
            let f = cloud
                .pick_flavor(plan.flavor.as_deref(), MIN_DISK_GB)
                .await?;
            let msg = format!(
                "{} ({}): {} vCPU, {} MB RAM, {} GB disk",
                f.name, f.id, f.vcpus, f.ram_mb, f.disk_gb
            );
            Ok(Done::ok(f, msg))
        })
        .await?;
    let radl = radl(plan, &image, &flavor).map_err(|f| ctx.fail_at(DEPLOY, f))?;

    let t_deploy = Instant::now();
    let (inf, inf_handle) = ctx
        .step(DEPLOY, async {
            // Until the answer comes, cleanup finds the deployment by the
            // run's system name in the RADLs the orchestrator keeps.
            let in_flight = track_request(ctx, im, cloud, &plan.system());
            let id = match im.create(&radl).await {
                Ok(id) => id,
                Err(f) => {
                    // An answer means the orchestrator has cleaned up its
                    // failed create; a lost one may hide a deployment.
                    if f.http_status().is_some() {
                        ctx.forget(in_flight);
                    }
                    return Err(orchestrator_fault(f));
                }
            };
            let handle = track_infrastructure(ctx, im, cloud, &id);
            ctx.forget(in_flight);
            Ok(Done::ok(
                (id.clone(), handle),
                format!(
                    "infrastructure {id}: 1 VM of {} with image {} requested at the site",
                    flavor.name, image.id
                ),
            ))
        })
        .await?;
    let deploy_time = t_deploy.elapsed();
    ctx.perf(Perf::seconds("deploy", deploy_time));

    let t_run = Instant::now();
    // Then the servers at the site, tracked there too: if the orchestrator
    // cannot destroy them, the monitor deletes them itself. Read within this
    // stage, so a read that never ends names it; a read that fails is
    // ORCH-07's, which cannot check the site without them.
    let ((state, polls), run_time, servers) = ctx
        .step(RUNNING, async {
            let done = wait_running(ctx, im, &inf, plan.vm_timeout).await?;
            let run_time = t_run.elapsed();
            let servers = site_servers(ctx, cloud, im, &inf).await;
            Ok(Done::with(
                done.status,
                (done.value, run_time, servers),
                done.message,
            ))
        })
        .await?;
    ctx.perf(Perf::seconds("running", run_time).thresholds(ctx.warning(), ctx.critical()));
    ctx.perf(Perf::count("polls", polls));

    let t_destroy = Instant::now();
    ctx.step(DESTROY, async {
        match im.destroy(&inf, false).await {
            Ok(_) => Ok(Done::ok((), "destroyed".to_string())),
            // IM answers 400 when deleting some cloud resource failed (a
            // site without floating IPs: "Error removing Floating IPs");
            // force makes it forget the deployment, and ORCH-07 checks the
            // site itself.
            Err(f) if f.http_status() == Some(400) => {
                let first = f.message.clone();
                im.destroy(&inf, true).await.map_err(orchestrator_fault)?;
                Ok(Done::ok(
                    (),
                    format!(
                        "destroyed with force=true after: {}",
                        crate::text::one_line(&first, 200)
                    ),
                ))
            }
            Err(f) => Err(orchestrator_fault(f)),
        }
    })
    .await?;
    ctx.perf(Perf::seconds("destroy", t_destroy.elapsed()));
    // Confirmed: the orchestrator no longer knows it.
    let known = im.state(&inf).await.map_err(orchestrator_fault);
    match known {
        Ok(None) => ctx.settle(inf_handle, Cleanup::Deleted),
        Ok(Some(s)) => {
            return Err(ctx.fail_at(
                DESTROY,
                Fail::unknown(format!(
                    "the orchestrator still lists infrastructure {inf} ({}) after destroying it",
                    s.state
                )),
            ))
        }
        Err(f) => return Err(ctx.fail_at(DESTROY, f)),
    }

    let t_gone = Instant::now();
    ctx.step(GONE, async {
        let servers = servers?;
        for (id, handle) in &servers {
            wait_gone_at_site(ctx, cloud, id).await?;
            ctx.settle(*handle, Cleanup::Deleted);
        }
        let ids: Vec<&str> = servers.iter().map(|(i, _)| i.as_str()).collect();
        Ok(match ids.len() {
            0 => Done::warn(
                (),
                "the orchestrator named no server for its VM: nothing to check at the site",
            ),
            _ => Done::ok((), format!("server {} gone (404)", ids.join(", "))),
        })
    })
    .await?;
    ctx.perf(Perf::seconds("gone", t_gone.elapsed()));

    Ok(format!(
        "orchestrator deployed infrastructure {inf} on the site ({} {:.1}s after the request) \
         and destroyed it, servers gone at the site",
        state.state,
        run_time.as_secs_f64() + deploy_time.as_secs_f64()
    ))
}

/// Poll the orchestrator until the deployment runs (`running`, or
/// `configured`: with contextualization off IM goes straight there).
async fn wait_running(
    ctx: &Ctx,
    im: &Im,
    inf: &str,
    want: Duration,
) -> Result<Done<(InfState, u64)>, Fail> {
    let t0 = Instant::now();
    let wait = Wait::bounded(ctx.deadline(), want, Some(STATE_EVERY)).sleep_first();
    let waited = wait_for(wait, || async move {
        let Some(s) = im.state(inf).await.map_err(orchestrator_fault)? else {
            return Err(Fail::unknown(format!(
                "the orchestrator lost infrastructure {inf} (404) while it was deploying"
            )));
        };
        match s.state.as_str() {
            "running" | "configured" | "unconfigured" => Ok(Poll::Ready(s)),
            "failed" => Err(failed(im, inf, &s).await),
            other => Ok(Poll::Pending(other.to_string())),
        }
    })
    .await?;
    let (value, polls) = waited.or_fail(|l| {
        format!(
            "still {} {:.0}s after the orchestrator accepted it (the site's VM did not start)",
            l.last,
            l.limit.as_secs_f64()
        )
    })?;
    let msg = format!(
        "{} after {:.1}s, {polls} state reads",
        value.state,
        t0.elapsed().as_secs_f64()
    );
    // `unconfigured`: the VM runs, contextualization failed; with
    // contextualization off that is the orchestrator's business.
    Ok(if value.state == "unconfigured" {
        Done::warn(
            (value, polls),
            format!("{msg}: VM running, contextualization failed"),
        )
    } else {
        Done::ok((value, polls), msg)
    })
}

/// A failed deployment, judged by the orchestrator's log of it.
async fn failed(im: &Im, inf: &str, s: &InfState) -> Fail {
    let log = im.contmsg(inf).await.unwrap_or_default();
    // The log's most telling line: the first naming an error.
    let line = log
        .lines()
        .find(|l| l.to_ascii_lowercase().contains("error"))
        .unwrap_or(log.trim());
    let said = crate::text::one_line(line, 300);
    let vms = s
        .vms
        .iter()
        .map(|(k, v)| format!("VM {k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    match blame(&log) {
        Blame::Site => Fail::critical(match site_words(&log) {
            Some(w) => {
                format!("the site failed the orchestrator's VM ({vms}): {w} (orchestrator: {said})")
            }
            None => format!("the site failed the orchestrator's VM ({vms}): {said}"),
        }),
        Blame::Orchestrator => Fail::unknown(format!(
            "the orchestrator failed the deployment ({vms}), not naming the site: {said}"
        )),
    }
}

/// The deployment's servers at the site, each tracked for deletion there.
/// A failure to read them is ORCH-07's (it cannot check the site): the run
/// still asks the orchestrator to destroy the deployment first.
async fn site_servers<C: Compute>(
    ctx: &Ctx,
    cloud: &C,
    im: &Im,
    inf: &str,
) -> Result<Vec<(String, ResourceId)>, Fail> {
    let ids = instance_ids(im, inf).await.map_err(|f| {
        let f = orchestrator_fault(f);
        Fail {
            message: format!("cannot read the deployment's servers: {}", f.message),
            ..f
        }
    })?;
    Ok(ids
        .into_iter()
        .map(|id| {
            let handle =
                ctx.track_retried(ResourceKind::Server, &id, None, cloud, |c, id| async move {
                    delete_server_and_wait(&c, &id).await.map(drop)
                });
            (id, handle)
        })
        .collect())
}

async fn wait_gone_at_site<C: Compute>(ctx: &Ctx, cloud: &C, id: &str) -> Result<(), Fail> {
    let wait = Wait::bounded(ctx.deadline(), GONE_WAIT, None);
    let waited = wait_for(wait, || async move {
        Ok(match cloud.server(id).await? {
            None => Poll::Ready(()),
            Some(s) => Poll::Pending(s.status_text),
        })
    })
    .await?;
    waited
        .or_fail(|l| {
            format!(
                "server {id} still listed by the site ({}) {:.0}s after the orchestrator \
                 destroyed the deployment",
                l.last,
                l.limit.as_secs_f64()
            )
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Invocation;

    fn plan() -> Plan {
        Plan {
            run_id: "0123abcdef".into(),
            image: ImageQuery::IdOrName("x".into()),
            flavor: None,
            vm_timeout: Duration::from_secs(60),
            site_host: "127.0.0.1".into(),
        }
    }

    #[test]
    fn radl_names_the_run_and_switches_contextualization_off() {
        let img = ImageRef {
            id: "44b64f41-42af".into(),
            name: "egi".into(),
        };
        let fl = Flavor {
            id: "8".into(),
            name: "m1.probe".into(),
            vcpus: 1,
            ram_mb: 512,
            disk_gb: 8,
        };
        let r = radl(&plan(), &img, &fl).unwrap();
        assert!(r.contains("system fedprobe-0123abcdef ("), "{r}");
        assert!(r.contains("deploy fedprobe-0123abcdef 1"), "{r}");
        assert!(
            r.contains("disk.0.image.url = 'ost://127.0.0.1/44b64f41-42af'"),
            "{r}"
        );
        assert!(r.contains("instance_type = 'm1.probe'"), "{r}");
        assert!(r.contains("contextualize ()"), "{r}");
        let hostile = Flavor {
            name: "m1' and x = 'y".into(),
            ..fl
        };
        let f = radl(&plan(), &img, &hostile).unwrap_err();
        assert_eq!(f.status, Status::Critical);
    }

    #[test]
    fn blame_follows_what_im_says() {
        for site in [
            "Error Creating Inf.: 'Invalid credentials with the provider'",
            "Error launching the VMs of type node to cloud ID ost of type OpenStack. Attempt 1: \
             Error: 404 Not Found {'message': 'No image found with ID 0000'}",
        ] {
            assert_eq!(blame(site), Blame::Site, "{site}");
        }
        for own in [
            "Error Creating Inf.: Invalid InfrastructureManager credentials",
            "Error Creating Inf.: Error parsing RADL: unexpected token",
            "Internal Server Error",
        ] {
            assert_eq!(blame(own), Blame::Orchestrator, "{own}");
        }
    }

    #[test]
    fn the_sites_words_come_first() {
        let im = "Error Creating Inf.: Error adding VMs: Error launching the VMs of type x to cloud ID \
                  site of type OpenStack. Attempt 1: 400 Bad Request Flavor's memory is too small for \
                  requested image. Attempt 2: 400 Bad Request Flavor's memory is too small";
        assert_eq!(
            site_words(im).as_deref(),
            Some("400 Bad Request Flavor's memory is too small for requested image.")
        );
        let nf = "Attempt 1: Error: 404 Not Found {'message': 'No image found with ID 0'}";
        assert!(site_words(nf).unwrap().starts_with("404 Not Found"));
        assert_eq!(site_words("Error Creating Inf.: boom"), None);
    }

    #[test]
    fn faults_are_judged() {
        let refused =
            Fail::critical("connection refused").with_transport(crate::model::Transport::Refused);
        let f = orchestrator_fault(refused);
        assert_eq!(f.status, Status::Unknown);
        assert!(
            f.message.starts_with("orchestrator unreachable"),
            "{}",
            f.message
        );
        let http = |code: u16, msg: &str| {
            Fail::critical(msg).with_http(crate::model::HttpFacts {
                status: Some(code),
                method: "POST".into(),
                url: "http://im/infrastructures".into(),
            })
        };
        let f = orchestrator_fault(http(401, "Invalid InfrastructureManager credentials"));
        assert_eq!(f.status, Status::Unknown);
        let f = orchestrator_fault(http(400, "'Invalid credentials with the provider'"));
        assert_eq!(f.status, Status::Critical);
        assert!(f.message.contains("the site refused"), "{}", f.message);
        let f = orchestrator_fault(http(500, "Internal Server Error"));
        assert_eq!(f.status, Status::Unknown);
        let t = orchestrator_fault(Fail::timeout("no answer"));
        assert_eq!(t.kind, FailKind::Timeout);
    }

    #[test]
    fn command_line() {
        let line = "check_orchestrator --endpoint https://k.example/v3 --access-token /t \
                    --orchestrator http://127.0.0.1:18800 --orchestrator-user mon \
                    --orchestrator-password-file /p --appdb-image 1017 -t 300";
        let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
        let inv = Invocation::<Args>::parse(Orchestrator::BIN, &argv).unwrap();
        assert_eq!(inv.args.orchestrator.as_str(), "http://127.0.0.1:18800/");
        assert_eq!(inv.args.appdb_image.as_deref(), Some("1017"));
        let no_image: Vec<String> = line
            .replace("--appdb-image 1017", "")
            .split_whitespace()
            .map(String::from)
            .collect();
        assert!(Invocation::<Args>::parse(Orchestrator::BIN, &no_image).is_err());
    }
}
