//! Getting a project-scoped Keystone session the way every OpenStack probe
//! needs one. Probes call [`login`]; how the credential is obtained (token
//! file, refresh token, client credentials, password, application
//! credential, SAML2 ECP, `OS_*` variables, clouds.yaml) is decided here.

pub mod azure;
pub mod cloud;
pub mod config;
pub(crate) mod credential;
pub mod ec2;
pub mod gce;
pub mod opennebula;
pub mod project;
mod saml;

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use tokio::time::Instant;

use crate::clients::keystone::{self, Catalog, Keystone, TokenInfo};
use crate::http::{show_url, Http, TlsOptions};
use crate::model::Status;
use crate::secret::Secret;
use crate::{Ctx, Done, Fail};
use config::Resolved;

crate::check_ids! { "EOSC-IAAS-AAI";
    READ_TOKEN = "AUTH-01", "obtain monitor credential";
    // Cloud-neutral title: EC2's STS and Azure's Entra ID record it too.
    EXCHANGE = "AUTH-02", "OIDC token exchange";
    PASSWORD = "AUTH-12", "password authentication at Keystone";
    APP_CRED = "AUTH-13", "application credential authentication at Keystone";
    SAML_SP = "AUTH-14", "SAML2 ECP: service provider's authentication request (PAOS)";
    SAML_IDP = "AUTH-15", "SAML2 ECP: identity provider login (SOAP)";
    SAML_ACS = "AUTH-16", "SAML2 ECP: service provider accepts the assertion";
    SAML_TOKEN = "AUTH-17", "SAML2 ECP: Keystone token for the SAML session";
    PROJECTS = "AUTH-03", "list projects";
    SCOPE = "AUTH-04", "project-scoped token";
    URL_CHECK = "AUTH-05", "Keystone URL (https, v3)" @ "EOSC-IAAS-API";
    CLOUD_LOGIN = "AUTH-19", "login at a non-OpenStack cloud's own API";
}

/// How to reach and log in to a site's Keystone. Anything not given here is
/// taken from `OS_*` variables or a clouds.yaml cloud, as the openstack CLI does.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct AuthArgs {
    /// Keystone v3 URL of the site [env: OS_AUTH_URL]
    #[arg(long = "endpoint", visible_alias = "os-auth-url", value_name = "URL")]
    pub endpoint: Option<Url>,
    /// File holding the OIDC access token (as ARGO passes it)
    #[arg(long = "access-token", value_name = "FILE")]
    pub access_token: Option<PathBuf>,
    /// File holding an OIDC refresh token; exchanged at the OP for an access token
    #[arg(long = "refresh-token", value_name = "FILE")]
    pub refresh_token: Option<PathBuf>,
    /// OIDC client id (refresh-token grant, or client_credentials without --refresh-token)
    #[arg(long = "client-id")]
    pub client_id: Option<String>,
    /// File holding the OIDC client secret
    #[arg(long = "client-secret", value_name = "FILE")]
    pub client_secret: Option<PathBuf>,
    /// OIDC issuer; its token endpoint is found by discovery
    #[arg(long = "oidc-issuer", value_name = "URL")]
    pub oidc_issuer: Option<Url>,
    /// OIDC token endpoint, instead of discovery
    #[arg(long = "token-endpoint", value_name = "URL")]
    pub token_endpoint: Option<Url>,
    /// Scope asked for at the OP [default: openid email profile eduperson_entitlement]
    #[arg(long = "oidc-scope")]
    pub oidc_scope: Option<String>,
    /// Keystone identity provider id [default: egi.eu]
    #[arg(
        long = "identity-provider",
        default_value = "",
        hide_default_value = true
    )]
    pub identity_provider: String,
    /// Federation protocol; default tries `openid`, then `oidc`
    #[arg(long = "protocol")]
    pub protocol: Option<String>,
    /// Project or VO to scope to: its id or name, a --vo-project mapping, or a project whose name contains it as a word; default: the one named like "ops", else the last
    #[arg(long = "project", visible_alias = "vo")]
    pub project: Option<String>,
    /// VO -> project mapping as GLUE publishes it (repeatable): VO=PROJECT-ID-OR-NAME
    #[arg(long = "vo-project", value_name = "VO=PROJECT")]
    pub vo_project: Vec<String>,
    /// Domain of --project when it is a name (password logins)
    #[arg(long = "project-domain")]
    pub project_domain: Option<String>,
    /// Region of the endpoints to use
    #[arg(long = "region")]
    pub region: Option<String>,
    /// User name for password authentication
    #[arg(long = "username")]
    pub username: Option<String>,
    /// File holding the password
    #[arg(long = "password-file", value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Domain of --username [default: Default]
    #[arg(long = "user-domain")]
    pub user_domain: Option<String>,
    /// Application credential id
    #[arg(long = "app-cred-id")]
    pub app_cred_id: Option<String>,
    /// File holding the application credential secret
    #[arg(long = "app-cred-secret", value_name = "FILE")]
    pub app_cred_secret: Option<PathBuf>,
    /// SAML2 ECP login: the IdP's ECP (SOAP) endpoint; --endpoint is then
    /// Keystone behind the site's SAML SP (or OS_AUTH_TYPE=v3samlpassword)
    #[arg(long = "saml-idp", value_name = "URL")]
    pub saml_idp: Option<Url>,
    /// File holding user:password for the SAML IdP (with --saml-idp)
    #[arg(long = "saml-credentials", value_name = "FILE")]
    pub saml_credentials: Option<PathBuf>,
    /// Cloud to use from clouds.yaml [env: OS_CLOUD]
    #[arg(long = "os-cloud", value_name = "NAME")]
    pub os_cloud: Option<String>,
    /// The clouds.yaml to read --os-cloud from [env: OS_CLIENT_CONFIG_FILE; default: the openstack CLI's search path]
    #[arg(long = "clouds-yaml", value_name = "FILE")]
    pub clouds_yaml: Option<PathBuf>,
    /// Send credentials and tokens over plain http off loopback: to the Keystone and to the catalog's endpoints (labs only)
    #[arg(long = "allow-http")]
    pub allow_http: bool,
    /// The site's cloud API; --endpoint is that API's endpoint (Keystone for OpenStack)
    #[arg(long = "cloud", value_enum, default_value_t = cloud::CloudKind::OpenStack)]
    pub cloud: cloud::CloudKind,
    #[command(flatten)]
    pub ec2: Box<ec2::Ec2Args>,
    #[command(flatten)]
    pub azure: Box<azure::AzureArgs>,
    #[command(flatten)]
    pub gce: Box<gce::GceArgs>,
    #[command(flatten)]
    pub opennebula: Box<opennebula::OpenNebulaArgs>,
}

/// Every login check a probe may record, whatever the cloud: Keystone's
/// (and SAML's) above, and the other clouds' own login stages.
pub fn checks() -> Vec<crate::model::CheckId> {
    ALL.iter().chain(gce::ALL).copied().collect()
}

impl AuthArgs {
    /// For probes that speak OpenStack's own APIs only: another `--cloud`
    /// is a configuration the probe cannot serve (UNKNOWN).
    pub fn require_openstack(&self, probe: &str) -> Result<(), Fail> {
        match self.cloud {
            cloud::CloudKind::OpenStack => Ok(()),
            other => Err(Fail::unknown(format!(
                "{probe} speaks OpenStack only, not --cloud {other}"
            ))),
        }
    }
}

impl AuthArgs {
    /// A Keystone and a credential are named on the command line (an
    /// `--os-cloud` entry names both): a probe with optional live checks runs them.
    pub fn configures_login(&self) -> bool {
        let credential = self.access_token.is_some()
            || self.refresh_token.is_some()
            || self.client_id.is_some()
            || self.username.is_some()
            || self.app_cred_id.is_some();
        self.os_cloud.is_some() || (self.endpoint.is_some() && credential)
    }
}

/// A project-scoped Keystone session.
#[derive(Clone)]
pub struct Session {
    pub keystone: Url,
    pub token: Secret,
    pub project_id: String,
    pub project_name: String,
    pub catalog: Catalog,
    pub region: Option<String>,
    /// The HTTP client to use with this cloud: `ctx.http()`, or one that also
    /// trusts the CA named by OS_CACERT / clouds.yaml `cacert`.
    pub http: Http,
    /// How the login was done, e.g. "OIDC access token via egi.eu/openid".
    pub method: String,
    /// The federation protocol that worked (OIDC logins).
    pub protocol: Option<String>,
    pub identity_provider: String,
    /// The OIDC access token the login exchanged (OIDC logins), for handing
    /// to a service that logs in on the monitor's behalf (an orchestrator).
    pub bearer: Option<Secret>,
    /// When the scoped token expires, as Keystone says.
    pub expires_at: Option<String>,
    /// Time of the whole login.
    pub login_time: Duration,
    /// `--allow-http`: catalog endpoints in plain http are used (else refused).
    pub allow_http: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("keystone", &self.keystone.as_str())
            .field("token", &self.token)
            .field("project_id", &self.project_id)
            .field("project_name", &self.project_name)
            .field("region", &self.region)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The public endpoint of a service type in the session's region, as
    /// [`catalog_url`] lets a probe use it.
    pub fn endpoint(&self, service_type: &str) -> Result<Url, Fail> {
        self.listed(service_type).unwrap_or_else(|| {
            Err(Fail::critical(format!(
                "no public {service_type} endpoint in the catalog{}",
                self.region
                    .as_deref()
                    .map(|r| format!(" for region {r}"))
                    .unwrap_or_default()
            )))
        })
    }

    /// As [`Session::endpoint`], `None` where the catalog lists none: a
    /// listed endpoint the login's policy refuses (plain http it does not
    /// accept) is `Some(Err)`, so the scoped token is never sent where
    /// Keystone's own URL would have been refused.
    pub fn listed(&self, service_type: &str) -> Option<Result<Url, Fail>> {
        let url = self
            .catalog
            .public_url(service_type, self.region.as_deref())?;
        Some(catalog_url(service_type, url, self.allow_http))
    }
}

/// A catalog endpoint as a probe may use it: the catalog is the site's, so
/// an endpoint that is not http(s) with a host is the site's fault
/// (CRITICAL), and credentials written into one are neither sent nor shown
/// (the password becomes a known secret). Plain http off loopback is refused
/// without `--allow-http`, as Keystone's own URL is: the scoped token is
/// never sent where the login would not have sent the credential.
pub fn catalog_url(service_type: &str, mut url: Url, allow_http: bool) -> Result<Url, Fail> {
    if let Some(p) = url.password() {
        let _ = Secret::new(p.to_string());
    }
    // Fails only where the URL has no host, refused below.
    let _ = url.set_password(None);
    let _ = url.set_username("");
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(|h| h.is_empty()) {
        return Err(Fail::critical(format!(
            "the catalog's public {service_type} endpoint {} is not an http(s) URL with a host",
            crate::text::one_line(url.as_str(), 200)
        )));
    }
    match scheme_verdict(&url, allow_http) {
        (Status::Critical, msg) => Err(Fail::critical(format!(
            "the catalog's public {service_type} endpoint: {msg}"
        ))),
        _ => Ok(url),
    }
}

/// What the Keystone URL policy says about a URL.
pub fn url_verdict(url: &Url, allow_http: bool) -> (Status, String) {
    let shown = show_url(url);
    let path = url.path().trim_end_matches('/');
    if path.ends_with("/v2.0") || path.contains("/v2.0/") {
        return (
            Status::Critical,
            format!("{shown} is a Keystone v2.0 URL; v2.0 is retired, a v3 URL is required"),
        );
    }
    scheme_verdict(url, allow_http)
}

/// What the plain-http policy says about a URL's scheme: https, or http on
/// loopback, or http where `--allow-http` accepts it with a WARNING.
pub fn scheme_verdict(url: &Url, allow_http: bool) -> (Status, String) {
    let shown = show_url(url);
    match url.scheme() {
        "https" => (Status::Ok, shown),
        "http" if is_loopback(url) => (
            Status::Ok,
            format!("{shown} is plain http on loopback (traffic stays on this host)"),
        ),
        "http" if allow_http => (
            Status::Warning,
            format!("{shown} is plain http: tokens travel unencrypted (--allow-http)"),
        ),
        "http" => (
            Status::Critical,
            format!(
                "{shown} is plain http: no credential was sent (a bearer token would travel \
                 unencrypted); sites must offer https"
            ),
        ),
        other => (
            Status::Critical,
            format!("{shown}: unsupported scheme {other:?}"),
        ),
    }
}

fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// Log in and scope to a project, recording AUTH-05 and AUTH-01..04.
/// Settings come from `args`, then the process environment (`OS_*`), then clouds.yaml.
/// Boxed: every probe awaits it once, and inlined it made each probe run in
/// flight a few KB larger for all of its stages.
pub fn login<'a>(
    ctx: &'a Ctx,
    args: &'a AuthArgs,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Session, Fail>> + Send + 'a>> {
    Box::pin(async move {
        let plan = resolve(ctx, args)?;
        login_with(ctx, plan).await
    })
}

/// Resolve the settings from `args`, the environment and clouds.yaml; a
/// failure is recorded as AUTH-01 (the monitor's configuration: UNKNOWN).
pub fn resolve(ctx: &Ctx, args: &AuthArgs) -> Result<Resolved, Fail> {
    let env = |k: &str| std::env::var(k).ok();
    config::resolve(args, &env).map_err(|f| ctx.fail_at(READ_TOKEN, f))
}

/// The federation's OIDC access token for another cloud's federated login
/// (EC2's STS, Azure's and GCE's token exchange), from the same sources as
/// the Keystone login; recorded as AUTH-01. Returns the token, how it was
/// obtained, and the HTTP client trusting the configured CA.
pub async fn federation_token(ctx: &Ctx, args: &AuthArgs) -> Result<(Secret, String, Http), Fail> {
    let plan = resolve(ctx, args)?;
    let http = session_http(ctx, &plan)?;
    match ctx
        .step(READ_TOKEN, credential::obtain(ctx, &http, &plan))
        .await?
    {
        credential::Obtained::Bearer(token, how) => Ok((token, how, http)),
        _ => Err(Fail::unknown(
            "a federated login needs an OIDC token source (--access-token, --refresh-token, \
             --client-id with --client-secret), not a password or application credential",
        )),
    }
}

/// [`login`] with settings already resolved.
pub async fn login_with(ctx: &Ctx, plan: Resolved) -> Result<Session, Fail> {
    let t_all = Instant::now();
    let (status, msg) = url_verdict(&plan.keystone, plan.allow_http);
    if status == Status::Critical {
        return Err(ctx.fail_at(URL_CHECK, Fail::critical(msg)));
    }
    ctx.note(URL_CHECK, status, msg);
    ctx.detail(format!(
        "auth: {} at {}; identity provider {}, protocols {}; project {}; region {}; CA {}; settings from {}",
        plan.credential.describe(),
        show_url(&plan.keystone),
        plan.identity_provider,
        plan.protocols.join(","),
        plan.project.as_deref().unwrap_or("(default rule: a name containing \"ops\")"),
        plan.region.as_deref().unwrap_or("(any)"),
        plan.cacert
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(--ca-cert/system)".into()),
        plan.source
    ));
    let http = session_http(ctx, &plan)?;
    let credential = ctx
        .step(READ_TOKEN, credential::obtain(ctx, &http, &plan))
        .await?;
    let bearer = match &credential {
        credential::Obtained::Bearer(token, _) => Some(token.clone()),
        _ => None,
    };
    let first = match &credential {
        credential::Obtained::Bearer(token, how) => {
            federated(ctx, &http, &plan, token, how).await?
        }
        credential::Obtained::Password {
            username,
            user_domain,
            password,
        } => with_password(ctx, &http, &plan, username, user_domain, password).await?,
        credential::Obtained::AppCred { id, secret } => {
            with_app_cred(ctx, &http, &plan, id, secret).await?
        }
        credential::Obtained::Saml {
            idp,
            user,
            password,
        } => {
            let account = saml::Account {
                idp,
                user,
                password,
            };
            saml::login(ctx, &http, &plan, account).await?
        }
    };
    let (project, scoped) = match first.scoped {
        // Application credentials and direct password scoping give a scoped token at once.
        Some(info) => (already_scoped(ctx, &plan, &info)?, (first.token, info)),
        None => scope(ctx, &http, &plan, &first.token).await?,
    };
    let (token, info) = scoped;
    Ok(Session {
        keystone: plan.keystone,
        token,
        project_id: project.0,
        project_name: project.1,
        catalog: info.catalog,
        region: plan.region,
        http,
        method: first.method,
        protocol: first.protocol,
        identity_provider: plan.identity_provider,
        bearer,
        expires_at: info.expires_at,
        login_time: t_all.elapsed(),
        allow_http: plan.allow_http,
    })
}

/// What the first authentication gave: a token, scoped already or not.
struct FirstToken {
    token: Secret,
    scoped: Option<TokenInfo>,
    /// How the login was done, for messages.
    method: String,
    protocol: Option<String>,
}

/// AUTH-02: an OIDC access token exchanged at Keystone's federation API.
async fn federated(
    ctx: &Ctx,
    http: &Http,
    plan: &Resolved,
    token: &Secret,
    how: &str,
) -> Result<FirstToken, Fail> {
    let (tok, p) = ctx.step(EXCHANGE, exchange(http, plan, token)).await?;
    Ok(FirstToken {
        token: tok,
        scoped: None,
        method: format!("{how} via {}/{p}", plan.identity_provider),
        protocol: Some(p),
    })
}

/// AUTH-12: a password login (scoped at once when the project's domain is known).
async fn with_password(
    ctx: &Ctx,
    http: &Http,
    plan: &Resolved,
    username: &str,
    user_domain: &keystone::Domain,
    password: &Secret,
) -> Result<FirstToken, Fail> {
    let direct = plan.project_domain.as_ref().zip(plan.project.as_ref());
    let (tok, info) = ctx
        .step(PASSWORD, async {
            let scope = direct
                .map(|(d, p)| serde_json::json!({"project": {"name": p, "domain": d.json()}}));
            let out = Keystone::new(http.clone(), plan.keystone.clone())
                .password_token(username, user_domain, password, scope)
                .await?;
            Ok(Done::ok(
                out,
                format!("user {username} (domain {user_domain}) authenticated"),
            ))
        })
        .await?;
    Ok(FirstToken {
        token: tok,
        scoped: direct.is_some().then_some(info),
        method: format!("password of {username}"),
        protocol: None,
    })
}

/// AUTH-13: an application credential (always scoped to its project).
async fn with_app_cred(
    ctx: &Ctx,
    http: &Http,
    plan: &Resolved,
    id: &str,
    secret: &Secret,
) -> Result<FirstToken, Fail> {
    let (tok, info) = ctx
        .step(APP_CRED, async {
            let out = Keystone::new(http.clone(), plan.keystone.clone())
                .app_cred_token(id, secret)
                .await?;
            Ok(Done::ok(
                out,
                format!("application credential {id} accepted"),
            ))
        })
        .await?;
    Ok(FirstToken {
        token: tok,
        scoped: Some(info),
        method: format!("application credential {id}"),
        protocol: None,
    })
}

/// AUTH-04 for a token that came scoped: (project id, name).
fn already_scoped(ctx: &Ctx, plan: &Resolved, info: &TokenInfo) -> Result<(String, String), Fail> {
    let project = info.project.clone().ok_or_else(|| {
        ctx.fail_at(
            SCOPE,
            Fail::critical("Keystone issued a token without a project scope"),
        )
    })?;
    let name = project.name.clone().unwrap_or_else(|| project.id.clone());
    let mut rule = String::from("the credential's own project");
    if let Some(w) = &plan.project {
        match project::accepts(w, &project.id, &name, &plan.vo_map) {
            Some(r) => rule = r,
            None => {
                // the monitor asked for a project its credential is not bound to
                let msg = format!(
                    "token is scoped to {name} ({}), not {w}: not its id or name, no --vo-project \
                     mapping to it, and the name does not contain {w:?} as a word",
                    project.id
                );
                return Err(ctx.fail_at(PROJECTS, Fail::unknown(msg)));
            }
        }
    }
    ctx.note(
        SCOPE,
        Status::Ok,
        format!(
            "scoped to {name} ({}; {rule}), {} catalog entries",
            project.id,
            info.catalog.services.len()
        ),
    );
    Ok((project.id, name))
}

/// AUTH-03 and AUTH-04: pick the project by the rule, scope the token to it.
async fn scope(
    ctx: &Ctx,
    http: &Http,
    plan: &Resolved,
    unscoped: &Secret,
) -> Result<((String, String), (Secret, TokenInfo)), Fail> {
    let keystone = Keystone::new(http.clone(), plan.keystone.clone());
    let project = ctx
        .step(PROJECTS, async {
            let projects = keystone.list_projects(unscoped).await?;
            let pick = project::pick(&projects, plan.project.as_deref(), &plan.vo_map)?;
            let msg = format!(
                "{} project(s); using {} ({}; {})",
                projects.len(),
                pick.project.name,
                pick.project.id,
                pick.rule
            );
            Ok(Done::ok(pick.project, msg))
        })
        .await?;
    let scoped = ctx
        .step(SCOPE, async {
            let (t, info) = keystone.scope_token(unscoped, &project.id).await?;
            let n = info.catalog.services.len();
            Ok(Done::ok(
                (t, info),
                format!(
                    "scoped to {} ({}), {n} catalog entries",
                    project.name, project.id
                ),
            ))
        })
        .await?;
    Ok(((project.id, project.name), scoped))
}

/// `ctx.http()`, or a client that also trusts the cloud's own CA file.
fn session_http(ctx: &Ctx, plan: &Resolved) -> Result<Http, Fail> {
    if plan.cacert.is_none() && !plan.insecure {
        return Ok(ctx.http().clone());
    }
    // The cloud's CA is trusted besides, not instead of, --ca-cert/--ca-path.
    let base = ctx.http().tls();
    let tls = TlsOptions {
        ca_certs: base
            .ca_certs
            .iter()
            .chain(plan.cacert.iter())
            .cloned()
            .collect(),
        ca_path: base.ca_path.clone(),
        insecure: base.insecure || plan.insecure,
    };
    ctx.http().with_tls(tls)
}

/// Try each protocol in turn; report every attempt.
async fn exchange(
    http: &Http,
    plan: &Resolved,
    token: &Secret,
) -> Result<Done<(Secret, String)>, Fail> {
    let mut attempts = Vec::new();
    let mut first: Option<Fail> = None;
    for p in &plan.protocols {
        match Keystone::new(http.clone(), plan.keystone.clone())
            .exchange_oidc(&plan.identity_provider, p, token)
            .await
        {
            Ok(t) => {
                attempts.push(format!("{p}: unscoped token"));
                let msg = format!(
                    "identity provider {}: {}",
                    plan.identity_provider,
                    attempts.join("; ")
                );
                return Ok(Done::ok((t, p.clone()), msg));
            }
            Err(f) if f.kind == crate::fail::FailKind::Timeout => {
                return Err(f.context(format!("protocol {p}")));
            }
            Err(f) => {
                attempts.push(format!("{p}: {}", f.message));
                first.get_or_insert(f);
            }
        }
    }
    // The facts (HTTP status, transport) of the first protocol's answer stay
    // with the verdict: graders read them, not the joined text.
    let mut fail = Fail::critical(format!(
        "identity provider {}: {}",
        plan.identity_provider,
        attempts.join("; ")
    ));
    if let Some(f) = first {
        fail.http = f.http;
        fail.transport = f.transport;
    }
    Err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monitor_credential_check_is_the_one_the_runner_names() {
        assert_eq!(READ_TOKEN.id, crate::model::MONITOR_CREDENTIAL_CHECK);
    }

    #[test]
    fn url_policy() {
        let v = |u: &str, allow| url_verdict(&Url::parse(u).unwrap(), allow).0;
        assert_eq!(v("https://k.example:5000/v3", false), Status::Ok);
        assert_eq!(v("http://k.example:5000/v3", false), Status::Critical);
        assert_eq!(v("http://k.example:5000/v3", true), Status::Warning);
        assert_eq!(v("http://127.0.0.1:5000/v3", false), Status::Ok);
        assert_eq!(v("http://[::1]:5000/v3", false), Status::Ok);
        assert_eq!(v("https://k.example:5000/v2.0", false), Status::Critical);
        assert_eq!(v("https://k.example:5000/v2.0/", true), Status::Critical);
        let (_, msg) = url_verdict(&Url::parse("https://u:pw@k.example/v2.0").unwrap(), false);
        assert!(!msg.contains("pw"), "{msg}");
    }

    #[test]
    fn catalog_endpoints_are_http_with_a_host_and_carry_no_credentials() {
        let url = |u: &str| catalog_url("compute", Url::parse(u).unwrap(), false);
        let ok = url("http://u:catpw1234secret@127.0.0.1:8774/compute/v2.1").unwrap();
        assert_eq!(ok.as_str(), "http://127.0.0.1:8774/compute/v2.1");
        let shown = crate::secret::scrub("failed at catpw1234secret");
        assert!(!shown.contains("catpw1234secret"), "{shown}");
        for bad in ["file:///etc/passwd", "ftp://h/x", "data:text/plain,x"] {
            let f = url(bad).unwrap_err();
            assert_eq!(f.status, Status::Critical, "{bad}: {}", f.message);
            assert!(
                f.message.contains("public compute endpoint"),
                "{}",
                f.message
            );
        }
        assert!(url("https://nova.example/v2.1").is_ok());
    }

    #[test]
    fn a_plain_http_catalog_endpoint_off_loopback_gets_no_token() {
        let url = |u: &str, allow| catalog_url("volume", Url::parse(u).unwrap(), allow);
        let f = url("http://cinder.example:8776/v3/p", false).unwrap_err();
        assert_eq!(f.status, Status::Critical);
        assert!(
            f.message.contains("public volume endpoint")
                && f.message.contains("plain http")
                && f.message.contains("no credential was sent"),
            "{}",
            f.message
        );
        assert!(url("http://cinder.example:8776/v3/p", true).is_ok());
        assert!(url("http://127.0.0.1:8776/v3/p", false).is_ok());
        assert!(url("http://[::1]:8776/v3/p", false).is_ok());
        // Neutron's endpoints often end in /v2.0: not a retired Keystone.
        assert!(url("https://neutron.example/v2.0", false).is_ok());
    }
}
