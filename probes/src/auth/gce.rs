//! Google Compute Engine: connection and login options (flags prefixed `--gce-`).

#[derive(clap::Args, Clone, Debug, Default)]
pub struct GceArgs {}
