//! The `fedprobe` subcommands: run, init, check-profile, explain, check-guideline, demo, serve.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use probes::model::Status;
use tokio::sync::watch;

#[cfg(feature = "demo")]
use crate::demo::{Demo, DemoOptions, Fault, Faults};
use crate::guideline::{Capability, Guideline, Level, ProbeEntry, Requirement};
use crate::profile::Profile;
use crate::progress::Progress;
use crate::report::spool::{Spool, Writer};
use crate::report::{self, Format, Report};
use crate::run::{self, ExternalPlan, Limits, ProbePlan, SitePlan};

#[derive(Parser, Debug)]
#[command(
    name = "fedprobe",
    version,
    about = "Run interoperability guidelines over many cloud sites and report"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run every check of the guideline for every site (or the given checks)
    Run(RunArgs),
    /// Validate a guideline file
    CheckGuideline {
        /// Guideline TOML file (or the embedded id)
        file: String,
        /// A JSON report (`fedprobe.json`): also list the checks the probes
        /// reported that no capability references, and selectors matching none
        #[arg(long, value_name = "REPORT")]
        against: Option<PathBuf>,
    },
    /// Print the embedded guideline
    Guideline,
    /// Write a site profile from what can be discovered, validated by a dry login
    Init(crate::init::InitArgs),
    /// Validate a site profile without contacting the site (problems at their line)
    CheckProfile {
        /// Site profile (TOML)
        file: PathBuf,
    },
    /// What a check does, the requirement it evidences, what fails it and how sites fix it
    Explain {
        /// Check id: VM-02, check_usage:USAGE-04, RUN-VM_LIFECYCLE
        check: String,
        /// Guideline id or file
        #[arg(long, default_value = crate::guideline::DEFAULT_ID)]
        guideline: String,
    },
    /// Start the embedded reference cloud, run the whole guideline, write reports
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    /// Prometheus exporter: /probe?target=SITE&module=PROBE runs a probe per scrape
    Serve(crate::serve::ServeArgs),
    /// Write man pages and shell completions into DIR (for packaging)
    #[command(hide = true)]
    GenDocs {
        /// Output directory: man/man1 and completions/{bash,zsh,fish} under it
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Warning,
    Critical,
    Never,
}

#[derive(Args, Debug, Clone)]
pub struct Output {
    /// What goes to stdout
    #[arg(long, value_enum, default_value = "nagios")]
    pub format: Format,
    /// Write every report format into this directory
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
    /// Concurrent probes overall (at most: while the CPU cannot keep up, a
    /// new probe waits until it can, so probes do not queue for the CPU
    /// holding memory and spending their own -t)
    #[arg(long, default_value_t = 16)]
    pub jobs: usize,
    /// Concurrent probes per site
    #[arg(long, default_value_t = 2)]
    pub jobs_per_site: usize,
    /// Start no new probe while the process's resident memory is above SIZE
    /// (e.g. 300M) and --jobs-per-site probes already run: a run over many
    /// sites is CPU-bound long before --jobs, and probes in flight past that
    /// point only hold memory
    #[arg(long, value_name = "SIZE", value_parser = probes::units::parse_size)]
    pub memory_budget: Option<u64>,
    /// No progress display on stderr
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// A previous JSON report (fedprobe.json): the reports list new failures, fixed checks and timing changes
    #[arg(long, value_name = "OLD_JSON")]
    pub compare: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Site profile (TOML); repeat for many sites
    #[arg(long = "site", value_name = "FILE")]
    pub sites: Vec<PathBuf>,
    /// A probe invocation or plugin command line, e.g. 'check_token_auth --endpoint URL --access-token FILE'
    #[arg(long = "check", value_name = "COMMAND")]
    pub checks: Vec<String>,
    /// Timeout for --check commands that are external plugins
    #[arg(long, default_value = "300s", value_parser = probes::units::parse_duration)]
    pub check_timeout: Duration,
    /// Guideline id or file, overriding the profiles'
    #[arg(long)]
    pub guideline: Option<String>,
    /// Exit non-zero on CRITICAL or UNKNOWN (critical), on anything not OK
    /// (warning), or never. Default: with --format nagios (a plugin's output)
    /// the status's own code, 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (as
    /// warning); with any other format, critical
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOn>,
    #[command(flatten)]
    pub out: Output,
}

#[cfg(feature = "demo")]
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Number of virtual sites served by the one process
    #[arg(long, default_value_t = 1)]
    pub sites: usize,
    /// The demo site's API: openstack (the in-process reference cloud), ec2
    /// (the moto server ci/peers/moto.sh starts, found through --moto-env),
    /// azure or opennebula (their fixtures, run with python3) or gce (its
    /// fixture, run with --gce-python)
    #[arg(long, value_enum, default_value_t = probes::auth::cloud::CloudKind::OpenStack)]
    pub cloud: probes::auth::cloud::CloudKind,
    /// moto's facts file (MOTO_URL=...), for --cloud ec2
    #[arg(long, default_value = "/tmp/fedprobe-peers/moto.env")]
    pub moto_env: PathBuf,
    /// A python with google-api-python-client, for --cloud gce (the venv of
    /// ci/peers/gce.sh install)
    #[arg(
        long,
        default_value = "/tmp/fedprobe-peers/cache/venv-gce/bin/python",
        value_name = "PYTHON"
    )]
    pub gce_python: PathBuf,
    /// Time a new VM stays in BUILD
    #[arg(long, default_value = "1s", value_parser = probes::units::parse_duration)]
    pub boot_delay: Duration,
    /// Switch a fault on (repeatable)
    #[arg(long = "fault", value_name = "NAME", value_enum)]
    pub faults: Vec<Fault>,
    /// Boot time under the slow-boot fault
    #[arg(long, default_value = "300s", value_parser = probes::units::parse_duration)]
    pub slow_boot: Duration,
    /// Deadline (-t) of every probe
    #[arg(long, default_value = "60s")]
    pub probe_timeout: String,
    /// Extra probe flag for every demo site: PROBE:FLAG=VALUE
    #[arg(long = "probe-opt", value_name = "PROBE:FLAG=VALUE")]
    pub probe_opts: Vec<String>,
    /// Keep serving after the run (prints the profile of site 0) until Ctrl-C
    #[arg(long)]
    pub serve: bool,
    /// Exit non-zero on CRITICAL or UNKNOWN (critical), on anything not OK (warning), or never
    #[arg(long, value_enum, default_value = "never")]
    pub fail_on: FailOn,
    #[command(flatten)]
    pub out: Output,
}

impl RunArgs {
    /// `--fail-on`, or its default for the stdout format: a first line
    /// `FEDPROBE WARNING` is read by an engine from the exit code, 1.
    pub fn fail_on(&self) -> FailOn {
        self.fail_on.unwrap_or(match self.out.format {
            Format::Nagios => FailOn::Warning,
            _ => FailOn::Critical,
        })
    }
}

/// CI exit policy. `critical` fails on CRITICAL and on UNKNOWN (a check
/// that could not decide is not a pass); `warning` also on WARNING.
pub fn exit_code(status: Status, fail_on: FailOn) -> u8 {
    let fails = match fail_on {
        FailOn::Warning => status != Status::Ok,
        FailOn::Critical => matches!(status, Status::Critical | Status::Unknown),
        FailOn::Never => false,
    };
    if fails {
        status.exit_code()
    } else {
        0
    }
}

/// Guideline for ad-hoc `--check` runs: one required capability per probe.
fn adhoc_guideline(probes: &[String]) -> Guideline {
    let mut seen = Vec::new();
    for p in probes {
        if !seen.contains(p) {
            seen.push(p.clone());
        }
    }
    Guideline {
        schema: crate::guideline::SCHEMA,
        id: "adhoc".into(),
        title: "checks given on the command line".into(),
        status: String::new(),
        source: String::new(),
        probes: seen
            .iter()
            .map(|p| (p.clone(), ProbeEntry::default()))
            .collect(),
        requirements: vec![Requirement {
            id: "ADHOC".into(),
            title: "checks given on the command line".into(),
            text: String::new(),
        }],
        capabilities: seen
            .iter()
            .map(|p| Capability {
                id: p.clone(),
                requirement: "ADHOC".into(),
                level: Level::Required,
                title: format!("every check of {p}"),
                checks: vec![format!("{p}:*")],
                flagged: vec![],
                hints: vec![],
                fix: String::new(),
                not_applicable: vec![],
                not_checked: vec![],
            })
            .collect(),
    }
}

/// Plan one site from its profile and guideline.
pub fn plan_site(
    p: &Profile,
    g: &Guideline,
    secrets_dir: &std::path::Path,
) -> Result<SitePlan, String> {
    let creds = p.materialise(secrets_dir)?;
    let mut probes_argv = Vec::new();
    for name in g.probes.keys() {
        if name == crate::grade::HARNESS_PROBE || p.skip.contains(name) {
            continue;
        }
        let Some(entry) = probes::checks::find(name) else {
            return Err(format!("guideline {} names unknown probe {name}", g.id));
        };
        let needs = g
            .probes
            .get(name)
            .map(|e| e.needs.as_slice())
            .unwrap_or(&[]);
        if needs.iter().any(|n| !p.endpoints.contains_key(n)) {
            continue;
        }
        let timeout = g.probes.get(name).and_then(|e| e.timeout.clone());
        let flags = probes::checks::long_flags(entry);
        let mut argv = p.argv(name, flags, &creds, timeout.as_deref())?;
        crate::defaults::apply(&mut argv);
        // A probe the profile does not configure at all is not run; its
        // checks are graded "not configured".
        if let Some(f) = entry.requires {
            if !argv.iter().any(|a| a == &format!("--{f}")) {
                continue;
            }
        }
        // Full trace by default: every HTTP call becomes evidence in the
        // self-certification report (secrets are never in it).
        let own = p.probe.get(name).is_some_and(|t| t.contains_key("verbose"));
        if !own && !p.defaults.contains_key("verbose") {
            argv.push("-vvv".into());
        }
        probes_argv.push(ProbePlan::parse(argv));
    }
    let externals = p
        .external
        .iter()
        .map(|e| ExternalPlan {
            name: e.name.clone(),
            command: e.command.clone(),
            timeout: e
                .timeout
                .as_deref()
                .and_then(|t| probes::units::parse_duration(t).ok())
                .unwrap_or(Duration::from_secs(300)),
        })
        .collect();
    let mut plan = SitePlan::new(p.site.clone(), g.id.clone(), probes_argv, externals);
    plan.cloud = p.cloud;
    Ok(plan)
}

/// A site whose plan could not be made: one harness job, UNKNOWN, saying why.
#[cfg(feature = "demo")]
fn unplanned(site: String, guideline: &str, why: String) -> SitePlan {
    let job = ProbePlan::failed(
        crate::grade::HARNESS_PROBE.into(),
        vec![],
        format!("planning the site: {why}"),
    );
    SitePlan::new(site, guideline.into(), vec![job], vec![])
}

/// Stop flag set on the first SIGINT/SIGTERM.
fn stop_on_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let why = probes::cli::signals().await;
        eprintln!("fedprobe: {why}: stopping probes (they clean up first)");
        let _ = tx.send(true);
    });
    rx
}

/// Run plans, grade, render, write; returns the report.
pub async fn execute(
    plans: impl IntoIterator<Item = SitePlan>,
    guidelines: &[Guideline],
    out: &Output,
    stop: watch::Receiver<bool>,
) -> Finished {
    let previous = previous_report(out).unwrap_or_else(|e| {
        eprintln!("fedprobe: {e}: no comparison");
        None
    });
    let t0 = Instant::now();
    let started = probes::clock::now_unix();
    let limits = Limits {
        jobs: out.jobs,
        jobs_per_site: out.jobs_per_site,
        memory_budget: out.memory_budget,
        ..Limits::default()
    };
    let progress = Arc::new(Progress::auto(out.quiet));
    let mut report = Report::empty(guidelines, started);
    report.previous = previous;
    let spool = Spool::new().map_err(|e| format!("report spool: {e}"));
    let writer = Writer::start(&report, spool);
    run::run_all_within(
        plans,
        limits,
        progress,
        stop,
        writer.room(),
        |run, seat, secrets| {
            writer.add(report::grade_site(guidelines, run), seat, secrets);
        },
    )
    .await;
    let (sites, spool) = writer.finish().await;
    report.sites = sites;
    report.duration = t0.elapsed();
    Finished { report, spool }
}

/// A JSON report read back (`--compare`, `check --against`): a thousand
/// sites' report is tens of MB; a file past this is not one.
const REPORT_MAX: u64 = 1 << 30;

/// The `--compare` report, read before the run so a bad path fails early.
fn previous_report(out: &Output) -> Result<Option<serde_json::Value>, String> {
    let Some(path) = &out.compare else {
        return Ok(None);
    };
    let text = probes::files::read_to_string(path, REPORT_MAX)
        .map_err(|e| format!("--compare {}: {e}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("--compare {}: not a JSON report: {e}", path.display()))?;
    if v["schema"] != crate::report::json::SCHEMA {
        return Err(format!(
            "--compare {}: schema {} is not {}",
            path.display(),
            v["schema"],
            crate::report::json::SCHEMA
        ));
    }
    Ok(Some(v))
}

/// A run's slim report (grades only) and the spool holding the sites' parts.
pub struct Finished {
    pub report: Report,
    spool: Result<Spool, String>,
}

/// Write every report (into `--report-dir`, else a temporary directory) and
/// print the one `--format` names, copied from its file.
fn emit(done: Finished, out: &Output) -> Result<Report, String> {
    let Finished { report: r, spool } = done;
    let tmp;
    let dir = match &out.report_dir {
        Some(d) => d.as_path(),
        None => {
            tmp = tempfile::Builder::new()
                .prefix("fedprobe-report-")
                .tempdir()
                .map_err(|e| format!("temporary directory: {e}"))?;
            tmp.path()
        }
    };
    let files = spool?
        .finish(&r, dir)
        .map_err(|e| format!("writing reports to {}: {e}", dir.display()))?;
    if out.report_dir.is_some() && !out.quiet {
        eprintln!(
            "fedprobe: reports written: {}",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let chosen = dir.join(out.format.file_name());
    let mut stdout = std::io::stdout().lock();
    std::fs::File::open(&chosen)
        .and_then(|mut f| std::io::copy(&mut f, &mut stdout))
        .and_then(|_| std::io::Write::flush(&mut stdout))
        .map_err(|e| format!("printing {}: {e}", chosen.display()))?;
    Ok(r)
}

pub async fn cmd_run(a: RunArgs) -> Result<u8, String> {
    if a.sites.is_empty() && a.checks.is_empty() {
        return Err("nothing to run: give --site FILE and/or --check COMMAND".into());
    }
    previous_report(&a.out)?;
    let secrets = tempfile::Builder::new()
        .prefix("fedprobe-cred-")
        .tempdir()
        .map_err(|e| format!("temporary directory: {e}"))?;
    let mut guidelines: BTreeMap<String, Guideline> = BTreeMap::new();
    let mut plans = Vec::new();
    for path in &a.sites {
        let p = Profile::load(path)?;
        if plans.iter().any(|x: &SitePlan| x.site == p.site) {
            return Err(format!("{}: site {:?} given twice", path.display(), p.site));
        }
        let gname = match &a.guideline {
            Some(g) => g.clone(),
            None => relative_to(path, &p.guideline),
        };
        let g = match guidelines.values().find(|g| g.id == gname) {
            Some(g) => g.clone(),
            None => Guideline::load(&gname)?,
        };
        plans.push(plan_site(&p, &g, secrets.path())?);
        guidelines.insert(g.id.clone(), g);
    }
    if !a.checks.is_empty() {
        let mut probes_argv = Vec::new();
        let mut externals = Vec::new();
        for c in &a.checks {
            let words =
                shlex::split(c).ok_or_else(|| format!("--check {c:?}: unbalanced quotes"))?;
            let Some(first) = words.first() else {
                return Err("empty --check".into());
            };
            if probes::checks::find(first).is_some() {
                probes_argv.push(ProbePlan::parse(words));
            } else {
                let name = std::path::Path::new(first)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| first.clone());
                externals.push(ExternalPlan {
                    name,
                    command: words,
                    timeout: a.check_timeout,
                });
            }
        }
        let names: Vec<String> = probes_argv.iter().map(|p| p.name.clone()).collect();
        let g = adhoc_guideline(&names);
        plans.push(SitePlan::new(
            "command-line".into(),
            g.id.clone(),
            probes_argv,
            externals,
        ));
        guidelines.insert(g.id.clone(), g);
    }
    // The profiles' guideline first, so reports are titled by it.
    let mut gl: Vec<Guideline> = guidelines.into_values().collect();
    gl.sort_by_key(|g| g.id == "adhoc");
    let done = execute(plans, &gl, &a.out, stop_on_signal()).await;
    let report = emit(done, &a.out)?;
    Ok(exit_code(report.status(), a.fail_on()))
}

/// A profile's guideline path is relative to the profile's directory.
pub(crate) fn relative_to(profile: &std::path::Path, guideline: &str) -> String {
    let g = std::path::Path::new(guideline);
    if guideline == crate::guideline::DEFAULT_ID || g.is_absolute() {
        return guideline.to_string();
    }
    match profile.parent() {
        Some(dir) if dir.join(g).is_file() => dir.join(g).display().to_string(),
        _ => guideline.to_string(),
    }
}

pub fn cmd_check_guideline(file: &str) -> Result<u8, String> {
    let text = if file == crate::guideline::DEFAULT_ID {
        crate::guideline::DEFAULT_TEXT.to_string()
    } else {
        probes::files::read_to_string(std::path::Path::new(file), probes::files::DOCUMENT)
            .map_err(|e| format!("{file}: {e}"))?
    };
    let g: Guideline = match toml::from_str(&text) {
        Ok(g) => g,
        Err(e) => {
            println!("INVALID {file}: {e}");
            return Ok(2);
        }
    };
    let problems = g.problems(&crate::guideline::known_probes());
    if problems.is_empty() {
        let req = g
            .capabilities
            .iter()
            .filter(|c| c.level == Level::Required)
            .count();
        let flagged: usize = g.capabilities.iter().map(|c| c.flagged.len()).sum();
        println!(
            "OK {file}: guideline {} ({} requirements, {} capabilities: {req} required, {} advisory; {} probes; {flagged} flagged checks)",
            g.id,
            g.requirements.len(),
            g.capabilities.len(),
            g.capabilities.len() - req,
            g.probes.len()
        );
        Ok(0)
    } else {
        println!("INVALID {file}: {} problem(s)", problems.len());
        for p in problems {
            println!("- {p}");
        }
        Ok(2)
    }
}

/// Checks seen in a report that the guideline references nowhere, and
/// selectors that match none of them.
pub fn coverage(g: &Guideline, report: &serde_json::Value) -> (Vec<String>, Vec<String>) {
    use crate::guideline::Selector;
    let mut seen = std::collections::BTreeSet::new();
    for site in report["sites"].as_array().into_iter().flatten() {
        for p in site["run"]["probes"].as_array().into_iter().flatten() {
            let probe = p["probe"].as_str().unwrap_or_default();
            for st in p["result"]["steps"].as_array().into_iter().flatten() {
                if let Some(c) = st["check"].as_str() {
                    seen.insert((probe.to_string(), c.to_string()));
                }
            }
        }
    }
    let selectors: Vec<Selector> = g
        .capabilities
        .iter()
        .flat_map(|c| c.checks.iter())
        .filter_map(|s| Selector::parse(s).ok())
        .filter(|s| s.probe != crate::grade::HARNESS_PROBE)
        .collect();
    let unreferenced = seen
        .iter()
        .filter(|(p, c)| !selectors.iter().any(|s| s.matches(p, c)))
        .map(|(p, c)| format!("{p}:{c}"))
        .collect();
    let mut unmatched: Vec<String> = selectors
        .iter()
        .filter(|s| !seen.iter().any(|(p, c)| s.matches(p, c)))
        .map(|s| s.to_string())
        .collect();
    unmatched.sort();
    unmatched.dedup();
    (unreferenced, unmatched)
}

fn cmd_check_against(file: &str, report: &std::path::Path) -> Result<u8, String> {
    let g = Guideline::load(file)?;
    let text = probes::files::read_to_string(report, REPORT_MAX)
        .map_err(|e| format!("{}: {e}", report.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", report.display()))?;
    let (unreferenced, unmatched) = coverage(&g, &v);
    for c in &unreferenced {
        println!("- check {c} is reported by its probe but referenced by no capability");
    }
    for s in &unmatched {
        println!("- note: {s} matches no check in {}", report.display());
    }
    Ok(if unreferenced.is_empty() { 0 } else { 1 })
}

/// Parse `PROBE:FLAG=VALUE`.
#[cfg(feature = "demo")]
fn probe_opt(s: &str) -> Result<(String, String, String), String> {
    let (probe, rest) = s
        .split_once(':')
        .ok_or_else(|| format!("--probe-opt {s:?}: expected PROBE:FLAG=VALUE"))?;
    let (flag, value) = rest
        .split_once('=')
        .ok_or_else(|| format!("--probe-opt {s:?}: expected PROBE:FLAG=VALUE"))?;
    if probes::checks::find(probe).is_none() {
        return Err(format!("--probe-opt {s:?}: unknown probe {probe}"));
    }
    Ok((
        probe.into(),
        flag.trim_start_matches('-').into(),
        value.into(),
    ))
}

#[cfg(feature = "demo")]
pub async fn cmd_demo(a: DemoArgs) -> Result<u8, String> {
    let faults = Faults::of(a.faults.iter().copied()).with_slow_boot(a.slow_boot);
    let fault_names: Vec<&str> = faults.iter().map(Fault::name).collect();
    let opts: Vec<(String, String, String)> = a
        .probe_opts
        .iter()
        .map(|s| probe_opt(s))
        .collect::<Result<_, _>>()?;
    probes::units::parse_duration(&a.probe_timeout).map_err(|e| format!("--probe-timeout {e}"))?;
    let demo = Demo::start(DemoOptions {
        sites: a.sites,
        boot_delay: a.boot_delay,
        faults,
    })
    .await
    .map_err(|e| format!("starting the demo cloud: {e}"))?;
    if !a.out.quiet {
        eprintln!(
            "fedprobe demo: reference cloud with {} site(s) on {} (plain http, loopback only); token file {}; faults: {}",
            demo.sites(),
            demo.base(),
            demo.token_file.display(),
            if fault_names.is_empty() {
                "none".to_string()
            } else {
                fault_names.join(", ")
            }
        );
    }
    let g = Guideline::embedded();
    let mut plans = Vec::new();
    // Stopped (by PID) when the demo ends.
    let mut fixture = None;
    let mut other_fixture = None;
    match a.cloud {
        probes::auth::cloud::CloudKind::OpenStack => {}
        probes::auth::cloud::CloudKind::Ec2 => {
            let p = crate::demo::ec2_profile(&a.moto_env, demo.dir(), Some(&a.probe_timeout))?
                .ok_or_else(|| {
                    format!(
                        "--cloud ec2: no MOTO_URL in {} (start moto: ci/peers/moto.sh start)",
                        a.moto_env.display()
                    )
                })?;
            plans.push(plan_site(&p, &g, demo.dir())?);
        }
        probes::auth::cloud::CloudKind::Azure => {
            let fx = crate::demo::AzureFixture::start(demo.dir()).await?;
            if !a.out.quiet {
                eprintln!(
                    "fedprobe demo: Azure fixture (ci/peers/azure_fixture.py) on {}",
                    fx.url
                );
            }
            let p = fx.profile(demo.dir(), Some(&a.probe_timeout))?;
            plans.push(plan_site(&p, &g, demo.dir())?);
            fixture = Some(fx);
        }
        probes::auth::cloud::CloudKind::OpenNebula | probes::auth::cloud::CloudKind::Gce => {
            let one = a.cloud == probes::auth::cloud::CloudKind::OpenNebula;
            let fx = if one {
                crate::demo_fixtures::Fixture::opennebula(demo.dir()).await?
            } else {
                crate::demo_fixtures::Fixture::gce(demo.dir(), &a.gce_python).await?
            };
            if !a.out.quiet {
                eprintln!(
                    "fedprobe demo: {} fixture (ci/peers/{}) on {}",
                    if one { "OpenNebula" } else { "GCE" },
                    if one {
                        "one_fixture.py"
                    } else {
                        "gce_fixture.py"
                    },
                    fx.addr
                );
            }
            let p = if one {
                fx.opennebula_profile(Some(&a.probe_timeout))?
            } else {
                fx.gce_profile(Some(&a.probe_timeout))?
            };
            plans.push(plan_site(&p, &g, demo.dir())?);
            other_fixture = Some(fx);
        }
    }
    let openstack = a.cloud == probes::auth::cloud::CloudKind::OpenStack;
    let site_plan = |i: usize| -> Result<SitePlan, String> {
        let mut p = demo.profile(i, Some(&a.probe_timeout))?;
        for (probe, flag, value) in &opts {
            p.probe
                .entry(probe.clone())
                .or_default()
                .insert(flag.clone(), toml::Value::String(value.clone()));
        }
        plan_site(&p, &g, demo.dir())
    };
    // Site 0 is planned now, so a bad option fails before anything runs;
    // the others only when the run admits them (their profiles differ in
    // names and paths alone): a thousand sites' plans are never all live.
    let later = if openstack && demo.sites() > 0 {
        plans.push(site_plan(0)?);
        1..demo.sites()
    } else {
        0..0
    };
    let plans = plans.into_iter().chain(later.map(|i| {
        site_plan(i).unwrap_or_else(|why| unplanned(crate::demo::site_name(i), &g.id, why))
    }));
    let mut out = a.out.clone();
    if out.report_dir.is_none() {
        out.report_dir = Some(PathBuf::from("fedprobe-demo-report"));
    }
    let done = execute(plans, std::slice::from_ref(&g), &out, stop_on_signal()).await;
    let report = emit(done, &out)?;
    if a.serve {
        eprintln!(
            "fedprobe demo: serving until SIGINT (Ctrl-C) or SIGTERM; a profile for site 0:\n{}",
            demo.profile_text(0, Some(&a.probe_timeout))
        );
        // SIGTERM too: what kill, systemd and test rigs send.
        let _ = probes::cli::signals().await;
    }
    drop(fixture);
    drop(other_fixture);
    drop(demo);
    Ok(exit_code(report.status(), a.fail_on))
}

pub async fn main_async(cli: Cli) -> Result<u8, String> {
    match cli.command {
        Command::Run(a) => cmd_run(a).await,
        Command::CheckGuideline { file, against } => {
            let code = cmd_check_guideline(&file)?;
            match against {
                Some(r) if code == 0 => cmd_check_against(&file, &r),
                _ => Ok(code),
            }
        }
        Command::Guideline => {
            print!("{}", crate::guideline::DEFAULT_TEXT);
            Ok(0)
        }
        Command::Init(a) => crate::init::run(a).await,
        Command::CheckProfile { file } => crate::checkprofile::run(&file),
        Command::Explain { check, guideline } => {
            let g = Guideline::load(&guideline)?;
            print!("{}", crate::explain::explain(&check, &g)?);
            Ok(0)
        }
        #[cfg(feature = "demo")]
        Command::Demo(a) => cmd_demo(a).await,
        Command::Serve(a) => crate::serve::cmd_serve(a).await,
        Command::GenDocs { dir } => {
            for name in crate::gendocs::write(&dir)? {
                println!("{name}");
            }
            Ok(0)
        }
    }
}

#[cfg(all(test, feature = "demo"))]
mod tests {
    use super::*;

    /// A demo site whose plan fails when its turn comes is still reported:
    /// one UNKNOWN job naming why, and the site does not pass.
    #[tokio::test]
    async fn a_site_that_cannot_be_planned_is_reported_unknown_with_the_reason() {
        let g = Guideline::embedded();
        let plan = unplanned("DEMO-007".into(), &g.id, "disk full".into());
        let (_tx, rx) = watch::channel(false);
        let mut sites = vec![];
        run::run_all(
            [plan],
            Limits::default(),
            Arc::new(Progress::quiet()),
            rx,
            |r| sites.push(report::grade_site(std::slice::from_ref(&g), r)),
        )
        .await;
        let [site] = sites.as_slice() else {
            panic!("{} sites reported", sites.len());
        };
        let [job] = site.run.probes.as_slice() else {
            panic!("{} jobs", site.run.probes.len());
        };
        assert_eq!(job.result.status, probes::model::Status::Unknown);
        assert_eq!(job.result.summary, "planning the site: disk full");
        assert!(!site.grade.passed);
        assert_eq!(site.grade.status, probes::model::Status::Unknown);
    }
}
