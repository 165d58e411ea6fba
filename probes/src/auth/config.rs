//! Where the login comes from, the way the openstack CLI finds it: command
//! line first, then `OS_*` environment variables, then a `clouds.yaml` cloud
//! (`--os-cloud`/`OS_CLOUD`). The first of these layers that names a
//! credential decides the credential; URL, project and region are taken
//! field by field from the first layer that has them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use reqwest::Url;

use super::AuthArgs;
use crate::clients::keystone::Domain;
use crate::fail::Fail;
use crate::secret::Secret;

/// A secret read from a file, given inline (environment, clouds.yaml), or absent.
#[derive(Clone, Debug)]
pub enum SecretSource {
    File(PathBuf),
    Value(Secret, String),
}

impl SecretSource {
    /// Read it. A missing, unreadable or empty secret is the monitor's problem.
    pub fn load(&self, what: &str) -> Result<Secret, Fail> {
        let s = match self {
            SecretSource::File(p) => Secret::from_file(p).map_err(|e| {
                Fail::unknown(format!("{what}: cannot read {}: {e}", shown_path(p)))
            })?,
            SecretSource::Value(s, _) => s.clone(),
        };
        if s.is_empty() {
            return Err(Fail::unknown(format!(
                "{what}: {} is empty",
                self.describe()
            )));
        }
        Ok(s)
    }

    pub fn describe(&self) -> String {
        match self {
            SecretSource::File(p) => shown_path(p),
            SecretSource::Value(_, from) => from.clone(),
        }
    }
}

/// Read the secret in the file at `p` (`what` names it for the message);
/// an unreadable file is the monitor's problem, its path shown as
/// [`shown_path`] allows.
pub fn read_secret_file(p: &Path, what: &str) -> Result<Secret, Fail> {
    Secret::from_file(p)
        .map_err(|e| Fail::unknown(format!("cannot read {what} {}: {e}", shown_path(p))))
}

/// A credential file's path as outputs show it. A value that names no file
/// and does not look like a path may be the secret itself, given where its
/// file belongs (`--access-token eyJ...`): it becomes a known secret, so
/// every output scrubs it, and is not shown.
pub fn shown_path(p: &Path) -> String {
    let s = p.to_string_lossy();
    let pathlike = ["/", "./", "../", "~"].iter().any(|pre| s.starts_with(pre));
    if pathlike || p.exists() {
        return p.display().to_string();
    }
    let _ = Secret::new(s.to_string());
    "the value given (no such file; not shown: it may be the secret itself)".into()
}

/// How to reach the OP's token endpoint.
#[derive(Clone, Debug)]
pub enum TokenEndpoint {
    Explicit(Url),
    /// Issuer URL or a full `.well-known/openid-configuration` URL.
    Discover(Url),
}

#[derive(Clone, Debug)]
pub struct OidcClient {
    pub id: String,
    pub secret: SecretSource,
    pub endpoint: TokenEndpoint,
    pub scope: String,
}

#[derive(Clone, Debug)]
pub enum Credential {
    AccessToken(SecretSource),
    RefreshToken {
        refresh: SecretSource,
        client: OidcClient,
    },
    ClientCredentials(OidcClient),
    Password {
        username: String,
        user_domain: Domain,
        password: SecretSource,
    },
    AppCred {
        id: String,
        secret: SecretSource,
    },
    /// SAML2 ECP at `idp` (its SOAP endpoint). Without `username`, the
    /// secret holds `user:password` (--saml-credentials).
    Saml {
        idp: Url,
        username: Option<String>,
        secret: SecretSource,
    },
}

impl Credential {
    pub fn is_federated(&self) -> bool {
        matches!(
            self,
            Credential::AccessToken(_)
                | Credential::RefreshToken { .. }
                | Credential::ClientCredentials(_)
        )
    }

    pub fn describe(&self) -> String {
        match self {
            Credential::AccessToken(s) => format!("OIDC access token from {}", s.describe()),
            Credential::RefreshToken { refresh, client } => format!(
                "OIDC refresh token from {} (client {})",
                refresh.describe(),
                client.id
            ),
            Credential::ClientCredentials(c) => {
                format!("OIDC client credentials (client {})", c.id)
            }
            Credential::Password { username, .. } => format!("password of user {username}"),
            Credential::AppCred { id, .. } => format!("application credential {id}"),
            Credential::Saml { idp, secret, .. } => format!(
                "SAML2 ECP at {} with the user:password from {}",
                crate::http::show_url(idp),
                secret.describe()
            ),
        }
    }
}

/// Everything `login` needs, resolved.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub keystone: Url,
    pub credential: Credential,
    pub identity_provider: String,
    pub protocols: Vec<String>,
    pub project: Option<String>,
    /// `--vo-project VO=PROJECT` mappings (auth::project's `vo-map` rule).
    pub vo_map: Vec<(String, String)>,
    pub project_domain: Option<Domain>,
    pub region: Option<String>,
    pub cacert: Option<PathBuf>,
    pub insecure: bool,
    pub allow_http: bool,
    /// Where the credential came from: "command line", "OS_* environment", "clouds.yaml ...".
    pub source: String,
}

/// One layer of settings; every field optional.
#[derive(Default, Debug)]
struct Layer {
    name: String,
    auth_url: Option<String>,
    auth_type: Option<String>,
    access_token: Option<SecretSource>,
    refresh_token: Option<SecretSource>,
    client_id: Option<String>,
    client_secret: Option<SecretSource>,
    issuer: Option<String>,
    token_endpoint: Option<String>,
    scope: Option<String>,
    idp: Option<String>,
    protocol: Option<String>,
    project: Option<String>,
    project_domain: Option<Domain>,
    username: Option<String>,
    password: Option<SecretSource>,
    user_domain: Option<Domain>,
    app_cred_id: Option<String>,
    app_cred_secret: Option<SecretSource>,
    region: Option<String>,
    cacert: Option<PathBuf>,
    insecure: Option<bool>,
    saml_idp: Option<String>,
    saml_credentials: Option<SecretSource>,
}

fn layer_from_args(a: &AuthArgs) -> Layer {
    Layer {
        name: "command line".into(),
        auth_url: a.endpoint.as_ref().map(|u| u.to_string()),
        auth_type: None,
        access_token: a.access_token.clone().map(SecretSource::File),
        refresh_token: a.refresh_token.clone().map(SecretSource::File),
        client_id: a.client_id.clone(),
        client_secret: a.client_secret.clone().map(SecretSource::File),
        issuer: a.oidc_issuer.as_ref().map(|u| u.to_string()),
        token_endpoint: a.token_endpoint.as_ref().map(|u| u.to_string()),
        scope: a.oidc_scope.clone(),
        idp: Some(a.identity_provider.clone()).filter(|s| !s.is_empty()),
        protocol: a.protocol.clone(),
        project: a.project.clone(),
        project_domain: a.project_domain.clone().map(Domain::Name),
        username: a.username.clone(),
        password: a.password_file.clone().map(SecretSource::File),
        user_domain: a.user_domain.clone().map(Domain::Name),
        app_cred_id: a.app_cred_id.clone(),
        app_cred_secret: a.app_cred_secret.clone().map(SecretSource::File),
        region: a.region.clone(),
        cacert: None,
        insecure: None,
        saml_idp: a.saml_idp.as_ref().map(|u| u.to_string()),
        saml_credentials: a.saml_credentials.clone().map(SecretSource::File),
    }
}

fn layer_from_env(env: &dyn Fn(&str) -> Option<String>) -> Layer {
    let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let inline = |k: &str| get(k).map(|v| SecretSource::Value(Secret::new(v), k.to_string()));
    let file = |k: &str| get(k).map(|v| SecretSource::File(PathBuf::from(v)));
    Layer {
        name: "OS_* environment".into(),
        auth_url: get("OS_AUTH_URL"),
        auth_type: get("OS_AUTH_TYPE"),
        access_token: inline("OS_ACCESS_TOKEN").or_else(|| file("OS_ACCESS_TOKEN_FILE")),
        refresh_token: None,
        client_id: get("OS_CLIENT_ID"),
        client_secret: inline("OS_CLIENT_SECRET"),
        issuer: get("OS_DISCOVERY_ENDPOINT"),
        token_endpoint: get("OS_ACCESS_TOKEN_ENDPOINT"),
        scope: get("OS_OPENID_SCOPE"),
        idp: get("OS_IDENTITY_PROVIDER"),
        protocol: get("OS_PROTOCOL"),
        project: get("OS_PROJECT_ID").or_else(|| get("OS_PROJECT_NAME")),
        project_domain: get("OS_PROJECT_DOMAIN_NAME")
            .map(Domain::Name)
            .or_else(|| get("OS_PROJECT_DOMAIN_ID").map(Domain::Id)),
        username: get("OS_USERNAME"),
        password: inline("OS_PASSWORD"),
        user_domain: get("OS_USER_DOMAIN_NAME")
            .map(Domain::Name)
            .or_else(|| get("OS_USER_DOMAIN_ID").map(Domain::Id)),
        app_cred_id: get("OS_APPLICATION_CREDENTIAL_ID"),
        app_cred_secret: inline("OS_APPLICATION_CREDENTIAL_SECRET"),
        region: get("OS_REGION_NAME"),
        cacert: get("OS_CACERT").map(PathBuf::from),
        insecure: get("OS_INSECURE").map(|v| matches!(v.as_str(), "1" | "true" | "True")),
        // keystoneauth's v3samlpassword: OS_USERNAME/OS_PASSWORD at this IdP
        saml_idp: get("OS_IDENTITY_PROVIDER_URL"),
        saml_credentials: None,
    }
}

/// Files searched for `clouds.yaml`, in the openstack CLI's order.
pub fn clouds_yaml_paths(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    if let Some(f) = env("OS_CLIENT_CONFIG_FILE").filter(|f| !f.is_empty()) {
        return vec![PathBuf::from(f)];
    }
    let mut v = vec![PathBuf::from("clouds.yaml")];
    if let Some(home) = env("HOME").filter(|h| !h.is_empty()) {
        v.push(Path::new(&home).join(".config/openstack/clouds.yaml"));
    }
    v.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    v
}

#[derive(serde::Deserialize)]
struct CloudsFile {
    #[serde(default)]
    clouds: BTreeMap<String, Cloud>,
}

#[derive(serde::Deserialize, Default)]
struct Cloud {
    #[serde(default)]
    auth_type: Option<String>,
    #[serde(default)]
    auth: BTreeMap<String, serde_norway::Value>,
    #[serde(default)]
    region_name: Option<String>,
    #[serde(default)]
    cacert: Option<String>,
    #[serde(default)]
    verify: Option<bool>,
}

fn layer_from_cloud(name: &str, paths: &[PathBuf]) -> Result<Layer, Fail> {
    let mut seen = Vec::new();
    for path in paths {
        let text = match crate::files::read_to_string(path, crate::files::SMALL) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Fail::unknown(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        };
        let file: CloudsFile = serde_norway::from_str(&text).map_err(|e| {
            Fail::unknown(format!(
                "{} is not a valid clouds.yaml: {}",
                path.display(),
                without_quoted(&e.to_string())
            ))
        })?;
        seen.push(path.display().to_string());
        if let Some(cloud) = file.clouds.get(name) {
            return Ok(cloud_layer(name, path, cloud));
        }
    }
    let searched: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    Err(Fail::unknown(if seen.is_empty() {
        format!(
            "cloud {name:?}: no clouds.yaml found (searched {})",
            searched.join(", ")
        )
    } else {
        format!("cloud {name:?} is not defined in {}", seen.join(", "))
    }))
}

/// A YAML error may quote the offending value (a password in the wrong
/// place): keep the message and position, drop what is quoted.
fn without_quoted(msg: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in msg.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…\"");
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

fn cloud_layer(name: &str, path: &Path, c: &Cloud) -> Layer {
    let s = |k: &str| -> Option<String> {
        match c.auth.get(k)? {
            serde_norway::Value::String(v) if !v.trim().is_empty() => Some(v.clone()),
            serde_norway::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let where_ = format!("{} cloud {name}", path.display());
    let secret =
        |k: &str| s(k).map(|v| SecretSource::Value(Secret::new(v), format!("{k} in {where_}")));
    Layer {
        name: format!("clouds.yaml cloud {name} ({})", path.display()),
        auth_url: s("auth_url"),
        auth_type: c.auth_type.clone(),
        access_token: secret("access_token"),
        refresh_token: secret("refresh_token"),
        client_id: s("client_id"),
        client_secret: secret("client_secret"),
        issuer: s("discovery_endpoint"),
        token_endpoint: s("access_token_endpoint"),
        scope: s("openid_scope"),
        idp: s("identity_provider"),
        protocol: s("protocol"),
        project: s("project_id").or_else(|| s("project_name")),
        project_domain: s("project_domain_name")
            .map(Domain::Name)
            .or_else(|| s("project_domain_id").map(Domain::Id)),
        username: s("username"),
        password: secret("password"),
        user_domain: s("user_domain_name")
            .map(Domain::Name)
            .or_else(|| s("user_domain_id").map(Domain::Id)),
        app_cred_id: s("application_credential_id"),
        app_cred_secret: secret("application_credential_secret"),
        region: c.region_name.clone(),
        cacert: c.cacert.as_ref().map(PathBuf::from),
        insecure: c.verify.map(|v| !v),
        saml_idp: s("identity_provider_url"),
        saml_credentials: None,
    }
}

/// Work out the login from arguments, environment and clouds.yaml.
pub fn resolve(args: &AuthArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Resolved, Fail> {
    let mut layers = vec![layer_from_args(args), layer_from_env(env)];
    let cloud = args
        .os_cloud
        .clone()
        .or_else(|| env("OS_CLOUD").filter(|c| !c.is_empty()));
    if let Some(name) = &cloud {
        let paths = match &args.clouds_yaml {
            Some(f) => vec![f.clone()],
            None => clouds_yaml_paths(env),
        };
        layers.push(layer_from_cloud(name, &paths)?);
    }
    let first = |f: &dyn Fn(&Layer) -> Option<String>| layers.iter().find_map(f);
    let auth_url = first(&|l| l.auth_url.clone()).ok_or_else(|| {
        Fail::unknown(
            "no Keystone URL: give --endpoint, OS_AUTH_URL or --os-cloud with a clouds.yaml",
        )
    })?;
    let keystone = Url::parse(&auth_url)
        .map_err(|e| Fail::unknown(format!("bad Keystone URL {auth_url:?}: {e}")))?;
    let (credential, source) = layers
        .iter()
        .find_map(|l| credential(l).map(|c| c.map(|c| (c, l.name.clone()))))
        .ok_or_else(|| {
            Fail::unknown(
                "no credential: give --access-token FILE, --refresh-token FILE, \
                 --client-id with --client-secret FILE, --username with --password-file, \
                 --app-cred-id with --app-cred-secret FILE, --saml-idp with \
                 --saml-credentials FILE, OS_* variables or --os-cloud",
            )
        })??;
    let protocols = match first(&|l| l.protocol.clone()) {
        Some(p) => vec![p],
        // Keystone's default [auth] methods have `mapped`, not `saml2`
        None if matches!(credential, Credential::Saml { .. }) => vec!["mapped".into()],
        None => vec!["openid".into(), "oidc".into()],
    };
    Ok(Resolved {
        keystone,
        credential,
        identity_provider: first(&|l| l.idp.clone()).unwrap_or_else(|| "egi.eu".into()),
        protocols,
        project: first(&|l| l.project.clone()),
        vo_map: super::project::parse_map(&args.vo_project)?,
        project_domain: layers.iter().find_map(|l| l.project_domain.clone()),
        region: first(&|l| l.region.clone()),
        cacert: layers.iter().find_map(|l| l.cacert.clone()),
        insecure: layers.iter().find_map(|l| l.insecure).unwrap_or(false),
        allow_http: args.allow_http,
        source,
    })
}

impl Layer {
    /// An IdP URL alone names a SAML login on the command line; in the
    /// environment and clouds.yaml it needs auth type v3samlpassword.
    fn saml_idp_given(&self) -> bool {
        self.saml_idp.is_some() && self.name == "command line"
    }
}

/// The credential a layer names, if any; an incomplete one is an error.
fn credential(l: &Layer) -> Option<Result<Credential, Fail>> {
    let kind = match l.auth_type.as_deref() {
        Some("v3oidcaccesstoken") => "token",
        Some("v3applicationcredential") => "appcred",
        Some("password") | Some("v3password") => "password",
        Some("v3oidcclientcredentials") => "client",
        Some("v3oidcrefreshtoken") => "refresh",
        Some("v3samlpassword") => "saml",
        Some(other) => {
            return Some(Err(Fail::unknown(format!(
                "{}: auth type {other:?} is not supported (use v3oidcaccesstoken, \
                 v3oidcclientcredentials, v3applicationcredential, v3samlpassword or password)",
                l.name
            ))))
        }
        None if l.saml_credentials.is_some() || l.saml_idp_given() => "saml",
        None if l.app_cred_id.is_some() || l.app_cred_secret.is_some() => "appcred",
        None if l.username.is_some() || l.password.is_some() => "password",
        None if l.access_token.is_some() => "token",
        None if l.refresh_token.is_some() => "refresh",
        None if l.client_id.is_some() || l.client_secret.is_some() => "client",
        None => return None,
    };
    let missing = |what: &str| Some(Err(Fail::unknown(format!("{}: {what} is missing", l.name))));
    let client = || -> Result<OidcClient, Fail> {
        let id = l
            .client_id
            .clone()
            .ok_or_else(|| Fail::unknown(format!("{}: the OIDC client id is missing", l.name)))?;
        let secret = l.client_secret.clone().ok_or_else(|| {
            Fail::unknown(format!("{}: the OIDC client secret is missing", l.name))
        })?;
        let endpoint = if let Some(t) = &l.token_endpoint {
            TokenEndpoint::Explicit(parse_url(t, "token endpoint")?)
        } else if let Some(i) = &l.issuer {
            TokenEndpoint::Discover(parse_url(i, "OIDC issuer")?)
        } else {
            return Err(Fail::unknown(format!(
                "{}: give --oidc-issuer URL or --token-endpoint URL for the OIDC client",
                l.name
            )));
        };
        Ok(OidcClient {
            id,
            secret,
            endpoint,
            scope: l
                .scope
                .clone()
                .unwrap_or_else(|| crate::clients::oidc::DEFAULT_SCOPE.into()),
        })
    };
    Some(Ok(match kind {
        "token" => match &l.access_token {
            Some(t) => Credential::AccessToken(t.clone()),
            None => return missing("the access token"),
        },
        "appcred" => match (&l.app_cred_id, &l.app_cred_secret) {
            (Some(id), Some(secret)) => Credential::AppCred {
                id: id.clone(),
                secret: secret.clone(),
            },
            (None, _) => return missing("the application credential id"),
            (_, None) => return missing("the application credential secret"),
        },
        "password" => match (&l.username, &l.password) {
            (Some(u), Some(p)) => Credential::Password {
                username: u.clone(),
                user_domain: l
                    .user_domain
                    .clone()
                    .unwrap_or_else(|| Domain::Name("Default".into())),
                password: p.clone(),
            },
            (None, _) => return missing("the user name"),
            (_, None) => return missing("the password"),
        },
        "saml" => {
            let Some(idp) = &l.saml_idp else {
                return missing("the SAML IdP's ECP URL (--saml-idp)");
            };
            let idp = match parse_url(idp, "SAML IdP") {
                Ok(u) => u,
                Err(e) => return Some(Err(e)),
            };
            match (&l.saml_credentials, &l.username, &l.password) {
                (Some(f), _, _) => Credential::Saml {
                    idp,
                    username: None,
                    secret: f.clone(),
                },
                (None, Some(u), Some(p)) => Credential::Saml {
                    idp,
                    username: Some(u.clone()),
                    secret: p.clone(),
                },
                _ => return missing("the SAML credential (--saml-credentials FILE)"),
            }
        }
        "refresh" => match &l.refresh_token {
            Some(r) => match client() {
                Ok(c) => Credential::RefreshToken {
                    refresh: r.clone(),
                    client: c,
                },
                Err(e) => return Some(Err(e)),
            },
            None => return missing("the refresh token"),
        },
        _ => match client() {
            Ok(c) => Credential::ClientCredentials(c),
            Err(e) => return Some(Err(e)),
        },
    }))
}

fn parse_url(s: &str, what: &str) -> Result<Url, Fail> {
    Url::parse(s).map_err(|e| Fail::unknown(format!("bad {what} URL {s:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| m.get(k).cloned()
    }

    #[test]
    fn a_secret_given_where_its_file_belongs_is_not_shown() {
        let value = "gho_Q7vX2kLm9PzR4tYw8NcB-as-a-path";
        let src = SecretSource::File(PathBuf::from(value));
        let e = src.load("access token").unwrap_err();
        assert!(!e.message.contains("Q7vX2kLm"), "{}", e.message);
        assert!(e.message.contains("not shown"), "{}", e.message);
        assert!(!src.describe().contains("Q7vX2kLm"));
        // Known to the scrub from then on: the harness's argv shows it too.
        let said = crate::secret::scrub(&format!("argv: --access-token {value}"));
        assert!(!said.contains("Q7vX2kLm"), "{said}");
        // Paths stay shown, found or not.
        let e = SecretSource::File(PathBuf::from("/no/such/token")).load("access token");
        assert!(e.unwrap_err().message.contains("/no/such/token"));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tok");
        std::fs::write(&f, "x").unwrap();
        assert_eq!(shown_path(&f), f.display().to_string());
    }

    #[test]
    fn command_line_wins_and_defaults_apply() {
        let args = AuthArgs {
            endpoint: Some(Url::parse("https://k.example:5000/v3").unwrap()),
            access_token: Some("/etc/sensu/certs/oidc".into()),
            ..Default::default()
        };
        let r = resolve(
            &args,
            &env_of(&[("OS_USERNAME", "u"), ("OS_PASSWORD", "p")]),
        )
        .unwrap();
        assert!(matches!(
            r.credential,
            Credential::AccessToken(SecretSource::File(_))
        ));
        assert_eq!(r.identity_provider, "egi.eu");
        assert_eq!(r.protocols, ["openid", "oidc"]);
        assert_eq!(r.source, "command line");
    }

    #[test]
    fn environment_like_the_openstack_cli() {
        let env = env_of(&[
            ("OS_AUTH_URL", "https://k.example/v3"),
            ("OS_AUTH_TYPE", "v3oidcaccesstoken"),
            ("OS_ACCESS_TOKEN", "eyJtoken-value-here"),
            ("OS_IDENTITY_PROVIDER", "other.idp"),
            ("OS_PROTOCOL", "oidc"),
            ("OS_PROJECT_NAME", "vo.x"),
            ("OS_REGION_NAME", "R2"),
            ("OS_CACERT", "/tmp/ca.pem"),
        ]);
        let r = resolve(&AuthArgs::default(), &env).unwrap();
        assert!(matches!(
            r.credential,
            Credential::AccessToken(SecretSource::Value(..))
        ));
        assert_eq!(r.identity_provider, "other.idp");
        assert_eq!(r.protocols, ["oidc"]);
        assert_eq!(r.project.as_deref(), Some("vo.x"));
        assert_eq!(r.region.as_deref(), Some("R2"));
        assert_eq!(r.cacert.as_deref(), Some(Path::new("/tmp/ca.pem")));

        let env = env_of(&[
            ("OS_AUTH_URL", "https://k.example/v3"),
            ("OS_APPLICATION_CREDENTIAL_ID", "abc"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "s3cr3t-s3cr3t"),
        ]);
        let r = resolve(&AuthArgs::default(), &env).unwrap();
        assert!(matches!(r.credential, Credential::AppCred { ref id, .. } if id == "abc"));

        let env = env_of(&[
            ("OS_AUTH_URL", "https://k.example/v3"),
            ("OS_AUTH_TYPE", "password"),
            ("OS_USERNAME", "bob"),
        ]);
        let e = resolve(&AuthArgs::default(), &env).unwrap_err();
        assert!(e.message.contains("password is missing"), "{}", e.message);
        assert_eq!(e.status, crate::Status::Unknown);
    }

    #[test]
    fn clouds_yaml_is_found_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("clouds.yaml");
        std::fs::write(
            &f,
            r#"
clouds:
  site-a:
    auth_type: password
    auth:
      auth_url: "https://k.example:5000/v3"
      username: probe
      password: "pa55word-xyz"
      project_name: ops
      user_domain_name: Users
    region_name: RegionOne
    cacert: /tmp/site-ca.pem
  site-b:
    auth_type: v3oidcclientcredentials
    auth:
      auth_url: https://k.example/v3
      client_id: cli
      client_secret: "cl13nt-secret"
      discovery_endpoint: https://op.example/.well-known/openid-configuration
"#,
        )
        .unwrap();
        let path = f.display().to_string();
        let env = env_of(&[("OS_CLIENT_CONFIG_FILE", &path), ("OS_CLOUD", "site-a")]);
        let r = resolve(&AuthArgs::default(), &env).unwrap();
        match &r.credential {
            Credential::Password {
                username,
                user_domain,
                ..
            } => {
                assert_eq!(username, "probe");
                assert_eq!(*user_domain, Domain::Name("Users".into()));
            }
            c => panic!("{c:?}"),
        }
        assert_eq!(r.project.as_deref(), Some("ops"));
        assert_eq!(r.region.as_deref(), Some("RegionOne"));
        assert!(r.source.contains("site-a"), "{}", r.source);
        // the command line still overrides single fields
        let args = AuthArgs {
            os_cloud: Some("site-b".into()),
            region: Some("R9".into()),
            ..Default::default()
        };
        let r = resolve(&args, &env).unwrap();
        assert!(matches!(r.credential, Credential::ClientCredentials(ref c)
            if c.id == "cli" && matches!(c.endpoint, TokenEndpoint::Discover(_))));
        assert_eq!(r.region.as_deref(), Some("R9"));

        let args = AuthArgs {
            os_cloud: Some("nope".into()),
            ..Default::default()
        };
        let e = resolve(&args, &env).unwrap_err();
        assert!(
            e.message.contains("\"nope\" is not defined"),
            "{}",
            e.message
        );

        std::fs::write(&f, "clouds: [not: a map").unwrap();
        let e = resolve(&AuthArgs::default(), &env).unwrap_err();
        assert!(
            e.message.contains("not a valid clouds.yaml"),
            "{}",
            e.message
        );
        // a secret in the wrong place is not quoted back
        std::fs::write(&f, "clouds:\n  site-a:\n    auth: \"pa55word-xyz\"\n").unwrap();
        let e = resolve(&AuthArgs::default(), &env).unwrap_err();
        assert!(
            e.message.contains("not a valid clouds.yaml"),
            "{}",
            e.message
        );
        assert!(e.message.contains("line"), "{}", e.message);
        assert!(!e.message.contains("pa55word"), "{}", e.message);
    }

    #[test]
    fn saml_ecp_from_command_line_and_environment() {
        let args = AuthArgs {
            endpoint: Some(Url::parse("https://sp.example/v3").unwrap()),
            saml_idp: Some(Url::parse("https://idp.example/sso/ecp").unwrap()),
            saml_credentials: Some("/etc/fedprobe/saml".into()),
            identity_provider: "site-saml".into(),
            ..Default::default()
        };
        let r = resolve(&args, &env_of(&[])).unwrap();
        assert!(
            matches!(&r.credential, Credential::Saml { idp, username: None, secret: SecretSource::File(_) }
            if idp.as_str() == "https://idp.example/sso/ecp")
        );
        assert_eq!(r.protocols, ["mapped"]);
        assert_eq!(r.identity_provider, "site-saml");
        // --protocol wins over the SAML default
        let r = resolve(
            &AuthArgs {
                protocol: Some("saml2".into()),
                ..args.clone()
            },
            &env_of(&[]),
        )
        .unwrap();
        assert_eq!(r.protocols, ["saml2"]);
        // the credentials file alone is not enough
        let e = resolve(
            &AuthArgs {
                saml_idp: None,
                ..args.clone()
            },
            &env_of(&[]),
        )
        .unwrap_err();
        assert!(e.message.contains("--saml-idp"), "{}", e.message);
        assert_eq!(e.status, crate::Status::Unknown);
        // keystoneauth's v3samlpassword variables
        let env = env_of(&[
            ("OS_AUTH_URL", "https://sp.example/v3"),
            ("OS_AUTH_TYPE", "v3samlpassword"),
            ("OS_IDENTITY_PROVIDER_URL", "https://idp.example/sso/ecp"),
            ("OS_USERNAME", "mon"),
            ("OS_PASSWORD", "pa55word-xyz"),
        ]);
        let r = resolve(&AuthArgs::default(), &env).unwrap();
        assert!(matches!(&r.credential, Credential::Saml { username: Some(u), .. } if u == "mon"));
        // an IdP URL in the environment without the auth type stays a password login
        let env = env_of(&[
            ("OS_AUTH_URL", "https://k.example/v3"),
            ("OS_IDENTITY_PROVIDER_URL", "https://idp.example/sso/ecp"),
            ("OS_USERNAME", "mon"),
            ("OS_PASSWORD", "pa55word-xyz"),
        ]);
        let r = resolve(&AuthArgs::default(), &env).unwrap();
        assert!(matches!(r.credential, Credential::Password { .. }));
    }

    #[test]
    fn nothing_given_is_unknown() {
        let e = resolve(&AuthArgs::default(), &env_of(&[])).unwrap_err();
        assert_eq!(e.status, crate::Status::Unknown);
        assert!(e.message.contains("no Keystone URL"));
        let args = AuthArgs {
            endpoint: Some(Url::parse("https://k.example/v3").unwrap()),
            ..Default::default()
        };
        let e = resolve(&args, &env_of(&[])).unwrap_err();
        assert!(e.message.contains("no credential"));
    }
}
