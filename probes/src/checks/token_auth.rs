//! check_token_auth: can the monitor log in at a site's Keystone, and does
//! the site behave like a federated IaaS site must? Steps:
//! AUTH-05 URL policy, AUTH-10 refresh-token lifetime (when one is used),
//! AUTH-01..04 login (shared with every probe; AUTH-12/13 for password and
//! application-credential logins instead of AUTH-02), AUTH-06 token validation,
//! AUTH-07/08 catalog, AUTH-09 a garbage token is refused, AUTH-11 login time,
//! AUTH-18 the federation protocols the site advertises. SAML2 ECP logins
//! record AUTH-14..17 instead of AUTH-02.
//!
//! Plain-http Keystone URLs are CRITICAL and no credential is sent to them:
//! the access token is a bearer credential accepted by every federated site,
//! and production's probe refuses non-https Keystone too. Loopback is exempt
//! (traffic never leaves the host); `--allow-http` downgrades to WARNING for labs.

use std::time::Duration;

use reqwest::Url;
use sha2::Digest;

use crate::auth::config::{Credential, SecretSource};
use crate::auth::{self, AuthArgs, Session};
use crate::clients::keystone::{self, Keystone};
use crate::clients::oidc;
use crate::http::show_url;
use crate::model::Perf;
use crate::model::Status;
use crate::probe::{Optional, Probe};
use crate::{Ctx, Done, Fail};

crate::check_ids! { "EOSC-IAAS-AAI";
    VALIDATE = "AUTH-06", "validate scoped token";
    CATALOG_CORE = "AUTH-07", "catalog: compute, image, identity" @ "EOSC-IAAS-API";
    CATALOG_EXTRA = "AUTH-08", "catalog: optional services" @ "EOSC-IAAS-API";
    GARBAGE = "AUTH-09", "invalid token refused";
    REFRESH_LIFETIME = "AUTH-10", "monitor refresh token lifetime";
    LOGIN_TIME = "AUTH-11", "login time";
    FED_PROTOCOLS = "AUTH-18", "federation protocols advertised (OIDC, SAML)";
}

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub auth: AuthArgs,
    /// WARNING when the monitor's refresh token expires within this many days
    #[arg(long = "refresh-warning-days", default_value_t = 30)]
    pub refresh_warning_days: u32,
    /// CRITICAL when the monitor's refresh token expires within this many days
    #[arg(long = "refresh-critical-days", default_value_t = 15)]
    pub refresh_critical_days: u32,
    /// Do not send a garbage token to check that the site refuses it
    #[arg(long = "no-invalid-token-check")]
    pub no_invalid_token_check: bool,
    /// Services whose absence is a WARNING (comma separated: network, volume)
    #[arg(
        long = "optional-services",
        value_delimiter = ',',
        default_value = "network,volume"
    )]
    pub optional_services: Vec<String>,
}

pub struct TokenAuth;

impl Probe for TokenAuth {
    const BIN: &'static str = "check_token_auth";
    const LABEL: &'static str = "TOKEN_AUTH";
    const ABOUT: &'static str = "Log in at a site (Keystone: federated OIDC, SAML2 ECP, password \
        or application credential; other clouds: their own federated or session login), check \
        the token, the catalog and that bad tokens are refused. -w/-c apply to the login time in \
        seconds.";
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
    type Args = Args;

    fn checks() -> Vec<crate::model::CheckId> {
        crate::auth::checks()
            .into_iter()
            .chain(ALL.iter().copied())
            .collect()
    }

    const OPTIONAL: &'static [Optional] = &[Optional {
        check: "AUTH-10",
        flags: &["refresh-token"],
        how: "--refresh-token FILE, the monitor's OIDC refresh token (its lifetime is checked)",
    }];

    async fn run(args: Args, ctx: Ctx) -> Result<String, Fail> {
        if args.auth.cloud == crate::auth::cloud::CloudKind::Azure {
            let _perf = PerfOnExit(ctx.clone());
            return azure_login::run(&args, &ctx).await;
        }
        if args.auth.cloud == crate::auth::cloud::CloudKind::Ec2 {
            return ec2_federated(&args, &ctx).await;
        }
        if args.auth.cloud == crate::auth::cloud::CloudKind::Gce {
            return gce::run(&args, &ctx).await;
        }
        if args.auth.cloud != crate::auth::cloud::CloudKind::OpenStack {
            return super::token_auth_cloud::run(&ctx, &args).await;
        }
        let _perf = PerfOnExit(ctx.clone());
        run(&args, &ctx).await
    }
}

mod azure_login;
/// On EC2 the federated login is STS `AssumeRoleWithWebIdentity` with the
/// OIDC token (AUTH-01, AUTH-02, recorded by the backend's login); AUTH-04
/// checks the temporary, role-scoped credentials are accepted by EC2.
async fn ec2_federated(args: &Args, ctx: &Ctx) -> Result<String, Fail> {
    if args.auth.ec2.role_arn.is_none() {
        return Err(Fail::unknown(
            "check_token_auth on --cloud ec2 checks the federated login: give --ec2-role-arn \
             and an OIDC token source",
        ));
    }
    let mut b = crate::backend::ec2::login(ctx, &args.auth).await?;
    ctx.step(auth::SCOPE, async {
        use crate::backend::Compute;
        let d = b.api_version().await?;
        Ok(Done::ok((), format!("role credentials accepted: {d}")))
    })
    .await?;
    Ok(
        "federated login through STS AssumeRoleWithWebIdentity; EC2 accepts the role's credentials"
            .into(),
    )
}

/// Step timings become perfdata however the run ends: done, failed, or
/// cut by the deadline (the runner drops the probe's future, running this).
struct PerfOnExit(Ctx);

impl Drop for PerfOnExit {
    fn drop(&mut self) {
        emit_step_perf(&self.0);
    }
}

async fn run(args: &Args, ctx: &Ctx) -> Result<String, Fail> {
    let plan = auth::resolve(ctx, &args.auth)?;
    if let Credential::RefreshToken { refresh, .. } = &plan.credential {
        let (w, c) = (args.refresh_warning_days, args.refresh_critical_days);
        ctx.step(REFRESH_LIFETIME, async { refresh_lifetime(refresh, w, c) })
            .await?;
    }
    let federated = plan.credential.is_federated();
    let session = auth::login_with(ctx, plan.clone()).await?;
    login_time(ctx, &session);

    ctx.step(VALIDATE, validate(&session)).await?;
    let (status, msg) = catalog_core(&session, plan.allow_http);
    ctx.note(CATALOG_CORE, status, msg);
    let optional: Vec<String> = args
        .optional_services
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if !optional.is_empty() {
        let (status, msg) = catalog_extra(&session, &optional, plan.allow_http);
        ctx.note(CATALOG_EXTRA, status, msg);
        if optional.iter().any(|s| s == "object-store") {
            let n = session
                .catalog
                .public_endpoints("object-store", session.region.as_deref())
                .len();
            ctx.perf(Perf::count(OBJECT_STORE_ENDPOINTS, n as u64));
        }
    }

    // A listing that breaks is AUTH-18's CRITICAL (recorded by the step);
    // the garbage token is still tried. Out of time, nothing more is.
    if let Err(f) = ctx
        .step(FED_PROTOCOLS, advertised_protocols(&session))
        .await
    {
        if f.kind == crate::fail::FailKind::Timeout {
            return Err(f);
        }
    }

    if federated && !args.no_invalid_token_check {
        ctx.step(GARBAGE, garbage_refused(&session)).await?;
    }
    Ok(format!(
        "logged in to {} by {} in {:.2}s",
        session.project_name,
        session.method,
        session.login_time.as_secs_f64()
    ))
}

/// The federated login of a GCE site: the login steps (key grant, or STS
/// exchange and impersonation), the token accepted by compute, a garbage
/// token refused.
mod gce {
    use super::*;
    use crate::backend::{gce, Compute};
    use crate::secret::Secret;

    pub async fn run(args: &Args, ctx: &Ctx) -> Result<String, Fail> {
        let t0 = tokio::time::Instant::now();
        let mut b = gce::connect(ctx, &args.auth).await?;
        let login = t0.elapsed();
        ctx.perf(Perf::seconds("login", login).thresholds(ctx.warning(), ctx.critical()));
        ctx.note(
            LOGIN_TIME,
            ctx.threshold_status(login.as_secs_f64()),
            format!("{:.2}s", login.as_secs_f64()),
        );
        ctx.step(VALIDATE, async {
            let v = b.api_version().await?;
            Ok(Done::ok(v.clone(), format!("access token accepted: {v}")))
        })
        .await?;
        if !args.no_invalid_token_check {
            ctx.step(GARBAGE, async {
                let mut bad = b.with_token(Secret::new(super::garbage_token()));
                match bad.api_version().await {
                    Err(f) if f.http_status() == Some(401) => {
                        Ok(Done::ok((), "garbage token refused (401)".to_string()))
                    }
                    Err(f) => Err(Fail::critical(format!(
                        "a garbage token got {} instead of 401",
                        f.message
                    ))),
                    Ok(_) => Err(Fail::critical("a garbage token was accepted")),
                }
            })
            .await?;
        }
        Ok(format!(
            "logged in to GCE by {} in {:.2}s",
            b.method(),
            login.as_secs_f64()
        ))
    }
}

/// Production's check-refresh-token-expiration, from the JWT's `exp` (not verified).
fn refresh_lifetime(src: &SecretSource, warn_days: u32, crit_days: u32) -> Result<Done<()>, Fail> {
    let token = src.load("refresh token")?;
    let Some(claims) = oidc::jwt_claims(&token) else {
        return Ok(Done::ok(
            (),
            format!(
                "refresh token from {} is opaque (not a JWT): its expiry cannot be read",
                src.describe()
            ),
        ));
    };
    let Some(exp) = claims.exp else {
        return Ok(Done::ok(
            (),
            "refresh token is a JWT without exp (does not expire)",
        ));
    };
    let left = exp - crate::clock::now_unix();
    let days = left / 86400.0;
    if left <= 0.0 {
        return Err(Fail::unknown(format!(
            "the monitor's refresh token expired {} ago",
            oidc::human_secs(left)
        )));
    }
    let msg = format!(
        "refresh token expires in {} ({days:.1} days; warning under {warn_days}, critical under {crit_days})",
        oidc::human_secs(left)
    );
    let status = if days < crit_days as f64 {
        Status::Critical
    } else if days < warn_days as f64 {
        Status::Warning
    } else {
        Status::Ok
    };
    Ok(Done::with(status, (), msg))
}

fn login_time(ctx: &Ctx, s: &Session) {
    let secs = (s.login_time.as_secs_f64() * 1000.0).round() / 1000.0;
    ctx.perf(Perf::seconds("login", s.login_time).thresholds(ctx.warning(), ctx.critical()));
    let status = ctx.threshold_status(secs);
    let limits = match (ctx.warning(), ctx.critical()) {
        (None, None) => String::new(),
        (w, c) => format!(
            " (-w {}, -c {})",
            w.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
            c.map(|r| r.to_string()).unwrap_or_else(|| "-".into())
        ),
    };
    ctx.note(LOGIN_TIME, status, format!("login took {secs}s{limits}"));
}

/// Perfdata from the recorded steps, so a failed run still reports its timings.
fn emit_step_perf(ctx: &Ctx) {
    let labels = [
        (auth::READ_TOKEN, "credential"),
        (auth::EXCHANGE, "authenticate"),
        (auth::PASSWORD, "authenticate"),
        (auth::APP_CRED, "authenticate"),
        (auth::SAML_SP, "saml_sp"),
        (auth::SAML_IDP, "saml_idp"),
        (auth::SAML_ACS, "saml_sp_accept"),
        (auth::SAML_TOKEN, "authenticate"),
        (auth::PROJECTS, "projects"),
        (auth::SCOPE, "scope"),
        (VALIDATE, "validate"),
        (GARBAGE, "invalid_token"),
    ];
    for step in ctx.steps() {
        if let Some((_, label)) = labels.iter().find(|(c, _)| c.id == step.check) {
            if !step.duration.is_zero() {
                ctx.perf(Perf::seconds(*label, step.duration));
            }
        }
    }
}

async fn validate(s: &Session) -> Result<Done<()>, Fail> {
    let info = Keystone::new(s.http.clone(), s.keystone.clone())
        .validate_token(&s.token)
        .await?;
    let scoped_to = info.project.map(|p| p.id);
    if scoped_to.as_deref() != Some(s.project_id.as_str()) {
        return Err(Fail::critical(format!(
            "GET /v3/auth/tokens -> 200 but the token is scoped to {}, not {}",
            scoped_to.as_deref().unwrap_or("no project"),
            s.project_id
        )));
    }
    let exp = s
        .expires_at
        .as_deref()
        .or(info.expires_at.as_deref())
        .map(|e| format!(", expires {e}"))
        .unwrap_or_default();
    Ok(Done::ok(
        (),
        format!("Keystone confirms the scoped token (HTTP 200){exp}"),
    ))
}

/// The federated identity family a Keystone protocol serves.
fn protocol_family(p: &keystone::FederationProtocol) -> &'static str {
    let attr = p
        .remote_id_attribute
        .as_deref()
        .unwrap_or("")
        .to_ascii_uppercase();
    match p.id.to_ascii_lowercase().as_str() {
        "openid" | "oidc" | "openidc" => "OIDC",
        "saml2" | "saml" => "SAML",
        // `mapped` serves either; the remote id attribute names the Apache module's variable
        _ if ["SAML", "MELLON", "SHIB"].iter().any(|k| attr.contains(k)) => "SAML",
        _ if ["OIDC", "ISS"].iter().any(|k| attr.contains(k)) => "OIDC",
        _ => "kind not known",
    }
}

/// AUTH-18: which federation protocols the site's identity providers offer,
/// so a site offering SAML only (or OIDC only) is seen as such. Listing
/// needs admin rights on most sites: a refusal (401/403/404) is reported,
/// not failed; any other error is CRITICAL.
async fn advertised_protocols(s: &Session) -> Result<Done<()>, Fail> {
    let used = match &s.protocol {
        Some(p) => format!("this login used {}/{p}", s.identity_provider),
        None => "this login was not federated".into(),
    };
    let idps = match Keystone::new(s.http.clone(), s.keystone.clone())
        .federation_protocols(&s.token)
        .await
    {
        Ok(l) => l,
        Err(f) if matches!(f.http_status(), Some(401 | 403 | 404)) => {
            return Ok(Done::ok(
                (),
                format!(
                "the site does not let the monitor list its identity providers (HTTP {}); {used}",
                f.http_status().unwrap_or(403)
            ),
            ))
        }
        Err(f) if f.kind == crate::fail::FailKind::Timeout => return Err(f),
        // Any other answer (5xx, garbage, a reset, a refused redirect) is
        // the site's Keystone misbehaving, not a refusal: CRITICAL, saying
        // what came back, with its facts.
        Err(f) => {
            let mut fail = Fail::critical(format!(
                "identity providers could not be listed: {}; {used}",
                f.message
            ));
            fail.http = f.http;
            fail.transport = f.transport;
            return Err(fail);
        }
    };
    let mut families = std::collections::BTreeSet::new();
    let mut parts = Vec::new();
    for i in &idps {
        let ps: Vec<String> = i
            .protocols
            .iter()
            .map(|p| {
                let fam = protocol_family(p);
                if i.enabled && fam != "kind not known" {
                    families.insert(fam);
                }
                format!("{} ({fam})", p.id)
            })
            .collect();
        let off = if i.enabled { "" } else { " [disabled]" };
        let ps = if ps.is_empty() {
            "no protocol".to_string()
        } else {
            ps.join(", ")
        };
        parts.push(format!("{}{off}: {ps}", i.idp));
    }
    let none = families.is_empty();
    let offered = if none {
        "no OIDC or SAML protocol".to_string()
    } else {
        families.into_iter().collect::<Vec<_>>().join(" and ")
    };
    let msg = format!(
        "{} identity provider(s), offering {offered}: {}",
        idps.len(),
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join("; ")
        }
    );
    let msg = crate::text::one_line(&msg, 600);
    if none {
        return Ok(Done::warn((), msg));
    }
    Ok(Done::ok((), msg))
}

/// Perfdata label: the catalog's public object-store endpoints in the region
/// (when object-store is among the optional services), read by `fedprobe init`.
pub const OBJECT_STORE_ENDPOINTS: &str = "object_store_endpoints";

/// Alternative service types a catalog may use for the same service.
const VOLUME_TYPES: &[&str] = &["volumev3", "block-storage", "volume", "volumev2"];

fn catalog_core(s: &Session, allow_http: bool) -> (Status, String) {
    let services = [
        ("compute", vec!["compute"]),
        ("image", vec!["image"]),
        ("identity", vec!["identity"]),
    ];
    judge(s, &services, Status::Critical, allow_http)
}

fn catalog_extra(s: &Session, wanted: &[String], allow_http: bool) -> (Status, String) {
    let services: Vec<(&str, Vec<&str>)> = wanted
        .iter()
        .map(|w| match w.trim() {
            "volume" => ("volume", VOLUME_TYPES.to_vec()),
            other => (other, vec![other]),
        })
        .collect();
    judge(s, &services, Status::Warning, allow_http)
}

/// Each service present with an https public endpoint in the region, else `bad`.
fn judge(
    s: &Session,
    services: &[(&str, Vec<&str>)],
    bad: Status,
    allow_http: bool,
) -> (Status, String) {
    let region = s.region.as_deref();
    let in_region = region
        .map(|r| format!(" in region {r}"))
        .unwrap_or_default();
    let mut status = Status::Ok;
    let mut parts = Vec::new();
    for (label, types) in services {
        let endpoints: Vec<&keystone::CatalogEndpoint> = types
            .iter()
            .flat_map(|t| s.catalog.public_endpoints(t, region))
            .collect();
        if endpoints.is_empty() {
            status = status.max(bad);
            let elsewhere = types
                .iter()
                .any(|t| !s.catalog.public_endpoints(t, None).is_empty());
            parts.push(if elsewhere {
                format!("{label}: no public endpoint{in_region} (only in other regions)")
            } else if types.iter().any(|t| s.catalog.has_service(t)) {
                format!("{label}: no public endpoint")
            } else {
                format!("{label}: missing from the catalog")
            });
            continue;
        }
        let mut shown = Vec::new();
        let mut worst = Status::Ok;
        for e in &endpoints {
            match Url::parse(&e.url) {
                Ok(u) => {
                    let (st, _) = auth::scheme_verdict(&u, allow_http);
                    let st = if st == Status::Critical {
                        bad
                    } else {
                        st.min(bad)
                    };
                    if st != Status::Ok {
                        shown.push(format!("{} is not https", show_url(&u)));
                    } else {
                        shown.push(show_url(&u));
                    }
                    worst = worst.max(st);
                }
                Err(_) => {
                    worst = worst.max(bad);
                    shown.push(format!(
                        "unparsable URL {:?}",
                        crate::text::one_line(&e.url, 80)
                    ));
                }
            }
        }
        status = status.max(worst);
        parts.push(format!("{label}: {}", shown.join(", ")));
    }
    (status, parts.join("; "))
}

/// A made-up token that no OP issued; random so no cache can know it. Not a
/// [`Secret`]: registering it would make the scrubber hide unrelated text.
fn garbage_token() -> String {
    let seed = format!(
        "{}:{}:{:?}",
        std::process::id(),
        crate::clock::now_unix(),
        std::time::Instant::now()
    );
    let hex: String = sha2::Sha256::digest(seed.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("invalid-{hex}")
}

async fn garbage_refused(s: &Session) -> Result<Done<()>, Fail> {
    let protocol = s.protocol.as_deref().unwrap_or("openid");
    let reply = Keystone::new(s.http.clone(), s.keystone.clone())
        .federation_reply(&s.identity_provider, protocol, &garbage_token())
        .await?;
    let code = reply.status.as_u16();
    let www = reply.header("www-authenticate").unwrap_or("").to_string();
    let says_invalid = www.contains("invalid_token") || reply.text().contains("invalid_token");
    let what = format!("POST {} with a garbage bearer token", show_url(&reply.url));
    match code {
        401 => Ok(Done::ok((), format!("{what} -> HTTP 401 (refused)"))),
        200..=299 => Err(Fail::critical(format!(
            "{what} -> HTTP {}: the site ACCEPTED a token no OP issued",
            reply.status
        ))),
        404 if says_invalid => Ok(Done::warn(
            (),
            format!("{what} -> HTTP 404 invalid_token: refused, but RFC 6750 asks for 401"),
        )),
        400..=499 => Ok(Done::warn(
            (),
            format!(
                "{what} -> HTTP {}: refused, but RFC 6750 asks for 401 ({})",
                reply.status,
                reply.describe_body()
            ),
        )),
        _ => Err(reply.unexpected().context("garbage bearer token")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn refresh_lifetime_thresholds() {
        use base64::Engine;
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = |days: f64| {
            let exp = crate::clock::now_unix() + days * 86400.0;
            SecretSource::Value(
                Secret::new(format!(
                    "{}.{}.sig",
                    b("{}"),
                    b(&format!(r#"{{"exp":{exp}}}"#))
                )),
                "test".into(),
            )
        };
        assert_eq!(
            refresh_lifetime(&jwt(60.0), 30, 15).unwrap().status,
            Status::Ok
        );
        assert_eq!(
            refresh_lifetime(&jwt(20.0), 30, 15).unwrap().status,
            Status::Warning
        );
        assert_eq!(
            refresh_lifetime(&jwt(3.0), 30, 15).unwrap().status,
            Status::Critical
        );
        let expired = refresh_lifetime(&jwt(-1.0), 30, 15).err().map(|f| f.status);
        assert_eq!(expired, Some(Status::Unknown));
        let opaque = SecretSource::Value(Secret::new("opaque-refresh-0123456789"), "x".into());
        let d = refresh_lifetime(&opaque, 30, 15).unwrap();
        assert_eq!(d.status, Status::Ok);
        assert!(d.message.contains("cannot be read"));
    }

    #[test]
    fn protocol_families() {
        let p = |id: &str, attr: Option<&str>| keystone::FederationProtocol {
            id: id.into(),
            remote_id_attribute: attr.map(str::to_string),
        };
        assert_eq!(protocol_family(&p("openid", None)), "OIDC");
        assert_eq!(protocol_family(&p("oidc", Some("HTTP_OIDC_ISS"))), "OIDC");
        assert_eq!(protocol_family(&p("saml2", None)), "SAML");
        assert_eq!(
            protocol_family(&p("mapped", Some("HTTP_OIDC_SAML_IDP"))),
            "SAML"
        );
        assert_eq!(protocol_family(&p("mapped", Some("MELLON_IDP"))), "SAML");
        assert_eq!(
            protocol_family(&p("mapped", Some("Shib-Identity-Provider"))),
            "SAML"
        );
        assert_eq!(protocol_family(&p("mapped", Some("HTTP_OIDC_ISS"))), "OIDC");
        assert_eq!(protocol_family(&p("mapped", None)), "kind not known");
    }

    #[test]
    fn garbage_tokens_differ() {
        assert_ne!(garbage_token(), garbage_token());
    }
}
