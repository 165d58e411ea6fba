//! The ECP profile's SOAP envelopes, read with roxmltree and put together
//! again from byte ranges of what came: the signed AuthnRequest and the
//! signed Response travel byte for byte (a parser that re-serialises them
//! breaks their XML signatures). Only the unsigned header blocks are rebuilt.

use std::ops::Range;

use roxmltree::{Document, Node, ParsingOptions};

pub const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const PAOS: &str = "urn:liberty:paos:2003-08";
pub const ECP: &str = "urn:oasis:names:tc:SAML:2.0:profiles:SSO:ecp";
pub const SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const ACTOR_NEXT: &str = "http://schemas.xmlsoap.org/soap/actor/next";

/// Largest envelope accepted: a signed response is a few KB.
pub const MAX_XML: usize = 256 * 1024;
/// Nodes per document: bounds memory and depth whatever the input.
const MAX_NODES: u32 = 20_000;

fn parse(bytes: &[u8]) -> Result<Document<'_>, String> {
    if bytes.len() > MAX_XML {
        return Err(format!(
            "{} bytes, more than the {} KB an ECP message may have",
            bytes.len(),
            MAX_XML / 1024
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    Document::parse_with_options(text, opts).map_err(|e| format!("not well-formed XML: {e}"))
}

fn is(n: &Node, ns: &str, name: &str) -> bool {
    n.is_element() && n.tag_name().namespace() == Some(ns) && n.tag_name().name() == name
}

fn child<'a, 'i>(n: Node<'a, 'i>, ns: &str, name: &str) -> Option<Node<'a, 'i>> {
    n.children().find(|c| is(c, ns, name))
}

/// The envelope's Header (if any) and Body.
fn envelope<'a, 'i>(doc: &'a Document<'i>) -> Result<(Option<Node<'a, 'i>>, Node<'a, 'i>), String> {
    let env = doc.root_element();
    if !is(&env, SOAP, "Envelope") {
        return Err(format!(
            "root element is {{{}}}{}, not a SOAP 1.1 Envelope",
            env.tag_name().namespace().unwrap_or(""),
            env.tag_name().name()
        ));
    }
    let body = child(env, SOAP, "Body").ok_or("SOAP Envelope without a Body")?;
    Ok((child(env, SOAP, "Header"), body))
}

fn first_element<'a, 'i>(n: Node<'a, 'i>) -> Option<Node<'a, 'i>> {
    n.children().find(|c| c.is_element())
}

fn text_of(n: Node) -> String {
    n.text().unwrap_or("").trim().to_string()
}

/// `bytes` with `range` replaced by `with`.
fn splice(bytes: &[u8], range: Range<usize>, with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + with.len());
    out.extend_from_slice(&bytes[..range.start]);
    out.extend_from_slice(with);
    out.extend_from_slice(&bytes[range.end..]);
    out
}

/// What the SP's PAOS answer asks of the client.
#[derive(Debug, Clone)]
pub struct PaosRequest {
    /// Where the SP wants the IdP's response (paos:Request responseConsumerURL).
    pub response_consumer_url: String,
    /// The SP's entity id (Issuer of its AuthnRequest).
    pub sp_entity_id: Option<String>,
    /// The ecp:RelayState text, echoed back to the SP.
    pub relay_state: Option<String>,
    /// The envelope for the IdP: the SP's bytes without the SOAP Header.
    pub for_idp: Vec<u8>,
}

/// Read the SP's PAOS request (`application/vnd.paos+xml`).
pub fn paos_request(bytes: &[u8]) -> Result<PaosRequest, String> {
    let doc = parse(bytes)?;
    let (header, body) = envelope(&doc)?;
    let header = header.ok_or("no SOAP Header (an ECP request carries paos:Request there)")?;
    let paos = child(header, PAOS, "Request").ok_or("no paos:Request in the SOAP Header")?;
    let service = paos.attribute("service").unwrap_or("");
    if service != ECP {
        return Err(format!(
            "paos:Request is for service {service:?}, not the SAML2 ECP profile"
        ));
    }
    let rcu = paos
        .attribute("responseConsumerURL")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or("paos:Request without responseConsumerURL")?;
    let authn = first_element(body)
        .filter(|n| is(n, SAMLP, "AuthnRequest"))
        .ok_or("the SOAP Body holds no samlp:AuthnRequest")?;
    let sp_entity_id = child(authn, SAML, "Issuer").map(text_of);
    let relay_state = child(header, ECP, "RelayState").map(text_of);
    Ok(PaosRequest {
        response_consumer_url: rcu.to_string(),
        sp_entity_id,
        relay_state,
        for_idp: splice(bytes, header.range(), b""),
    })
}

/// A SAML status: top-level code, second-level code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlStatus {
    pub code: String,
    pub sub_code: Option<String>,
    pub message: Option<String>,
}

impl SamlStatus {
    pub fn is_success(&self) -> bool {
        self.code == SUCCESS
    }

    /// `Responder/RequestDenied: the message`, the URNs shortened.
    pub fn describe(&self) -> String {
        let short = |s: &str| s.rsplit(':').next().unwrap_or(s).to_string();
        let mut out = short(&self.code);
        if let Some(s) = &self.sub_code {
            out.push('/');
            out.push_str(&short(s));
        }
        if let Some(m) = self.message.as_deref().filter(|m| !m.is_empty()) {
            out.push_str(": ");
            out.push_str(m);
        }
        out
    }
}

/// What the IdP answered, and the envelope to relay to the SP.
#[derive(Debug, Clone)]
pub struct IdpAnswer {
    /// ecp:Response AssertionConsumerServiceURL.
    pub acs_url: Option<String>,
    pub issuer: Option<String>,
    pub status: SamlStatus,
    /// Audiences of the (unencrypted) assertions.
    pub audiences: Vec<String>,
    pub encrypted: bool,
    /// The Response or an assertion carries a ds:Signature.
    pub signed: bool,
    /// The IdP's bytes; the Header is replaced when relayed.
    bytes: Vec<u8>,
    soap_prefix: String,
    header: Option<Range<usize>>,
    body_start: usize,
}

/// What went wrong in the IdP's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdpError {
    /// The IdP answered a SOAP Fault (its faultstring).
    Fault(String),
    Malformed(String),
}

/// Read the IdP's SOAP answer (ECP step 2).
pub fn idp_answer(bytes: &[u8]) -> Result<IdpAnswer, IdpError> {
    let doc = parse(bytes).map_err(IdpError::Malformed)?;
    let (header, body) = envelope(&doc).map_err(IdpError::Malformed)?;
    let first =
        first_element(body).ok_or_else(|| IdpError::Malformed("the SOAP Body is empty".into()))?;
    if is(&first, SOAP, "Fault") {
        let s = first
            .children()
            .find(|c| c.is_element() && c.tag_name().name() == "faultstring")
            .map(text_of)
            .unwrap_or_else(|| "(no faultstring)".into());
        return Err(IdpError::Fault(s));
    }
    if !is(&first, SAMLP, "Response") {
        return Err(IdpError::Malformed(format!(
            "the SOAP Body holds {}, not a samlp:Response",
            first.tag_name().name()
        )));
    }
    let acs_url = header
        .and_then(|h| child(h, ECP, "Response"))
        .and_then(|r| r.attribute("AssertionConsumerServiceURL"))
        .map(|s| s.trim().to_string());
    let st = child(first, SAMLP, "Status")
        .ok_or_else(|| IdpError::Malformed("samlp:Response without samlp:Status".into()))?;
    let code = child(st, SAMLP, "StatusCode")
        .ok_or_else(|| IdpError::Malformed("samlp:Status without StatusCode".into()))?;
    let status = SamlStatus {
        code: code.attribute("Value").unwrap_or("").to_string(),
        sub_code: child(code, SAMLP, "StatusCode")
            .and_then(|c| c.attribute("Value"))
            .map(str::to_string),
        message: child(st, SAMLP, "StatusMessage").map(text_of),
    };
    let assertions: Vec<Node> = first
        .children()
        .filter(|c| is(c, SAML, "Assertion"))
        .collect();
    let audiences = assertions
        .iter()
        .flat_map(|a| a.descendants())
        .filter(|n| is(n, SAML, "Audience"))
        .map(text_of)
        .collect();
    let signed = child(first, DSIG, "Signature").is_some()
        || assertions
            .iter()
            .any(|a| child(*a, DSIG, "Signature").is_some());
    Ok(IdpAnswer {
        acs_url,
        issuer: child(first, SAML, "Issuer").map(text_of),
        status,
        audiences,
        encrypted: child(first, SAML, "EncryptedAssertion").is_some(),
        signed,
        header: header.map(|h| h.range()),
        body_start: body.range().start,
        soap_prefix: prefix_of(&doc, doc.root_element()),
        bytes: bytes.to_vec(),
    })
}

impl IdpAnswer {
    /// The envelope for the SP's consumer: the IdP's bytes, its Header
    /// replaced by one holding only the SP's RelayState (ECP step 3).
    pub fn for_sp(&self, relay_state: Option<&str>) -> Vec<u8> {
        let prefix = &self.soap_prefix;
        let inner = relay_state.map(relay_block).unwrap_or_default();
        let header = format!("<{prefix}Header>{inner}</{prefix}Header>");
        match &self.header {
            Some(r) => splice(&self.bytes, r.clone(), header.as_bytes()),
            None => splice(
                &self.bytes,
                self.body_start..self.body_start,
                header.as_bytes(),
            ),
        }
    }
}

/// `ns0:` for `<ns0:Envelope ...>`, empty for a default namespace: the
/// rebuilt Header must use the IdP envelope's own prefix.
fn prefix_of(doc: &Document, n: Node) -> String {
    let tag = &doc.input_text()[n.range().start..];
    let qname: String = tag
        .trim_start_matches('<')
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
        .collect();
    match qname.split_once(':') {
        Some((p, _)) => format!("{p}:"),
        None => String::new(),
    }
}

/// The ecp:RelayState header block, self-contained (it declares what it uses).
fn relay_block(text: &str) -> String {
    format!(
        "<ecp:RelayState xmlns:ecp=\"{ECP}\" xmlns:S=\"{SOAP}\" S:mustUnderstand=\"1\" \
         S:actor=\"{ACTOR_NEXT}\">{}</ecp:RelayState>",
        escape(text)
    )
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[path = "xml_tests.rs"]
mod tests;
