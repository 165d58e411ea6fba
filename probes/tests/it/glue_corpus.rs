//! The GLUE validator on cloud-info-provider's output and on the broken
//! corpus in testdata/glue/bad (built by make_bad.py).

use std::path::{Path, PathBuf};

use probes::clock::parse_iso as parse_time;
use probes::formats::glue::{self, Rules};
use probes::model::Status;
use serde_json::Value;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/glue")
}

fn sample() -> Value {
    glue::parse(&std::fs::read(testdata().join("cloud-info-provider-sample.json")).unwrap())
        .unwrap()
}

/// "Now" a minute after the document was made, so fixed files stay fresh.
fn rules_for(doc: &Value) -> Rules {
    let ct = doc["CloudComputingService"][0]["CreationTime"]
        .as_str()
        .unwrap();
    Rules {
        now: parse_time(ct).unwrap() + 60,
        endpoint: Some("https://cloud.example.org:5000/v3".into()),
        producer: Default::default(),
    }
}

#[test]
fn producer_sample_is_valid() {
    let doc = sample();
    let r = glue::validate(&doc, &rules_for(&doc));
    assert_eq!(r.findings, vec![], "{:#?}", r.findings);
    assert_eq!(r.shares.len(), 2);
    assert_eq!(r.shares[0].vo.as_deref(), Some("vo.example"));
    assert_eq!(r.shares[0].project_id, "fixture-project");
    assert_eq!(
        r.images.len(),
        3,
        "images once each although published per share"
    );
    assert_eq!(r.time_left, Some(43200 - 60));
}

#[test]
fn endpoint_comparison_normalises_ports() {
    let doc = sample();
    let mut rules = rules_for(&doc);
    rules.endpoint = Some("https://CLOUD.example.org:5000/v3/".into());
    assert!(glue::validate(&doc, &rules).findings.is_empty());
    rules.endpoint = Some("https://cloud.example.org/v3".into());
    let r = glue::validate(&doc, &rules);
    assert_eq!(r.status(), Status::Critical);
    assert!(
        r.findings[0].message.contains("do not match the endpoint"),
        "{:?}",
        r.findings
    );
}

#[test]
fn expiry_warns_in_the_last_hour() {
    let doc = sample();
    let mut rules = rules_for(&doc);
    rules.now += 43200 - 60 - 1800; // 30 minutes left
    let r = glue::validate(&doc, &rules);
    assert_eq!(r.status(), Status::Warning, "{:?}", r.findings);
    assert_eq!(r.time_left, Some(1800));
    assert!(r.findings[0].message.contains("expires in 1800s"));
    rules.now += 3600;
    let r = glue::validate(&doc, &rules);
    assert_eq!(r.status(), Status::Critical);
    assert!(r.findings[0].message.contains("expired 1800s ago"));
}

#[test]
fn broken_documents_are_reported() {
    let dir = testdata().join("bad");
    let expected = std::fs::read_to_string(dir.join("EXPECTED")).unwrap();
    let rules = rules_for(&sample());
    let mut n = 0;
    for line in expected.lines().filter(|l| !l.is_empty()) {
        let parts: Vec<&str> = line.splitn(3, '|').collect();
        let (file, status, words) = (parts[0], parts[1], parts[2]);
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let (got, text) = match glue::parse(&bytes) {
            Err(e) => (Status::Critical, vec![e.to_string()]),
            Ok(doc) => {
                let r = glue::validate(&doc, &rules);
                (
                    r.status(),
                    r.findings.iter().map(|f| f.to_string()).collect(),
                )
            }
        };
        assert_eq!(got.as_str(), status, "{file}: {text:?}");
        assert!(
            text.iter().any(|t| t.contains(words)),
            "{file}: want {words:?} in {text:#?}"
        );
        n += 1;
    }
    assert_eq!(n, std::fs::read_dir(&dir).unwrap().count() - 1);
}

/// Real cloud-info-provider output against the local OpenStack: the copy
/// committed in testdata (made by ci/producers/cloud_info.sh) and, when that
/// script has run on this machine, its fresh output.
#[test]
fn real_producer_output_is_valid() {
    let mut files = vec![testdata().join("cloud-info-provider-1.2.0-local.json")];
    let fresh = PathBuf::from(
        std::env::var("FEDPROBE_GLUE_OUT")
            .unwrap_or_else(|_| "/tmp/fedprobe-producers/out/glue.json".into()),
    );
    if fresh.is_file() {
        files.push(fresh);
    } else {
        eprintln!("SKIP fresh part of real_producer_output_is_valid: no {} (run ci/producers/cloud_info.sh)", fresh.display());
    }
    for f in files {
        let doc = glue::parse(&std::fs::read(&f).unwrap()).unwrap();
        let mut rules = rules_for(&doc);
        rules.endpoint = doc["CloudComputingEndpoint"][0]["URL"]
            .as_str()
            .map(String::from);
        let r = glue::validate(&doc, &rules);
        assert!(r.findings.is_empty(), "{}: {:#?}", f.display(), r.findings);
        assert_eq!(r.shares.len(), 2, "{}", f.display());
        assert!(r
            .shares
            .iter()
            .all(|s| s.vo.is_some() && !s.project_id.is_empty()));
        assert!(!r.images.is_empty() && !r.instance_types.is_empty());
    }
}
