//! Keystone v3 client: OIDC federation exchange, projects, scoped tokens, catalog.

use reqwest::{Method, Url};

use super::service::{self, Service};
use crate::fail::Fail;
use crate::http::Http;
use crate::secret::Secret;

/// The federated login URL for an identity provider and protocol.
pub fn federation_auth_url(keystone: &Url, idp: &str, protocol: &str) -> Result<Url, Fail> {
    at(
        keystone,
        &[
            "OS-FEDERATION",
            "identity_providers",
            idp,
            "protocols",
            protocol,
            "auth",
        ],
    )
}

/// `{keystone root}/v3/{segments...}`, each segment escaped; works for URLs
/// given with or without `/v3` and with a trailing slash. The segments come
/// from the monitor's settings: a bad one is the monitor's problem.
fn at(keystone: &Url, segments: &[&str]) -> Result<Url, Fail> {
    let mut all = vec!["v3"];
    all.extend_from_slice(segments);
    service::join(&service::base_url(keystone, Some("v3")), &all)
        .map_err(|f| Fail::unknown(f.message))
}

/// Keystone as a [`Service`], sending `token` when given.
fn keystone_service(http: &Http, keystone: &Url, token: Option<&Secret>) -> Service {
    Service::new(http.clone(), keystone, Some("v3"), token.cloned())
}

/// Exchange an OIDC access token for an unscoped Keystone token.
async fn exchange_oidc(
    http: &Http,
    keystone: &Url,
    idp: &str,
    protocol: &str,
    access_token: &Secret,
) -> Result<Secret, Fail> {
    let url = federation_auth_url(keystone, idp, protocol)?;
    let request = || {
        http.request(Method::POST, url.clone())
            .bearer_auth(access_token.expose())
            .header("Accept", "application/json")
    };
    let mut reply = http.send(request()).await?;
    // Keystone creates the federated (shadow) user on first login; two first
    // logins at once race and one gets 409. Ask once more; a lasting 409 fails.
    if reply.status == reqwest::StatusCode::CONFLICT {
        http.deadline()
            .sleep(std::time::Duration::from_millis(300))
            .await;
        reply = http.send(request()).await?;
    }
    subject_token(&reply.success()?)
}

/// A site's Keystone v3: the one client for its identity API.
#[derive(Clone)]
pub struct Keystone {
    http: Http,
    url: Url,
}

impl Keystone {
    pub fn new(http: Http, url: Url) -> Keystone {
        Keystone { http, url }
    }

    pub async fn exchange_oidc(
        &self,
        idp: &str,
        protocol: &str,
        access_token: &Secret,
    ) -> Result<Secret, Fail> {
        exchange_oidc(&self.http, &self.url, idp, protocol, access_token).await
    }

    pub async fn list_projects(&self, token: &Secret) -> Result<Vec<Project>, Fail> {
        list_projects(&self.http, &self.url, token).await
    }

    pub async fn issue_token(
        &self,
        identity: serde_json::Value,
        scope: Option<serde_json::Value>,
    ) -> Result<(Secret, TokenInfo), Fail> {
        issue_token(&self.http, &self.url, identity, scope).await
    }

    pub async fn scoped_token(
        &self,
        unscoped: &Secret,
        project_id: &str,
    ) -> Result<(Secret, Catalog), Fail> {
        scoped_token(&self.http, &self.url, unscoped, project_id).await
    }

    pub async fn scope_token(
        &self,
        unscoped: &Secret,
        project_id: &str,
    ) -> Result<(Secret, TokenInfo), Fail> {
        scope_token(&self.http, &self.url, unscoped, project_id).await
    }

    pub async fn password_token(
        &self,
        username: &str,
        user_domain: &Domain,
        password: &Secret,
        scope: Option<serde_json::Value>,
    ) -> Result<(Secret, TokenInfo), Fail> {
        password_token(
            &self.http,
            &self.url,
            username,
            user_domain,
            password,
            scope,
        )
        .await
    }

    pub async fn app_cred_token(
        &self,
        id: &str,
        secret: &Secret,
    ) -> Result<(Secret, TokenInfo), Fail> {
        app_cred_token(&self.http, &self.url, id, secret).await
    }

    pub async fn validate_token(&self, token: &Secret) -> Result<TokenInfo, Fail> {
        validate_token(&self.http, &self.url, token).await
    }

    /// Each identity provider and its federation protocols (needs a
    /// token allowed `identity:list_identity_providers`, usually admin).
    pub async fn federation_protocols(&self, token: &Secret) -> Result<Vec<IdpProtocols>, Fail> {
        federation_protocols(&self.http, &self.url, token).await
    }

    pub async fn federation_reply(
        &self,
        idp: &str,
        protocol: &str,
        bogus_bearer: &str,
    ) -> Result<crate::http::Reply, Fail> {
        federation_reply(&self.http, &self.url, idp, protocol, bogus_bearer).await
    }
}

#[derive(Clone, Debug, serde::Deserialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(serde::Deserialize)]
struct Projects {
    projects: Vec<Project>,
}

fn v3(keystone: &Url, path: &str) -> Result<Url, Fail> {
    let segments: Vec<&str> = path.split('/').collect();
    at(keystone, &segments)
}

/// Projects the (unscoped) token may scope to.
async fn list_projects(http: &Http, keystone: &Url, token: &Secret) -> Result<Vec<Project>, Fail> {
    let p: Projects = keystone_service(http, keystone, Some(token))
        .get_json(v3(keystone, "auth/projects")?)
        .await?;
    Ok(p.projects)
}

/// Identity providers listed at most (a site has a handful).
const MAX_IDPS: usize = 50;

/// One identity provider of a site's Keystone and its protocols.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdpProtocols {
    pub idp: String,
    pub enabled: bool,
    pub protocols: Vec<FederationProtocol>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct FederationProtocol {
    pub id: String,
    #[serde(default)]
    pub remote_id_attribute: Option<String>,
}

#[derive(serde::Deserialize)]
struct IdpList {
    identity_providers: Vec<IdpEntry>,
}

#[derive(serde::Deserialize)]
struct IdpEntry {
    id: String,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

#[derive(serde::Deserialize)]
struct ProtocolList {
    protocols: Vec<FederationProtocol>,
}

async fn federation_protocols(
    http: &Http,
    keystone: &Url,
    token: &Secret,
) -> Result<Vec<IdpProtocols>, Fail> {
    let svc = keystone_service(http, keystone, Some(token));
    let list: IdpList = svc
        .get_json(at(keystone, &["OS-FEDERATION", "identity_providers"])?)
        .await?;
    let mut out = Vec::new();
    for idp in list.identity_providers.into_iter().take(MAX_IDPS) {
        let url = at(
            keystone,
            &["OS-FEDERATION", "identity_providers", &idp.id, "protocols"],
        )
        .map_err(|f| Fail::critical(f.message))?;
        let p: ProtocolList = svc.get_json(url).await?;
        out.push(IdpProtocols {
            idp: idp.id,
            enabled: idp.enabled,
            protocols: p.protocols,
        });
    }
    Ok(out)
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct Catalog {
    #[serde(rename = "catalog", default)]
    pub services: Vec<CatalogService>,
}

#[derive(Clone, Debug, serde::Deserialize)]
pub struct CatalogService {
    #[serde(rename = "type")]
    pub service_type: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<CatalogEndpoint>,
}

#[derive(Clone, Debug, serde::Deserialize)]
pub struct CatalogEndpoint {
    pub interface: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub region_id: Option<String>,
    pub url: String,
}

impl Catalog {
    /// Every public endpoint of `service_type` (in `region` when given).
    pub fn public_endpoints(
        &self,
        service_type: &str,
        region: Option<&str>,
    ) -> Vec<&CatalogEndpoint> {
        self.services
            .iter()
            .filter(|s| s.service_type == service_type)
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| e.interface == "public")
            .filter(|e| region.is_none_or(|r| e.in_region(r)))
            .collect()
    }

    pub fn has_service(&self, service_type: &str) -> bool {
        self.services.iter().any(|s| s.service_type == service_type)
    }

    /// The public URL of `service_type`, in `region` when given.
    pub fn public_url(&self, service_type: &str, region: Option<&str>) -> Option<Url> {
        self.services
            .iter()
            .filter(|s| s.service_type == service_type)
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| e.interface == "public")
            .find(|e| region.is_none_or(|r| e.in_region(r)))
            .and_then(|e| Url::parse(&e.url).ok())
    }
}

impl CatalogEndpoint {
    pub fn in_region(&self, region: &str) -> bool {
        self.region.as_deref() == Some(region) || self.region_id.as_deref() == Some(region)
    }
}

/// What a token body tells besides the catalog.
#[derive(Clone, Debug, Default)]
pub struct TokenInfo {
    pub catalog: Catalog,
    pub project: Option<ProjectRef>,
    pub expires_at: Option<String>,
    pub methods: Vec<String>,
}

#[derive(Clone, Debug, serde::Deserialize)]
pub struct ProjectRef {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(serde::Deserialize)]
struct TokenBody {
    token: TokenFields,
}

#[derive(serde::Deserialize)]
struct TokenFields {
    #[serde(default)]
    catalog: Vec<CatalogService>,
    #[serde(default)]
    project: Option<ProjectRef>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    methods: Vec<String>,
}

/// `POST /v3/auth/tokens` with any identity and optional scope: the token
/// (X-Subject-Token) and what its body says.
async fn issue_token(
    http: &Http,
    keystone: &Url,
    identity: serde_json::Value,
    scope: Option<serde_json::Value>,
) -> Result<(Secret, TokenInfo), Fail> {
    let mut auth = serde_json::json!({ "identity": identity });
    if let Some(s) = scope {
        auth["scope"] = s;
    }
    let req = http
        .request(Method::POST, v3(keystone, "auth/tokens")?)
        .header("Accept", "application/json")
        .json(&serde_json::json!({ "auth": auth }));
    let reply = http.send(req).await?.success()?;
    let token = subject_token(&reply)?;
    let body: TokenBody = reply.json()?;
    let t = body.token;
    Ok((
        token,
        TokenInfo {
            catalog: Catalog {
                services: t.catalog,
            },
            project: t.project,
            expires_at: t.expires_at,
            methods: t.methods,
        },
    ))
}

fn subject_token(reply: &crate::http::Reply) -> Result<Secret, Fail> {
    reply
        .header("x-subject-token")
        .filter(|t| !t.trim().is_empty())
        .map(Secret::new)
        .ok_or_else(|| {
            Fail::critical(format!(
                "{} {} -> HTTP {} but no X-Subject-Token header: {}",
                reply.method,
                crate::http::show_url(&reply.url),
                reply.status,
                reply.describe_body()
            ))
        })
}

/// Exchange an unscoped token for a project-scoped one with its catalog.
async fn scoped_token(
    http: &Http,
    keystone: &Url,
    unscoped: &Secret,
    project_id: &str,
) -> Result<(Secret, Catalog), Fail> {
    let (t, info) = scope_token(http, keystone, unscoped, project_id).await?;
    Ok((t, info.catalog))
}

/// Like [`scoped_token`], with everything the body says.
async fn scope_token(
    http: &Http,
    keystone: &Url,
    unscoped: &Secret,
    project_id: &str,
) -> Result<(Secret, TokenInfo), Fail> {
    let identity = serde_json::json!({"methods": ["token"], "token": {"id": unscoped.expose()}});
    let scope = serde_json::json!({"project": {"id": project_id}});
    issue_token(http, keystone, identity, Some(scope)).await
}

/// A Keystone domain, by name or by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Domain {
    Name(String),
    Id(String),
}

impl Domain {
    pub fn json(&self) -> serde_json::Value {
        match self {
            Domain::Name(n) => serde_json::json!({ "name": n }),
            Domain::Id(i) => serde_json::json!({ "id": i }),
        }
    }
}

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Domain::Name(n) => write!(f, "{n}"),
            Domain::Id(i) => write!(f, "id {i}"),
        }
    }
}

/// Password authentication: unscoped (the caller then lists projects and
/// scopes like any other login), or scoped at once when `scope` is given.
async fn password_token(
    http: &Http,
    keystone: &Url,
    username: &str,
    user_domain: &Domain,
    password: &Secret,
    scope: Option<serde_json::Value>,
) -> Result<(Secret, TokenInfo), Fail> {
    let identity = serde_json::json!({"methods": ["password"], "password": {"user": {
        "name": username, "domain": user_domain.json(), "password": password.expose()}}});
    issue_token(http, keystone, identity, scope).await
}

/// Application credential authentication: the token is bound to the
/// credential's project already.
async fn app_cred_token(
    http: &Http,
    keystone: &Url,
    id: &str,
    secret: &Secret,
) -> Result<(Secret, TokenInfo), Fail> {
    let identity = serde_json::json!({"methods": ["application_credential"],
        "application_credential": {"id": id, "secret": secret.expose()}});
    issue_token(http, keystone, identity, None).await
}

/// `GET /v3/auth/tokens`: Keystone confirms the token is valid (200).
async fn validate_token(http: &Http, keystone: &Url, token: &Secret) -> Result<TokenInfo, Fail> {
    let svc = keystone_service(http, keystone, Some(token));
    let req = svc
        .json_request(Method::GET, v3(keystone, "auth/tokens")?)
        .header("X-Subject-Token", token.expose());
    let reply = svc.send(req).await?;
    if reply.status.as_u16() != 200 {
        return Err(reply.unexpected());
    }
    let body: TokenBody = reply.json()?;
    Ok(TokenInfo {
        catalog: Catalog {
            services: body.token.catalog,
        },
        project: body.token.project,
        expires_at: body.token.expires_at,
        methods: body.token.methods,
    })
}

/// Send a made-up bearer token (not a secret) to the federation URL and
/// return whatever came back, for checking that a bad token is refused.
async fn federation_reply(
    http: &Http,
    keystone: &Url,
    idp: &str,
    protocol: &str,
    bogus_bearer: &str,
) -> Result<crate::http::Reply, Fail> {
    let url = federation_auth_url(keystone, idp, protocol)?;
    let req = http
        .request(Method::POST, url)
        .bearer_auth(bogus_bearer)
        .header("Accept", "application/json");
    http.send(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_built_from_any_keystone_form() {
        for k in [
            "https://k.example:5000/v3",
            "https://k.example:5000/v3/",
            "https://k.example:5000/",
            "https://k.example:5000",
            "https://k.example:5000/v3?x=1",
        ] {
            let k = Url::parse(k).unwrap();
            assert_eq!(
                v3(&k, "auth/projects").unwrap().as_str(),
                "https://k.example:5000/v3/auth/projects"
            );
        }
        let k = Url::parse("https://k.example/identity/v3").unwrap();
        assert_eq!(
            federation_auth_url(&k, "egi.eu", "openid").unwrap().as_str(),
            "https://k.example/identity/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/auth"
        );
        // a hostile idp name cannot climb out of its path segment
        let u = federation_auth_url(&k, "../x?y", "openid").unwrap();
        assert!(u.path().contains("..%2Fx%3Fy"), "{u}");
    }
}
