//! Azure Resource Manager: connection and login options (flags prefixed
//! `--azure-`), and the login at the Entra ID token endpoint: an app's client
//! secret, or a federated credential (the federation's OIDC access token sent
//! as the client assertion, the way a workload identity federation works).

use std::path::PathBuf;

use reqwest::{StatusCode, Url};

use super::{config, credential, AuthArgs, EXCHANGE, READ_TOKEN, URL_CHECK};
use crate::http::{show_url, Http};
use crate::model::Status;
use crate::secret::Secret;
use crate::{text, Ctx, Done, Fail};

/// Entra ID's public authority.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The ARM audience; `/.default` asks for the app's granted roles.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(clap::Args, Clone, Debug, Default)]
pub struct AzureArgs {
    /// Entra ID authority (token endpoint is {authority}/{tenant}/oauth2/v2.0/token)
    #[arg(id = "azure_authority", long = "azure-authority", value_name = "URL")]
    pub authority: Option<Url>,
    /// Entra ID tenant (directory) id
    #[arg(id = "azure_tenant", long = "azure-tenant", value_name = "ID")]
    pub tenant: Option<String>,
    /// Application (client) id of the app registration the probe logs in as
    #[arg(id = "azure_client_id", long = "azure-client-id", value_name = "ID")]
    pub client_id: Option<String>,
    /// File holding the app's client secret; without it the OIDC access token (--access-token,
    /// --refresh-token, ...) is sent as a federated client assertion
    #[arg(
        id = "azure_client_secret",
        long = "azure-client-secret",
        value_name = "FILE"
    )]
    pub client_secret: Option<PathBuf>,
    /// Subscription id
    #[arg(
        id = "azure_subscription",
        long = "azure-subscription",
        value_name = "ID"
    )]
    pub subscription: Option<String>,
    /// Resource group the probe works in
    #[arg(
        id = "azure_resource_group",
        long = "azure-resource-group",
        value_name = "NAME"
    )]
    pub resource_group: Option<String>,
    /// Location (region) of what the probe creates, e.g. westeurope
    #[arg(id = "azure_location", long = "azure-location", value_name = "NAME")]
    pub location: Option<String>,
    /// Subnet id for the VM's NIC (created with the VM, deleted with it); default: no network
    #[arg(id = "azure_subnet", long = "azure-subnet", value_name = "ID")]
    pub subnet: Option<String>,
}

/// What the login gave: the ARM bearer token and how it was obtained.
pub struct ArmLogin {
    pub token: Secret,
    pub method: String,
    pub http: Http,
}

/// The settings every Azure run needs, or the monitor's own trouble (UNKNOWN).
pub struct Settings {
    pub arm: Url,
    pub token_endpoint: Url,
    pub tenant: String,
    pub client_id: String,
    pub subscription: String,
    pub resource_group: String,
    pub location: String,
}

pub fn settings(args: &AuthArgs) -> Result<Settings, Fail> {
    let a = &args.azure;
    let need = |v: &Option<String>, flag: &str| {
        v.clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Fail::unknown(format!("--cloud azure needs {flag}")))
    };
    let arm = args.endpoint.clone().ok_or_else(|| {
        Fail::unknown(
            "--cloud azure needs --endpoint (the ARM URL, e.g. https://management.azure.com)",
        )
    })?;
    let tenant = need(&a.tenant, "--azure-tenant")?;
    let authority = a
        .authority
        .clone()
        .unwrap_or_else(|| Url::parse(DEFAULT_AUTHORITY).expect("constant URL"));
    let mut token_endpoint = authority.clone();
    token_endpoint
        .path_segments_mut()
        .map_err(|_| Fail::unknown(format!("bad --azure-authority {}", show_url(&authority))))?
        .pop_if_empty()
        .extend([tenant.as_str(), "oauth2", "v2.0", "token"]);
    Ok(Settings {
        arm,
        token_endpoint,
        tenant,
        client_id: need(&a.client_id, "--azure-client-id")?,
        subscription: need(&a.subscription, "--azure-subscription")?,
        resource_group: need(&a.resource_group, "--azure-resource-group")?,
        location: need(&a.location, "--azure-location")?,
    })
}

/// https, or plain http on loopback only (a bearer token never travels in clear).
pub fn url_ok(url: &Url) -> Result<(), Fail> {
    let loopback = matches!(
        url.host_str(),
        Some("127.0.0.1") | Some("localhost") | Some("[::1]")
    );
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(Fail::critical(format!(
            "{} is not https: no credential was sent",
            show_url(url)
        ))),
    }
}

/// AUTH-05, AUTH-01, AUTH-02: check the URLs, get the credential in hand, exchange it at
/// Entra ID for an ARM token.
pub async fn login(ctx: &Ctx, args: &AuthArgs, s: &Settings) -> Result<ArmLogin, Fail> {
    url_ok(&s.arm)
        .and_then(|_| url_ok(&s.token_endpoint))
        .map_err(|f| ctx.fail_at(URL_CHECK, f))?;
    ctx.note(
        URL_CHECK,
        Status::Ok,
        format!(
            "ARM {}, Entra ID token endpoint {}",
            show_url(&s.arm),
            show_url(&s.token_endpoint)
        ),
    );
    let http = ctx.http().clone();
    let (assertion, how) = ctx.step(READ_TOKEN, obtain(ctx, &http, args)).await?;
    let token = ctx
        .step(EXCHANGE, async {
            let t = exchange(&http, s, &assertion).await?;
            Ok(Done::ok(
                t,
                format!(
                    "Entra ID issued an ARM token to app {} in tenant {} ({})",
                    s.client_id,
                    s.tenant,
                    assertion.kind()
                ),
            ))
        })
        .await?;
    Ok(ArmLogin {
        token,
        method: how,
        http,
    })
}

/// What is sent to Entra ID to prove who the probe is.
pub enum Assertion {
    Secret(Secret),
    /// The federation's OIDC access token.
    Federated(Secret),
}

impl Assertion {
    fn kind(&self) -> &'static str {
        match self {
            Assertion::Secret(_) => "client secret",
            Assertion::Federated(_) => {
                "federated credential: the OIDC access token as client assertion"
            }
        }
    }
}

async fn obtain(
    ctx: &Ctx,
    http: &Http,
    args: &AuthArgs,
) -> Result<Done<(Assertion, String)>, Fail> {
    if let Some(p) = &args.azure.client_secret {
        let s = config::SecretSource::File(p.clone()).load("Azure client secret")?;
        let msg = format!("Azure client secret from {}", config::shown_path(p));
        return Ok(Done::ok(
            (Assertion::Secret(s), "client secret".into()),
            msg,
        ));
    }
    // The OIDC token sources shared by every cloud (--access-token, --refresh-token, ...).
    let plan = config::resolve(args, &|k| std::env::var(k).ok())?;
    if !plan.credential.is_federated() {
        return Err(Fail::unknown(
            "--cloud azure logs in with --azure-client-secret FILE or an OIDC token \
             (--access-token, --refresh-token or --client-id/--client-secret at the OP)",
        ));
    }
    let got = credential::obtain(ctx, http, &plan).await?;
    let (status, message) = (got.status, got.message.clone());
    match got.value {
        credential::Obtained::Bearer(tok, how) => Ok(Done::with(
            status,
            (
                Assertion::Federated(tok),
                format!("{how} as federated credential"),
            ),
            message,
        )),
        _ => Err(Fail::unknown(
            "an OIDC token is needed for a federated Azure login",
        )),
    }
}

#[derive(serde::Deserialize)]
struct TokenReply {
    access_token: String,
}

/// Entra ID's error answer (`AADSTS<code>: ...` in the description).
#[derive(serde::Deserialize)]
struct AadError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

async fn exchange(http: &Http, s: &Settings, a: &Assertion) -> Result<Secret, Fail> {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", s.client_id.as_str()),
        ("scope", ARM_SCOPE),
    ];
    match a {
        Assertion::Secret(sec) => form.push(("client_secret", sec.expose())),
        Assertion::Federated(tok) => {
            form.push(("client_assertion_type", ASSERTION_TYPE));
            form.push(("client_assertion", tok.expose()));
        }
    }
    let reply = http
        .send(
            http.request(reqwest::Method::POST, s.token_endpoint.clone())
                .header("Accept", "application/json")
                .form(&form),
        )
        .await?;
    if reply.status.is_success() {
        let t: TokenReply = reply.json()?;
        return Ok(Secret::new(t.access_token));
    }
    let aad: Option<AadError> = serde_json::from_slice(&reply.body).ok();
    match (reply.status, aad) {
        // 400/401 with Entra's error: the monitor's credential (or its app setup) was refused.
        (StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED, Some(e)) => {
            let desc = e.error_description.unwrap_or_default();
            // Trace and correlation ids follow the first sentence: keep the message short.
            let first = desc.split(" Trace ID:").next().unwrap_or("");
            Err(Fail::unknown(format!(
                "Entra ID refused the {}: {} ({}) [HTTP {}]",
                a.kind(),
                text::one_line(first, 300),
                e.error,
                reply.status.as_u16()
            ))
            .with_http(reply.facts()))
        }
        _ => Err(reply.unexpected()),
    }
}
