//! The library is a stack that only looks down (ARCHITECTURE.md): every
//! `crate::` path in a module names a module of the same or a lower layer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Layers, bottom first. A module may use its own layer and those below.
const LAYERS: &[&[&str]] = &[
    &["text", "secret", "units", "clock", "deadline", "files"],
    &["model"],
    &["fail", "render", "formats"],
    &["record", "poll"],
    &["http"],
    &["ctx"],
    &["runner"],
    &["probe"],
    &["clients"],
    &["auth"],
    &["backend"],
    &["checks"],
    &["cli"],
];

/// What the crate root re-exports, by the module it comes from.
fn root_item(name: &str) -> Option<&'static str> {
    Some(match name {
        "Ctx" | "Done" => "ctx",
        "Fail" => "fail",
        "CheckId" | "ProbeResult" | "Status" | "check_ids" => "model",
        "with_backend" => "backend",
        _ => return None,
    })
}

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The modules a source text refers to through `crate::`.
fn uses(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + 7..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let item = item.trim().split("::").next().unwrap_or("").trim();
                out.push(item.to_string());
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push(name);
        }
    }
    out
}

#[test]
fn no_module_of_probes_uses_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut bad: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &all {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel.iter().next().unwrap().to_string_lossy();
        let me = top.trim_end_matches(".rs").to_string();
        if me == "lib" || me == "bin" {
            continue;
        }
        let mine = rank(&me).unwrap_or_else(|| panic!("module {me} is in no layer: add it"));
        // Unit tests may reach anywhere.
        let text = std::fs::read_to_string(f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for m in uses(code) {
            let m = root_item(&m).map(str::to_string).unwrap_or(m);
            let Some(theirs) = rank(&m) else {
                panic!("{}: crate::{m} is in no layer", rel.display());
            };
            if theirs > mine {
                bad.entry(rel.display().to_string()).or_default().push(m);
            }
        }
    }
    assert!(bad.is_empty(), "modules using a layer above them: {bad:#?}");
}

#[test]
fn the_use_scanner_sees_groups_and_paths() {
    assert_eq!(
        uses("use crate::{Ctx, Done};\nlet x = crate::model::Perf::count(\"n\", 1);"),
        vec!["Ctx", "Done", "model"]
    );
}
