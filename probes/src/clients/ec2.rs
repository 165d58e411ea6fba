//! The AWS Query API (EC2 `Version=2016-11-15`, STS `2011-06-15`) and the
//! EBS direct API (REST/JSON), signed with SigV4. Answers are XML (EC2,
//! STS) or JSON (EBS); errors carry AWS's code, which decides the status:
//! a refused credential is the monitor's (UNKNOWN), throttling is retried
//! with backoff, anything else is the site's (CRITICAL).

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::sigv4::{self, Keys};
use crate::fail::Fail;
use crate::http::{show_url, Http, Reply};
use crate::secret::Secret;
use crate::text;

pub const EC2_VERSION: &str = "2016-11-15";
pub const STS_VERSION: &str = "2011-06-15";
/// Attempts of one call while the site throttles.
const THROTTLE_TRIES: u32 = 5;
const THROTTLE_FIRST: Duration = Duration::from_millis(200);
/// Errors that mean "slow down" (EC2, STS, EBS).
const THROTTLES: [&str; 4] = [
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "RequestThrottledException",
];
/// Errors that mean our credential was refused: the monitor's trouble.
const REFUSED: [&str; 8] = [
    "AuthFailure",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidIdentityToken",
    "IDPRejectedClaim",
    "AccessDenied",
];

/// An error AWS answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AwsError {
    pub code: String,
    pub message: String,
}

/// The first `<Code>` and `<Message>` of an XML error (EC2's `<Response>`,
/// STS's `<ErrorResponse>`), or `code`/`message` of a JSON one (EBS).
pub fn parse_error(body: &[u8]) -> Option<AwsError> {
    if let Ok(v) = crate::http::from_json::<serde_json::Value>(body) {
        let s = |k: &str| {
            ["message", "Message", k]
                .iter()
                .find_map(|n| v.get(n).and_then(|x| x.as_str()))
                .map(String::from)
        };
        let code = v
            .get("__type")
            .or_else(|| v.get("code"))
            .or_else(|| v.get("Code"))
            .and_then(|x| x.as_str())?;
        return Some(AwsError {
            code: code.rsplit('#').next().unwrap_or(code).to_string(),
            message: s("message").unwrap_or_default(),
        });
    }
    let mut r = quick_xml::Reader::from_reader(body);
    let (mut code, mut message, mut inside) = (None, None, None::<Vec<u8>>);
    let mut buf = Vec::new();
    for _ in 0..10_000 {
        match r.read_event_into(&mut buf).ok()? {
            quick_xml::events::Event::Start(e) => inside = Some(e.name().as_ref().to_vec()),
            quick_xml::events::Event::Text(t) => {
                let t = t.decode().ok()?.to_string();
                match inside.as_deref() {
                    Some(b"Code") if code.is_none() => code = Some(t),
                    Some(b"Message") if message.is_none() => message = Some(t),
                    _ => {}
                }
            }
            quick_xml::events::Event::End(_) => inside = None,
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Some(AwsError {
        code: code?,
        message: message.unwrap_or_default(),
    })
}

/// A non-2xx answer as a failure with the right status.
pub fn error_fail(reply: &Reply, what: &str) -> Fail {
    let Some(e) = parse_error(&reply.body) else {
        return reply.unexpected().context(what);
    };
    let msg = format!(
        "{what}: {} {}: {} ({})",
        reply.status.as_u16(),
        e.code,
        text::one_line(&e.message, 200),
        reply.request_line()
    );
    let f = if REFUSED.contains(&e.code.as_str()) {
        Fail::unknown(format!("{msg}: the monitor's credential was refused"))
    } else {
        Fail::critical(msg)
    };
    f.with_http(reply.facts())
}

pub fn is_throttle(reply: &Reply) -> bool {
    reply.status.as_u16() == 429
        || parse_error(&reply.body).is_some_and(|e| THROTTLES.contains(&e.code.as_str()))
}

/// Send a request built (and signed) afresh for each attempt, retrying
/// while the site throttles: exponential backoff within the deadline.
pub async fn send_retrying<F>(http: &Http, what: &str, build: F) -> Result<Reply, Fail>
where
    F: Fn() -> RequestBuilder,
{
    let mut pause = THROTTLE_FIRST;
    let mut attempt = 1;
    loop {
        let reply = http.send(build()).await?;
        if reply.is_success() || !is_throttle(&reply) {
            return Ok(reply);
        }
        let code = parse_error(&reply.body).map(|e| e.code).unwrap_or_default();
        if attempt >= THROTTLE_TRIES || http.deadline().remaining() <= pause {
            return Err(Fail::critical(format!(
                "{what}: throttled by the site ({} {code}) {attempt} times, backing off from {} ms ({})",
                reply.status.as_u16(),
                THROTTLE_FIRST.as_millis(),
                reply.request_line()
            ))
            .with_http(reply.facts()));
        }
        http.deadline().sleep(pause).await;
        pause *= 2;
        attempt += 1;
    }
}

/// Parse an XML answer into `T`; garbage is the site's fault.
pub fn parse_xml<T: DeserializeOwned>(reply: &Reply, what: &str) -> Result<T, Fail> {
    let text = std::str::from_utf8(&reply.body).map_err(|_| {
        Fail::critical(format!(
            "{what}: HTTP {} with a body that is not UTF-8 ({})",
            reply.status,
            reply.request_line()
        ))
    })?;
    // Every AWS Query answer is one `<ActionResponse>` element: anything
    // else (an HTML page, a proxy's error) is garbage, even if it parses.
    let root = root_name(text);
    if !root.as_deref().is_some_and(|r| r.ends_with("Response")) {
        return Err(Fail::critical(format!(
            "{what}: HTTP {} with an answer that is not the expected XML (root element {}): {} ({})",
            reply.status,
            root.as_deref().unwrap_or("none"),
            reply.describe_body(),
            reply.request_line()
        ))
        .with_http(reply.facts()));
    }
    quick_xml::de::from_str(text).map_err(|e| {
        Fail::critical(format!(
            "{what}: HTTP {} with an answer that is not the expected XML ({}): {} ({})",
            reply.status,
            text::one_line(&e.to_string(), 120),
            reply.describe_body(),
            reply.request_line()
        ))
        .with_http(reply.facts())
    })
}

/// The name of the document's first element.
fn root_name(text: &str) -> Option<String> {
    let mut r = quick_xml::Reader::from_str(text);
    for _ in 0..100 {
        match r.read_event().ok()? {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                return Some(String::from_utf8_lossy(e.local_name().as_ref()).into_owned())
            }
            quick_xml::events::Event::Eof => return None,
            _ => {}
        }
    }
    None
}

/// A signed AWS endpoint: the HTTP client, the URL, the region and keys.
#[derive(Clone)]
pub struct Signed {
    pub http: Http,
    pub endpoint: Url,
    pub region: String,
    pub keys: Keys,
}

impl Signed {
    /// A request to `url` signed for `service`; `body` is hashed into the
    /// signature unless `unsigned_body`.
    pub fn request(
        &self,
        service: &str,
        method: Method,
        url: Url,
        headers: &[(&str, &str)],
        body: &[u8],
        unsigned_body: bool,
    ) -> RequestBuilder {
        let hash = if unsigned_body {
            sigv4::UNSIGNED.to_string()
        } else {
            sigv4::sha256_hex(body)
        };
        let mut signed_h: Vec<(&str, &str)> = headers.to_vec();
        signed_h.push(("x-amz-content-sha256", &hash));
        let date = sigv4::amz_date_now();
        let scope = sigv4::Scope {
            region: &self.region,
            service,
            amz_date: &date,
        };
        let auth = sigv4::sign(&self.keys, &scope, method.as_str(), &url, &signed_h, &hash);
        let mut r = self.http.request(method, url);
        for (k, v) in signed_h.iter() {
            r = r.header(*k, *v);
        }
        for (k, v) in auth {
            r = r.header(k, v);
        }
        r
    }

    /// One Query API call (`Action=...`) signed for `service`; the answer's
    /// XML parsed into `T`.
    pub async fn query<T: DeserializeOwned>(
        &self,
        service: &str,
        version: &str,
        action: &str,
        params: &[(String, String)],
    ) -> Result<T, Fail> {
        let reply = self.query_raw(service, version, action, params).await?;
        if !reply.is_success() {
            return Err(error_fail(&reply, action));
        }
        parse_xml(&reply, action)
    }

    /// [`Signed::query`] returning the reply whatever its status (after
    /// throttling retries), for callers that read error codes.
    pub async fn query_raw(
        &self,
        service: &str,
        version: &str,
        action: &str,
        params: &[(String, String)],
    ) -> Result<Reply, Fail> {
        let mut pairs = vec![("Action", action), ("Version", version)];
        pairs.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let body = form(&pairs).into_bytes();
        let ct = "application/x-www-form-urlencoded; charset=utf-8";
        send_retrying(&self.http, action, || {
            self.request(
                service,
                Method::POST,
                self.endpoint.clone(),
                &[("content-type", ct)],
                &body,
                false,
            )
            .body(body.clone())
        })
        .await
    }
}

/// A form body, every key and value percent-encoded strictly.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", sigv4::uri_encode(k), sigv4::uri_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Temporary credentials from STS.
pub struct Assumed {
    pub keys: Keys,
    pub arn: String,
    pub expiration: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AssumeResponse {
    assume_role_with_web_identity_result: AssumeResult,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AssumeResult {
    credentials: StsCredentials,
    #[serde(default)]
    assumed_role_user: Option<AssumedRoleUser>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    #[serde(default)]
    expiration: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AssumedRoleUser {
    #[serde(default)]
    arn: String,
}

/// STS `AssumeRoleWithWebIdentity`: the federation's OIDC access token for
/// temporary keys. Unsigned, as AWS defines it (the token is the proof).
pub async fn assume_role_with_web_identity(
    http: &Http,
    sts: &Url,
    role_arn: &str,
    session_name: &str,
    token: &Secret,
    duration_s: u32,
) -> Result<Assumed, Fail> {
    let what = "STS AssumeRoleWithWebIdentity";
    let duration = duration_s.to_string();
    let body = form(&[
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", STS_VERSION),
        ("RoleArn", role_arn),
        ("RoleSessionName", session_name),
        ("DurationSeconds", &duration),
        ("WebIdentityToken", token.expose()),
    ]);
    let reply = send_retrying(http, what, || {
        http.request(Method::POST, sts.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
    })
    .await?;
    if !reply.is_success() {
        return Err(error_fail(&reply, what));
    }
    let a: AssumeResponse = parse_xml(&reply, what)?;
    let r = a.assume_role_with_web_identity_result;
    if r.credentials.access_key_id.is_empty() || r.credentials.secret_access_key.is_empty() {
        return Err(Fail::critical(format!(
            "{what} at {} answered empty credentials",
            show_url(sts)
        )));
    }
    Ok(Assumed {
        keys: Keys {
            access_key: r.credentials.access_key_id,
            secret: Secret::new(r.credentials.secret_access_key),
            session_token: Some(Secret::new(r.credentials.session_token)),
        },
        arn: r.assumed_role_user.map(|u| u.arn).unwrap_or_default(),
        expiration: r.credentials.expiration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_of_every_shape() {
        let ec2 = br#"<?xml version="1.0"?><Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>x</RequestID></Response>"#;
        assert_eq!(
            parse_error(ec2),
            Some(AwsError {
                code: "RequestLimitExceeded".into(),
                message: "Request limit exceeded.".into()
            })
        );
        let sts = br#"<ErrorResponse><Error><Type>Sender</Type><Code>ExpiredTokenException</Code><Message>Token expired</Message></Error></ErrorResponse>"#;
        assert_eq!(parse_error(sts).unwrap().code, "ExpiredTokenException");
        let ebs = br#"{"__type":"com.amazon#ValidationException","message":"bad block"}"#;
        assert_eq!(parse_error(ebs).unwrap().code, "ValidationException");
        assert_eq!(parse_error(b"<html>oops</html>"), None);
    }
}
