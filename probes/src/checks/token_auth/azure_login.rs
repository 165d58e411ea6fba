//! check_token_auth on Azure: the federated login at Entra ID (AUTH-05, 01,
//! 02: the OIDC access token as client assertion, or a client secret), the
//! ARM token used (AUTH-06), a garbage token refused by ARM (AUTH-09), and
//! the login time (AUTH-11). Keystone's project and catalog steps have no
//! Azure counterpart and are not reported.

use tokio::time::Instant;

use super::{garbage_token, Args, GARBAGE, LOGIN_TIME, VALIDATE};
use crate::backend::azure;
use crate::http::show_url;
use crate::model::Perf;
use crate::{Ctx, Done, Fail};

pub async fn run(args: &Args, ctx: &Ctx) -> Result<String, Fail> {
    let t0 = Instant::now();
    let az = azure::login(ctx, &args.auth).await?;
    let took = t0.elapsed();
    ctx.perf(Perf::seconds("login", took).thresholds(ctx.warning(), ctx.critical()));
    let secs = (took.as_secs_f64() * 1000.0).round() / 1000.0;
    ctx.note(
        LOGIN_TIME,
        ctx.threshold_status(secs),
        format!("login took {secs}s"),
    );
    let n = ctx
        .step(VALIDATE, async {
            let n = az.token_works().await?;
            Ok(Done::ok(
                n,
                format!("ARM accepts the token: {n} VM sizes listed"),
            ))
        })
        .await?;
    if !args.no_invalid_token_check {
        ctx.step(GARBAGE, async {
            // Random and no secret (see garbage_token), like the OpenStack path's.
            let reply = az.with_token(&garbage_token()).await?;
            let what = format!("GET {} with a garbage bearer token", show_url(&reply.url));
            match reply.status.as_u16() {
                401 => Ok(Done::ok((), format!("{what} -> HTTP 401 (refused)"))),
                200..=299 => Err(Fail::critical(format!(
                    "{what} -> HTTP {}: ARM ACCEPTED a token Entra ID never issued",
                    reply.status
                ))),
                400..=499 => Ok(Done::warn(
                    (),
                    format!(
                        "{what} -> HTTP {}: refused, but RFC 6750 asks for 401",
                        reply.status
                    ),
                )),
                _ => Err(reply.unexpected().context("garbage bearer token")),
            }
        })
        .await?;
    }
    Ok(format!(
        "Entra ID login ({}) in {secs}s, ARM token accepted ({n} VM sizes)",
        az.login_method()
    ))
}
