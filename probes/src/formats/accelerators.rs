//! The federation's accelerator flavor properties (`Accelerator:Type`,
//! `:Number`, `:Vendor`, `:Model`, `:Memory`, Nova extra specs) and the GLUE
//! 2.1 `CloudComputingVirtualAccelerator` entities the producer builds from
//! them. cloud-info-provider 1.2.0 publishes one `<flavor id>_gpu` entity per
//! flavor with an `Accelerator:Number`, associated both ways with the
//! flavor's instance type; it does not read `Accelerator:Type` (Type is
//! always "GPU"), publishes "UNKNOWN" for a missing Vendor or Model and
//! publishes no Memory. Pure functions: properties and documents in,
//! findings out.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

pub const PREFIX: &str = "Accelerator:";
/// GLUE 2.1's accelerator types.
pub const TYPES: &[&str] = &["GPU", "FPGA", "MIC"];
/// The Type cloud-info-provider publishes for every accelerator.
pub const PRODUCER_TYPE: &str = "GPU";
/// What it publishes for a missing Vendor or Model.
pub const UNKNOWN: &str = "UNKNOWN";
/// The properties the producer knows (its `--property-flavor-gpu-*` defaults).
const KNOWN: &[&str] = &[
    "Type",
    "Number",
    "Vendor",
    "Model",
    "Memory",
    "VirtualizationType",
];

/// A well-formed accelerator as a flavor describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accelerator {
    /// Upper-case GLUE type, if the flavor says.
    pub kind: Option<String>,
    pub number: u64,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub memory_mb: Option<u64>,
}

impl Accelerator {
    /// What a correct publication holds for this flavor.
    pub fn expected_kind(&self) -> &str {
        self.kind.as_deref().unwrap_or(PRODUCER_TYPE)
    }
}

impl std::fmt::Display for Accelerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} x{} {} {}",
            self.expected_kind(),
            self.number,
            self.vendor.as_deref().unwrap_or(UNKNOWN),
            self.model.as_deref().unwrap_or(UNKNOWN)
        )
    }
}

/// One flavor's accelerator properties, read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spec {
    /// Present when the properties are well formed.
    pub accelerator: Option<Accelerator>,
    /// Malformed or missing values (the flavor's accelerator is wrong or unpublishable).
    pub problems: Vec<String>,
    /// Incomplete but usable (published with UNKNOWN, or ignored).
    pub notes: Vec<String>,
}

/// Whether a flavor carries any `Accelerator:*` property.
pub fn has_accelerator<'a>(keys: impl IntoIterator<Item = &'a String>) -> bool {
    keys.into_iter().any(|k| k.starts_with(PREFIX))
}

/// Read a flavor's extra specs; `None` when it has no `Accelerator:*` property.
pub fn read(specs: &BTreeMap<String, String>) -> Option<Spec> {
    if !has_accelerator(specs.keys()) {
        return None;
    }
    let get = |k: &str| {
        specs
            .get(&format!("{PREFIX}{k}"))
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let mut s = Spec::default();
    let kind = match get("Type") {
        None => None,
        Some(t) => match TYPES.iter().find(|x| x.eq_ignore_ascii_case(t)) {
            Some(x) => Some(x.to_string()),
            None => {
                s.problems.push(format!(
                    "{PREFIX}Type {t:?} is not one of {}",
                    TYPES.join(", ")
                ));
                None
            }
        },
    };
    let number = match get("Number") {
        None => {
            s.problems.push(format!(
                "no {PREFIX}Number: cloud-info-provider publishes no accelerator for it"
            ));
            None
        }
        Some(n) => match n.parse::<i64>() {
            Ok(v) if v >= 1 => Some(v as u64),
            Ok(v) => {
                s.problems
                    .push(format!("{PREFIX}Number {v} is not a positive count"));
                None
            }
            Err(_) => {
                s.problems.push(format!(
                    "{PREFIX}Number {n:?} is not a whole number (cloud-info-provider fails the whole publication on it)"
                ));
                None
            }
        },
    };
    let memory_mb = match get("Memory") {
        None => None,
        Some(m) => match memory_mb(m) {
            Ok(v) => Some(v),
            Err(e) => {
                s.problems.push(format!("{PREFIX}Memory {e}"));
                None
            }
        },
    };
    let vendor = get("Vendor").map(String::from);
    let model = get("Model").map(String::from);
    for (what, v) in [("Vendor", &vendor), ("Model", &model)] {
        if v.is_none() {
            s.notes
                .push(format!("no {PREFIX}{what}: published as {UNKNOWN}"));
        }
    }
    for k in specs.keys() {
        if let Some(rest) = k.strip_prefix(PREFIX) {
            if !KNOWN.contains(&rest) {
                s.notes.push(format!("unknown property {k} (ignored)"));
            }
        }
    }
    if let (Some(number), true) = (number, s.problems.is_empty()) {
        s.accelerator = Some(Accelerator {
            kind,
            number,
            vendor,
            model,
            memory_mb,
        });
    }
    Some(s)
}

/// `16384` (MB, GLUE's unit) or a size with a unit (`16G`, `16GiB`, `512MB`).
fn memory_mb(m: &str) -> Result<u64, String> {
    if let Ok(v) = m.parse::<u64>() {
        return if v >= 1 {
            Ok(v)
        } else {
            Err(format!("{m:?} is not a positive size"))
        };
    }
    let bytes = crate::units::parse_size(m).map_err(|_| format!("{m:?} is not a size"))?;
    if bytes < 1 << 20 {
        return Err(format!("{m:?} is less than 1 MB"));
    }
    Ok(bytes >> 20)
}

/// An accelerator entity of a publication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub id: String,
    /// Instance types it belongs to (its associations and theirs).
    pub instance_types: BTreeSet<String>,
    pub kind: String,
    pub number: Option<u64>,
    pub vendor: String,
    pub model: String,
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} x", self.kind)?;
        match self.number {
            Some(n) => write!(f, "{n}")?,
            None => write!(f, "?")?,
        }
        write!(f, " {} {}", self.vendor, self.model)
    }
}

/// The accelerator entities of a document, once each (the producer repeats
/// them per share), with the instance types that point at them.
pub fn published(doc: &Value) -> Vec<Published> {
    let list = |class: &str| -> Vec<&Value> {
        doc.get(class)
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    };
    let assoc = |o: &Value, class: &str| -> Vec<String> {
        o.get("Associations")
            .and_then(|a| a.get(class))
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let text = |o: &Value, k: &str| -> String {
        o.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(UNKNOWN)
            .to_string()
    };
    let mut out: BTreeMap<String, Published> = BTreeMap::new();
    for a in list("CloudComputingVirtualAccelerator") {
        let Some(id) = a.get("ID").and_then(Value::as_str) else {
            continue;
        };
        let e = out.entry(id.to_string()).or_insert_with(|| Published {
            id: id.to_string(),
            instance_types: BTreeSet::new(),
            kind: text(a, "Type"),
            number: a.get("Number").and_then(Value::as_u64),
            vendor: text(a, "Vendor"),
            model: text(a, "Model"),
        });
        e.instance_types
            .extend(assoc(a, "CloudComputingInstanceType"));
    }
    for t in list("CloudComputingInstanceType") {
        let Some(tid) = t.get("ID").and_then(Value::as_str) else {
            continue;
        };
        for aid in assoc(t, "CloudComputingVirtualAccelerator") {
            if let Some(p) = out.get_mut(&aid) {
                p.instance_types.insert(tid.to_string());
            }
        }
    }
    out.into_values().collect()
}

/// One flavor as Nova shows it, for the comparison.
pub struct LiveFlavor<'a> {
    pub id: &'a str,
    pub name: &'a str,
    /// `Some(None)`: accelerator properties present but malformed (not compared).
    pub accelerator: Option<Option<&'a Accelerator>>,
}

/// Where a publication disagrees with the live flavors about accelerators.
/// `instance_types`: the IDs of the flavors the publication lists.
pub fn mismatches(
    live: &[LiveFlavor<'_>],
    instance_types: &BTreeSet<String>,
    published: &[Published],
) -> Vec<String> {
    let mut out = Vec::new();
    for f in live {
        let mine: Vec<&Published> = published
            .iter()
            .filter(|p| p.instance_types.contains(f.id))
            .collect();
        let who = format!("flavor {} ({})", f.name, f.id);
        match f.accelerator {
            // Malformed: ACCEL-01 says so; nothing to compare against.
            Some(None) => {}
            Some(Some(a)) if !instance_types.contains(f.id) => {
                out.push(format!("{who} with {a} is not published"))
            }
            Some(Some(a)) => match mine.as_slice() {
                [] => out.push(format!("{who} with {a} published without an accelerator")),
                [p] => {
                    let d = differences(a, p);
                    if !d.is_empty() {
                        out.push(format!("{who}: {}", d.join(", ")));
                    }
                }
                many => out.push(format!(
                    "{who} with {a} published with {} accelerators ({})",
                    many.len(),
                    many.iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                )),
            },
            None => {
                for p in mine {
                    out.push(format!(
                        "{who} has no {PREFIX}* properties but is published with {p} ({})",
                        p.id
                    ));
                }
            }
        }
    }
    out
}

fn differences(a: &Accelerator, p: &Published) -> Vec<String> {
    let mut d = Vec::new();
    let kind = a.expected_kind();
    if !kind.eq_ignore_ascii_case(&p.kind) {
        let why = if p.kind == PRODUCER_TYPE {
            " (cloud-info-provider publishes every accelerator as GPU)"
        } else {
            ""
        };
        d.push(format!("type {kind} in Nova, {} published{why}", p.kind));
    }
    if p.number != Some(a.number) {
        d.push(format!(
            "number {} in Nova, {} published",
            a.number,
            p.number.map_or("none".to_string(), |n| n.to_string())
        ));
    }
    for (what, live, publ) in [
        ("vendor", &a.vendor, &p.vendor),
        ("model", &a.model, &p.model),
    ] {
        let live = live.as_deref().unwrap_or(UNKNOWN);
        if live != publ {
            d.push(format!("{what} {live:?} in Nova, {publ:?} published"));
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn specs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
            .collect()
    }

    #[test]
    fn no_accelerator_properties_is_none() {
        let mut m = BTreeMap::new();
        m.insert("hw:cpu_policy".to_string(), "dedicated".to_string());
        assert_eq!(read(&m), None);
    }

    #[test]
    fn well_formed_properties_give_an_accelerator() {
        let s = read(&specs(&[
            ("Type", "gpu"),
            ("Number", "2"),
            ("Vendor", "NVIDIA"),
            ("Model", "A100"),
            ("Memory", "40G"),
        ]))
        .unwrap();
        assert!(s.problems.is_empty() && s.notes.is_empty(), "{s:?}");
        let a = s.accelerator.unwrap();
        assert_eq!(a.kind.as_deref(), Some("GPU"));
        assert_eq!((a.number, a.memory_mb), (2, Some(40 * 1024)));
        assert_eq!(a.to_string(), "GPU x2 NVIDIA A100");
    }

    #[test]
    fn malformed_values_are_problems() {
        for (pairs, want) in [
            (vec![("Number", "zero")], "not a whole number"),
            (vec![("Number", "0")], "Number 0 is not a positive count"),
            (vec![("Number", "-1")], "not a positive count"),
            (
                vec![("Number", "1"), ("Type", "TPU")],
                "Type \"TPU\" is not one of GPU, FPGA, MIC",
            ),
            (
                vec![("Number", "1"), ("Memory", "lots")],
                "Memory \"lots\" is not a size",
            ),
            (
                vec![("Number", "1"), ("Memory", "0")],
                "not a positive size",
            ),
            (vec![("Type", "GPU")], "no Accelerator:Number"),
        ] {
            let s = read(&specs(&pairs)).unwrap();
            assert!(s.accelerator.is_none(), "{pairs:?}");
            assert!(
                s.problems.iter().any(|p| p.contains(want)),
                "{pairs:?}: {s:?}"
            );
        }
    }

    #[test]
    fn missing_vendor_and_unknown_keys_are_notes() {
        let mut m = specs(&[("Number", "1"), ("Nummber", "2")]);
        m.insert("other".into(), "x".into());
        let s = read(&m).unwrap();
        assert!(s.problems.is_empty());
        assert_eq!(s.notes.len(), 3, "{s:?}");
        assert!(s.accelerator.is_some());
    }

    fn doc() -> Value {
        json!({
            "CloudComputingInstanceType": [
                {"ID": "7", "Associations": {"CloudComputingVirtualAccelerator": ["7_gpu"]}},
                {"ID": "7", "Associations": {"CloudComputingVirtualAccelerator": ["7_gpu"]}},
                {"ID": "8"}
            ],
            "CloudComputingVirtualAccelerator": [
                {"ID": "7_gpu", "Type": "GPU", "Number": 2, "Vendor": "NVIDIA", "Model": "A100",
                 "Associations": {"CloudComputingInstanceType": ["7"]}},
                {"ID": "7_gpu", "Type": "GPU", "Number": 2, "Vendor": "NVIDIA", "Model": "A100",
                 "Associations": {"CloudComputingInstanceType": ["7"]}}
            ]
        })
    }

    #[test]
    fn published_accelerators_are_merged_per_id() {
        let p = published(&doc());
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].to_string(), "GPU x2 NVIDIA A100");
        assert!(p[0].instance_types.contains("7"));
    }

    #[test]
    fn comparison_names_each_difference() {
        let p = published(&doc());
        let types: BTreeSet<String> = ["7".to_string(), "8".to_string()].into();
        let same = read(&specs(&[
            ("Number", "2"),
            ("Vendor", "NVIDIA"),
            ("Model", "A100"),
        ]))
        .unwrap()
        .accelerator
        .unwrap();
        let live = [LiveFlavor {
            id: "7",
            name: "g1",
            accelerator: Some(Some(&same)),
        }];
        assert!(mismatches(&live, &types, &p).is_empty());

        let other = read(&specs(&[
            ("Type", "FPGA"),
            ("Number", "4"),
            ("Vendor", "NVIDIA"),
            ("Model", "A100"),
        ]))
        .unwrap()
        .accelerator
        .unwrap();
        let live = [LiveFlavor {
            id: "7",
            name: "g1",
            accelerator: Some(Some(&other)),
        }];
        let m = mismatches(&live, &types, &p);
        assert_eq!(m.len(), 1);
        assert!(m[0].contains("type FPGA in Nova, GPU published"), "{m:?}");
        assert!(m[0].contains("number 4 in Nova, 2 published"), "{m:?}");

        let live = [
            LiveFlavor {
                id: "7",
                name: "g1",
                accelerator: None,
            },
            LiveFlavor {
                id: "8",
                name: "m1",
                accelerator: Some(Some(&same)),
            },
            LiveFlavor {
                id: "9",
                name: "new",
                accelerator: Some(Some(&same)),
            },
        ];
        let m = mismatches(&live, &types, &p);
        assert_eq!(m.len(), 3, "{m:?}");
        assert!(m[0].contains("has no Accelerator:* properties but is published with GPU x2"));
        assert!(m[1].contains("published without an accelerator"));
        assert!(m[2].contains("is not published"));
    }
}
