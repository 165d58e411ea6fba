//! The APEL validator on the corpus in testdata/apel: every good message
//! passes, every broken one is reported with the right position and words,
//! and real cASO output (when ci/producers/caso.sh has made some) passes.

use std::path::{Path, PathBuf};

use probes::formats::apel::{check_message, Kind, Summary};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/apel")
}

#[test]
fn good_messages_pass() {
    let dir = testdata().join("good");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let r = check_message(&p.display().to_string(), &std::fs::read(&p).unwrap());
        assert!(r.problems.is_empty(), "{}: {:?}", p.display(), r.problems);
        assert!(r.records > 0, "{}", p.display());
        assert!(
            r.sites.contains("FEDPROBE-TEST")
                || p.file_name().unwrap().to_string_lossy().starts_with("caso")
        );
        n += 1;
    }
    assert!(n >= 3);
}

#[test]
fn cloud_message_counts() {
    let p = testdata().join("good/cloud-v04.msg");
    let r = check_message("m", &std::fs::read(p).unwrap());
    assert_eq!(r.kind, Some(Kind::Cloud));
    assert_eq!(r.records, 2);
    assert_eq!(r.newest, Some(1732403600));
}

#[test]
fn broken_messages_are_reported_precisely() {
    let dir = testdata().join("bad");
    let expected = std::fs::read_to_string(dir.join("EXPECTED")).unwrap();
    let mut checked = 0;
    for line in expected.lines().filter(|l| !l.trim().is_empty()) {
        let parts: Vec<&str> = line.splitn(4, '|').collect();
        let (file, record, lineno, words) = (parts[0], parts[1], parts[2], parts[3]);
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let r = check_message(file, &bytes);
        let hit = r.problems.iter().find(|p| p.message.contains(words));
        let Some(p) = hit else {
            panic!("{file}: expected {words:?}, got {:?}", r.problems);
        };
        if record != "-" {
            assert_eq!(p.record.to_string(), record, "{file}: record of {p}");
        }
        if lineno != "-" {
            assert_eq!(p.line.to_string(), lineno, "{file}: line of {p}");
        }
        assert_eq!(p.file, file);
        checked += 1;
    }
    // Every file in bad/ is in the manifest.
    let files = std::fs::read_dir(&dir).unwrap().count() - 1;
    assert_eq!(checked, files, "EXPECTED and bad/ disagree");
    assert!(checked >= 20);
}

#[test]
fn summary_adds_up() {
    let mut s = Summary::default();
    for f in [
        "good/cloud-v04.msg",
        "good/public-ip.json",
        "bad/text-in-integer.msg",
    ] {
        let b = std::fs::read(testdata().join(f)).unwrap();
        s.add(check_message(f, &b));
    }
    assert_eq!(s.messages, 3);
    assert_eq!(s.records, 5);
    assert_eq!(s.bad_records, 1);
    assert_eq!(s.problems.len(), 1);
    assert_eq!(s.by_kind.get(&Kind::PublicIp), Some(&1));
}

/// Real cASO output: testdata/apel/good/caso-* (committed) and, when the
/// producer script has run here, its fresh spool.
#[test]
fn real_caso_output_passes() {
    let mut dirs = vec![testdata().join("good")];
    let spool = PathBuf::from(
        std::env::var("FEDPROBE_CASO_SPOOL")
            .unwrap_or_else(|_| "/tmp/fedprobe-producers/out/apel".into()),
    );
    if spool.is_dir() {
        dirs.push(spool);
    }
    let mut n = 0;
    for d in dirs {
        for (p, _) in probes::checks::usage::spool_files(&d).unwrap() {
            let name = p.display().to_string();
            if !name.contains("caso") && !name.contains("/out/apel") {
                continue;
            }
            let r = check_message(&name, &std::fs::read(&p).unwrap());
            assert!(r.problems.is_empty(), "{name}: {:?}", r.problems);
            n += r.records;
        }
    }
    if n == 0 {
        eprintln!("SKIP real_caso_output_passes: no cASO output (run ci/producers/caso.sh)");
    }
}
