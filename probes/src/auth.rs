//! Getting a project-scoped Keystone session the way every OpenStack probe
//! needs one. Probes call [`login`]; how the credential is obtained (token
//! file, refresh token, password, application credential) is decided here.

use std::path::PathBuf;

use reqwest::Url;

use crate::clients::keystone::{self, Catalog};
use crate::model::CheckId;
use crate::secret::Secret;
use crate::{Ctx, Done, Fail};

pub const READ_TOKEN: CheckId = CheckId {
    id: "AUTH-01",
    requirement: "EOSC-IAAS-AAI",
    name: "read monitor access token",
};
pub const EXCHANGE: CheckId = CheckId {
    id: "AUTH-02",
    requirement: "EOSC-IAAS-AAI",
    name: "OIDC token exchange at Keystone",
};
pub const PROJECTS: CheckId = CheckId {
    id: "AUTH-03",
    requirement: "EOSC-IAAS-AAI",
    name: "list projects",
};
pub const SCOPE: CheckId = CheckId {
    id: "AUTH-04",
    requirement: "EOSC-IAAS-AAI",
    name: "project-scoped token",
};

/// How to reach and log in to a site's Keystone.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct AuthArgs {
    /// Keystone v3 URL of the site
    #[arg(long = "endpoint", value_name = "URL")]
    pub endpoint: Option<Url>,
    /// File holding the OIDC access token
    #[arg(long = "access-token", value_name = "FILE")]
    pub access_token: Option<PathBuf>,
    /// Keystone identity provider id
    #[arg(long = "identity-provider", default_value = "egi.eu")]
    pub identity_provider: String,
    /// Federation protocol; default tries `openid`, then `oidc`
    #[arg(long = "protocol")]
    pub protocol: Option<String>,
    /// Project (id or name) to scope to; default: the one named like "ops", else the last
    #[arg(long = "project", visible_alias = "vo")]
    pub project: Option<String>,
    /// Region of the endpoints to use
    #[arg(long = "region")]
    pub region: Option<String>,
}

/// A project-scoped Keystone session.
#[derive(Clone, Debug)]
pub struct Session {
    pub keystone: Url,
    pub token: Secret,
    pub project_id: String,
    pub project_name: String,
    pub catalog: Catalog,
    pub region: Option<String>,
}

impl Session {
    /// The public endpoint of a service type in the session's region.
    pub fn endpoint(&self, service_type: &str) -> Result<Url, Fail> {
        self.catalog
            .public_url(service_type, self.region.as_deref())
            .ok_or_else(|| {
                Fail::critical(format!(
                    "no public {service_type} endpoint in the catalog{}",
                    self.region
                        .as_deref()
                        .map(|r| format!(" for region {r}"))
                        .unwrap_or_default()
                ))
            })
    }
}

/// Log in and scope to a project, recording AUTH-01..04.
pub async fn login(ctx: &Ctx, args: &AuthArgs) -> Result<Session, Fail> {
    let endpoint = args
        .endpoint
        .clone()
        .ok_or_else(|| Fail::unknown("--endpoint (Keystone v3 URL) is required"))?;
    let path = args
        .access_token
        .clone()
        .ok_or_else(|| Fail::unknown("--access-token FILE is required"))?;
    let token = ctx
        .step(READ_TOKEN, async {
            let t = Secret::from_file(&path)
                .map_err(|e| Fail::unknown(format!("cannot read {}: {e}", path.display())))?;
            if t.is_empty() {
                return Err(Fail::unknown(format!("{} is empty", path.display())));
            }
            Ok(Done::ok(t, format!("read from {}", path.display())))
        })
        .await?;
    let protocols: Vec<String> = match &args.protocol {
        Some(p) => vec![p.clone()],
        None => vec!["openid".into(), "oidc".into()],
    };
    let unscoped = ctx
        .step(EXCHANGE, async {
            let mut errors = Vec::new();
            for p in &protocols {
                match keystone::exchange_oidc(
                    &ctx.http,
                    &endpoint,
                    &args.identity_provider,
                    p,
                    &token,
                )
                .await
                {
                    Ok(t) => return Ok(Done::ok(t, format!("unscoped token via protocol {p}"))),
                    Err(f) => errors.push(format!("{p}: {}", f.message)),
                }
            }
            Err(Fail::critical(errors.join("; ")))
        })
        .await?;
    let project = ctx
        .step(PROJECTS, async {
            let projects = keystone::list_projects(&ctx.http, &endpoint, &unscoped).await?;
            let chosen = keystone::pick_project(&projects, args.project.as_deref())?;
            let msg = format!(
                "{} project(s); using {} ({})",
                projects.len(),
                chosen.name,
                chosen.id
            );
            Ok(Done::ok(chosen, msg))
        })
        .await?;
    let (token, catalog) = ctx
        .step(SCOPE, async {
            let (t, catalog) =
                keystone::scoped_token(&ctx.http, &endpoint, &unscoped, &project.id).await?;
            let n = catalog.services.len();
            Ok(Done::ok(
                (t, catalog),
                format!("scoped to {}, {n} catalog entries", project.name),
            ))
        })
        .await?;
    Ok(Session {
        keystone: endpoint,
        token,
        project_id: project.id,
        project_name: project.name,
        catalog,
        region: args.region.clone(),
    })
}
