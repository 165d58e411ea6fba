//! Keystone v3 client: OIDC federation exchange, projects, scoped tokens, catalog.

use reqwest::{Method, Url};

use crate::fail::Fail;
use crate::http::Http;
use crate::secret::Secret;

/// The federated login URL for an identity provider and protocol.
pub fn federation_auth_url(keystone: &Url, idp: &str, protocol: &str) -> Result<Url, Fail> {
    let base = keystone.as_str().trim_end_matches('/');
    let base = base.strip_suffix("/v3").unwrap_or(base);
    Url::parse(&format!(
        "{base}/v3/OS-FEDERATION/identity_providers/{idp}/protocols/{protocol}/auth"
    ))
    .map_err(|e| Fail::unknown(format!("bad Keystone URL {keystone}: {e}")))
}

/// Exchange an OIDC access token for an unscoped Keystone token.
pub async fn exchange_oidc(
    http: &Http,
    keystone: &Url,
    idp: &str,
    protocol: &str,
    access_token: &Secret,
) -> Result<Secret, Fail> {
    let url = federation_auth_url(keystone, idp, protocol)?;
    let req = http
        .request(Method::POST, url)
        .bearer_auth(access_token.expose())
        .header("Accept", "application/json");
    let reply = http.send(req).await?.success()?;
    match reply.header("x-subject-token") {
        Some(t) if !t.is_empty() => Ok(Secret::new(t)),
        _ => Err(Fail::critical(format!(
            "HTTP {} but no X-Subject-Token header",
            reply.status
        ))),
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
    let base = keystone.as_str().trim_end_matches('/');
    let base = base.strip_suffix("/v3").unwrap_or(base);
    Url::parse(&format!("{base}/v3/{path}"))
        .map_err(|e| Fail::unknown(format!("bad Keystone URL {keystone}: {e}")))
}

/// Projects the (unscoped) token may scope to.
pub async fn list_projects(
    http: &Http,
    keystone: &Url,
    token: &Secret,
) -> Result<Vec<Project>, Fail> {
    let req = http
        .get(v3(keystone, "auth/projects")?)
        .header("X-Auth-Token", token.expose());
    let p: Projects = http.json(req).await?;
    Ok(p.projects)
}

/// An explicit choice (id or name), else production's rule: a name containing
/// "ops", else the last project listed.
pub fn pick_project(projects: &[Project], wanted: Option<&str>) -> Result<Project, Fail> {
    let enabled: Vec<&Project> = projects
        .iter()
        .filter(|p| p.enabled != Some(false))
        .collect();
    if let Some(w) = wanted {
        return enabled
            .iter()
            .find(|p| p.id == w || p.name == w)
            .map(|p| (*p).clone())
            .ok_or_else(|| {
                let names: Vec<&str> = enabled.iter().map(|p| p.name.as_str()).collect();
                Fail::critical(format!(
                    "project {w:?} not available to this user (has: {})",
                    names.join(", ")
                ))
            });
    }
    enabled
        .iter()
        .find(|p| p.name.contains("ops"))
        .or(enabled.last())
        .map(|p| (*p).clone())
        .ok_or_else(|| Fail::critical("the federated user has no project"))
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
    /// The public URL of `service_type`, in `region` when given.
    pub fn public_url(&self, service_type: &str, region: Option<&str>) -> Option<Url> {
        self.services
            .iter()
            .filter(|s| s.service_type == service_type)
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| e.interface == "public")
            .find(|e| {
                region.is_none_or(|r| {
                    e.region.as_deref() == Some(r) || e.region_id.as_deref() == Some(r)
                })
            })
            .and_then(|e| Url::parse(&e.url).ok())
    }
}

#[derive(serde::Deserialize)]
struct TokenBody {
    token: Catalog,
}

/// Exchange an unscoped token for a project-scoped one with its catalog.
pub async fn scoped_token(
    http: &Http,
    keystone: &Url,
    unscoped: &Secret,
    project_id: &str,
) -> Result<(Secret, Catalog), Fail> {
    let body = serde_json::json!({"auth": {
        "identity": {"methods": ["token"], "token": {"id": unscoped.expose()}},
        "scope": {"project": {"id": project_id}}}});
    let req = http
        .request(Method::POST, v3(keystone, "auth/tokens")?)
        .json(&body);
    let reply = http.send(req).await?.success()?;
    let token = reply
        .header("x-subject-token")
        .filter(|t| !t.is_empty())
        .map(Secret::new)
        .ok_or_else(|| {
            Fail::critical(format!(
                "HTTP {} but no X-Subject-Token header",
                reply.status
            ))
        })?;
    let body: TokenBody = reply.json()?;
    Ok((token, body.token))
}
