//! Google Compute Engine: connection and login options (flags prefixed `--gce-`)
//! and the login: a service-account key (an RS256-signed JWT exchanged at
//! the OAuth2 token endpoint), or Workload Identity Federation (the
//! federation's OIDC token exchanged at the Security Token Service, then
//! optionally a service account impersonated at IAM Credentials).

use std::path::PathBuf;

use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::json;

use crate::clients::service;
use crate::http::{show_url, Http, Reply};
use crate::secret::Secret;
use crate::{Ctx, Done, Fail};

crate::check_ids! { "EOSC-IAAS-AAI";
    KEY_GRANT = "AUTH-GCE-01", "service-account key: JWT grant at Google OAuth2";
    STS_EXCHANGE = "AUTH-GCE-02", "OIDC token exchange at Google STS (workload identity federation)";
    IMPERSONATE = "AUTH-GCE-03", "service-account impersonation at IAM Credentials";
}

/// The scope every call needs (compute and storage).
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The audience Google wants in a key's JWT, whatever the key's token_uri.
const JWT_AUDIENCE: &str = "https://oauth2.googleapis.com/token";

#[derive(clap::Args, Clone, Debug, Default)]
pub struct GceArgs {
    /// GCE project id
    #[arg(id = "gce_project", long = "gce-project", value_name = "ID")]
    pub project: Option<String>,
    /// GCE zone for instances and disks (e.g. europe-west1-b)
    #[arg(id = "gce_zone", long = "gce-zone", value_name = "ZONE")]
    pub zone: Option<String>,
    /// Service-account key file (JSON) to log in with, instead of a federated login
    #[arg(id = "gce_key", long = "gce-key", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// OAuth2 token endpoint for --gce-key [default: the key's token_uri]
    #[arg(id = "gce_token_url", long = "gce-token-url", value_name = "URL")]
    pub token_url: Option<Url>,
    /// Workload identity provider the OIDC token is exchanged for
    /// (//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/X)
    #[arg(
        id = "gce_wif_audience",
        long = "gce-wif-audience",
        value_name = "AUDIENCE"
    )]
    pub wif_audience: Option<String>,
    /// Security Token Service endpoint
    #[arg(
        long = "gce-sts-url",
        value_name = "URL",
        default_value = "https://sts.googleapis.com/v1/token"
    )]
    pub sts_url: Option<Url>,
    /// Service account to impersonate after the STS exchange (email)
    #[arg(id = "gce_impersonate", long = "gce-impersonate", value_name = "EMAIL")]
    pub impersonate: Option<String>,
    /// IAM Credentials API root (impersonation)
    #[arg(
        long = "gce-iam-url",
        value_name = "URL",
        default_value = "https://iamcredentials.googleapis.com/"
    )]
    pub iam_url: Option<Url>,
    /// Cloud Storage API root, where image archives are staged
    #[arg(
        long = "gce-storage-url",
        value_name = "URL",
        default_value = "https://storage.googleapis.com/"
    )]
    pub storage_url: Option<Url>,
    /// Cloud Storage bucket for image archives (check_image_upload)
    #[arg(id = "gce_bucket", long = "gce-bucket", value_name = "NAME")]
    pub bucket: Option<String>,
    /// VPC network instances are attached to
    #[arg(
        id = "gce_network",
        long = "gce-network",
        value_name = "NAME",
        default_value = "default"
    )]
    pub network: Option<String>,
}

/// A Google access token and how it was obtained.
pub struct Login {
    pub token: Secret,
    pub method: String,
}

#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImpersonatedAnswer {
    access_token: String,
    #[serde(default)]
    expire_time: Option<String>,
}

/// Log in as `args` say: `--gce-key`, else the OIDC token exchanged at STS.
pub async fn login(ctx: &Ctx, args: &super::AuthArgs) -> Result<Login, Fail> {
    let g = &args.gce;
    if let Some(path) = &g.key {
        return with_key(ctx, path, g.token_url.as_ref()).await;
    }
    let Some(audience) = &g.wif_audience else {
        return Err(ctx.fail_at(
            super::READ_TOKEN,
            Fail::unknown(
                "no GCE credential: give --gce-key FILE, or --gce-wif-audience with an OIDC \
                 token source (--access-token FILE, --refresh-token ..., --client-id ...)",
            ),
        ));
    };
    let plan = super::resolve(ctx, args)?;
    let http = ctx.http().clone();
    let obtained = ctx
        .step(
            super::READ_TOKEN,
            super::credential::obtain(ctx, &http, &plan),
        )
        .await?;
    let super::credential::Obtained::Bearer(oidc, how) = obtained else {
        return Err(ctx.fail_at(
            super::READ_TOKEN,
            Fail::unknown("a GCE federated login needs an OIDC token, not a password"),
        ));
    };
    let sts = g
        .sts_url
        .clone()
        .ok_or_else(|| Fail::unknown("--gce-sts-url is empty"))?;
    let federated = ctx
        .step(STS_EXCHANGE, async {
            let t = sts_exchange(&http, &sts, audience, &oidc).await?;
            let msg = format!(
                "{how} exchanged at {} for {audience}: access token{}",
                show_url(&sts),
                lifetime(t.expires_in)
            );
            Ok(Done::ok(Secret::new(t.access_token), msg))
        })
        .await?;
    let Some(sa) = &g.impersonate else {
        return Ok(Login {
            token: federated,
            method: format!("{how} via STS ({audience})"),
        });
    };
    let iam = g
        .iam_url
        .clone()
        .ok_or_else(|| Fail::unknown("--gce-iam-url is empty"))?;
    let token = ctx
        .step(IMPERSONATE, async {
            let t = impersonate(&http, &iam, sa, &federated).await?;
            let until = t.expire_time.as_deref().unwrap_or("?");
            Ok(Done::ok(
                Secret::new(t.access_token),
                format!("token of {sa} until {until}"),
            ))
        })
        .await?;
    Ok(Login {
        token,
        method: format!("{how} via STS ({audience}) as {sa}"),
    })
}

fn lifetime(s: Option<u64>) -> String {
    s.map(|s| format!(", expires in {s}s")).unwrap_or_default()
}

async fn with_key(
    ctx: &Ctx,
    path: &std::path::Path,
    token_url: Option<&Url>,
) -> Result<Login, Fail> {
    let (key, enc) = ctx
        .step(super::READ_TOKEN, async {
            let text = crate::files::read_to_string(path, crate::files::SMALL).map_err(|e| {
                Fail::unknown(format!(
                    "cannot read --gce-key {}: {e}",
                    super::config::shown_path(path)
                ))
            })?;
            let key: KeyFile = serde_json::from_str(&text).map_err(|e| {
                Fail::unknown(format!(
                    "--gce-key {}: not a service-account key file ({})",
                    path.display(),
                    e.classify_name()
                ))
            })?;
            let enc = jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.as_bytes()).map_err(
                |e| {
                    Fail::unknown(format!(
                        "--gce-key {}: private_key is not an RSA PEM key ({e})",
                        path.display()
                    ))
                },
            )?;
            let msg = format!(
                "service-account key of {} from {}",
                key.client_email,
                path.display()
            );
            Ok(Done::ok((key, enc), msg))
        })
        .await?;
    let url = match token_url {
        Some(u) => u.clone(),
        None => {
            let raw = key.token_uri.as_deref().unwrap_or(JWT_AUDIENCE);
            Url::parse(raw).map_err(|e| {
                ctx.fail_at(
                    KEY_GRANT,
                    Fail::unknown(format!("the key's token_uri {raw:?} is not a URL: {e}")),
                )
            })?
        }
    };
    let token = ctx
        .step(KEY_GRANT, async {
            let assertion = sign_grant(&key, &enc)?;
            let t = jwt_grant(ctx.http(), &url, &assertion).await?;
            let msg = format!(
                "JWT grant for {} at {}: access token{}",
                key.client_email,
                show_url(&url),
                lifetime(t.expires_in)
            );
            Ok(Done::ok(Secret::new(t.access_token), msg))
        })
        .await?;
    Ok(Login {
        token,
        method: format!("service-account key of {}", key.client_email),
    })
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Data => "fields missing or mistyped",
            _ => "not JSON",
        }
    }
}

/// The JWT of the grant, as google-auth signs it (RS256, key id in the header).
fn sign_grant(key: &KeyFile, enc: &jsonwebtoken::EncodingKey) -> Result<String, Fail> {
    let now = crate::clock::now_secs();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = key.private_key_id.clone();
    let claims = json!({
        "iss": key.client_email,
        "scope": SCOPE,
        "aud": JWT_AUDIENCE,
        "iat": now,
        "exp": now + 3600,
    });
    jsonwebtoken::encode(&header, &claims, enc)
        .map_err(|e| Fail::unknown(format!("cannot sign the JWT grant with --gce-key: {e}")))
}

async fn jwt_grant(http: &Http, url: &Url, assertion: &str) -> Result<TokenAnswer, Fail> {
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("assertion", assertion),
    ];
    let reply = http
        .send(http.request(Method::POST, url.clone()).form(&form))
        .await?;
    token_answer(reply, "the service-account key")
}

async fn sts_exchange(
    http: &Http,
    url: &Url,
    audience: &str,
    oidc: &Secret,
) -> Result<TokenAnswer, Fail> {
    // Form-encoded, as google-auth sends it (STS takes the same fields as JSON).
    let form = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("audience", audience),
        ("scope", SCOPE),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        ("subject_token", oidc.expose()),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
    ];
    let reply = http
        .send(http.request(Method::POST, url.clone()).form(&form))
        .await?;
    token_answer(reply, "the OIDC token")
}

async fn impersonate(
    http: &Http,
    iam: &Url,
    sa: &str,
    token: &Secret,
) -> Result<ImpersonatedAnswer, Fail> {
    let base = service::base_url(iam, None);
    let seg = format!("{sa}:generateAccessToken");
    let url = service::join(&base, &["v1", "projects", "-", "serviceAccounts", &seg])?;
    let body = json!({"scope": [SCOPE], "lifetime": "3600s"});
    let req = http
        .request(Method::POST, url)
        .bearer_auth(token.expose())
        .json(&body);
    let reply = http.send(req).await?;
    if matches!(reply.status.as_u16(), 401 | 403) {
        return Err(refused(&reply, "impersonating the service account"));
    }
    reply.success()?.json()
}

/// A token endpoint's answer: a 4xx is the monitor's credential refused
/// (UNKNOWN); anything else not 2xx and garbage are the site's (CRITICAL).
fn token_answer(reply: Reply, what: &str) -> Result<TokenAnswer, Fail> {
    if reply.status.is_client_error() && reply.status.as_u16() != 429 {
        return Err(refused(&reply, what));
    }
    let t: TokenAnswer = reply.success()?.json()?;
    if t.access_token.is_empty() {
        return Err(Fail::critical(
            "token endpoint answered an empty access_token",
        ));
    }
    Ok(t)
}

fn refused(reply: &Reply, what: &str) -> Fail {
    #[derive(Deserialize)]
    struct OAuthError {
        error: serde_json::Value,
        #[serde(default)]
        error_description: Option<String>,
    }
    let why = match reply.json::<OAuthError>() {
        Ok(OAuthError {
            error: serde_json::Value::String(e),
            error_description,
        }) => format!("{e}: {}", error_description.unwrap_or_default()),
        Ok(OAuthError { error, .. }) => crate::text::one_line(&error.to_string(), 200),
        Err(_) => reply.describe_body(),
    };
    Fail::unknown(format!(
        "{what} was refused: HTTP {} {why} ({})",
        reply.status.as_u16(),
        reply.request_line()
    ))
    .with_http(reply.facts())
}
