//! Getting the monitor's credential in hand: reading token files, the OIDC
//! grants (with discovery), password and application-credential secrets.
//! Every failure here is the monitor's own (UNKNOWN), except timeouts.

use reqwest::Url;

use super::config::{Credential, OidcClient, Resolved, SecretSource, TokenEndpoint};
use crate::clients::oidc;
use crate::http::{show_url, Http};
use crate::secret::Secret;
use crate::{Ctx, Done, Fail};

/// The credential in hand, ready for Keystone.
pub enum Obtained {
    Bearer(Secret, String),
    Password {
        username: String,
        user_domain: crate::clients::keystone::Domain,
        password: Secret,
    },
    AppCred {
        id: String,
        secret: Secret,
    },
    Saml {
        idp: Url,
        user: String,
        password: Secret,
    },
}

pub async fn obtain(ctx: &Ctx, http: &Http, plan: &Resolved) -> Result<Done<Obtained>, Fail> {
    let src = format!(" (settings from {})", plan.source);
    match &plan.credential {
        Credential::AccessToken(s) => {
            let token = s.load("access token")?;
            header_safe(&token, &s.describe())?;
            let msg = format!(
                "OIDC access token from {}{}{src}",
                s.describe(),
                expiry_note(&token)?
            );
            Ok(Done::ok(
                Obtained::Bearer(token, "OIDC access token".into()),
                msg,
            ))
        }
        Credential::RefreshToken { refresh, client } => {
            let rt = refresh.load("refresh token")?;
            let op = oidc_client(ctx, http, client).await?;
            let tokens = op.refresh_grant(&rt, &client.scope).await?;
            let from = format!("the token answer of {}", show_url(op.endpoint()));
            header_safe(&tokens.access_token, &from)?;
            let msg = format!(
                "OIDC refresh-token grant at {}{}{src}",
                show_url(op.endpoint()),
                expiry_note(&tokens.access_token)?
            );
            let how = "OIDC refresh token".to_string();
            Ok(Done::ok(Obtained::Bearer(tokens.access_token, how), msg))
        }
        Credential::ClientCredentials(client) => {
            let op = oidc_client(ctx, http, client).await?;
            let tokens = op.client_credentials(&client.scope).await?;
            let from = format!("the token answer of {}", show_url(op.endpoint()));
            header_safe(&tokens.access_token, &from)?;
            let msg = format!(
                "OIDC client_credentials grant for {} at {}{}{src}",
                op.client_id(),
                show_url(op.endpoint()),
                expiry_note(&tokens.access_token)?
            );
            let how = "OIDC client credentials".to_string();
            Ok(Done::ok(Obtained::Bearer(tokens.access_token, how), msg))
        }
        Credential::Password {
            username,
            user_domain,
            password,
        } => {
            let password = password.load("password")?;
            Ok(Done::ok(
                Obtained::Password {
                    username: username.clone(),
                    user_domain: user_domain.clone(),
                    password,
                },
                format!("password of {username}{src}"),
            ))
        }
        Credential::Saml {
            idp,
            username,
            secret,
        } => {
            let (user, password) = match username {
                Some(u) => (u.clone(), secret.load("SAML password")?),
                None => user_password(secret)?,
            };
            let msg = format!("SAML2 ECP user {user} at IdP {}{src}", show_url(idp));
            Ok(Done::ok(
                Obtained::Saml {
                    idp: idp.clone(),
                    user,
                    password,
                },
                msg,
            ))
        }
        Credential::AppCred { id, secret } => {
            let secret = secret.load("application credential secret")?;
            Ok(Done::ok(
                Obtained::AppCred {
                    id: id.clone(),
                    secret,
                },
                format!("application credential {id}{src}"),
            ))
        }
    }
}

/// An access token goes in a header as it is, so it has RFC 6750's
/// `b64token` form (letters, digits, `-._~+/`, then any `=`). One that does
/// not (an error page or JSON error saved by a failed refresh job, a line
/// break inside) is the monitor's unusable credential, UNKNOWN here, not a
/// site failing its first request, and is never sent. The character is
/// named, the token never shown.
fn header_safe(token: &Secret, from: &str) -> Result<(), Fail> {
    let t = token.expose();
    let body = t.trim_end_matches('=');
    let in_form = |c: char| c.is_ascii_alphanumeric() || "-._~+/".contains(c);
    let Some(c) = body.chars().find(|&c| !in_form(c)) else {
        return Ok(());
    };
    let what = match c {
        ' ' => "a space".to_string(),
        c if c.is_ascii_graphic() => format!("'{c}' (U+{:04X})", u32::from(c)),
        c => format!("U+{:04X}", u32::from(c)),
    };
    Err(Fail::unknown(format!(
        "access token: {from} holds {what}, which no bearer token has (RFC 6750; an \
         error page or error document saved as the token, or a line break inside it?)"
    )))
}

/// `user:password` from a --saml-credentials file, split at the first
/// colon. Only the password becomes a [`Secret`]: the whole line would make
/// the output scrubber hide the user name (and the IdP id it is part of).
fn user_password(src: &SecretSource) -> Result<(String, Secret), Fail> {
    let from = src.describe();
    let line = match src {
        SecretSource::File(p) => crate::files::read_to_string(p, crate::files::SMALL)
            .map_err(|e| Fail::unknown(format!("SAML credential: cannot read {from}: {e}")))?,
        SecretSource::Value(s, _) => s.expose().to_string(),
    };
    match line.trim().split_once(':') {
        Some((u, p)) if !u.trim().is_empty() && !p.is_empty() => {
            Ok((u.trim().to_string(), Secret::new(p)))
        }
        _ => Err(Fail::unknown(format!(
            "SAML credential {from}: expected one line user:password"
        ))),
    }
}

async fn oidc_client(
    ctx: &Ctx,
    http: &Http,
    client: &OidcClient,
) -> Result<oidc::TokenClient, Fail> {
    let secret = client.secret.load("OIDC client secret")?;
    let endpoint = match &client.endpoint {
        TokenEndpoint::Explicit(u) => u.clone(),
        TokenEndpoint::Discover(u) => {
            let issuer = strip_well_known(u);
            let e = oidc::TokenClient::discover(http, &issuer).await?;
            ctx.detail(format!("OIDC discovery: token endpoint {}", show_url(&e)));
            e
        }
    };
    Ok(oidc::TokenClient::new(
        http.clone(),
        endpoint,
        oidc::Client {
            id: client.id.clone(),
            secret,
        },
    ))
}

fn strip_well_known(u: &Url) -> Url {
    let s = u.as_str().trim_end_matches('/');
    match s.strip_suffix("/.well-known/openid-configuration") {
        Some(base) => Url::parse(base).unwrap_or_else(|_| u.clone()),
        None => u.clone(),
    }
}

/// Seconds a token must still be valid to be worth sending.
const MIN_LIFETIME: f64 = 30.0;

/// ", expires in 55m" for a JWT; an expired one is the monitor's problem.
fn expiry_note(token: &Secret) -> Result<String, Fail> {
    let Some(claims) = oidc::jwt_claims(token) else {
        return Ok(", not a JWT (expiry unknown)".into());
    };
    let Some(exp) = claims.exp else {
        return Ok(", JWT without exp".into());
    };
    let left = exp - crate::clock::now_unix();
    if left <= 0.0 {
        return Err(Fail::unknown(format!(
            "the monitor's access token expired {} ago (JWT exp, not verified); \
             renew it (fetch a new one from the OP)",
            oidc::human_secs(left)
        )));
    }
    if left < MIN_LIFETIME {
        // it would expire mid-login and the site would be blamed for the 401
        return Err(Fail::unknown(format!(
            "the monitor's access token expires in {}, too soon to log in with; renew it",
            oidc::human_secs(left)
        )));
    }
    Ok(format!(", expires in {}", oidc::human_secs(left)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;

    #[test]
    fn a_token_a_header_cannot_carry_is_the_monitors_problem() {
        let from = "/etc/token";
        assert!(header_safe(&Secret::new("eyJhbGciOi.x-y_z~+/="), from).is_ok());
        for (bad, named) in [
            ("<html>\n<body>502</body>", "'<' (U+003C)"),
            ("abc\ndef", "U+000A"),
            ("abc def", "a space"),
            ("tok\u{7f}en", "U+007F"),
            ("tokén", "U+00E9"),
            (r#"{"error":"invalid_grant"}"#, "'{' (U+007B)"),
            ("ab=cd", "'=' (U+003D)"),
        ] {
            let f = header_safe(&Secret::new(bad), from).unwrap_err();
            assert_eq!(f.status, Status::Unknown);
            assert!(f.message.contains(named), "{}", f.message);
            assert!(f.message.contains(from), "{}", f.message);
        }
    }

    #[test]
    fn saml_credentials_file_is_user_colon_password() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("saml");
        std::fs::write(&f, "probe-saml:pa:ss:word\n").unwrap();
        let (u, p) = user_password(&SecretSource::File(f.clone())).unwrap();
        assert_eq!((u.as_str(), p.expose()), ("probe-saml", "pa:ss:word"));
        // the user name is not a secret: output keeps it
        assert!(crate::secret::scrub("user probe-saml").contains("probe-saml"));
        for bad in ["no-colon-here", ":password-only", "user:", ""] {
            std::fs::write(&f, bad).unwrap();
            let e = user_password(&SecretSource::File(f.clone())).unwrap_err();
            assert_eq!(e.status, Status::Unknown);
            assert!(e.message.contains("user:password"), "{}", e.message);
            assert!(bad.len() < 6 || !e.message.contains(bad), "{}", e.message);
        }
        let e = user_password(&SecretSource::File(dir.path().join("missing"))).unwrap_err();
        assert_eq!(e.status, Status::Unknown);
    }

    #[test]
    fn expired_jwt_is_the_monitors_problem() {
        use base64::Engine;
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let t = Secret::new(format!("{}.{}.x", b("{}"), b(r#"{"exp":1000}"#)));
        let e = expiry_note(&t).unwrap_err();
        assert_eq!(e.status, Status::Unknown);
        assert!(e.message.contains("expired"));
        let later = crate::clock::now_unix() as u64 + 7200;
        let t = Secret::new(format!(
            "{}.{}.x",
            b("{}"),
            b(&format!(r#"{{"exp":{later}}}"#))
        ));
        assert!(
            expiry_note(&t).unwrap().contains("expires in 1h")
                || expiry_note(&t).unwrap().contains("expires in 2h")
        );
        let soon = crate::clock::now_unix() as u64 + 5;
        let t = Secret::new(format!(
            "{}.{}.x",
            b("{}"),
            b(&format!(r#"{{"exp":{soon}}}"#))
        ));
        let e = expiry_note(&t).unwrap_err();
        assert_eq!(e.status, Status::Unknown);
        assert!(e.message.contains("too soon"), "{}", e.message);
    }
}
