//! OpenNebula: connection and login options (flags prefixed `--opennebula-`).

#[derive(clap::Args, Clone, Debug, Default)]
pub struct OpenNebulaArgs {}
