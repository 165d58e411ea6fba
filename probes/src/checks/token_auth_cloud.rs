//! check_token_auth on clouds other than OpenStack: the cloud's own login
//! (AUTH-01, AUTH-19) and a made-up credential refused (AUTH-09).

use crate::auth::cloud::CloudKind;
use crate::backend::opennebula;
use crate::checks::token_auth::{Args, GARBAGE};
use crate::{Ctx, Done, Fail};

pub async fn run(ctx: &Ctx, args: &Args) -> Result<String, Fail> {
    match args.auth.cloud {
        CloudKind::OpenNebula => {
            let b = opennebula::login(ctx, &args.auth).await?;
            if !args.no_invalid_token_check {
                ctx.step(GARBAGE, async {
                    let msg = b.garbage_session_refused().await?;
                    Ok(Done::ok((), msg))
                })
                .await?;
            }
            Ok(format!("{} login works", args.auth.cloud.api()))
        }
        other => Err(Fail::unknown(format!(
            "check_token_auth speaks OpenStack and OpenNebula, not --cloud {other}"
        ))),
    }
}
