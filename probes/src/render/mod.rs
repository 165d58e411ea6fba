//! Renderers on top of the result model: Monitoring Plugins text, JSON, and
//! the parser for other plugins' text (the harness runs external plugins).
//! Secrets are scrubbed once, at the output boundary: [`output`].

pub mod json;
pub mod nagios;
pub mod parse;

use crate::model::ProbeResult;

/// A probe's output formats (`--output`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Nagios,
    Json,
}

/// What a probe prints: the rendering, with every known secret and token
/// shape scrubbed. Nothing reaches stdout any other way.
pub fn output(r: &ProbeResult, format: Format, verbosity: u8) -> String {
    let text = match format {
        Format::Nagios => nagios::render(r, verbosity),
        Format::Json => json::render(r),
    };
    crate::secret::scrub(&text)
}
