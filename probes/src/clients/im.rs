//! The Infrastructure Manager's REST API (IM 1.x/2.x, the orchestrator
//! behind the federation's orchestration services): one Authorization header
//! carrying IM's own user and the site's credentials, RADL in, infrastructure
//! ids out. No verdicts here: failures carry IM's own message, cleaned.

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;

use crate::clients::service::{base_url, join};
use crate::deadline::{Deadline, WithDeadline};
use crate::fail::Fail;
use crate::http::{show_url, Http, Reply};
use crate::secret::Secret;
use crate::text;

/// Longest piece of IM's error text kept in a message.
const MAX_ERROR: usize = 300;

/// The site as IM's OpenStack connector reaches it with an OIDC access token
/// (libcloud's `3.x_oidc_access_token`).
pub struct OidcSite<'a> {
    /// Keystone, with or without `/v3`.
    pub keystone: &'a Url,
    pub identity_provider: &'a str,
    pub protocol: &'a str,
    /// Project name or id to scope to.
    pub project: &'a str,
    pub region: Option<&'a str>,
    pub token: &'a Secret,
}

/// IM's Authorization header. Not a [`Secret`] itself (its fixed words
/// would then be scrubbed from every output); the token and password in it
/// are, so no output shows them. Never printed.
#[derive(Clone)]
pub struct AuthHeader(String);

impl std::fmt::Debug for AuthHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthHeader(***)")
    }
}

impl AuthHeader {
    /// No credentials (IM's `GET /version` needs none).
    pub fn none() -> AuthHeader {
        AuthHeader(String::new())
    }

    #[cfg(test)]
    fn expose(&self) -> &str {
        &self.0
    }
}

/// The Authorization header: IM's own user, then the site, one entry per
/// line, the lines joined by the two characters `\n` (IM's format).
/// Values must not hold `;` or line breaks (IM splits on them).
pub fn auth_header(user: &str, password: &Secret, site: &OidcSite) -> Result<AuthHeader, Fail> {
    let host = base_url(site.keystone, Some("v3"));
    let mut fields = vec![
        ("host", host.as_str().trim_end_matches('/').to_string()),
        ("username", site.identity_provider.to_string()),
        ("password", site.token.expose().to_string()),
        ("tenant", site.protocol.to_string()),
        ("auth_version", "3.x_oidc_access_token".to_string()),
        ("domain", site.project.to_string()),
    ];
    if let Some(r) = site.region {
        fields.push(("service_region", r.to_string()));
    }
    let im = [
        ("username", user.to_string()),
        ("password", password.expose().to_string()),
    ];
    for (k, v) in im.iter().chain(fields.iter()) {
        if v.is_empty() || v.contains([';', '\n', '\r', '\\']) {
            let shown = if k == &"password" {
                "(secret)".to_string()
            } else {
                text::one_line(v, 60)
            };
            return Err(Fail::unknown(format!(
                "cannot pass {k} {shown:?} to the orchestrator: empty, or holds ; \\ or a line break"
            )));
        }
    }
    let line = |head: &str, f: &[(&str, String)]| {
        let mut s = head.to_string();
        for (k, v) in f {
            s.push_str(&format!("; {k} = {v}"));
        }
        s
    };
    Ok(AuthHeader(format!(
        "{}\\n{}",
        line("id = im; type = InfrastructureManager", &im),
        line("id = site; type = OpenStack", &fields)
    )))
}

/// An infrastructure's state as IM reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfState {
    /// `pending`, `running`, `configured`, `unconfigured`, `failed`, ...
    pub state: String,
    /// Per VM id.
    pub vms: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct StateDoc {
    state: StateInner,
}

#[derive(Deserialize)]
struct StateInner {
    state: String,
    #[serde(default)]
    vm_states: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct UriDoc {
    uri: String,
}

/// IM always sends the list: an answer without it fails to parse.
#[derive(Deserialize)]
struct UriList {
    #[serde(rename = "uri-list")]
    list: Vec<UriDoc>,
}

/// One IM endpoint and the Authorization header for it.
#[derive(Clone)]
pub struct Im {
    http: Http,
    base: Url,
    auth: AuthHeader,
}

impl WithDeadline for Im {
    fn with_deadline(&self, deadline: Deadline) -> Im {
        Im {
            http: self.http.with_deadline(deadline),
            ..self.clone()
        }
    }
}

impl Im {
    pub fn new(http: Http, base: &Url, auth: AuthHeader) -> Im {
        Im {
            http,
            base: base_url(base, None),
            auth,
        }
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    pub fn deadline(&self) -> Deadline {
        self.http.deadline()
    }

    fn url(&self, segments: &[&str]) -> Result<Url, Fail> {
        join(&self.base, segments)
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header("Authorization", self.auth.0.as_str())
            .header("Accept", "application/json")
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Reply, Fail> {
        self.http.send(req).await
    }

    /// `GET /version` (no credentials needed).
    pub async fn version(&self) -> Result<String, Fail> {
        let url = self.url(&["version"])?;
        let reply = self.send(self.http.get(url)).await?;
        let reply = ok(reply)?;
        let v = reply.text();
        let v = v.trim().trim_matches('"');
        if v.is_empty() || v.len() > 40 {
            return Err(Fail::critical(format!(
                "GET /version answered {} ({}): not an IM version",
                reply.describe_body(),
                reply.request_line()
            ))
            .with_http(reply.facts()));
        }
        Ok(text::one_line(v, 40))
    }

    /// `POST /infrastructures`, synchronous: IM answers once the VMs are
    /// requested at the cloud (or failed there). Returns the new id.
    pub async fn create(&self, radl: &str) -> Result<String, Fail> {
        let url = self.url(&["infrastructures"])?;
        let req = self
            .request(Method::POST, url)
            .header("Content-Type", "text/plain")
            .body(radl.to_string());
        let reply = ok(self.send(req).await?)?;
        let doc: UriDoc = reply.json()?;
        last_segment(&doc.uri).ok_or_else(|| {
            Fail::critical(format!(
                "the new infrastructure's URI {:?} has no id ({})",
                text::one_line(&doc.uri, 120),
                reply.request_line()
            ))
            .with_http(reply.facts())
        })
    }

    /// `GET /infrastructures/{id}/state`; `None` once IM no longer knows it.
    pub async fn state(&self, id: &str) -> Result<Option<InfState>, Fail> {
        let url = self.url(&["infrastructures", id, "state"])?;
        let reply = self.send(self.request(Method::GET, url)).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let doc: StateDoc = ok(reply)?.json()?;
        let vms = doc
            .state
            .vm_states
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or("?").to_string()))
            .collect();
        Ok(Some(InfState {
            state: doc.state.state,
            vms,
        }))
    }

    /// The infrastructure's VM ids (`GET /infrastructures/{id}`).
    pub async fn vms(&self, id: &str) -> Result<Vec<String>, Fail> {
        self.uri_ids(&["infrastructures", id]).await
    }

    /// The last segment of each URI of the uri-list IM answers at `path`.
    async fn uri_ids(&self, path: &[&str]) -> Result<Vec<String>, Fail> {
        let url = self.url(path)?;
        let list: UriList = ok(self.send(self.request(Method::GET, url)).await?)?.json()?;
        Ok(list
            .list
            .iter()
            .filter_map(|u| last_segment(&u.uri))
            .collect())
    }

    /// One property of a VM's RADL (`instance_id`, `state`, ...). Asked one
    /// by one: the whole VM RADL holds the SSH private key IM generated.
    pub async fn vm_property(
        &self,
        id: &str,
        vm: &str,
        prop: &str,
    ) -> Result<Option<String>, Fail> {
        let url = self.url(&["infrastructures", id, "vms", vm, prop])?;
        let reply = self.send(self.request(Method::GET, url)).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let doc: Value = ok(reply)?.json()?;
        // IM answers `{PROP: value}`; anything else is not an answer.
        let v = doc.get(prop).ok_or_else(|| {
            Fail::critical(format!("HTTP 200 OK without the {prop} IM answers with"))
        })?;
        Ok(match v {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        })
    }

    /// The contextualization log: where IM writes why VMs failed. Cleaned.
    pub async fn contmsg(&self, id: &str) -> Result<String, Fail> {
        let url = self.url(&["infrastructures", id, "contmsg"])?;
        let doc: Value = ok(self.send(self.request(Method::GET, url)).await?)?.json()?;
        Ok(clean(
            doc.get("contmsg").and_then(Value::as_str).unwrap_or(""),
        ))
    }

    /// The infrastructure's RADL (as submitted, no VM keys): for finding a
    /// run's infrastructure when the create's answer was lost.
    pub async fn radl(&self, id: &str) -> Result<Option<String>, Fail> {
        let url = self.url(&["infrastructures", id, "radl"])?;
        let reply = self.send(self.request(Method::GET, url)).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let doc: Value = ok(reply)?.json()?;
        Ok(doc.get("radl").and_then(Value::as_str).map(str::to_string))
    }

    /// The ids of the infrastructures IM's user owns.
    pub async fn list(&self) -> Result<Vec<String>, Fail> {
        self.uri_ids(&["infrastructures"]).await
    }

    /// `DELETE /infrastructures/{id}` (with `force`: IM forgets it even when
    /// deleting some cloud resource failed). False if IM no longer knew it.
    pub async fn destroy(&self, id: &str, force: bool) -> Result<bool, Fail> {
        let mut url = self.url(&["infrastructures", id])?;
        if force {
            url.set_query(Some("force=true"));
        }
        let reply = self.send(self.request(Method::DELETE, url)).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        ok(reply)?;
        Ok(true)
    }
}

/// The reply if 2xx, else a failure carrying IM's message (cleaned, cut).
fn ok(reply: Reply) -> Result<Reply, Fail> {
    if reply.is_success() {
        return Ok(reply);
    }
    let said = error_text(&reply.body);
    let msg = if said.is_empty() {
        format!("HTTP {}: {}", reply.status, reply.describe_body())
    } else {
        format!("HTTP {}: {said}", reply.status)
    };
    Err(
        Fail::critical(format!("{msg} ({} {})", reply.method, show_url(&reply.url)))
            .with_http(reply.facts()),
    )
}

/// IM's error text from its JSON (`{"message": ..., "code": ...}`) or plain body.
pub fn error_text(body: &[u8]) -> String {
    let raw = match crate::http::from_json::<Value>(body) {
        Ok(v) => v
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    text::one_line(&clean(&raw), MAX_ERROR)
}

/// Remove what IM's texts may carry that must never be shown: PEM private
/// keys (IM generates one per VM) and RADL credential values.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("-----BEGIN") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        // The block ends after its END line's dashes; an unterminated one is
        // cut to the end.
        match after.find("-----END") {
            Some(j) => {
                let tail = &after[j + 8..];
                let end = tail
                    .find("-----")
                    .map(|k| j + 8 + k + 5)
                    .unwrap_or(after.len());
                out.push_str("[key removed]");
                rest = &after[end..];
            }
            None => {
                out.push_str("[key removed]");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    hide_credential_values(&out)
}

/// `disk.0.os.credentials.<x> = '...'` values (private keys, passwords).
fn hide_credential_values(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("credentials.") {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let name_end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..name_end];
        out.push_str(name);
        let after = &tail[name_end..];
        let is_username = name.ends_with(".username");
        match after.find('\'') {
            Some(q)
                if !is_username && after[..q].trim().trim_start_matches('=').trim().is_empty() =>
            {
                out.push_str(&after[..=q]);
                let value = &after[q + 1..];
                let close = value.find('\'').unwrap_or(value.len());
                out.push_str("***");
                rest = &value[close..];
            }
            _ => rest = after,
        }
    }
    out.push_str(rest);
    out
}

fn last_segment(uri: &str) -> Option<String> {
    let id = uri.trim_end_matches('/').rsplit('/').next()?;
    (!id.is_empty() && !id.contains(':')).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_has_im_then_the_site_joined_by_backslash_n() {
        let k = Url::parse("https://k.example:5000/v3/").unwrap();
        let tok = Secret::new("eyJtoken-value-123");
        let site = OidcSite {
            keystone: &k,
            identity_provider: "egi.eu",
            protocol: "openid",
            project: "ops",
            region: Some("RegionOne"),
            token: &tok,
        };
        let h = auth_header("mon", &Secret::new("im-pass-123"), &site).unwrap();
        let parts: Vec<&str> = h.expose().split("\\n").collect();
        assert_eq!(parts.len(), 2, "{:?}", h);
        assert_eq!(
            parts[0],
            "id = im; type = InfrastructureManager; username = mon; password = im-pass-123"
        );
        assert_eq!(
            parts[1],
            "id = site; type = OpenStack; host = https://k.example:5000; username = egi.eu; \
             password = eyJtoken-value-123; tenant = openid; auth_version = 3.x_oidc_access_token; \
             domain = ops; service_region = RegionOne"
        );
        let bad = OidcSite {
            project: "a;b",
            ..site
        };
        let f = auth_header("mon", &Secret::new("im-pass-123"), &bad).unwrap_err();
        assert!(f.message.contains("domain"), "{}", f.message);
        let f = auth_header("mon", &Secret::new("pw;x-long-enough"), &site).unwrap_err();
        assert!(!f.message.contains("pw;x"), "{}", f.message);
    }

    #[test]
    fn keys_and_credential_values_are_removed() {
        let radl = "system n (\ndisk.0.os.credentials.username = 'cloudadm' and\n\
            disk.0.os.credentials.private_key = '-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----\n' and\n\
            disk.0.os.credentials.password = 'hunter2' )";
        let c = clean(radl);
        assert!(!c.contains("MIIE"), "{c}");
        assert!(!c.contains("hunter2"), "{c}");
        assert!(c.contains("'cloudadm'"), "{c}");
        let cut = clean("x -----BEGIN OPENSSH PRIVATE KEY-----\nAAAAB3");
        assert_eq!(cut, "x [key removed]");
    }

    #[test]
    fn error_texts_from_json_or_plain() {
        let j = br#"{"message":"Error Creating Inf.: 'Invalid credentials with the provider'","code":400}"#;
        assert_eq!(
            error_text(j),
            "Error Creating Inf.: 'Invalid credentials with the provider'"
        );
        let plain = b"Error Destroying Inf: Error destroying the infrastructure: \nError removing Floating IPs: 404";
        assert!(error_text(plain).starts_with("Error Destroying Inf: Error destroying"));
        assert!(error_text(&[b'x'; 1000]).chars().count() <= MAX_ERROR + 1);
    }

    #[test]
    fn ids_are_the_uri_tail() {
        assert_eq!(
            last_segment("http://127.0.0.1:18800/infrastructures/66a2e202-eca0").as_deref(),
            Some("66a2e202-eca0")
        );
        assert_eq!(last_segment(""), None);
    }
}
