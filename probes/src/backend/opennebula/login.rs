//! The OpenNebula login prologue: the session string from the monitor's
//! credential (AUTH-01), optionally exchanged for a login token, then
//! checked with `one.user.info` (AUTH-19).

use tokio::time::Instant;

use super::OpenNebula;
use crate::auth::{self, AuthArgs};
use crate::clients::opennebula::{self as one, int, string, Doc, One};
use crate::model::{Perf, Status};
use crate::secret::Secret;
use crate::{Ctx, Done, Fail};

/// Where the session comes from, for messages.
struct Credential {
    user: String,
    secret: Secret,
    how: String,
}

fn credential(args: &AuthArgs) -> Result<Credential, Fail> {
    let o = &args.opennebula;
    if let Some(user) = &o.oidc_user {
        let Some(tok) = &args.access_token else {
            return Err(Fail::unknown(
                "--opennebula-oidc-user needs --access-token FILE",
            ));
        };
        let secret = crate::auth::config::read_secret_file(tok, "access token")?;
        return Ok(Credential {
            user: user.clone(),
            secret,
            how: format!("OIDC access token as the secret of {user}"),
        });
    }
    if let Some(p) = &o.session {
        // read as text and split first: only the password becomes a Secret,
        // so the user name is not scrubbed from messages
        let shown = crate::auth::config::shown_path(p);
        let s = crate::files::read_to_string(p, crate::files::SMALL)
            .map_err(|e| Fail::unknown(format!("cannot read session file {shown}: {e}")))?;
        let Some((user, pass)) = s.trim().split_once(':') else {
            return Err(Fail::unknown(format!(
                "session file {shown} is not user:password"
            )));
        };
        return Ok(Credential {
            user: user.to_string(),
            secret: Secret::new(pass),
            how: format!("session file {shown}"),
        });
    }
    match (&args.username, &args.password_file) {
        (Some(u), Some(p)) => Ok(Credential {
            user: u.clone(),
            secret: crate::auth::config::read_secret_file(p, "password file")?,
            how: format!("password of {u}"),
        }),
        _ => Err(Fail::unknown(
            "OpenNebula needs --opennebula-session FILE, --username with --password-file, \
             or --opennebula-oidc-user with --access-token",
        )),
    }
}

/// Log in (recording AUTH-01, AUTH-14 and `auth` perfdata) and return the backend.
pub async fn login(ctx: &Ctx, args: &AuthArgs) -> Result<OpenNebula, Fail> {
    let t0 = Instant::now();
    let Some(endpoint) = args.endpoint.clone() else {
        return Err(ctx.fail_at(
            auth::READ_TOKEN,
            Fail::unknown("--cloud opennebula needs --endpoint (oned's XML-RPC URL, .../RPC2)"),
        ));
    };
    let (status, msg) = auth::url_verdict(&endpoint, args.allow_http);
    if status == Status::Critical {
        return Err(ctx.fail_at(auth::URL_CHECK, Fail::critical(msg)));
    }
    let cred = ctx
        .step(auth::READ_TOKEN, async {
            let c = credential(args)?;
            let how = c.how.clone();
            Ok(Done::ok(c, how))
        })
        .await?;
    let base = One::new(
        ctx.http().clone(),
        endpoint,
        &cred.user,
        cred.secret.clone(),
    );
    let lifetime = args.opennebula.login_token;
    let one = ctx
        .step(auth::CLOUD_LOGIN, async {
            let (one, how) = if lifetime > 0 {
                // one.user.login(session, user, token "" = new, valid secs, group -1)
                let v = base
                    .call(
                        "one.user.login",
                        vec![
                            string(&cred.user),
                            string(""),
                            int(i64::from(lifetime)),
                            int(-1),
                        ],
                    )
                    .await?;
                let token = Secret::new(one::as_string("one.user.login", v)?);
                let http = base.http().clone();
                let url = base.endpoint().clone();
                (
                    One::new(http, url, &cred.user, token),
                    format!("login token valid {lifetime}s from one.user.login"),
                )
            } else {
                (base, cred.how.clone())
            };
            // user -1: the connected user
            let xml = one.call_xml("one.user.info", vec![int(-1)]).await?;
            let doc = Doc::new(xml);
            let d = doc.parse("one.user.info")?;
            let u = d.root_element();
            let name = one::text_at(u, "NAME").unwrap_or("?").to_string();
            let group = one::text_at(u, "GNAME").unwrap_or("?").to_string();
            let driver = one::text_at(u, "AUTH_DRIVER").unwrap_or("?").to_string();
            let msg = format!("user {name} (group {group}, auth driver {driver}) via {how}");
            Ok(Done::ok(one, msg))
        })
        .await?;
    ctx.perf(Perf::seconds("auth", t0.elapsed()));
    Ok(OpenNebula::new(one, (*args.opennebula).clone()))
}
