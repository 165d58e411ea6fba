//! OpenNebula: connection and login options (flags prefixed `--opennebula-`).
//!
//! oned authenticates every XML-RPC call by a session string `user:secret`.
//! The secret is the password (core driver), a login token made by
//! `one.user.login`, or whatever the site's auth driver takes: with
//! `--access-token` the OIDC access token is sent as the secret, which works
//! where the site runs an auth driver that validates such tokens (core oned
//! has none; see docs/clouds.md).

use std::path::PathBuf;

#[derive(clap::Args, Clone, Debug, Default)]
pub struct OpenNebulaArgs {
    /// File holding the session `user:password` (like $ONE_AUTH)
    #[arg(long = "opennebula-session", value_name = "FILE")]
    pub session: Option<PathBuf>,
    /// Exchange the password for a login token valid this many seconds
    /// (one.user.login) and use that; 0 keeps the password
    #[arg(
        long = "opennebula-login-token",
        value_name = "SECS",
        default_value_t = 0
    )]
    pub login_token: u32,
    /// OpenNebula user whose secret is the OIDC access token (--access-token)
    #[arg(long = "opennebula-oidc-user", value_name = "USER")]
    pub oidc_user: Option<String>,
    /// Datastore images and volumes are created in [default: 1, the default image datastore]
    #[arg(long = "opennebula-datastore", value_name = "ID", default_value_t = 1)]
    pub datastore: u32,
    /// Memory of the probe's VM in MB
    #[arg(long = "opennebula-memory", value_name = "MB", default_value_t = 128)]
    pub memory_mb: u32,
    /// Virtual network id for the VM's NIC; default: no NIC
    #[arg(long = "opennebula-network", value_name = "ID")]
    pub network: Option<String>,
    /// Where the probe serves an image's bytes for oned to fetch (image
    /// upload): listen address; the URL given to oned uses the same host
    #[arg(
        long = "opennebula-serve",
        value_name = "ADDR",
        default_value = "127.0.0.1:0"
    )]
    pub serve: String,
}
