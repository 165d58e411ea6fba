//! OpenID Connect client for the monitor's own credential: discovery, the
//! refresh-token and client-credentials grants, and reading (never trusting)
//! a JWT's `exp`. Every failure here is the monitor's problem (UNKNOWN): the
//! OP is not the site under test.

use base64::Engine;
use reqwest::{Method, Url};

use crate::fail::Fail;
use crate::http::{basic_header, show_url, Http, Reply};
use crate::secret::Secret;
use crate::text;

/// Scope production's token fetcher asks for.
pub const DEFAULT_SCOPE: &str = "openid email profile eduperson_entitlement";

#[derive(serde::Deserialize)]
struct Discovery {
    token_endpoint: String,
    #[serde(default)]
    issuer: Option<String>,
}

/// `{issuer}/.well-known/openid-configuration` -> the token endpoint.
async fn discover_token_endpoint(http: &Http, issuer: &Url) -> Result<Url, Fail> {
    let base = issuer.as_str().trim_end_matches('/');
    let url = Url::parse(&format!("{base}/.well-known/openid-configuration"))
        .map_err(|e| Fail::unknown(format!("bad --oidc-issuer {issuer}: {e}")))?;
    let doc: Discovery = http
        .json(http.get(url).header("Accept", "application/json"))
        .await
        .map_err(monitor("OIDC discovery"))?;
    if let Some(iss) = &doc.issuer {
        if iss.trim_end_matches('/') != base {
            return Err(Fail::unknown(format!(
                "OIDC discovery: issuer {iss:?} does not match {base:?}"
            )));
        }
    }
    Url::parse(&doc.token_endpoint).map_err(|e| {
        Fail::unknown(format!(
            "OIDC discovery: bad token_endpoint {:?}: {e}",
            text::one_line(&doc.token_endpoint, 120)
        ))
    })
}

/// A confidential client: id and secret, sent with HTTP Basic auth.
#[derive(Clone, Debug)]
pub struct Client {
    pub id: String,
    pub secret: Secret,
}

/// What the token endpoint gave.
#[derive(Debug)]
pub struct Tokens {
    pub access_token: Secret,
    pub expires_in: Option<u64>,
}

#[derive(serde::Deserialize)]
struct TokenReply {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct ErrorReply {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// `grant_type=refresh_token`, as production's fetch-access-token does.
/// An OP's token endpoint and the confidential client that uses it: the one
/// client for the monitor's own OIDC grants.
#[derive(Clone)]
pub struct TokenClient {
    http: Http,
    endpoint: Url,
    client: Client,
}

impl TokenClient {
    pub fn new(http: Http, endpoint: Url, client: Client) -> TokenClient {
        TokenClient {
            http,
            endpoint,
            client,
        }
    }

    /// Where the token endpoint is, found by discovery on `issuer`.
    pub async fn discover(http: &Http, issuer: &Url) -> Result<Url, Fail> {
        discover_token_endpoint(http, issuer).await
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    pub fn client_id(&self) -> &str {
        &self.client.id
    }

    /// `grant_type=refresh_token`.
    pub async fn refresh_grant(&self, refresh_token: &Secret, scope: &str) -> Result<Tokens, Fail> {
        refresh_grant(
            &self.http,
            &self.endpoint,
            &self.client,
            refresh_token,
            scope,
        )
        .await
    }

    /// `grant_type=client_credentials` (automation accounts).
    pub async fn client_credentials(&self, scope: &str) -> Result<Tokens, Fail> {
        client_credentials(&self.http, &self.endpoint, &self.client, scope).await
    }
}

async fn refresh_grant(
    http: &Http,
    token_endpoint: &Url,
    client: &Client,
    refresh_token: &Secret,
    scope: &str,
) -> Result<Tokens, Fail> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
        ("scope", scope),
    ];
    token_request(http, token_endpoint, client, &form, "refresh-token grant").await
}

async fn client_credentials(
    http: &Http,
    token_endpoint: &Url,
    client: &Client,
    scope: &str,
) -> Result<Tokens, Fail> {
    let mut form = vec![("grant_type", "client_credentials")];
    if !scope.is_empty() {
        form.push(("scope", scope));
    }
    token_request(
        http,
        token_endpoint,
        client,
        &form,
        "client-credentials grant",
    )
    .await
}

async fn token_request(
    http: &Http,
    endpoint: &Url,
    client: &Client,
    form: &[(&str, &str)],
    what: &str,
) -> Result<Tokens, Fail> {
    let req = http
        .request(Method::POST, endpoint.clone())
        .header(
            reqwest::header::AUTHORIZATION,
            basic_header(&client.id, &client.secret)?,
        )
        .header("Accept", "application/json")
        .form(form);
    let reply = http.send(req).await.map_err(monitor(what))?;
    if !reply.is_success() {
        return Err(op_refused(&reply, what));
    }
    // Not `reply.json()`: its error quotes the body, which holds tokens here.
    let body: TokenReply = serde_json::from_slice(&reply.body).map_err(|e| {
        Fail::unknown(format!(
            "{what}: {} -> HTTP {}: not a token response ({}; body of {} bytes not shown)",
            show_url(&reply.url),
            reply.status,
            match e.classify() {
                serde_json::error::Category::Eof => "truncated JSON",
                serde_json::error::Category::Syntax => "not JSON",
                _ => "no access_token string",
            },
            reply.body.len()
        ))
    })?;
    if body.access_token.trim().is_empty() {
        return Err(Fail::unknown(format!(
            "{what}: {} answered an empty access_token",
            show_url(endpoint)
        )));
    }
    let expires_in = body.expires_in.and_then(|v| match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    });
    Ok(Tokens {
        access_token: Secret::new(body.access_token),
        expires_in,
    })
}

/// The OP said no: name its OAuth error, not the (possibly echoing) body.
fn op_refused(reply: &Reply, what: &str) -> Fail {
    let detail = match reply.json::<ErrorReply>() {
        Ok(e) => {
            let desc = e
                .error_description
                .map(|d| format!(" ({})", text::one_line(&d, 160)))
                .unwrap_or_default();
            format!("{}{desc}", text::one_line(&e.error, 60))
        }
        Err(_) => reply.describe_body(),
    };
    let hint = if reply.status.as_u16() == 400 || reply.status.as_u16() == 401 {
        ": the monitor's credential was rejected"
    } else {
        ""
    };
    Fail::unknown(format!(
        "{what}: {} -> HTTP {}: {detail}{hint}",
        show_url(&reply.url),
        reply.status
    ))
}

/// Turn any failure into the monitor's own (UNKNOWN), keeping timeouts as they are.
fn monitor(what: &str) -> impl Fn(Fail) -> Fail + '_ {
    move |f| {
        let f = f.context(what);
        if f.kind == crate::fail::FailKind::Timeout {
            f
        } else {
            Fail::unknown(f.message)
        }
    }
}

/// The claims we read from a JWT without verifying it.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub exp: Option<f64>,
    #[serde(default)]
    pub iss: Option<String>,
}

/// Decode a JWT's payload WITHOUT checking its signature: only to learn when
/// the monitor's own token expires. `None` when the token is not a JWT.
pub fn jwt_claims(token: &Secret) -> Option<Claims> {
    let mut parts = token.expose().split('.');
    let (_header, payload) = (parts.next()?, parts.next()?);
    parts.next()?;
    let payload = payload.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Human "3d 4h" / "12m" for a number of seconds (negative: "ago" is the caller's).
pub fn human_secs(secs: f64) -> String {
    let s = secs.abs().round() as u64;
    let (d, h, m) = (s / 86400, (s % 86400) / 3600, (s % 3600) / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> Secret {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        Secret::new(format!(
            "{}.{}.{}",
            b(r#"{"alg":"RS256"}"#),
            b(payload),
            b("sig")
        ))
    }

    #[test]
    fn reads_exp_without_verifying() {
        let c = jwt_claims(&jwt(r#"{"exp":1700000000,"iss":"https://op"}"#)).unwrap();
        assert_eq!(c.exp, Some(1700000000.0));
        assert_eq!(c.iss.as_deref(), Some("https://op"));
        assert!(jwt_claims(&jwt(r#"{"sub":"x"}"#)).unwrap().exp.is_none());
    }

    #[test]
    fn opaque_and_broken_tokens_are_not_jwts() {
        assert!(jwt_claims(&Secret::new("opaque-refresh-token-0123456789")).is_none());
        assert!(jwt_claims(&Secret::new("a.b")).is_none());
        assert!(jwt_claims(&Secret::new("a.!!!.c")).is_none());
        assert!(jwt_claims(&jwt("not json")).is_none());
        assert!(jwt_claims(&jwt(r#"{"exp":"soon"}"#)).is_none());
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_secs(90000.0), "1d 1h");
        assert_eq!(human_secs(3700.0), "1h 1m");
        assert_eq!(human_secs(-125.0), "2m");
        assert_eq!(human_secs(5.0), "5s");
    }
}
