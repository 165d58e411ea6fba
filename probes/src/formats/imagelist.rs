//! The federation's image lists in their own format (the HEPiX image list
//! that the image registry publishes per VO and that atrope/cloudkeeper
//! read: `{"hv:imagelist": {"hv:images": [{"hv:image": {...}}]}}`), and
//! what a site's images must show for each listed one: present, active, at
//! the listed version and checksum, with the registry's attributes in
//! `APPLIANCE_ATTRIBUTES` (what the synchroniser writes).

use serde_json::{Map, Value};

/// One image of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub identifier: String,
    pub title: String,
    pub version: String,
    pub sha512: String,
    /// Marketplace URI (`ad:mpuri`), versionless.
    pub mpuri: Option<String>,
}

/// A parsed list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct List {
    pub title: String,
    pub vo: Option<String>,
    pub expires: Option<String>,
    pub images: Vec<Listed>,
}

/// A site image as the image service shows it.
#[derive(Clone, Debug, Default)]
pub struct SiteImage {
    pub id: String,
    pub name: String,
    pub status: String,
    /// `APPLIANCE_ATTRIBUTES`, parsed; `None` when absent or not a JSON object.
    pub attributes: Option<Map<String, Value>>,
    /// The sha512 the image service computed (`os_hash_value`), if any.
    pub sha512: Option<String>,
}

/// What became of one listed image at the site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    Ok { image: String },
    Missing,
    NotActive { image: String, status: String },
    Outdated { image: String, have: String },
    Checksum { image: String },
    NoAttributes { image: String },
}

/// A marketplace URI without its trailing `:<version>`.
pub fn versionless(mpuri: &str) -> String {
    let m = mpuri.trim_end_matches('/');
    match m.rsplit_once(':') {
        Some((head, tail)) if !tail.is_empty() && tail.chars().all(|c| c.is_ascii_digit()) => {
            head.to_string()
        }
        _ => m.to_string(),
    }
}

fn text(o: &Map<String, Value>, k: &str) -> Option<String> {
    match o.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parse a list; the error says which field of which image is missing.
pub fn parse(bytes: &[u8]) -> Result<List, String> {
    // The content is not quoted: a wrong path may name a secret file.
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a JSON image list ({e}, {} bytes)", bytes.len()))?;
    let list = v
        .get("hv:imagelist")
        .and_then(Value::as_object)
        .ok_or("no \"hv:imagelist\" object (a signed list must be given as its JSON payload)")?;
    let images = list
        .get("hv:images")
        .and_then(Value::as_array)
        .ok_or("\"hv:imagelist\" has no \"hv:images\" array")?;
    let mut out = List {
        title: text(list, "dc:title").unwrap_or_default(),
        vo: text(list, "ad:vo"),
        expires: text(list, "dc:date:expires"),
        images: Vec::new(),
    };
    for (i, entry) in images.iter().enumerate() {
        let img = entry
            .get("hv:image")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("hv:images[{i}] is not an {{\"hv:image\": {{...}}}}"))?;
        let need = |k: &str| text(img, k).ok_or_else(|| format!("hv:images[{i}] has no {k:?}"));
        out.images.push(Listed {
            identifier: need("dc:identifier")?,
            title: text(img, "dc:title").unwrap_or_default(),
            version: need("hv:version")?,
            sha512: need("sl:checksum:sha512")?.to_ascii_lowercase(),
            mpuri: text(img, "ad:mpuri").map(|m| versionless(&m)),
        });
    }
    Ok(out)
}

/// Is `site` the synchronised copy of `listed`? By identifier, else by
/// marketplace URI (a new version keeps the URI and changes the identifier).
fn same(listed: &Listed, attrs: &Map<String, Value>) -> bool {
    if text(attrs, "dc:identifier").as_deref() == Some(listed.identifier.as_str()) {
        return true;
    }
    match (&listed.mpuri, text(attrs, "ad:mpuri")) {
        (Some(want), Some(have)) => versionless(&have) == *want,
        _ => false,
    }
}

/// The finding for each listed image, in list order.
pub fn compare(list: &List, site: &[SiteImage]) -> Vec<(Listed, Finding)> {
    list.images
        .iter()
        .map(|l| {
            let mut copies: Vec<&SiteImage> = site
                .iter()
                .filter(|s| s.attributes.as_ref().is_some_and(|a| same(l, a)))
                .collect();
            // The best copy first: active, then at the listed version.
            copies.sort_by_key(|s| {
                let version = s.attributes.as_ref().and_then(|a| text(a, "hv:version"));
                (
                    s.status != "active",
                    version.as_deref() != Some(l.version.as_str()),
                )
            });
            let finding = match copies.first() {
                None => {
                    // Same title without attributes: there, but not as the registry's copy.
                    match site.iter().find(|s| {
                        s.attributes.is_none() && !l.title.is_empty() && s.name == l.title
                    }) {
                        Some(s) => Finding::NoAttributes {
                            image: s.id.clone(),
                        },
                        None => Finding::Missing,
                    }
                }
                Some(s) => {
                    let a = s.attributes.clone().unwrap_or_default();
                    let have_version = text(&a, "hv:version").unwrap_or_default();
                    let have_sum = s
                        .sha512
                        .clone()
                        .or_else(|| text(&a, "sl:checksum:sha512"))
                        .map(|x| x.to_ascii_lowercase());
                    if s.status != "active" {
                        Finding::NotActive {
                            image: s.id.clone(),
                            status: s.status.clone(),
                        }
                    } else if have_version != l.version {
                        Finding::Outdated {
                            image: s.id.clone(),
                            have: have_version,
                        }
                    } else if have_sum.as_deref() != Some(l.sha512.as_str()) {
                        Finding::Checksum {
                            image: s.id.clone(),
                        }
                    } else {
                        Finding::Ok {
                            image: s.id.clone(),
                        }
                    }
                }
            };
            (l.clone(), finding)
        })
        .collect()
}

/// One line per finding, for messages.
pub fn describe(l: &Listed, f: &Finding) -> String {
    let who = if l.title.is_empty() {
        l.identifier.clone()
    } else {
        format!("{} ({})", l.title, l.identifier)
    };
    match f {
        Finding::Ok { image } => format!("{who}: present as {image}, version {}", l.version),
        Finding::Missing => format!("{who}: missing at the site"),
        Finding::NotActive { image, status } => format!("{who}: {image} is {status}, not active"),
        Finding::Outdated { image, have } => format!(
            "{who}: outdated, {image} is version {} but the list has {}",
            if have.is_empty() { "(none)" } else { have },
            l.version
        ),
        Finding::Checksum { image } => {
            format!("{who}: {image} does not have the listed sha512 checksum")
        }
        Finding::NoAttributes { image } => format!(
            "{who}: {image} has the title but no registry attributes (APPLIANCE_ATTRIBUTES)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> List {
        let doc = json!({"hv:imagelist": {
        "dc:title": "ops", "ad:vo": "ops", "dc:date:expires": "2499-12-31T22:00:00Z",
        "hv:images": [
            {"hv:image": {"dc:identifier": "a", "dc:title": "A", "hv:version": "2",
                "sl:checksum:sha512": "AA", "ad:mpuri": "https://reg/img/a:7/"}},
            {"hv:image": {"dc:identifier": "b", "dc:title": "B", "hv:version": "1",
                "sl:checksum:sha512": "bb"}},
            {"hv:image": {"dc:identifier": "c", "dc:title": "C", "hv:version": "1",
                "sl:checksum:sha512": "cc"}},
            {"hv:image": {"dc:identifier": "d", "dc:title": "D", "hv:version": "1",
                "sl:checksum:sha512": "dd"}},
        ]}});
        parse(doc.to_string().as_bytes()).unwrap()
    }

    fn site(id: &str, status: &str, attrs: Value, sha: Option<&str>) -> SiteImage {
        SiteImage {
            id: id.into(),
            name: id.into(),
            status: status.into(),
            attributes: attrs.as_object().cloned(),
            sha512: sha.map(String::from),
        }
    }

    #[test]
    fn each_listed_image_is_found_or_named() {
        let l = list();
        assert_eq!(l.vo.as_deref(), Some("ops"));
        assert_eq!(l.images[0].sha512, "aa");
        assert_eq!(l.images[0].mpuri.as_deref(), Some("https://reg/img/a"));
        let s = vec![
            // an older copy of A (found by mpuri) and the current one
            site(
                "a-old",
                "active",
                json!({"dc:identifier": "a0", "hv:version": "1", "ad:mpuri": "https://reg/img/a:6"}),
                Some("00"),
            ),
            site(
                "a-new",
                "active",
                json!({"dc:identifier": "a", "hv:version": "2"}),
                Some("aa"),
            ),
            site(
                "b1",
                "queued",
                json!({"dc:identifier": "b", "hv:version": "1"}),
                None,
            ),
            site(
                "c1",
                "active",
                json!({"dc:identifier": "c", "hv:version": "1", "sl:checksum:sha512": "xx"}),
                None,
            ),
        ];
        let got: Vec<Finding> = compare(&l, &s).into_iter().map(|(_, f)| f).collect();
        assert_eq!(
            got[0],
            Finding::Ok {
                image: "a-new".into()
            }
        );
        assert_eq!(
            got[1],
            Finding::NotActive {
                image: "b1".into(),
                status: "queued".into()
            }
        );
        assert_eq!(got[2], Finding::Checksum { image: "c1".into() });
        assert_eq!(got[3], Finding::Missing);
        // Only the old one: outdated, named.
        let old = compare(&l, &s[..1]);
        assert!(matches!(old[0].1, Finding::Outdated { .. }));
        assert!(describe(&old[0].0, &old[0].1).contains("version 1 but the list has 2"));
        // Present by title, without attributes.
        let bare = compare(&l, &[site("D", "active", Value::Null, None)]);
        assert!(matches!(bare[3].1, Finding::NoAttributes { .. }));
    }

    #[test]
    fn a_list_without_its_fields_is_refused_with_the_field() {
        let e =
            parse(br#"{"hv:imagelist": {"hv:images": [{"hv:image": {"dc:identifier": "x"}}]}}"#)
                .unwrap_err();
        assert!(e.contains("hv:images[0] has no \"hv:version\""), "{e}");
        assert!(parse(b"MIME-Version: 1.0")
            .unwrap_err()
            .contains("not a JSON image list"));
        assert_eq!(versionless("https://a/b:12"), "https://a/b");
        assert_eq!(versionless("https://a:443/b"), "https://a:443/b");
    }
}
