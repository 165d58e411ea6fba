//! Azure Resource Manager: connection and login options (flags prefixed `--azure-`).

#[derive(clap::Args, Clone, Debug, Default)]
pub struct AzureArgs {}
