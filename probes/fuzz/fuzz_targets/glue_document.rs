//! Any bytes as a GLUE document: parse, validate, and the LDAP mapping of the
//! same values; never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use probes::clients::ldap;
use probes::formats::glue;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = glue::parse(data) else { return };
    for producer in [glue::Producer::OpenStack, glue::Producer::OpenNebula] {
        let rules = glue::Rules {
            now: 1_700_000_000,
            endpoint: Some("https://cloud.example.org:5000/v3".into()),
            producer,
        };
        let r = glue::validate(&doc, &rules);
        let _ = r.status();
    }
    // The same strings as LDAP attributes of one entry.
    let mut e = ldap::Entry::default();
    if let Some(o) = doc.as_object() {
        for (k, v) in o {
            e.attrs.entry(k.clone()).or_default().push(v.to_string());
        }
    }
    let _ = ldap::to_glue(&[e]);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = probes::clock::parse_iso(s);
        let _ = glue::normalise_url(s);
    }
});
