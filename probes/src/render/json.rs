//! `--output json`: the whole result model, in a versioned shape
//! (documented in docs/result-json.md).

use serde::Serialize;

use crate::model::ProbeResult;

/// Bumped on any incompatible change of the JSON shape.
pub const SCHEMA: &str = "fedprobe.result/v1";

#[derive(Serialize)]
struct Doc<'a> {
    schema: &'static str,
    fedprobe_version: &'static str,
    exit_code: u8,
    #[serde(flatten)]
    result: &'a ProbeResult,
}

pub fn render(r: &ProbeResult) -> String {
    let doc = Doc {
        schema: SCHEMA,
        fedprobe_version: env!("CARGO_PKG_VERSION"),
        exit_code: r.status.exit_code(),
        result: r,
    };
    let text = serde_json::to_string_pretty(&doc)
        .unwrap_or_else(|e| format!("{{\"schema\":\"{SCHEMA}\",\"error\":\"{e}\"}}"));
    text + "\n"
}
