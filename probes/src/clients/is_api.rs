//! The EGI information-system API (cloud-info-api): sites with their
//! projects, a VO's project and images at a site.

use reqwest::Url;
use serde_json::Value;

use super::service::Service;
use crate::fail::Fail;
use crate::http::Http;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    /// The VO the project serves.
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    pub id: String,
    pub name: String,
    pub url: Option<String>,
    pub projects: Vec<Project>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    pub name: String,
}

/// A JSON value that should be an id: strings as they are, numbers as text.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Sites from `/sites/?include_projects=true`.
pub fn parse_sites(v: &Value) -> Result<Vec<Site>, String> {
    let list = v
        .as_array()
        .ok_or_else(|| "expected a list of sites".to_string())?;
    list.iter()
        .enumerate()
        .map(|(i, s)| parse_site(s, &format!("site #{i}")))
        .collect()
}

/// One site of `/sites/`, or the answer of `/site/{name}/`; `label` names
/// it in errors.
pub fn parse_site(s: &Value, label: &str) -> Result<Site, String> {
    if !s.is_object() {
        return Err(format!("{label} is not an object"));
    }
    let name = text(s.get("name")).ok_or_else(|| format!("{label} has no name"))?;
    let id = text(s.get("id")).unwrap_or_default();
    let projects = match s.get("projects") {
        None | Some(Value::Null) => Vec::new(),
        Some(p) => parse_projects(p).map_err(|e| format!("site {name}: {e}"))?,
    };
    Ok(Site {
        id,
        name,
        url: text(s.get("url")),
        projects,
    })
}

pub fn parse_projects(v: &Value) -> Result<Vec<Project>, String> {
    let list = v
        .as_array()
        .ok_or_else(|| "projects is not a list".to_string())?;
    list.iter()
        .enumerate()
        .map(|(i, p)| parse_project(p).map_err(|e| format!("project #{i}: {e}")))
        .collect()
}

pub fn parse_project(p: &Value) -> Result<Project, String> {
    Ok(Project {
        id: text(p.get("id")).ok_or("no id")?,
        name: text(p.get("name")).unwrap_or_default(),
    })
}

pub fn parse_images(v: &Value) -> Result<Vec<Image>, String> {
    let list = v
        .as_array()
        .ok_or_else(|| "expected a list of images".to_string())?;
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(Image {
                id: text(p.get("id")).ok_or(format!("image #{i} has no id"))?,
                name: text(p.get("name")).unwrap_or_default(),
            })
        })
        .collect()
}

fn shape(e: String, what: &str) -> Fail {
    Fail::critical(format!("{what}: unexpected answer: {e}"))
}

/// The information-system API at `--is-url`; no token, it is public.
#[derive(Clone)]
pub struct IsApi {
    svc: Service,
}

impl IsApi {
    pub fn new(http: Http, base: &Url) -> IsApi {
        IsApi {
            svc: Service::new(http, base, None, None),
        }
    }

    /// `/site/{site}/{vo}/{what}`, site and VO names escaped.
    fn site_url(&self, site: &str, vo: &str, what: &str) -> Result<Url, Fail> {
        self.svc.url(&["site", site, vo, what])
    }

    /// `/sites/?include_projects=true`: the API answers `/sites/` (with the
    /// slash) without a redirect.
    fn sites_url(&self) -> Result<Url, Fail> {
        let mut u = self.svc.url(&["sites"])?;
        u.path_segments_mut()
            .map_err(|_| Fail::unknown("--is-url cannot take a path"))?
            .push("");
        u.set_query(Some("include_projects=true"));
        Ok(u)
    }

    /// `/site/{name}/?include_projects=true`: one site, `None` when the API
    /// does not know the name (or is older than that route).
    pub async fn site(&self, name: &str) -> Result<Option<Site>, Fail> {
        let mut u = self.svc.url(&["site", name])?;
        u.path_segments_mut()
            .map_err(|_| Fail::unknown("--is-url cannot take a path"))?
            .push("");
        u.set_query(Some("include_projects=true"));
        match self.svc.get_opt::<Value>(u).await? {
            Some(v) => parse_site(&v, "the site")
                .map(Some)
                .map_err(|e| shape(e, "GET /site/{site}/")),
            None => Ok(None),
        }
    }

    pub async fn sites(&self) -> Result<Vec<Site>, Fail> {
        let v = self.sites_json().await?;
        parse_sites(&v).map_err(|e| shape(e, "GET /sites/"))
    }

    /// The `/sites/` answer as sent, for a caller that caches it.
    pub async fn sites_json(&self) -> Result<Value, Fail> {
        self.svc.get_json(self.sites_url()?).await
    }

    /// Parse an answer of [`IsApi::sites_json`].
    pub fn parse_sites_answer(v: &Value) -> Result<Vec<Site>, Fail> {
        parse_sites(v).map_err(|e| shape(e, "GET /sites/"))
    }

    pub async fn vo_project(&self, site: &str, vo: &str) -> Result<Project, Fail> {
        let v: Value = self
            .svc
            .get_json(self.site_url(site, vo, "project")?)
            .await?;
        parse_project(&v).map_err(|e| shape(e, "GET /site/{site}/{vo}/project"))
    }

    pub async fn vo_images(&self, site: &str, vo: &str) -> Result<Vec<Image>, Fail> {
        let v: Value = self
            .svc
            .get_json(self.site_url(site, vo, "images")?)
            .await?;
        parse_images(&v).map_err(|e| shape(e, "GET /site/{site}/{vo}/images"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_segments() {
        let http = crate::http::test_client();
        let is = IsApi::new(http, &Url::parse("https://is.example.org/api/").unwrap());
        assert_eq!(
            is.site_url("A B", "vo/x", "project").unwrap().as_str(),
            "https://is.example.org/api/site/A%20B/vo%2Fx/project"
        );
        assert_eq!(
            is.sites_url().unwrap().as_str(),
            "https://is.example.org/api/sites/?include_projects=true"
        );
        assert!(is.site_url("..", "vo", "project").is_err());
    }

    #[test]
    fn sites_parse_and_reject() {
        let v: Value = serde_json::json!([{"id": 12, "name": "S", "url": "u", "state": "",
            "projects": [{"id": "p", "name": "vo"}]}]);
        let s = parse_sites(&v).unwrap();
        assert_eq!(s[0].id, "12");
        assert_eq!(s[0].projects[0].name, "vo");
        assert!(parse_sites(&serde_json::json!({"detail": "x"})).is_err());
        assert!(parse_sites(&serde_json::json!([{"id": 1}])).is_err());
    }
}
