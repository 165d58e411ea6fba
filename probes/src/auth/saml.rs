//! AUTH-14..17: a SAML2 ECP login at a Keystone behind a SAML service
//! provider, one step per ECP stage so a failure names where it broke.
//! Site faults (an SP without ECP, an IdP down or saying no, a signature
//! or audience the SP refuses, Keystone refusing the session) are
//! CRITICAL; the monitor's own user:password refused by the IdP is UNKNOWN.

use reqwest::{StatusCode, Url};

use super::config::Resolved;
use super::{FirstToken, SAML_ACS, SAML_IDP, SAML_SP, SAML_TOKEN};
use crate::clients::ecp::{self, xml};
use crate::clients::keystone;
use crate::http::{show_url, Http, Reply};
use crate::model::Status;
use crate::secret::Secret;
use crate::{Ctx, Done, Fail};

/// The monitor's IdP account.
pub struct Account<'a> {
    pub idp: &'a Url,
    pub user: &'a str,
    pub password: &'a Secret,
}

/// The four ECP stages, then Keystone's unscoped token.
pub async fn login(
    ctx: &Ctx,
    http: &Http,
    plan: &Resolved,
    account: Account<'_>,
) -> Result<FirstToken, Fail> {
    let (status, msg) = super::url_verdict(account.idp, plan.allow_http);
    if status == Status::Critical {
        // the monitor's own setting would send its password in clear
        return Err(ctx.fail_at(SAML_IDP, Fail::unknown(format!("SAML IdP URL: {msg}"))));
    }
    // redirects are answers here: the SP's 303 carries its session cookie
    let http = http.without_redirects()?;
    let protocol = plan
        .protocols
        .first()
        .cloned()
        .unwrap_or_else(|| "mapped".into());
    let auth_url =
        keystone::federation_auth_url(&plan.keystone, &plan.identity_provider, &protocol)?;
    let paos = ctx.step(SAML_SP, sp_request(&http, &auth_url)).await?;
    let answer = ctx
        .step(SAML_IDP, idp_login(&http, &paos, &account))
        .await?;
    let cookie = ctx
        .step(SAML_ACS, sp_accepts(&http, &auth_url, &paos, &answer))
        .await?;
    let token = ctx
        .step(SAML_TOKEN, keystone_token(&http, &auth_url, &cookie))
        .await?;
    Ok(FirstToken {
        token,
        scoped: None,
        method: format!(
            "SAML2 ECP ({} at {}) via {}/{protocol}",
            account.user,
            show_url(account.idp),
            plan.identity_provider
        ),
        protocol: Some(protocol),
    })
}

/// A reply's status, content type and body start, for messages.
fn described(r: &Reply) -> String {
    format!(
        "HTTP {} {}: {}",
        r.status,
        r.header("content-type").unwrap_or("(no content type)"),
        r.describe_body()
    )
}

/// AUTH-14: the SP answers the protected URL with a PAOS AuthnRequest.
async fn sp_request(http: &Http, url: &Url) -> Result<Done<xml::PaosRequest>, Fail> {
    let reply = ecp::start(http, url).await?;
    let ctype = reply.header("content-type").unwrap_or("");
    let is_paos = ctype
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(ecp::PAOS_TYPE));
    if reply.status != StatusCode::OK || !is_paos {
        let why = if reply.status.is_redirection() {
            format!(
                "it redirects to {} (browser login only)",
                reply
                    .header("location")
                    .and_then(|l| Url::parse(l).ok())
                    .map(|u| show_url(&u))
                    .unwrap_or_else(|| "(no Location)".into())
            )
        } else {
            described(&reply)
        };
        let msg = format!(
            "the service provider at {} does not offer SAML2 ECP: asked as an ECP client \
             (PAOS), {why}; expected HTTP 200 {}",
            show_url(url),
            ecp::PAOS_TYPE
        );
        return Err(Fail::critical(msg).with_http(reply.facts()));
    }
    let paos = xml::paos_request(&reply.body).map_err(|e| {
        Fail::critical(format!(
            "the service provider's PAOS request from {} is unusable: {e}",
            show_url(url)
        ))
        .with_http(reply.facts())
    })?;
    let consumer = consumer_url(&paos, url)?;
    let msg = format!(
        "SP {} asks for a SAML2 ECP login; assertion consumer {}",
        paos.sp_entity_id.as_deref().unwrap_or("(no Issuer)"),
        show_url(&consumer)
    );
    Ok(Done::ok(paos, msg))
}

/// The SP's assertion consumer, on the SP's own origin (the assertion and
/// the session cookie go nowhere else).
fn consumer_url(paos: &xml::PaosRequest, sp: &Url) -> Result<Url, Fail> {
    let u = Url::parse(&paos.response_consumer_url).map_err(|e| {
        Fail::critical(format!(
            "the SP's responseConsumerURL {:?} is not a URL: {e}",
            crate::text::one_line(&paos.response_consumer_url, 120)
        ))
    })?;
    if !ecp::same_origin(&u, sp) {
        return Err(Fail::critical(format!(
            "the SP asks for the assertion at {}, another origin than {}: not sent",
            show_url(&u),
            show_url(sp)
        )));
    }
    Ok(u)
}

/// AUTH-15: the AuthnRequest to the IdP with the monitor's user:password.
async fn idp_login(
    http: &Http,
    paos: &xml::PaosRequest,
    account: &Account<'_>,
) -> Result<Done<xml::IdpAnswer>, Fail> {
    let idp = show_url(account.idp);
    let reply = ecp::to_idp(
        http,
        account.idp,
        paos.for_idp.clone(),
        account.user,
        account.password,
    )
    .await
    .map_err(|f| f.context(format!("SAML IdP {idp} unreachable")))?;
    if reply.status == StatusCode::UNAUTHORIZED {
        // the IdP does not take the monitor's own credential
        return Err(Fail::unknown(format!(
            "the SAML IdP {idp} refused the monitor's user:password for {} (HTTP 401): \
             check the --saml-credentials file",
            account.user
        ))
        .with_http(reply.facts()));
    }
    if reply.status != StatusCode::OK {
        return Err(Fail::critical(format!(
            "the SAML IdP's ECP endpoint answered {} ({})",
            described(&reply),
            reply.request_line()
        ))
        .with_http(reply.facts()));
    }
    let answer = xml::idp_answer(&reply.body).map_err(|e| {
        let msg = match e {
            xml::IdpError::Fault(s) => format!(
                "the SAML IdP {idp} answered a SOAP fault: {}",
                crate::text::one_line(&s, 200)
            ),
            xml::IdpError::Malformed(s) => {
                format!("the SAML IdP {idp} answered an unusable envelope: {s}")
            }
        };
        Fail::critical(msg).with_http(reply.facts())
    })?;
    if !answer.status.is_success() {
        let said = crate::text::one_line(&answer.status.describe(), 200);
        let f = if answer
            .status
            .sub_code
            .as_deref()
            .is_some_and(|c| c.ends_with(":AuthnFailed"))
        {
            // the IdP says the monitor's credential is wrong: the monitor's problem
            Fail::unknown(format!(
                "the SAML IdP {idp} refused the monitor's login ({said}): check the --saml-credentials file"
            ))
        } else {
            Fail::critical(format!("the SAML IdP {idp} refused the login: {said}"))
        };
        return Err(f.with_http(reply.facts()));
    }
    // ECP profile §4.2.4.4: the client must check that the IdP answers to the
    // consumer the SP named, else a rogue SP could collect the assertion.
    if answer.acs_url.as_deref() != Some(paos.response_consumer_url.as_str()) {
        return Err(Fail::critical(format!(
            "the SAML IdP {idp} addresses its response to {} but the SP asked for {}: not relayed",
            answer.acs_url.as_deref().unwrap_or("(no ecp:Response)"),
            paos.response_consumer_url
        )));
    }
    let audience = if answer.encrypted {
        "an encrypted assertion".to_string()
    } else {
        format!("an assertion for {}", answer.audiences.join(", "))
    };
    let msg = format!(
        "IdP {} issued {}{} for {}",
        answer.issuer.as_deref().unwrap_or(&idp),
        if answer.signed {
            "a signed response with "
        } else {
            "an UNSIGNED response with "
        },
        audience,
        account.user
    );
    Ok(Done::ok(answer, msg))
}

/// AUTH-16: the SP consumes the IdP's response and opens a session.
async fn sp_accepts(
    http: &Http,
    auth_url: &Url,
    paos: &xml::PaosRequest,
    answer: &xml::IdpAnswer,
) -> Result<Done<Secret>, Fail> {
    let consumer = consumer_url(paos, auth_url)?;
    let envelope = answer.for_sp(paos.relay_state.as_deref());
    let reply = ecp::to_sp(http, &consumer, envelope).await?;
    let audience_problem = audience_problem(paos, answer);
    let cookie = ecp::session_cookie(&reply);
    let accepted = reply.status.is_success() || reply.status.is_redirection();
    match (accepted, cookie) {
        (true, Some(c)) => {
            if let Some(p) = audience_problem {
                // the SP took an assertion meant for another service
                return Err(Fail::critical(format!(
                    "the SP accepted an assertion not meant for it ({p}): it does not check \
                     the audience restriction"
                ))
                .with_http(reply.facts()));
            }
            Ok(Done::ok(
                c,
                format!(
                    "SP consumed the assertion (HTTP {}) and opened a session",
                    reply.status.as_u16()
                ),
            ))
        }
        (true, None) => Err(Fail::critical(format!(
            "the SP consumed the assertion ({}) but set no session cookie",
            described(&reply)
        ))
        .with_http(reply.facts())),
        (false, _) => {
            let why = match audience_problem {
                Some(p) => format!(
                    "{p}: the IdP issues its assertions for another service provider (check \
                     the SP's metadata registered at the IdP)"
                ),
                None if !answer.signed => "the IdP's response is not signed".into(),
                None => "its signature most likely does not verify with the IdP certificate in \
                         the SP's metadata (the audience matches; else SP and IdP clocks disagree)"
                    .into(),
            };
            Err(Fail::critical(format!(
                "the SP refused the IdP's assertion: {why} (SP answered {}; {})",
                described(&reply),
                reply.request_line()
            ))
            .with_http(reply.facts()))
        }
    }
}

/// "audience X is not the SP's entity id Y", when the assertion names another audience.
fn audience_problem(paos: &xml::PaosRequest, answer: &xml::IdpAnswer) -> Option<String> {
    let sp = paos.sp_entity_id.as_deref()?;
    if answer.encrypted || answer.audiences.is_empty() || answer.audiences.iter().any(|a| a == sp) {
        return None;
    }
    Some(format!(
        "the assertion's audience {} is not the SP's entity id {sp}",
        answer.audiences.join(", ")
    ))
}

/// AUTH-17: the protected URL again with the SP's session: Keystone's token.
async fn keystone_token(http: &Http, url: &Url, cookie: &Secret) -> Result<Done<Secret>, Fail> {
    let mut reply = ecp::finish(http, url, cookie).await?;
    // Keystone creates the shadow user on first login; two first logins race (409)
    if reply.status == StatusCode::CONFLICT {
        http.deadline()
            .sleep(std::time::Duration::from_millis(300))
            .await;
        reply = ecp::finish(http, url, cookie).await?;
    }
    if reply.status.is_redirection() {
        return Err(Fail::critical(format!(
            "the SP did not take its own session cookie: {} again sends the client to log in",
            show_url(url)
        ))
        .with_http(reply.facts()));
    }
    if !reply.status.is_success() {
        return Err(Fail::critical(format!(
            "Keystone refused the SAML session ({}; {}): check the identity provider's \
             remote_ids, the protocol's mapping and that the protocol's method is in [auth] methods",
            described(&reply),
            reply.request_line()
        ))
        .with_http(reply.facts()));
    }
    let token = reply
        .header("x-subject-token")
        .filter(|t| !t.trim().is_empty())
        .map(Secret::new)
        .ok_or_else(|| {
            Fail::critical(format!(
                "{} -> HTTP {} but no X-Subject-Token header: {}",
                reply.request_line(),
                reply.status,
                reply.describe_body()
            ))
            .with_http(reply.facts())
        })?;
    Ok(Done::ok(
        token,
        format!("unscoped token (HTTP {})", reply.status.as_u16()),
    ))
}
