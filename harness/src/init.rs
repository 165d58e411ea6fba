//! `fedprobe init`: write a working site profile from what can be found
//! (a clouds.yaml entry or `OS_*` variables, the site's GLUE publication,
//! the Keystone catalog), take the rest from flags, and validate it by a
//! dry login (check_token_auth, in-process) before saying it is good.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use probes::model::Status;
use serde_json::Value;

use crate::guideline::Guideline;
use crate::profile::Profile;

#[derive(Args, Debug, Clone)]
pub struct InitArgs {
    /// Where to write the profile
    #[arg(long, short = 'o', default_value = "site.toml")]
    pub out: PathBuf,
    /// Overwrite --out if it exists
    #[arg(long)]
    pub force: bool,
    /// Site name (GOCDB); default: the AdminDomain the GLUE publication names
    #[arg(long)]
    pub site: Option<String>,
    /// VO to monitor (repeatable; the first is the monitoring VO); default: the VOs GLUE publishes, else ops
    #[arg(long = "vo", value_name = "VO")]
    pub vos: Vec<String>,
    /// clouds.yaml cloud to log in with [env: OS_CLOUD]
    #[arg(long = "os-cloud", value_name = "NAME")]
    pub os_cloud: Option<String>,
    /// clouds.yaml file [env: OS_CLIENT_CONFIG_FILE; default: the openstack CLI's search path]
    #[arg(long = "clouds-yaml", value_name = "FILE")]
    pub clouds_yaml: Option<PathBuf>,
    /// Keystone v3 URL, when no clouds.yaml entry or OS_AUTH_URL gives it
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// File with the monitor's OIDC access token (instead of a clouds.yaml entry)
    #[arg(long = "access-token", value_name = "FILE")]
    pub access_token: Option<PathBuf>,
    /// CA certificate of the site's TLS (default: clouds.yaml cacert or OS_CACERT)
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Keystone identity provider id, when not egi.eu
    #[arg(long = "identity-provider")]
    pub identity_provider: Option<String>,
    /// The site's GLUE 2.1 publication (cloud-info-provider's JSON output)
    #[arg(long = "glue-file", value_name = "FILE")]
    pub glue_file: Option<PathBuf>,
    /// URL of the site's GLUE 2.1 JSON publication
    #[arg(long = "glue-url", value_name = "URL")]
    pub glue_url: Option<String>,
    /// cASO's APEL spool directory, for the accounting checks
    #[arg(long = "apel-dir", value_name = "DIR")]
    pub apel_dir: Option<PathBuf>,
    /// Write the profile without the dry login
    #[arg(long = "no-login")]
    pub no_login: bool,
}

/// What the GLUE publication says about the site.
#[derive(Debug, Default)]
struct Glue {
    site: Option<String>,
    /// (VO, project id) per share.
    shares: Vec<(String, String)>,
    images: usize,
    /// A published image with the monitoring image's registry reference: (id, ref).
    monitoring: Option<(String, String)>,
    /// The first published image: (id, name).
    first_image: Option<(String, String)>,
}

async fn read_glue(a: &InitArgs) -> Result<Option<(Glue, String)>, String> {
    let (bytes, from) = if let Some(f) = &a.glue_file {
        let b = probes::files::read(f, probes::files::DOCUMENT)
            .map_err(|e| format!("--glue-file {}: {e}", f.display()))?;
        (b, format!("GLUE file {}", f.display()))
    } else if let Some(u) = &a.glue_url {
        match fetch(u, a.ca_cert.as_deref()).await {
            Ok(b) => (b, format!("GLUE URL {u}")),
            Err(e) => {
                eprintln!("fedprobe init: GLUE not reachable ({e}); going on without it");
                return Ok(None);
            }
        }
    } else {
        return Ok(None);
    };
    let doc = probes::formats::glue::parse(&bytes).map_err(|e| format!("{from}: {e}"))?;
    Ok(Some((glue_facts(&doc), from)))
}

/// GET a URL, bounded: a GLUE URL that hangs does not hold init, nor one
/// that never stops sending take its memory.
async fn fetch(url: &str, ca: Option<&Path>) -> Result<Vec<u8>, String> {
    let tls = probes::http::TlsOptions {
        ca_certs: ca.map(Path::to_path_buf).into_iter().collect(),
        ..Default::default()
    };
    let client = probes::http::build_client(&tls).map_err(|e| e.message.clone())?;
    let r = tokio::time::timeout(std::time::Duration::from_secs(30), client.get(url).send())
        .await
        .map_err(|_| "no answer within 30s".to_string())?
        .map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("HTTP {}", r.status()));
    }
    let body = async {
        let mut r = r;
        let mut body = Vec::new();
        while let Some(chunk) = r.chunk().await.map_err(|e| e.to_string())? {
            if (body.len() + chunk.len()) as u64 > probes::files::DOCUMENT {
                return Err(format!(
                    "answer larger than {} MiB",
                    probes::files::DOCUMENT >> 20
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), body)
        .await
        .map_err(|_| "body not read within 30s".to_string())?
}

fn glue_facts(doc: &Value) -> Glue {
    let report = probes::formats::glue::validate(doc, &Default::default());
    let site = doc["CloudComputingService"][0]["Associations"]["AdminDomain"][0]
        .as_str()
        .map(str::to_string);
    let mut shares: Vec<(String, String)> = report
        .shares
        .iter()
        .filter_map(|s| Some((s.vo.clone()?, s.project_id.clone())))
        .collect();
    shares.sort();
    shares.dedup();
    let published = doc["CloudComputingImage"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let monitoring = published.iter().find_map(|i| {
        let r = i["OtherInfo"]["eu.egi.cloud.image_ref"].as_str()?;
        probes::backend::openstack::ref_matches(r, crate::defaults::MONITORING_IMAGE)
            .then(|| (i["ID"].as_str().unwrap_or("").to_string(), r.to_string()))
    });
    let first_image = published.iter().find_map(|i| {
        Some((
            i["ID"].as_str()?.to_string(),
            i["Name"].as_str().unwrap_or("").to_string(),
        ))
    });
    Glue {
        site,
        shares,
        images: report.images.len(),
        monitoring,
        first_image,
    }
}

/// A TOML string literal.
fn q(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(o, "\\u{:04X}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn abs(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The profile text from what was found; `notes` say where each value came from.
fn profile_text(
    a: &InitArgs,
    keystone: &str,
    glue: Option<&(Glue, String)>,
    skip: &[&str],
) -> String {
    let mut o = String::new();
    let mut from = vec![];
    let g = glue.map(|(g, f)| {
        from.push(f.clone());
        g
    });
    let site = a
        .site
        .clone()
        .or_else(|| g.and_then(|g| g.site.clone()))
        .unwrap_or_else(|| "MY-SITE".into());
    let mut vos = a.vos.clone();
    if vos.is_empty() {
        vos = g
            .map(|g| g.shares.iter().map(|(v, _)| v.clone()).collect())
            .unwrap_or_default();
        // The monitoring VO first: production monitors as ops.
        vos.sort_by_key(|v| v != "ops");
        vos.dedup();
    }
    if vos.is_empty() {
        vos.push("ops".into());
    }
    let _ = writeln!(
        o,
        "# Written by `fedprobe init`; check it with `fedprobe check-profile {}`.",
        a.out.display()
    );
    let _ = writeln!(
        o,
        "# Discovered from: {}.",
        if from.is_empty() {
            "the login settings only".to_string()
        } else {
            from.join(", ")
        }
    );
    let _ = writeln!(o, "site = {}", q(&site));
    let _ = writeln!(o, "guideline = {}", q(crate::guideline::DEFAULT_ID));
    let _ = writeln!(
        o,
        "# The first VO scopes the probes (docs/provider.md: the VO -> project rule)\nvos = [{}]",
        vos.iter().map(|v| q(v)).collect::<Vec<_>>().join(", ")
    );
    if !skip.is_empty() {
        let _ = writeln!(
            o,
            "# Not offered by the site's catalog\nskip = [{}]",
            skip.iter().map(|v| q(v)).collect::<Vec<_>>().join(", ")
        );
    }
    let _ = writeln!(o, "\n[endpoints]\nkeystone = {}", q(keystone));
    if let Some(t) = &a.access_token {
        let _ = writeln!(
            o,
            "\n[credentials.access_token]\nfile = {}",
            q(&abs(t).display().to_string())
        );
    }
    let _ = writeln!(o, "\n[defaults]");
    if let Some(c) = &a.os_cloud {
        let _ = writeln!(o, "os-cloud = {}", q(c));
    }
    if let Some(f) = &a.clouds_yaml {
        let _ = writeln!(o, "clouds-yaml = {}", q(&abs(f).display().to_string()));
    }
    if let Some(ca) = &a.ca_cert {
        let _ = writeln!(o, "ca-cert = {}", q(&abs(ca).display().to_string()));
    }
    if let Some(idp) = &a.identity_provider {
        let _ = writeln!(o, "identity-provider = {}", q(idp));
    }
    if let Some(g) = g.filter(|g| !g.shares.is_empty()) {
        let _ = writeln!(
            o,
            "# GLUE's VO -> project mapping\nvo-project = [{}]",
            g.shares
                .iter()
                .map(|(v, p)| q(&format!("{v}={p}")))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    match g.map(|g| (&g.monitoring, &g.first_image)) {
        // GLUE publishes no monitoring image but others: boot the first one.
        Some((None, Some((id, name)))) => {
            let _ = writeln!(
                o,
                "\n# GLUE publishes no image with the monitoring image's reference ({}):\n# the first published image ({name}).\n[probe.check_vm_lifecycle]\nimage = {}",
                crate::defaults::MONITORING_IMAGE,
                q(id)
            );
        }
        _ => {
            let _ = writeln!(
                o,
                "\n# check_vm_lifecycle boots the federation's monitoring image ({}) and\n# picks the flavor by rule unless [probe.check_vm_lifecycle] image/flavor say otherwise.",
                crate::defaults::MONITORING_IMAGE
            );
        }
    }
    match (&a.glue_file, &a.glue_url) {
        (Some(f), _) => {
            let _ = writeln!(
                o,
                "\n[probe.check_glue]\nglue-file = {}",
                q(&abs(f).display().to_string())
            );
        }
        (None, Some(u)) => {
            let _ = writeln!(o, "\n[probe.check_glue]\nglue-url = {}", q(u));
        }
        _ => {}
    }
    if let Some(d) = &a.apel_dir {
        let _ = writeln!(
            o,
            "\n[probe.check_usage]\napel-dir = {}\nsite = {}",
            q(&abs(d).display().to_string()),
            q(&site)
        );
    }
    o
}

/// The Keystone URL from the flags, `OS_*` or the clouds.yaml entry.
fn keystone(a: &InitArgs) -> Result<String, String> {
    let args = probes::auth::AuthArgs {
        endpoint: match &a.endpoint {
            Some(u) => Some(u.parse().map_err(|e| format!("--endpoint {u}: {e}"))?),
            None => None,
        },
        access_token: a.access_token.clone(),
        os_cloud: a.os_cloud.clone(),
        clouds_yaml: a.clouds_yaml.clone(),
        ..Default::default()
    };
    let env = |k: &str| std::env::var(k).ok();
    probes::auth::config::resolve(&args, &env)
        .map(|r| r.keystone.to_string())
        .map_err(|f| format!("cannot work out the login: {}", f.message))
}

/// The dry login: check_token_auth planned from the profile and run.
async fn dry_login(p: &Profile) -> Result<probes::model::ProbeResult, String> {
    let mut g = Guideline::embedded();
    g.probes.retain(|name, _| name == "check_token_auth");
    let secrets = tempfile::Builder::new()
        .prefix("fedprobe-init-")
        .tempdir()
        .map_err(|e| format!("temporary directory: {e}"))?;
    let plan = crate::app::plan_site(p, &g, secrets.path())?;
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let progress = std::sync::Arc::new(crate::progress::Progress::auto(true));
    let mut results = Vec::new();
    crate::run::run_all(
        vec![plan],
        crate::run::Limits::default(),
        progress,
        stop,
        |r| results.extend(r.probes.into_iter().map(|p| p.result)),
    )
    .await;
    results
        .into_iter()
        .next()
        .ok_or_else(|| "the dry login did not run".to_string())
}

pub async fn run(a: InitArgs) -> Result<u8, String> {
    if a.out.exists() && !a.force {
        return Err(format!(
            "{} exists (give --force to overwrite)",
            a.out.display()
        ));
    }
    let keystone = keystone(&a)?;
    let glue = read_glue(&a).await?;
    let mut text = profile_text(&a, &keystone, glue.as_ref(), &[]);
    let origin = a.out.display().to_string();
    let mut profile = Profile::parse(&text, &origin)?;
    let mut code = 0;
    if !a.no_login {
        let r = dry_login(&profile).await?;
        for s in &r.steps {
            println!("  {} {} {}: {}", s.status, s.check, s.name, s.message);
        }
        if matches!(r.status, Status::Ok | Status::Warning) {
            println!("dry login: {} - {}", r.status, r.summary);
            // A catalog without object storage: its advisory check is skipped.
            let no_swift = r.perfdata.iter().any(|p| {
                p.label == probes::checks::token_auth::OBJECT_STORE_ENDPOINTS
                    && p.value == Some(0.0)
            });
            if no_swift {
                text = profile_text(&a, &keystone, glue.as_ref(), &["check_object_storage"]);
                profile = Profile::parse(&text, &origin)?;
            }
        } else {
            println!("dry login FAILED: {} - {}", r.status, r.summary);
            code = 2;
        }
    }
    crate::profile::write_private(&a.out, &text)
        .map_err(|e| format!("writing {}: {e}", a.out.display()))?;
    if let Some((g, from)) = &glue {
        println!(
            "{from}: site {}, {} VO share(s), {} image(s); monitoring image: {}",
            g.site.as_deref().unwrap_or("(none)"),
            g.shares.len(),
            g.images,
            match &g.monitoring {
                Some((id, r)) => format!("{r} ({id})"),
                None => "not published".into(),
            }
        );
    }
    println!(
        "wrote {} for site {} (VOs {}); next: fedprobe check-profile {} && fedprobe run --site {} --report-dir report",
        a.out.display(),
        profile.site,
        profile.vos.join(", "),
        a.out.display(),
        a.out.display()
    );
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_for_toml() {
        assert_eq!(q("a\"b\\c"), "\"a\\\"b\\\\c\"");
        let v: toml::Value = toml::from_str(&format!("x = {}", q("é\n\"x"))).unwrap();
        assert_eq!(v["x"].as_str(), Some("é\n\"x"));
    }
}
