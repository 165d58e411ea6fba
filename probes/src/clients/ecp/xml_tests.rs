//! The ECP XML handling against real captures (mod_auth_mellon's PAOS
//! request, pysaml2's ECP answers) and hostile inputs.

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/saml")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The bytes from the first `<tag` to the end of the first `</tag>`.
fn element_bytes<'a>(doc: &'a [u8], tag: &str) -> &'a [u8] {
    let start = find(doc, format!("<{tag}").as_bytes()).unwrap();
    let close = format!("</{tag}>");
    let end = find(doc, close.as_bytes()).unwrap() + close.len();
    &doc[start..end]
}

#[test]
fn mellon_paos_request_is_read_and_the_body_kept_byte_for_byte() {
    let raw = fixture("mellon-paos-request.xml");
    let r = paos_request(&raw).unwrap();
    assert_eq!(
        r.response_consumer_url,
        "https://127.0.0.1:17443/v3/mellon/paosResponse"
    );
    assert_eq!(
        r.sp_entity_id.as_deref(),
        Some("https://127.0.0.1:17443/v3/mellon/metadata")
    );
    assert!(r.relay_state.as_deref().unwrap().ends_with("/mapped/auth"));
    // the envelope for the IdP is the SP's bytes without the Header, nothing else changed
    let header = element_bytes(&raw, "s:Header");
    assert_eq!(r.for_idp.len(), raw.len() - header.len());
    let signed = element_bytes(&raw, "samlp:AuthnRequest");
    assert!(find(&r.for_idp, signed).is_some(), "AuthnRequest changed");
    assert!(find(&r.for_idp, b"paos:Request").is_none());
    // and it is still a SOAP envelope holding the AuthnRequest
    let doc = parse(&r.for_idp).unwrap();
    let (h, body) = envelope(&doc).unwrap();
    assert!(h.is_none());
    assert!(is(&first_element(body).unwrap(), SAMLP, "AuthnRequest"));
}

#[test]
fn idp_answer_is_read_and_relayed_byte_for_byte() {
    let raw = fixture("pysaml2-ecp-response.xml");
    let a = idp_answer(&raw).unwrap();
    assert_eq!(
        a.acs_url.as_deref(),
        Some("https://127.0.0.1:17443/v3/mellon/paosResponse")
    );
    assert!(a.status.is_success(), "{:?}", a.status);
    assert_eq!(
        a.issuer.as_deref(),
        Some("https://127.0.0.1:17088/metadata")
    );
    assert_eq!(a.audiences, ["https://127.0.0.1:17443/v3/mellon/metadata"]);
    assert!(a.signed && !a.encrypted);
    let relay = "https://127.0.0.1:17443/v3/x?a=1&b=<2>";
    let out = a.for_sp(Some(relay));
    // the signed Response is carried unchanged
    let body = element_bytes(&raw, "ns0:Body");
    assert!(find(&out, body).is_some(), "Body changed");
    // the old header block is gone, the new one parses and says what the SP sent
    assert!(find(&out, b"AssertionConsumerServiceURL").is_none());
    let doc = parse(&out).unwrap();
    let (h, b) = envelope(&doc).unwrap();
    let rs = child(h.unwrap(), ECP, "RelayState").unwrap();
    assert_eq!(rs.text(), Some(relay));
    assert_eq!(rs.attribute((SOAP, "mustUnderstand")), Some("1"));
    assert!(is(&first_element(b).unwrap(), SAMLP, "Response"));
    // without a relay state the header is empty
    let out = a.for_sp(None);
    assert!(find(&out, b"<ns0:Header></ns0:Header>").is_some());
}

#[test]
fn refusal_status_is_read() {
    let a = idp_answer(&fixture("pysaml2-ecp-denied.xml")).unwrap();
    assert!(!a.status.is_success());
    assert_eq!(
        a.status.describe(),
        "Responder/RequestDenied: user probe-saml-denied may not use this service"
    );
    assert!(a.audiences.is_empty());
}

const ENV_OPEN: &str = r#"<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/">"#;

#[test]
fn soap_fault_and_missing_parts() {
    let fault = format!(
        "{ENV_OPEN}<S:Body><S:Fault><faultcode>S:Server</faultcode>\
         <faultstring>no such user</faultstring></S:Fault></S:Body></S:Envelope>"
    );
    assert_eq!(
        idp_answer(fault.as_bytes()).unwrap_err(),
        IdpError::Fault("no such user".into())
    );
    let cases: &[(&str, &str)] = &[
        ("<html><body>login</body></html>", "not a SOAP 1.1 Envelope"),
        (
            r#"<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"/>"#,
            "without a Body",
        ),
        ("<S:Envelope", "not well-formed"),
        ("", "not well-formed"),
    ];
    for (xml, want) in cases {
        let e = paos_request(xml.as_bytes()).unwrap_err();
        assert!(e.contains(want), "{xml}: {e}");
        match idp_answer(xml.as_bytes()).unwrap_err() {
            IdpError::Malformed(e) => assert!(e.contains(want), "{xml}: {e}"),
            f => panic!("{f:?}"),
        }
    }
    let no_header = format!("{ENV_OPEN}<S:Body/></S:Envelope>");
    assert!(paos_request(no_header.as_bytes())
        .unwrap_err()
        .contains("no SOAP Header"));
    let no_paos = format!("{ENV_OPEN}<S:Header/><S:Body/></S:Envelope>");
    assert!(paos_request(no_paos.as_bytes())
        .unwrap_err()
        .contains("no paos:Request"));
    let no_rcu = format!(
        r#"{ENV_OPEN}<S:Header><p:Request xmlns:p="{PAOS}" service="{ECP}"/></S:Header><S:Body/></S:Envelope>"#
    );
    assert!(paos_request(no_rcu.as_bytes())
        .unwrap_err()
        .contains("without responseConsumerURL"));
    let other_service = format!(
        r#"{ENV_OPEN}<S:Header><p:Request xmlns:p="{PAOS}" service="urn:x" responseConsumerURL="https://sp/a"/></S:Header><S:Body/></S:Envelope>"#
    );
    assert!(paos_request(other_service.as_bytes())
        .unwrap_err()
        .contains("not the SAML2 ECP profile"));
    let no_authn = format!(
        r#"{ENV_OPEN}<S:Header><p:Request xmlns:p="{PAOS}" service="{ECP}" responseConsumerURL="https://sp/a"/></S:Header><S:Body><x/></S:Body></S:Envelope>"#
    );
    assert!(paos_request(no_authn.as_bytes())
        .unwrap_err()
        .contains("no samlp:AuthnRequest"));
    let no_status =
        format!(r#"{ENV_OPEN}<S:Body><p:Response xmlns:p="{SAMLP}"/></S:Body></S:Envelope>"#);
    assert!(matches!(idp_answer(no_status.as_bytes()),
        Err(IdpError::Malformed(e)) if e.contains("without samlp:Status")));
    let empty_body = format!("{ENV_OPEN}<S:Body> </S:Body></S:Envelope>");
    assert!(matches!(idp_answer(empty_body.as_bytes()),
        Err(IdpError::Malformed(e)) if e.contains("Body is empty")));
}

#[test]
fn hostile_inputs_are_refused_not_followed() {
    // huge
    let mut huge = ENV_OPEN.as_bytes().to_vec();
    huge.extend(std::iter::repeat_n(b' ', MAX_XML));
    assert!(paos_request(&huge).unwrap_err().contains("more than"));
    // deep: far more nesting than any SAML message, within the size limit
    let depth = 30_000;
    let deep = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
    assert!(deep.len() < MAX_XML);
    assert!(paos_request(deep.as_bytes()).is_err());
    // entity expansion (billion laughs) and external entities: no DTD at all
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body>&b;</S:Body></S:Envelope>"#;
    assert!(paos_request(laughs.as_bytes()).is_err());
    let xxe = r#"<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>"#;
    assert!(matches!(
        idp_answer(xxe.as_bytes()),
        Err(IdpError::Malformed(_))
    ));
    // not UTF-8
    assert!(paos_request(&[0xff, 0xfe, b'<'])
        .unwrap_err()
        .contains("UTF-8"));
    // a Response whose assertion names a look-alike namespace is not read as SAML
    let fake = format!(
        r#"{ENV_OPEN}<S:Body><p:Response xmlns:p="{SAMLP}"><p:Status><p:StatusCode Value="{SUCCESS}"/></p:Status><a:Assertion xmlns:a="urn:evil"><a:Audience>x</a:Audience></a:Assertion></p:Response></S:Body></S:Envelope>"#
    );
    let a = idp_answer(fake.as_bytes()).unwrap();
    assert!(a.audiences.is_empty() && !a.signed);
}

#[test]
fn relay_state_is_escaped() {
    assert_eq!(escape(r#"a&b<c>"d'"#), "a&amp;b&lt;c&gt;&quot;d&apos;");
    let block = relay_block("x</ecp:RelayState><evil/>");
    let doc = Document::parse(&block).unwrap();
    assert_eq!(doc.root_element().text(), Some("x</ecp:RelayState><evil/>"));
}
