//! Reading a GLUE 2 BDII over LDAP (plain `ldap://`, async `ldap3`) and
//! turning its cloud entries into the GLUE 2.1 JSON shape, so one validator
//! serves every source. The attribute mapping is the reverse of
//! `ci/producers/glue2ldif.py` with `ci/producers/glue21-cloud.schema`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::fail::Fail;

/// One LDAP entry: DN and attributes (values as text).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Entry {
    pub dn: String,
    pub attrs: BTreeMap<String, Vec<String>>,
}

/// The most of a BDII's answer read: a site's GLUE 2 cloud entries are a
/// few hundred entries and tens of KB, a top BDII's whole tree tens of MB.
/// Past it the answer is the site's fault, not a reason to fill memory.
pub const MAX_ANSWER: u64 = 64 << 20;
/// The most entries kept from one search (each costs far more in memory
/// than its bytes on the wire).
pub const MAX_ENTRIES: usize = 100_000;

/// Search `base` (subtree) for GLUE 2 entries. Connection and protocol
/// problems are the site's: CRITICAL, naming the server and what happened.
/// What the server sends is bounded ([`MAX_ANSWER`], [`MAX_ENTRIES`]): the
/// LDAP library buffers a message whole, whatever length it claims.
pub async fn fetch(url: &str, base: &str, timeout: Duration) -> Result<Vec<Entry>, Fail> {
    use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
    let timeout = timeout.max(Duration::from_millis(100));
    let work = async {
        let (stream, relay) = bounded(url).await?;
        let settings = LdapConnSettings::new()
            .set_conn_timeout(timeout)
            .set_std_stream(ldap3::StdStream::Unix(stream));
        // The site's socket is the relay's; the library reads our end of it.
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, "ldapi:///")
            .await
            .map_err(|e| relay.said(url, "cannot connect", &e))?;
        ldap3::drive!(conn);
        ldap.with_timeout(timeout);
        let mut search = ldap
            .streaming_search(base, Scope::Subtree, "(objectClass=*)", vec!["*"])
            .await
            .map_err(|e| relay.said(url, "search failed", &e))?;
        let mut raw = Vec::new();
        while let Some(r) = search
            .next()
            .await
            .map_err(|e| relay.said(url, "search failed", &e))?
        {
            if raw.len() == MAX_ENTRIES {
                return Err(Fail::critical(format!(
                    "{url}: more than {MAX_ENTRIES} entries under {base}: stopped reading"
                )));
            }
            raw.push(r);
        }
        search
            .finish()
            .await
            .success()
            .map_err(|e| relay.said(url, &format!("search of {base} refused"), &e))?;
        let _ = ldap.unbind().await;
        let mut out = Vec::with_capacity(raw.len());
        for r in raw {
            // `construct` panics on malformed BER; a bad server must not crash us.
            let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                SearchEntry::construct(r)
            }))
            .map_err(|_| Fail::critical(format!("{url}: malformed LDAP entry in the answer")))?;
            let mut attrs: BTreeMap<String, Vec<String>> = e.attrs.into_iter().collect();
            for (k, v) in e.bin_attrs {
                attrs.insert(
                    k,
                    v.iter()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .collect(),
                );
            }
            out.push(Entry { dn: e.dn, attrs });
        }
        Ok(out)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        // Like the HTTP layer: running out of the deadline is a timeout,
        // reported with the -t policy (--timeout-status).
        Err(_) => Err(Fail::timeout(format!(
            "{url}: no LDAP answer within {:.1}s",
            timeout.as_secs_f64()
        ))),
    }
}

/// The relay between the site's socket and the LDAP library: it copies at
/// most [`MAX_ANSWER`] bytes from the site, then hangs up, and keeps how
/// the site's side ended (the library sees only our end close). Stopped
/// when dropped.
struct Relay {
    task: tokio::task::JoinHandle<()>,
    ended: std::sync::Arc<std::sync::Mutex<Option<Ended>>>,
}

#[derive(Clone, Copy)]
enum Ended {
    /// More than [`MAX_ANSWER`] came: the relay hung up.
    Cut,
    /// The site closed its end.
    Closed,
    /// Reading from the site failed.
    Failed(std::io::ErrorKind),
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// The library's error, said by what the site's side did to cause it.
    fn said(&self, url: &str, what: &str, e: &ldap3::LdapError) -> Fail {
        let ended = *self.ended.lock().unwrap_or_else(|p| p.into_inner());
        match ended {
            Some(Ended::Cut) => Fail::critical(format!(
                "{url}: {what}: the answer is more than {} MiB: stopped reading",
                MAX_ANSWER >> 20
            )),
            Some(Ended::Failed(kind)) => describe(
                url,
                what,
                &ldap3::LdapError::from(std::io::Error::from(kind)),
            ),
            Some(Ended::Closed) => {
                let why = crate::text::one_line(&crate::http::chain(e), 200);
                Fail::critical(format!(
                    "{url}: {what}: the server closed the connection ({why})"
                ))
            }
            None => describe(url, what, e),
        }
    }
}

/// Connect to `url`'s server; our end of the relay to it.
async fn bounded(url: &str) -> Result<(std::os::unix::net::UnixStream, Relay), Fail> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let parsed = reqwest::Url::parse(url).map_err(|e| Fail::unknown(format!("{url}: {e}")))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| Fail::unknown(format!("{url}: no host")))?
        .trim_matches(['[', ']'])
        .to_string();
    let port = parsed.port().unwrap_or(389);
    let site = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| describe(url, "cannot connect", &ldap3::LdapError::from(e)))?;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()
        .map_err(|e| Fail::unknown(format!("LDAP relay: {e}")))?;
    theirs
        .set_nonblocking(true)
        .map_err(|e| Fail::unknown(format!("LDAP relay: {e}")))?;
    let theirs = tokio::net::UnixStream::from_std(theirs)
        .map_err(|e| Fail::unknown(format!("LDAP relay: {e}")))?;
    let ended = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = ended.clone();
    let task = tokio::spawn(async move {
        let (mut site_r, mut site_w) = site.into_split();
        let (mut lib_r, mut lib_w) = theirs.into_split();
        let down = async {
            // Only the site's side is recorded: a write that fails is the
            // library having hung up, and its own error says why.
            let mut buf = vec![0u8; 16 * 1024];
            let mut total = 0u64;
            let how = loop {
                match site_r.read(&mut buf).await {
                    Ok(0) => break Some(Ended::Closed),
                    Ok(n) => {
                        total += n as u64;
                        if total > MAX_ANSWER {
                            break Some(Ended::Cut);
                        }
                        if lib_w.write_all(&buf[..n]).await.is_err() {
                            break None;
                        }
                    }
                    Err(e) => break Some(Ended::Failed(e.kind())),
                }
            };
            if how.is_some() {
                *seen.lock().unwrap_or_else(|p| p.into_inner()) = how;
            }
            let _ = lib_w.shutdown().await;
        };
        let up = tokio::io::copy(&mut lib_r, &mut site_w);
        tokio::select! {
            _ = down => {}
            _ = up => {}
        }
    });
    Ok((ours, Relay { task, ended }))
}

fn describe(url: &str, what: &str, e: &ldap3::LdapError) -> Fail {
    use crate::model::Transport;
    use std::io::ErrorKind;
    // The I/O error's kind says what happened; other errors keep their text.
    let class = match e {
        ldap3::LdapError::Io { source } => match source.kind() {
            ErrorKind::ConnectionRefused => Some((Transport::Refused, "connection refused")),
            ErrorKind::TimedOut => Some((Transport::Timeout, "timed out")),
            ErrorKind::ConnectionReset => Some((Transport::Reset, "connection reset")),
            _ => None,
        },
        _ => None,
    };
    match class {
        Some((t, why)) => Fail::critical(format!("{url}: {what}: {why}")).with_transport(t),
        None => {
            let why = crate::text::one_line(&crate::http::chain(e), 200);
            Fail::critical(format!("{url}: {what}: {why}"))
        }
    }
}

/// How each cloud class looks in LDAP: the object class that marks it, the
/// ID attribute, attribute prefixes to strip, and foreign keys.
struct LdapClass {
    class: &'static str,
    marker: &'static str,
    id: &'static str,
    prefixes: &'static [&'static str],
}

const LDAP_CLASSES: &[LdapClass] = &[
    LdapClass {
        class: "CloudComputingService",
        marker: "GLUE2CloudComputingService",
        id: "GLUE2ServiceID",
        prefixes: &["GLUE2CloudComputingService", "GLUE2Service"],
    },
    LdapClass {
        class: "CloudComputingManager",
        marker: "GLUE2CloudComputingManager",
        id: "GLUE2ManagerID",
        prefixes: &["GLUE2CloudComputingManager", "GLUE2Manager"],
    },
    LdapClass {
        class: "CloudComputingEndpoint",
        marker: "GLUE2CloudComputingEndpoint",
        id: "GLUE2EndpointID",
        prefixes: &["GLUE2CloudComputingEndpoint", "GLUE2Endpoint"],
    },
    LdapClass {
        class: "Share",
        marker: "GLUE2CloudComputingShare",
        id: "GLUE2ShareID",
        prefixes: &["GLUE2CloudComputingShare", "GLUE2Share"],
    },
    LdapClass {
        class: "MappingPolicy",
        marker: "GLUE2MappingPolicy",
        id: "GLUE2PolicyID",
        prefixes: &["GLUE2MappingPolicy", "GLUE2Policy"],
    },
    LdapClass {
        class: "AccessPolicy",
        marker: "GLUE2AccessPolicy",
        id: "GLUE2PolicyID",
        prefixes: &["GLUE2AccessPolicy", "GLUE2Policy"],
    },
    LdapClass {
        class: "CloudComputingImage",
        marker: "GLUE2CloudComputingImage",
        id: "GLUE2CloudComputingImageID",
        prefixes: &["GLUE2CloudComputingImage"],
    },
    LdapClass {
        class: "CloudComputingInstanceType",
        marker: "GLUE2CloudComputingInstanceType",
        id: "GLUE2CloudComputingInstanceTypeID",
        prefixes: &["GLUE2CloudComputingInstanceType"],
    },
    LdapClass {
        class: "CloudComputingVirtualAccelerator",
        marker: "GLUE2CloudComputingVirtualAccelerator",
        id: "GLUE2CloudComputingVirtualAcceleratorID",
        prefixes: &["GLUE2CloudComputingVirtualAccelerator"],
    },
];

/// `<Target>ForeignKey` to the association class it names.
fn association(target: &str) -> &str {
    match target {
        "Service" => "CloudComputingService",
        "Manager" => "CloudComputingManager",
        "Endpoint" => "CloudComputingEndpoint",
        "InstanceType" => "CloudComputingInstanceType",
        "VirtualAccelerator" => "CloudComputingVirtualAccelerator",
        "Image" => "CloudComputingImage",
        "UserDomain" => "PolicyUserDomain",
        other => other,
    }
}

const INTEGERS: &[&str] = &[
    "Validity",
    "TotalVM",
    "RunningVM",
    "SuspendedVM",
    "HaltedVM",
    "MaxVM",
    "TotalCPUs",
    "TotalRAM",
    "InstanceMaxCPU",
    "InstanceMinCPU",
    "InstanceMaxRAM",
    "InstanceMinRAM",
    "CPU",
    "RAM",
    "Disk",
    "Number",
    "ClockSpeed",
    "Memory",
];
const LISTS: &[&str] = &["Capability", "Rule", "TrustedCA", "ComputeCapability"];
const TRISTATES: &[&str] = &["NetworkIn", "NetworkOut"];

fn get_ci<'a>(attrs: &'a BTreeMap<String, Vec<String>>, name: &str) -> Option<&'a Vec<String>> {
    attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn strip_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

/// The GLUE 2.1 JSON document the entries describe. Entries of no cloud
/// class (groups, GLUE 2.0 compute services, ...) are left out.
pub fn to_glue(entries: &[Entry]) -> Value {
    let mut doc: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for e in entries {
        let classes: Vec<&String> = get_ci(&e.attrs, "objectClass")
            .into_iter()
            .flatten()
            .collect();
        let Some(lc) = LDAP_CLASSES
            .iter()
            .find(|c| classes.iter().any(|oc| oc.eq_ignore_ascii_case(c.marker)))
        else {
            continue;
        };
        doc.entry(lc.class)
            .or_default()
            .push(Value::Object(entry_object(lc, e)));
    }
    Value::Object(
        doc.into_iter()
            .map(|(k, v)| (k.to_string(), Value::Array(v)))
            .collect(),
    )
}

fn entry_object(lc: &LdapClass, e: &Entry) -> Map<String, Value> {
    let mut o = Map::new();
    let mut other = Map::new();
    let mut assoc: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (name, values) in &e.attrs {
        let first = values.first().cloned().unwrap_or_default();
        if name.eq_ignore_ascii_case("objectClass") {
            continue;
        }
        if name.eq_ignore_ascii_case(lc.id) {
            o.insert("ID".into(), Value::String(first));
            continue;
        }
        if let Some(field) = strip_ci(name, "GLUE2Entity") {
            match field {
                "OtherInfo" => {
                    for v in values {
                        let (k, val) = v.split_once('=').unwrap_or((v.as_str(), ""));
                        let val = serde_json::from_str::<Value>(val)
                            .ok()
                            .filter(|j| j.is_object() || j.is_array())
                            .unwrap_or_else(|| Value::String(val.to_string()));
                        other.insert(k.to_string(), val);
                    }
                }
                "Validity" => {
                    o.insert("Validity".into(), typed("Validity", &first));
                }
                f => {
                    o.insert(f.to_string(), Value::String(first));
                }
            }
            continue;
        }
        let field = lc
            .prefixes
            .iter()
            .find_map(|p| strip_ci(name, p))
            .unwrap_or(name.as_str());
        if let Some(target) = field.strip_suffix("ForeignKey") {
            let list = assoc.entry(association(target).to_string()).or_default();
            list.extend(values.iter().cloned().map(Value::String));
            continue;
        }
        let v = if LISTS.contains(&field) {
            Value::Array(values.iter().cloned().map(Value::String).collect())
        } else {
            typed(field, &first)
        };
        o.insert(field.to_string(), v);
    }
    if !other.is_empty() {
        o.insert("OtherInfo".into(), Value::Object(other));
    }
    if !assoc.is_empty() {
        o.insert(
            "Associations".into(),
            Value::Object(
                assoc
                    .into_iter()
                    .map(|(k, v)| (k, Value::Array(v)))
                    .collect(),
            ),
        );
    }
    o
}

/// LDAP values are text; numbers and booleans go back to JSON types. A value
/// that does not parse stays text, so the schema reports it.
fn typed(field: &str, v: &str) -> Value {
    if INTEGERS.contains(&field) {
        if let Ok(n) = v.trim().parse::<i64>() {
            return Value::from(n);
        }
    }
    if TRISTATES.contains(&field) {
        match v.trim().to_ascii_uppercase().as_str() {
            "TRUE" => return Value::Bool(true),
            "FALSE" => return Value::Bool(false),
            _ => {}
        }
    }
    Value::String(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pairs: &[(&str, &str)]) -> Entry {
        let mut e = Entry::default();
        for (k, v) in pairs {
            e.attrs
                .entry(k.to_string())
                .or_default()
                .push(v.to_string());
        }
        e
    }

    #[test]
    fn maps_share_and_policy() {
        let share = entry(&[
            ("objectClass", "GLUE2Share"),
            ("objectClass", "GLUE2CloudComputingShare"),
            ("GLUE2ShareID", "ep_share_vo_p1"),
            ("GLUE2EntityValidity", "3600"),
            ("GLUE2EntityOtherInfo", "quotas={\"cores\": 5}"),
            ("GLUE2EntityOtherInfo", "project_name=p"),
            ("GLUE2ShareServiceForeignKey", "svc"),
            ("GLUE2CloudComputingShareProjectID", "p1"),
            ("GLUE2CloudComputingShareMaxVM", "4"),
        ]);
        let pol = entry(&[
            ("objectClass", "GLUE2MappingPolicy"),
            ("GLUE2PolicyID", "ep_share_vo_p1_Policy"),
            ("GLUE2PolicyRule", "VO:vo"),
            ("GLUE2MappingPolicyShareForeignKey", "ep_share_vo_p1"),
            ("GLUE2PolicyUserDomainForeignKey", "vo"),
        ]);
        let doc = to_glue(&[share, pol, entry(&[("objectClass", "GLUE2Group")])]);
        let s = &doc["Share"][0];
        assert_eq!(s["ID"], "ep_share_vo_p1");
        assert_eq!(s["ProjectID"], "p1");
        assert_eq!(s["MaxVM"], 4);
        assert_eq!(s["Validity"], 3600);
        assert_eq!(s["OtherInfo"]["quotas"]["cores"], 5);
        assert_eq!(s["OtherInfo"]["project_name"], "p");
        assert_eq!(s["Associations"]["CloudComputingService"][0], "svc");
        let p = &doc["MappingPolicy"][0];
        assert_eq!(p["Rule"][0], "VO:vo");
        assert_eq!(p["Associations"]["Share"][0], "ep_share_vo_p1");
        assert_eq!(p["Associations"]["PolicyUserDomain"][0], "vo");
        assert!(doc.get("GLUE2Group").is_none());
    }
}
