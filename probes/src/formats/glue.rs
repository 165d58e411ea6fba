//! GLUE 2.1 cloud publication: the JSON document cloud-info-provider writes,
//! checked against the JSON Schema kept in the repo and against the rules
//! the schema cannot express (IDs, associations, policies, expiry, endpoint).
//! Pure functions: a document and a clock in, findings out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::OnceLock;

use serde_json::Value;

use crate::model::Status;

pub const SCHEMA_TEXT: &str = include_str!("../../schema/glue21-cloud.schema.json");

/// The classes a cloud publication may hold, in the order we report them.
pub const CLASSES: &[&str] = &[
    "CloudComputingService",
    "CloudComputingManager",
    "CloudComputingEndpoint",
    "Share",
    "MappingPolicy",
    "AccessPolicy",
    "CloudComputingImage",
    "CloudComputingInstanceType",
    "CloudComputingVirtualAccelerator",
];
pub const REQUIRED_CLASSES: &[&str] = &[
    "CloudComputingService",
    "CloudComputingEndpoint",
    "Share",
    "MappingPolicy",
];
/// Classes published once per share, so the same ID may appear repeatedly.
pub const PER_SHARE: &[&str] = &[
    "CloudComputingImage",
    "CloudComputingInstanceType",
    "CloudComputingVirtualAccelerator",
];
/// Warn when the publication expires sooner than this.
pub const EXPIRY_WARNING_SECS: i64 = 3600;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub status: Status,
    /// `Class[ID]` or a JSON pointer.
    pub object: String,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.object.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.object, self.message)
        }
    }
}

/// A published VO share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareInfo {
    pub id: String,
    pub vo: Option<String>,
    pub project_id: String,
    /// `OtherInfo.project_name`, when published.
    pub project_name: Option<String>,
}

impl ShareInfo {
    /// Does this share serve `who` (a VO name or a project name)?
    pub fn serves(&self, who: &str) -> bool {
        self.vo.as_deref() == Some(who) || self.project_name.as_deref() == Some(who)
    }
}

/// A published image or instance type: ID and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Item {
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub counts: BTreeMap<String, usize>,
    /// Seconds until the first object expires (negative: expired).
    pub time_left: Option<i64>,
    /// Age in seconds of the newest CreationTime.
    pub age: Option<i64>,
    pub endpoint_urls: Vec<String>,
    pub shares: Vec<ShareInfo>,
    pub images: Vec<Item>,
    pub instance_types: Vec<Item>,
}

impl Report {
    pub fn status(&self) -> Status {
        Status::worst(self.findings.iter().map(|f| f.status))
    }

    fn add(&mut self, status: Status, object: impl Into<String>, message: impl Into<String>) {
        self.findings.push(Finding {
            status,
            object: object.into(),
            message: message.into(),
        });
    }
}

/// What to compare the document with.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// Unix time now, seconds.
    pub now: i64,
    /// The site's Keystone URL as the monitoring system knows it.
    pub endpoint: Option<String>,
    /// Whose conventions the document follows.
    pub producer: Producer,
}

/// The cloud-info-provider provider a document comes from: its ID
/// conventions, and whether instance types exist at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Producer {
    /// Endpoint `<URL>_OpenStack_v3[_oidc]`; flavors published as instance types.
    #[default]
    OpenStack,
    /// Endpoint `<URL>_OpenNebula`; OpenNebula has no flavors, so no
    /// instance types (ci/producers/cip_opennebula.py).
    OpenNebula,
}

/// Why bytes are not a GLUE document. Its text says what is wrong and
/// where, never quoting the bytes: a local file given by mistake may be a
/// credential. A site's answer is quoted by its caller ([`ParseError::quoting`]).
#[derive(Debug)]
pub enum ParseError {
    NotJson(serde_json::Error),
    /// The top level is this kind of JSON value, not an object.
    NotObject(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NotJson(e) => write!(f, "not JSON ({e})"),
            ParseError::NotObject(kind) => {
                write!(f, "not a GLUE document: top level is {kind}, not an object")
            }
        }
    }
}

impl ParseError {
    /// The error with the head of what a site sent when it was no JSON at
    /// all, which tells a proxy's error page from a broken document.
    pub fn quoting(&self, bytes: &[u8]) -> String {
        match self {
            ParseError::NotJson(_) => {
                format!("{self}: {}", crate::text::describe_body(bytes, ""))
            }
            ParseError::NotObject(_) => self.to_string(),
        }
    }
}

/// Parse bytes as a GLUE JSON document.
pub fn parse(bytes: &[u8]) -> Result<Value, ParseError> {
    let v: Value = serde_json::from_slice(bytes).map_err(ParseError::NotJson)?;
    if !v.is_object() {
        return Err(ParseError::NotObject(kind_of(&v)));
    }
    Ok(v)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn validator() -> Result<&'static jsonschema::Validator, String> {
    static V: OnceLock<Result<jsonschema::Validator, String>> = OnceLock::new();
    V.get_or_init(|| {
        let schema: Value =
            serde_json::from_str(SCHEMA_TEXT).map_err(|e| format!("bad built-in schema: {e}"))?;
        jsonschema::validator_for(&schema).map_err(|e| format!("bad built-in schema: {e}"))
    })
    .as_ref()
    .map_err(|e| e.clone())
}

/// JSON Schema violations as (pointer, message), at most `max`.
pub fn schema_errors(doc: &Value, max: usize) -> Result<Vec<(String, String)>, String> {
    let v = validator()?;
    Ok(v.iter_errors(doc)
        .take(max)
        .map(|e| {
            let path = e.instance_path().to_string();
            let msg = crate::text::one_line(&e.to_string(), 160);
            (if path.is_empty() { "/".into() } else { path }, msg)
        })
        .collect())
}

fn s<'a>(o: &'a Value, key: &str) -> Option<&'a str> {
    o.get(key).and_then(|v| v.as_str())
}

fn label(class: &str, o: &Value) -> String {
    match s(o, "ID") {
        Some(id) => format!("{class}[{}]", crate::text::one_line(id, 100)),
        None => format!("{class}[?]"),
    }
}

/// The whole validation: schema, classes, IDs, associations, policies,
/// expiry, endpoint URL.
pub fn validate(doc: &Value, rules: &Rules) -> Report {
    let mut r = Report::default();
    match schema_errors(doc, 20) {
        Ok(errs) => {
            for (path, msg) in errs {
                r.add(Status::Critical, path, format!("schema: {msg}"));
            }
        }
        Err(e) => r.add(Status::Unknown, "", e),
    }
    let empty = Vec::new();
    let objects = |class: &str| -> &Vec<Value> {
        doc.get(class).and_then(|v| v.as_array()).unwrap_or(&empty)
    };
    for class in CLASSES {
        r.counts.insert((*class).into(), objects(class).len());
    }
    for class in REQUIRED_CLASSES {
        if objects(class).is_empty() {
            r.add(Status::Critical, *class, "no object of this required class");
        }
    }
    for class in ["CloudComputingImage", "CloudComputingInstanceType"] {
        let flavorless = rules.producer == Producer::OpenNebula;
        if objects(class).is_empty() && !(flavorless && class == "CloudComputingInstanceType") {
            r.add(
                Status::Warning,
                class,
                "none published: users cannot pick one",
            );
        }
    }

    // IDs: present, unique per class. cloud-info-provider repeats an image or
    // instance type once per share (same ID), so only those may repeat.
    let mut ids: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for class in CLASSES {
        let may_repeat = PER_SHARE.contains(class);
        let set = ids.entry(class).or_default();
        for o in objects(class) {
            match s(o, "ID") {
                Some(id) if !id.is_empty() => {
                    if !set.insert(id) && !may_repeat {
                        r.add(Status::Critical, label(class, o), "ID published twice");
                    }
                }
                _ => r.add(Status::Critical, format!("{class}[?]"), "object without ID"),
            }
        }
    }

    // Associations must resolve when they name a class of this document.
    for class in CLASSES {
        for o in objects(class) {
            let Some(assoc) = o.get("Associations").and_then(|a| a.as_object()) else {
                continue;
            };
            for (target, list) in assoc {
                let Some(known) = ids.get(target.as_str()) else {
                    continue; // AdminDomain, PolicyUserDomain: outside the document
                };
                for id in list.as_array().into_iter().flatten() {
                    let id = id.as_str().unwrap_or("");
                    if !known.contains(id) {
                        r.add(
                            Status::Critical,
                            label(class, o),
                            format!(
                                "association {target} {:?} does not resolve",
                                crate::text::one_line(id, 100)
                            ),
                        );
                    }
                }
            }
        }
    }

    check_ids(rules.producer, &objects, &mut r);
    check_policies(&objects, &mut r);
    check_times(&objects, rules.now, &mut r);
    check_endpoint(&objects, rules.endpoint.as_deref(), &mut r);

    for o in objects("CloudComputingImage") {
        if let Some(id) = s(o, "ID").filter(|id| !r.images.iter().any(|i| i.id == *id)) {
            r.images.push(Item {
                id: id.into(),
                name: s(o, "Name").unwrap_or("").into(),
            });
        }
    }
    for o in objects("CloudComputingInstanceType") {
        if let Some(id) = s(o, "ID").filter(|id| !r.instance_types.iter().any(|i| i.id == *id)) {
            r.instance_types.push(Item {
                id: id.into(),
                name: s(o, "Name").unwrap_or("").into(),
            });
        }
    }
    r
}

/// cloud-info-provider's conventions: service `<url>_cloud.compute`, endpoint
/// `<url>_OpenStack_v3[_oidc]`, share `<endpoint-id>_share_<vo>_<project>`,
/// mapping policy `<share-id>_Policy`. Deviations are warnings: other
/// producers may differ.
fn check_ids<'a>(producer: Producer, objects: &dyn Fn(&str) -> &'a Vec<Value>, r: &mut Report) {
    for o in objects("CloudComputingService") {
        if let Some(id) = s(o, "ID") {
            if !id.ends_with("_cloud.compute") {
                r.add(
                    Status::Warning,
                    label("CloudComputingService", o),
                    "ID does not follow <endpoint>_cloud.compute",
                );
            }
        }
    }
    let endpoint_ids: Vec<&str> = objects("CloudComputingEndpoint")
        .iter()
        .filter_map(|o| s(o, "ID"))
        .collect();
    for o in objects("CloudComputingEndpoint") {
        if let (Some(id), Some(url)) = (s(o, "ID"), s(o, "URL")) {
            let rest = id.strip_prefix(url);
            let (ok, want) = match producer {
                Producer::OpenStack => (
                    matches!(rest, Some("_OpenStack_v3") | Some("_OpenStack_v3_oidc")),
                    "<URL>_OpenStack_v3",
                ),
                Producer::OpenNebula => (rest == Some("_OpenNebula"), "<URL>_OpenNebula"),
            };
            if !ok {
                r.add(
                    Status::Warning,
                    label("CloudComputingEndpoint", o),
                    format!("ID does not follow {want}"),
                );
            }
        }
    }
    let policies = objects("MappingPolicy");
    for o in objects("Share") {
        let Some(id) = s(o, "ID") else { continue };
        let project = s(o, "ProjectID").unwrap_or("");
        let vo = share_vo(o, policies);
        let ok = endpoint_ids.iter().any(|e| {
            id.strip_prefix(e)
                .and_then(|rest| rest.strip_prefix("_share_"))
                .is_some_and(|rest| {
                    rest.ends_with(&format!("_{project}"))
                        && vo
                            .as_deref()
                            .is_none_or(|v| rest.starts_with(&format!("{v}_")))
                })
        });
        if !ok {
            r.add(
                Status::Warning,
                label("Share", o),
                "ID does not follow <endpoint-id>_share_<vo>_<project>",
            );
        }
        r.shares.push(ShareInfo {
            id: id.into(),
            vo,
            project_id: project.into(),
            project_name: o
                .pointer("/OtherInfo/project_name")
                .and_then(|v| v.as_str())
                .map(String::from),
        });
    }
    for o in policies {
        let (Some(id), Some(shares)) = (
            s(o, "ID"),
            o.pointer("/Associations/Share").and_then(|v| v.as_array()),
        ) else {
            continue;
        };
        let expected: Vec<String> = shares
            .iter()
            .filter_map(|v| v.as_str())
            .map(|sh| format!("{sh}_Policy"))
            .collect();
        if !expected.iter().any(|e| e == id) {
            r.add(
                Status::Warning,
                label("MappingPolicy", o),
                "ID does not follow <share-id>_Policy",
            );
        }
    }
}

/// The VO a share serves: from the MappingPolicy rule `VO:<vo>` that points
/// at it, else from its PolicyUserDomain.
fn share_vo(share: &Value, policies: &[Value]) -> Option<String> {
    let id = s(share, "ID")?;
    for p in policies {
        let points = p
            .pointer("/Associations/Share")
            .and_then(|v| v.as_array())
            .is_some_and(|l| l.iter().any(|x| x.as_str() == Some(id)));
        if !points {
            continue;
        }
        let rules = p.get("Rule").and_then(|v| v.as_array());
        if let Some(vo) = rules
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str())
            .find_map(|x| x.strip_prefix("VO:"))
        {
            return Some(vo.to_string());
        }
        if let Some(d) = p
            .pointer("/Associations/PolicyUserDomain/0")
            .and_then(|v| v.as_str())
        {
            return Some(d.to_string());
        }
    }
    None
}

fn check_policies<'a>(objects: &dyn Fn(&str) -> &'a Vec<Value>, r: &mut Report) {
    let policies = objects("MappingPolicy");
    for sh in objects("Share") {
        let Some(id) = s(sh, "ID") else { continue };
        let has = policies.iter().any(|p| {
            p.pointer("/Associations/Share")
                .and_then(|v| v.as_array())
                .is_some_and(|l| l.iter().any(|x| x.as_str() == Some(id)))
        });
        if !has {
            r.add(
                Status::Critical,
                label("Share", sh),
                "no MappingPolicy for this share",
            );
        }
    }
    for p in policies {
        let rules: Vec<&str> = p
            .get("Rule")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str())
            .collect();
        if !rules.is_empty() && !rules.iter().any(|x| x.starts_with("VO:")) {
            r.add(
                Status::Warning,
                label("MappingPolicy", p),
                format!("no VO:<name> rule among {rules:?}"),
            );
        }
    }
}

fn check_times<'a>(objects: &dyn Fn(&str) -> &'a Vec<Value>, now: i64, r: &mut Report) {
    let mut expired: Vec<String> = Vec::new();
    let mut soonest: Option<(i64, String)> = None;
    for class in CLASSES {
        for o in objects(class) {
            let Some(ct) = s(o, "CreationTime") else {
                continue; // the schema reports it
            };
            let Some(created) = crate::clock::parse_iso(ct) else {
                r.add(
                    Status::Critical,
                    label(class, o),
                    format!(
                        "CreationTime {:?} is not a date-time",
                        crate::text::one_line(ct, 40)
                    ),
                );
                continue;
            };
            let Some(validity) = o.get("Validity").and_then(|v| v.as_i64()) else {
                continue;
            };
            let age = now - created;
            r.age = Some(r.age.map_or(age, |a: i64| a.min(age)));
            let left = created.saturating_add(validity) - now;
            if left < 0 {
                expired.push(label(class, o));
            }
            if soonest.as_ref().is_none_or(|(l, _)| left < *l) {
                soonest = Some((left, label(class, o)));
            }
        }
    }
    if let Some((left, who)) = soonest {
        r.time_left = Some(left);
        if !expired.is_empty() {
            r.add(
                Status::Critical,
                expired[0].clone(),
                format!(
                    "publication expired {}s ago (CreationTime + Validity is past){}",
                    -left,
                    if expired.len() > 1 {
                        format!("; {} objects expired", expired.len())
                    } else {
                        String::new()
                    }
                ),
            );
        } else if left < EXPIRY_WARNING_SECS {
            r.add(
                Status::Warning,
                who,
                format!("publication expires in {left}s (less than an hour)"),
            );
        }
    }
}

fn check_endpoint<'a>(
    objects: &dyn Fn(&str) -> &'a Vec<Value>,
    want: Option<&str>,
    r: &mut Report,
) {
    let urls: Vec<String> = objects("CloudComputingEndpoint")
        .iter()
        .filter_map(|o| s(o, "URL").map(String::from))
        .collect();
    r.endpoint_urls = urls.clone();
    let Some(want) = want else { return };
    let w = normalise_url(want);
    if !urls.iter().any(|u| normalise_url(u) == w) {
        r.add(
            Status::Critical,
            "CloudComputingEndpoint",
            format!(
                "published URL(s) {} do not match the endpoint {want}",
                if urls.is_empty() {
                    "(none)".to_string()
                } else {
                    urls.join(", ")
                }
            ),
        );
    }
}

/// Compare URLs the way GOCDB/ARGO ones need: scheme and host lower case,
/// default ports dropped (ARGO adds `:443`), no trailing slash.
pub fn normalise_url(u: &str) -> String {
    match reqwest::Url::parse(u.trim()) {
        Ok(url) => {
            let host = url.host_str().unwrap_or("").to_ascii_lowercase();
            let port = url
                .port_or_known_default()
                .filter(|p| Some(*p) != default_port(url.scheme()))
                .map(|p| format!(":{p}"))
                .unwrap_or_default();
            let path = url.path().trim_end_matches('/');
            format!("{}://{host}{port}{path}", url.scheme())
        }
        Err(_) => u.trim().trim_end_matches('/').to_ascii_lowercase(),
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    }
}

/// Published names or IDs missing from what the site lists: `published`
/// items whose ID and name are both absent from `live`.
pub fn drift(published: &[Item], live: &[Item]) -> Vec<Item> {
    let ids: BTreeSet<&str> = live.iter().map(|i| i.id.as_str()).collect();
    published
        .iter()
        .filter(|p| !ids.contains(p.id.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_normalise_default_ports() {
        assert_eq!(
            normalise_url("https://Cloud.Example.org:443/v3/"),
            normalise_url("https://cloud.example.org/v3")
        );
        assert_ne!(
            normalise_url("https://cloud.example.org:5000/v3"),
            normalise_url("https://cloud.example.org/v3")
        );
    }

    #[test]
    fn schema_compiles() {
        assert!(validator().is_ok());
    }
}
