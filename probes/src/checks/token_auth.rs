//! check_token_auth: federated OIDC login at Keystone.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

use crate::cli::Probe;
use crate::clients::keystone;
use crate::model::CheckId;
use crate::nagios::Perf;
use crate::secret::Secret;
use crate::{Ctx, Done, Fail};

pub const READ_TOKEN: CheckId = CheckId {
    id: "AUTH-01",
    requirement: "EOSC-IAAS-AAI",
    name: "read monitor access token",
};
pub const EXCHANGE: CheckId = CheckId {
    id: "AUTH-02",
    requirement: "EOSC-IAAS-AAI",
    name: "OIDC token exchange at Keystone",
};

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Keystone v3 URL of the site
    #[arg(long = "endpoint", value_name = "URL")]
    pub endpoint: Option<Url>,
    /// File holding the OIDC access token
    #[arg(long = "access-token", value_name = "FILE")]
    pub access_token: Option<PathBuf>,
    /// Keystone identity provider id
    #[arg(long = "identity-provider", default_value = "egi.eu")]
    pub identity_provider: String,
    /// Federation protocol
    #[arg(long = "protocol", default_value = "openid")]
    pub protocol: String,
}

pub struct TokenAuth;

impl Probe for TokenAuth {
    const BIN: &'static str = "check_token_auth";
    const LABEL: &'static str = "TOKEN_AUTH";
    const ABOUT: &'static str = "Log in at a site's Keystone with a federated OIDC token";
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
    type Args = Args;

    async fn run(args: Args, ctx: Ctx) -> Result<String, Fail> {
        let endpoint = args
            .endpoint
            .ok_or_else(|| Fail::unknown("--endpoint is required"))?;
        let path = args
            .access_token
            .ok_or_else(|| Fail::unknown("--access-token FILE is required"))?;
        let token = ctx
            .step(READ_TOKEN, async {
                let t = Secret::from_file(&path)
                    .map_err(|e| Fail::unknown(format!("cannot read {}: {e}", path.display())))?;
                Ok(Done::ok(t, format!("read from {}", path.display())))
            })
            .await?;
        let t0 = tokio::time::Instant::now();
        ctx.step(EXCHANGE, async {
            let _unscoped = keystone::exchange_oidc(
                &ctx.http,
                &endpoint,
                &args.identity_provider,
                &args.protocol,
                &token,
            )
            .await?;
            Ok(Done::ok(
                (),
                format!("unscoped token via {}", args.protocol),
            ))
        })
        .await?;
        ctx.perf(Perf::seconds("exchange", t0.elapsed()));
        Ok(format!("federated login at {endpoint} works"))
    }
}
