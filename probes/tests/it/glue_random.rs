//! Stable-Rust stand-in for the fuzz targets (probes/fuzz): mutated GLUE
//! documents (structure-aware and byte-level) through parse + validate, and
//! random LDAP entries through the LDAP-to-GLUE mapping. Bounded, seeded
//! (FEDPROBE_RANDOM_SEED / FEDPROBE_RANDOM_ITERS).

use std::path::Path;
use std::time::Instant;

use probes::clients::ldap;
use probes::formats::glue;
use serde_json::{json, Value};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn random_value(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.next() as i64),
        3 => json!(-1),
        4 => json!(1.5e300),
        5 => json!(""),
        6 => json!(["x", 1, null]),
        7 => json!({"Share": ["nope"]}),
        8 => json!("2024-02-30T25:61:61+99:99"),
        _ => json!("x".repeat(rng.below(300))),
    }
}

/// Pick a random node and break it: replace, delete a key, duplicate an element.
fn mutate(rng: &mut Rng, v: &mut Value, depth: usize) {
    let stop = depth > 0 && rng.below(4) == 0;
    match v {
        Value::Object(o) if !o.is_empty() && !stop => {
            let keys: Vec<String> = o.keys().cloned().collect();
            let k = &keys[rng.below(keys.len())];
            match rng.below(6) {
                0 => {
                    o.remove(k);
                }
                1 => {
                    o.insert(k.clone(), random_value(rng));
                }
                _ => mutate(rng, o.get_mut(k).unwrap(), depth + 1),
            }
        }
        Value::Array(a) if !a.is_empty() && !stop => {
            let i = rng.below(a.len());
            match rng.below(6) {
                0 => {
                    a.remove(i);
                }
                1 => {
                    let c = a[i].clone();
                    a.push(c);
                }
                _ => mutate(rng, &mut a[i], depth + 1),
            }
        }
        _ => *v = random_value(rng),
    }
}

#[test]
fn glue_validator_survives_mutated_documents() {
    let seed = setting("FEDPROBE_RANDOM_SEED", 0x61_0E5EED);
    let iters = setting("FEDPROBE_RANDOM_ITERS", 20_000) / 5;
    let mut rng = Rng(seed | 1);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/glue");
    let base: Value = serde_json::from_slice(
        &std::fs::read(root.join("cloud-info-provider-sample.json")).unwrap(),
    )
    .unwrap();
    let text = base.to_string();
    let rules = glue::Rules {
        now: probes::clock::parse_iso(base["Share"][0]["CreationTime"].as_str().unwrap()).unwrap()
            + 60,
        endpoint: Some("https://cloud.example.org:5000/v3".into()),
        producer: Default::default(),
    };
    let t0 = Instant::now();
    let (mut findings, mut not_ok) = (0usize, 0usize);
    for i in 0..iters {
        let doc = if i % 4 == 0 {
            // Byte-level: cut or splice the serialised text.
            let mut b = text.clone().into_bytes();
            let at = rng.below(b.len());
            match rng.below(3) {
                0 => b.truncate(at),
                1 => b.insert(at, b"{}[],:\"\\x"[rng.below(9)]),
                _ => b[at] = rng.next() as u8,
            }
            match glue::parse(&b) {
                Ok(d) => d,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    continue;
                }
            }
        } else {
            let mut d = base.clone();
            for _ in 0..1 + rng.below(3) {
                mutate(&mut rng, &mut d, 0);
            }
            d
        };
        let r = glue::validate(&doc, &rules);
        if r.status() != probes::model::Status::Ok {
            not_ok += 1;
        }
        findings += r.findings.len();
    }
    eprintln!(
        "glue_random: {iters} mutated GLUE documents (seed {seed:#x}) in {:.2}s; {not_ok} not OK, {findings} findings",
        t0.elapsed().as_secs_f64()
    );
    assert!(not_ok > iters as usize / 4);
}

#[test]
fn ldap_mapping_survives_random_entries() {
    let seed = setting("FEDPROBE_RANDOM_SEED", 0x1DA9_5EED);
    let iters = setting("FEDPROBE_RANDOM_ITERS", 20_000);
    let mut rng = Rng(seed | 1);
    const NAMES: &[&str] = &[
        "objectClass",
        "GLUE2ShareID",
        "GLUE2EntityValidity",
        "GLUE2EntityOtherInfo",
        "GLUE2EntityCreationTime",
        "GLUE2ShareServiceForeignKey",
        "GLUE2CloudComputingShareProjectID",
        "GLUE2PolicyRule",
        "GLUE2MappingPolicyShareForeignKey",
        "GLUE2CloudComputingInstanceTypeCPU",
        "GLUE2CloudComputingInstanceTypeNetworkIn",
        "glue2shareid",
        "GLUE2",
        "GLUE2Entity",
        "ForeignKey",
        "é",
        "",
    ];
    const CLASSES: &[&str] = &[
        "GLUE2Share",
        "GLUE2CloudComputingShare",
        "GLUE2MappingPolicy",
        "GLUE2CloudComputingInstanceType",
        "glue2cloudcomputingimage",
        "GLUE2Service",
        "GLUE2CloudComputingService",
        "top",
        "",
    ];
    let t0 = Instant::now();
    let mut objects = 0usize;
    for _ in 0..iters / 10 {
        let mut entries = Vec::new();
        for _ in 0..rng.below(5) {
            let mut e = ldap::Entry::default();
            for _ in 0..rng.below(8) {
                let k = NAMES[rng.below(NAMES.len())].to_string();
                let v = if k == "objectClass" {
                    CLASSES[rng.below(CLASSES.len())].to_string()
                } else {
                    match rng.below(4) {
                        0 => "=".into(),
                        1 => "quotas={\"a\":".into(),
                        2 => (rng.next() as i64).to_string(),
                        _ => "TRUE".into(),
                    }
                };
                e.attrs.entry(k).or_default().push(v);
            }
            entries.push(e);
        }
        let doc = ldap::to_glue(&entries);
        objects += doc
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_array().unwrap().len())
            .sum::<usize>();
        let _ = glue::validate(&doc, &glue::Rules::default());
    }
    eprintln!(
        "glue_random: {} random LDAP entry sets (seed {seed:#x}) in {:.2}s; {objects} cloud objects mapped",
        iters / 10,
        t0.elapsed().as_secs_f64()
    );
    assert!(objects > 0);
}
