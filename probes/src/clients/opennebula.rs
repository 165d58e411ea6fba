//! OpenNebula's XML-RPC API (`/RPC2` of oned): every call carries the session
//! string (`user:password` or `user:token`) first, and every answer is an
//! array `[success, value, error code, ...]`. The envelopes are `dxr`'s;
//! the XML documents inside them (`one.vm.info`...) are read with roxmltree.
//! No verdicts here except the error code's class (site or monitor).

pub use dxr::Value;
use dxr::{FaultResponse, MethodCall, MethodResponse};
use reqwest::{header, Method, Url};

use crate::fail::Fail;
use crate::http::{show_url, Http};
use crate::secret::Secret;
use crate::text;

/// oned's error codes (include/Request.h).
pub const AUTHENTICATION: i32 = 0x100;
pub const AUTHORIZATION: i32 = 0x200;
pub const NO_EXISTS: i32 = 0x400;
pub const ACTION: i32 = 0x800;

/// A refused call: oned's error code and message.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub code: i32,
    pub message: String,
}

#[derive(Clone)]
pub struct One {
    http: Http,
    url: Url,
    /// The session is `user:secret`; only the secret is a [`Secret`], so
    /// the user name stays readable in messages.
    user: String,
    secret: Secret,
}

/// A call's argument.
pub fn int(i: i64) -> Value {
    match i32::try_from(i) {
        Ok(v) => Value::Integer(v),
        Err(_) => Value::Long(i),
    }
}

pub fn string(s: &str) -> Value {
    Value::String(s.to_string())
}

impl One {
    pub fn new(http: Http, url: Url, user: &str, secret: Secret) -> One {
        One {
            http,
            url,
            user: user.to_string(),
            secret,
        }
    }

    pub fn http(&self) -> &Http {
        &self.http
    }

    pub fn endpoint(&self) -> &Url {
        &self.url
    }

    /// The same user with another secret.
    pub fn with_secret(&self, secret: Secret) -> One {
        One {
            secret,
            ..self.clone()
        }
    }

    pub fn with_http(&self, http: Http) -> One {
        One {
            http,
            ..self.clone()
        }
    }

    /// Call `method`; a refusal (`[false, msg, code]`) is `Ok(Err(..))` so
    /// callers can treat "does not exist" as an answer.
    pub async fn try_call(
        &self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Result<Value, Refusal>, Fail> {
        let session = format!("{}:{}", self.user, self.secret.expose());
        let mut all = vec![Value::String(session)];
        all.extend(params);
        let body = MethodCall {
            name: method.into(),
            params: all,
        }
        .to_xml()
        .map_err(|e| Fail::unknown(format!("{method}: cannot encode the call: {e}")))?;
        let req = self
            .http
            .request(Method::POST, self.url.clone())
            .header(header::CONTENT_TYPE, "text/xml")
            .body(body);
        let reply = self.http.send(req).await?.success()?;
        let where_ = format!("{method} at {}", show_url(&self.url));
        // Elements bounded before the parse, as JSON values are.
        let tags = reply.body.iter().filter(|&&b| b == b'<').count();
        if tags > crate::http::MAX_JSON_VALUES {
            return Err(Fail::critical(format!(
                "{where_}: an answer of more than {} XML tags ({} bytes), refused unparsed",
                crate::http::MAX_JSON_VALUES,
                reply.body.len()
            ))
            .with_http(reply.facts()));
        }
        let text = reply.text();
        let value = match MethodResponse::from_xml(&text) {
            Ok(r) => r.value,
            Err(_) => {
                return Err(match FaultResponse::from_xml(&text) {
                    Ok(f) => Fail::critical(format!(
                        "{where_}: XML-RPC fault {}: {}",
                        f.fault.code(),
                        text::one_line(f.fault.string(), 200)
                    )),
                    Err(_) => Fail::critical(format!(
                        "{where_}: not an XML-RPC answer: {}",
                        reply.describe_body()
                    )),
                }
                .with_http(reply.facts()));
            }
        };
        parse_answer(value).map_err(|e| e.context(&where_))
    }

    /// Call `method`; a refusal is a [`Fail`] classed by [`refused`].
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, Fail> {
        match self.try_call(method, params).await? {
            Ok(v) => Ok(v),
            Err(r) => Err(refused(method, &r)),
        }
    }

    /// A call whose value is an XML document (`*.info`).
    pub async fn call_xml(&self, method: &str, params: Vec<Value>) -> Result<String, Fail> {
        as_string(method, self.call(method, params).await?)
    }

    /// A call whose value is an id (`*.allocate`).
    pub async fn call_id(&self, method: &str, params: Vec<Value>) -> Result<i64, Fail> {
        as_int(method, &self.call(method, params).await?)
    }
}

/// `[success, value, code, ...]` → the value, or oned's refusal.
pub fn parse_answer(v: Value) -> Result<Result<Value, Refusal>, Fail> {
    let Value::Array(items) = v else {
        return Err(Fail::critical(
            "answer is not the [success, value, code] array",
        ));
    };
    let mut it = items.into_iter();
    let ok = match it.next() {
        Some(Value::Boolean(b)) => b,
        _ => {
            return Err(Fail::critical(
                "answer's first element is not the success boolean",
            ))
        }
    };
    let value = it
        .next()
        .ok_or_else(|| Fail::critical("answer has no value"))?;
    if ok {
        return Ok(Ok(value));
    }
    let message = match value {
        Value::String(s) => s,
        other => format!("{other:?}"),
    };
    let code = match it.next() {
        Some(Value::Integer(c)) => c,
        _ => 0,
    };
    Ok(Err(Refusal { code, message }))
}

/// A refusal as a verdict: a refused session is the monitor's credential
/// (UNKNOWN); anything else the site's (CRITICAL).
pub fn refused(method: &str, r: &Refusal) -> Fail {
    let msg = format!(
        "{method} refused (oned error 0x{:04x}): {}",
        r.code,
        text::one_line(&r.message, 300)
    );
    if r.code == AUTHENTICATION {
        Fail::unknown(format!(
            "{msg}; the monitor's OpenNebula credential was refused"
        ))
    } else {
        Fail::critical(msg)
    }
}

pub fn as_string(method: &str, v: Value) -> Result<String, Fail> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(Fail::critical(format!(
            "{method}: expected a string, got {}",
            text::one_line(&format!("{other:?}"), 80)
        ))),
    }
}

pub fn as_int(method: &str, v: &Value) -> Result<i64, Fail> {
    match v {
        Value::Integer(i) => Ok(i64::from(*i)),
        Value::Long(i) => Ok(*i),
        other => Err(Fail::critical(format!(
            "{method}: expected an integer, got {}",
            text::one_line(&format!("{other:?}"), 80)
        ))),
    }
}

/// An id from the site as a call argument: oned's ids are integers, so
/// anything else never reaches the wire.
pub fn id_arg(id: &str) -> Result<Value, Fail> {
    id.trim()
        .parse::<i64>()
        .ok()
        .filter(|i| *i >= 0)
        .map(int)
        .ok_or_else(|| {
            Fail::critical(format!(
                "malformed OpenNebula id {:?}",
                text::one_line(id, 40)
            ))
        })
}

/// Template attribute names: what a metadata key becomes. OpenNebula
/// attribute names are upper case letters, digits and `_`; `-` maps to `_`
/// and back (keys such as `fedprobe-run` round-trip).
pub fn attr_name(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => c.to_ascii_uppercase(),
            _ => '_',
        })
        .collect()
}

pub fn key_name(attr: &str) -> String {
    attr.to_ascii_lowercase().replace('_', "-")
}

/// A template value, quoted; `"` and `\` cannot be escaped in every oned
/// version, so they are replaced.
pub fn quote(v: &str) -> String {
    let clean: String = v
        .chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            '\n' | '\r' => ' ',
            c => c,
        })
        .collect();
    format!("\"{clean}\"")
}

/// One XML document from oned, read as a tree.
pub struct Doc(String);

impl Doc {
    pub fn new(xml: String) -> Doc {
        Doc(xml)
    }

    /// Parse, naming the method on garbage. Nodes are bounded as JSON
    /// values are ([`crate::http::MAX_JSON_VALUES`]): a tree costs many
    /// times its bytes.
    pub fn parse(&self, method: &str) -> Result<roxmltree::Document<'_>, Fail> {
        let opts = roxmltree::ParsingOptions {
            nodes_limit: crate::http::MAX_JSON_VALUES as u32,
            ..roxmltree::ParsingOptions::default()
        };
        roxmltree::Document::parse_with_options(&self.0, opts).map_err(|e| {
            Fail::critical(format!(
                "{method}: answer's document is not XML ({e}): {}",
                text::one_line(&self.0, 120)
            ))
        })
    }
}

/// Text of the first descendant at `path` (`A/B/C`) under `n`.
pub fn text_at<'a>(n: roxmltree::Node<'a, 'a>, path: &str) -> Option<&'a str> {
    let mut cur = n;
    for part in path.split('/') {
        cur = cur
            .children()
            .find(|c| c.is_element() && c.tag_name().name() == part)?;
    }
    Some(cur.text().unwrap_or("").trim())
}

pub fn int_at(n: roxmltree::Node<'_, '_>, path: &str) -> Option<i64> {
    text_at(n, path)?.parse().ok()
}

pub fn child<'a>(n: roxmltree::Node<'a, 'a>, name: &str) -> Option<roxmltree::Node<'a, 'a>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

pub fn children<'a>(
    n: roxmltree::Node<'a, 'a>,
    name: &'a str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'a>> + 'a {
    n.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;

    #[test]
    fn answers_and_refusals() {
        let ok = Value::Array(vec![
            Value::Boolean(true),
            Value::Integer(7),
            Value::Integer(0),
        ]);
        assert_eq!(parse_answer(ok).unwrap(), Ok(Value::Integer(7)));
        let no = Value::Array(vec![
            Value::Boolean(false),
            Value::String("[one.vm.info] Error getting virtual machine [3].".into()),
            Value::Integer(NO_EXISTS),
        ]);
        let r = parse_answer(no).unwrap().unwrap_err();
        assert_eq!(r.code, NO_EXISTS);
        assert_eq!(refused("one.vm.info", &r).status, Status::Critical);
        let auth = Refusal {
            code: AUTHENTICATION,
            message: "[one.vm.info] User couldn't be authenticated, aborting call.".into(),
        };
        assert_eq!(refused("one.vm.info", &auth).status, Status::Unknown);
        assert!(parse_answer(Value::Integer(1)).is_err());
    }

    #[test]
    fn keys_round_trip_through_attribute_names() {
        for k in ["fedprobe-run", "argo-mon-host", "fedprobe-until"] {
            assert_eq!(key_name(&attr_name(k)), k);
        }
        assert_eq!(attr_name("a.b c"), "A_B_C");
        assert_eq!(quote("x\"y\\z"), "\"x'y'z\"");
    }

    #[test]
    fn ids_are_integers_only() {
        assert!(id_arg("12").is_ok());
        for bad in ["", "-1", "1;2", "../3", "x"] {
            assert_eq!(id_arg(bad).unwrap_err().status, Status::Critical);
        }
    }

    #[test]
    fn paths_in_documents() {
        let d = Doc::new("<VM><ID>4</ID><USER_TEMPLATE><ERROR><MESSAGE>boom</MESSAGE></ERROR></USER_TEMPLATE></VM>".into());
        let doc = d.parse("t").unwrap();
        let root = doc.root_element();
        assert_eq!(int_at(root, "ID"), Some(4));
        assert_eq!(text_at(root, "USER_TEMPLATE/ERROR/MESSAGE"), Some("boom"));
        assert!(Doc::new("<VM".into()).parse("t").is_err());
        let many = format!("<VM>{}</VM>", "<A/>".repeat(300_000));
        let e = Doc::new(many).parse("one.vm.info").unwrap_err();
        assert!(e.message.contains("one.vm.info"), "{}", e.message);
    }
}
