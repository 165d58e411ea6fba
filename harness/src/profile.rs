//! Site profiles (TOML): endpoints, credential sources, VOs, guideline and
//! per-probe CLI flags. Secrets are never inline unless the profile says
//! `allow_inline_secrets = true`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use probes::secret::Secret;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub site: String,
    #[serde(default = "default_guideline")]
    pub guideline: String,
    #[serde(default)]
    pub vos: Vec<String>,
    /// The site's cloud API (`openstack`, `ec2`, `azure`, `gce`,
    /// `opennebula`); passed as `--cloud` to the probes that take it.
    #[serde(default)]
    pub cloud: probes::auth::cloud::CloudKind,
    #[serde(default)]
    pub allow_inline_secrets: bool,
    /// `keystone` becomes `--endpoint`; any other NAME becomes `--NAME`
    /// for the probes that accept it.
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
    /// NAME -> source; passed as `--NAME FILE` to the probes that accept it.
    #[serde(default)]
    pub credentials: BTreeMap<String, Credential>,
    /// Flags for every probe that accepts them.
    #[serde(default)]
    pub defaults: BTreeMap<String, toml::Value>,
    /// Probe name -> flag -> value, passed as given.
    #[serde(default)]
    pub probe: BTreeMap<String, BTreeMap<String, toml::Value>>,
    /// Probes of the guideline not to run for this site.
    #[serde(default)]
    pub skip: Vec<String>,
    #[serde(default)]
    pub external: Vec<External>,
}

fn default_guideline() -> String {
    crate::guideline::DEFAULT_ID.into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub file: Option<PathBuf>,
    pub env: Option<String>,
    /// clouds.yaml path and cloud entry: reads `auth.access_token`.
    pub clouds_yaml: Option<PathBuf>,
    pub cloud: Option<String>,
    /// Inline secret: refused unless `allow_inline_secrets = true`.
    pub value: Option<String>,
}

/// A Nagios-compatible plugin run as a child process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct External {
    pub name: String,
    pub command: Vec<String>,
    #[serde(default)]
    pub timeout: Option<String>,
}

impl Profile {
    pub fn parse(text: &str, origin: &str) -> Result<Profile, String> {
        let p: Profile = toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
        p.validate().map_err(|e| format!("{origin}: {e}"))?;
        Ok(p)
    }

    pub fn load(path: &Path) -> Result<Profile, String> {
        let text = probes::files::read_to_string(path, probes::files::DOCUMENT)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Profile::parse(&text, &path.display().to_string())
    }

    fn validate(&self) -> Result<(), String> {
        if self.site.trim().is_empty() {
            return Err("empty site name".into());
        }
        for (name, c) in &self.credentials {
            let n = [
                c.file.is_some(),
                c.env.is_some(),
                c.clouds_yaml.is_some(),
                c.value.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if n != 1 {
                return Err(format!(
                    "credential {name}: give exactly one of file, env, clouds_yaml, value"
                ));
            }
            if c.value.is_some() && !self.allow_inline_secrets {
                return Err(format!(
                    "credential {name}: inline secret refused; use file/env/clouds_yaml, or set allow_inline_secrets = true"
                ));
            }
            if c.clouds_yaml.is_some() != c.cloud.is_some() {
                return Err(format!(
                    "credential {name}: clouds_yaml and cloud go together"
                ));
            }
        }
        for name in self.probe.keys().chain(self.skip.iter()) {
            if probes::checks::find(name).is_none() {
                return Err(format!("unknown probe {name:?}"));
            }
        }
        for e in &self.external {
            if e.command.is_empty() {
                return Err(format!("external {}: empty command", e.name));
            }
            if let Some(t) = &e.timeout {
                probes::units::parse_duration(t)
                    .map_err(|x| format!("external {}: {x}", e.name))?;
            }
        }
        Ok(())
    }

    /// Turn every credential into a file path the probes can read, writing
    /// env / clouds.yaml / inline secrets to 0600 files under `dir`.
    pub fn materialise(&self, dir: &Path) -> Result<BTreeMap<String, PathBuf>, String> {
        let mut out = BTreeMap::new();
        for (name, c) in &self.credentials {
            let secret = if let Some(f) = &c.file {
                out.insert(name.clone(), f.clone());
                continue;
            } else if let Some(var) = &c.env {
                std::env::var(var)
                    .map_err(|_| format!("credential {name}: environment variable {var} not set"))?
            } else if let (Some(path), Some(cloud)) = (&c.clouds_yaml, &c.cloud) {
                clouds_yaml_token(path, cloud).map_err(|e| format!("credential {name}: {e}"))?
            } else if let Some(v) = &c.value {
                v.clone()
            } else {
                return Err(format!("credential {name}: no source"));
            };
            let secret = Secret::new(secret);
            let file = dir.join(format!("{}-{name}", sanitise_name(&self.site)));
            write_private(&file, secret.expose())
                .map_err(|e| format!("credential {name}: {}: {e}", file.display()))?;
            out.insert(name.clone(), file);
        }
        Ok(out)
    }

    /// The API endpoint (`--endpoint`): `endpoints.keystone` or
    /// `endpoints.api`, else the Keystone of a clouds.yaml entry.
    pub fn keystone(&self) -> Option<String> {
        if let Some(k) = self.endpoints.get("keystone").or(self.endpoints.get("api")) {
            return Some(k.clone());
        }
        self.credentials.values().find_map(|c| {
            let (p, cloud) = (c.clouds_yaml.as_ref()?, c.cloud.as_ref()?);
            clouds_yaml_auth(p, cloud)
                .ok()?
                .get("auth_url")?
                .as_str()
                .map(str::to_string)
        })
    }

    /// The argv for one probe: automatic flags (endpoint, credentials, VO,
    /// defaults, guideline timeout) where the probe accepts them, then the
    /// profile's own table for the probe, which wins.
    pub fn argv(
        &self,
        probe: &str,
        accepted: &[String],
        creds: &BTreeMap<String, PathBuf>,
        timeout: Option<&str>,
    ) -> Result<Vec<String>, String> {
        let mut flags: BTreeMap<String, toml::Value> = BTreeMap::new();
        let accepts = |f: &str| accepted.iter().any(|a| a == f);
        if let Some(k) = self.keystone() {
            if accepts("endpoint") {
                flags.insert("endpoint".into(), toml::Value::String(k));
            }
        }
        if self.cloud != probes::auth::cloud::CloudKind::OpenStack && accepts("cloud") {
            flags.insert(
                "cloud".into(),
                toml::Value::String(self.cloud.name().into()),
            );
        }
        for (name, url) in self
            .endpoints
            .iter()
            .filter(|(n, _)| *n != "keystone" && *n != "api")
        {
            let f = name.replace('_', "-");
            if accepts(&f) {
                flags.insert(f, toml::Value::String(url.clone()));
            }
        }
        for (name, path) in creds {
            let f = name.replace('_', "-");
            if accepts(&f) {
                flags.insert(f, toml::Value::String(path.display().to_string()));
            }
        }
        if let Some(vo) = self.vos.first() {
            if accepts("vo") {
                flags.insert("vo".into(), toml::Value::String(vo.clone()));
            }
        }
        if let Some(t) = timeout {
            flags.insert("timeout".into(), toml::Value::String(t.into()));
        }
        for (f, v) in &self.defaults {
            if accepts(f) {
                flags.insert(f.clone(), v.clone());
            }
        }
        let own = self.probe.get(probe);
        if let Some(own) = own {
            for (f, v) in own {
                flags.insert(f.clone(), v.clone());
            }
        }
        // `vo` and `project` are aliases: the profile's explicit one wins.
        if own.is_some_and(|o| o.contains_key("project")) {
            flags.remove("vo");
        }
        let mut argv = vec![probe.to_string()];
        for (f, v) in flags {
            push_flag(&mut argv, &f, &v)?;
        }
        Ok(argv)
    }
}

fn push_flag(argv: &mut Vec<String>, flag: &str, v: &toml::Value) -> Result<(), String> {
    let name = format!("--{flag}");
    match v {
        toml::Value::Boolean(true) => argv.push(name),
        toml::Value::Boolean(false) => {}
        toml::Value::String(s) => {
            argv.push(name);
            argv.push(s.clone());
        }
        toml::Value::Integer(i) => {
            argv.push(name);
            argv.push(i.to_string());
        }
        toml::Value::Float(f) => {
            argv.push(name);
            argv.push(f.to_string());
        }
        toml::Value::Array(items) => {
            for i in items {
                push_flag(argv, flag, i)?;
            }
        }
        other => {
            return Err(format!(
                "flag {flag}: unsupported value {}",
                other.type_str()
            ))
        }
    }
    Ok(())
}

pub fn sanitise_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content.as_bytes())
}

fn clouds_yaml_auth(path: &Path, cloud: &str) -> Result<serde_norway::Mapping, String> {
    let text = probes::files::read_to_string(path, probes::files::DOCUMENT)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // The parser's message may quote the offending value (a secret): say where only.
    let doc: serde_norway::Value = serde_norway::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" at line {} column {}", l.line(), l.column()))
            .unwrap_or_default();
        format!("{}: not valid YAML{at}", path.display())
    })?;
    doc.get("clouds")
        .and_then(|c| c.get(cloud))
        .and_then(|c| c.get("auth"))
        .and_then(|a| a.as_mapping())
        .cloned()
        .ok_or_else(|| format!("{}: no clouds.{cloud}.auth", path.display()))
}

fn clouds_yaml_token(path: &Path, cloud: &str) -> Result<String, String> {
    let auth = clouds_yaml_auth(path, cloud)?;
    auth.get("access_token")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "{}: clouds.{cloud}.auth has no access_token (auth_type v3oidcaccesstoken)",
                path.display()
            )
        })
}
