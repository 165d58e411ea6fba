//! Secrets (tokens, passwords, credential secrets) in a type that cannot be
//! printed, and a last scrub of every output for any fragment of one.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, RwLock};

/// Shortest run of a secret's characters we treat as a leak.
const FRAGMENT: usize = 8;

/// Every secret created so far, and every [`FRAGMENT`]-long window of them
/// as one `u64`. The window set is kept as secrets arrive, so a scrub is one
/// pass over its text whatever the number of secrets (a harness run over a
/// thousand sites knows thousands of tokens; rebuilding the set per scrub
/// made the run quadratic in the sites). `filter` has one bit per
/// multiplicative hash of a window: a clear bit rules a window out without
/// touching the set, and almost every window of a report is ruled out so
/// (the set is megabytes at that scale; the filter stays in cache).
struct Known {
    values: HashSet<Arc<str>>,
    windows: HashSet<u64, foldhash::fast::RandomState>,
    filter: Vec<u64>,
}

/// Bits in [`Known::filter`]: 2^20 (128 KiB), a few percent set by the
/// ~100,000 windows of a thousand sites' tokens.
const FILTER_BITS: u32 = 20;

fn filter_bit(w: u64) -> usize {
    (w.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - FILTER_BITS)) as usize
}

impl Known {
    fn may_hold(&self, w: u64) -> bool {
        let b = filter_bit(w);
        self.filter[b / 64] & (1 << (b % 64)) != 0 && self.windows.contains(&w)
    }
}

static KNOWN: RwLock<Option<Known>> = RwLock::new(None);

fn window(bytes: &[u8]) -> u64 {
    let mut w = [0u8; FRAGMENT];
    w.copy_from_slice(&bytes[..FRAGMENT]);
    u64::from_ne_bytes(w)
}

fn remember(value: &Arc<str>) {
    let Ok(mut known) = KNOWN.write() else {
        return;
    };
    let known = known.get_or_insert_with(|| Known {
        values: HashSet::new(),
        windows: HashSet::default(),
        filter: vec![0; (1 << FILTER_BITS) / 64],
    });
    if known.values.insert(value.clone()) {
        for w in value.as_bytes().windows(FRAGMENT).map(window) {
            let b = filter_bit(w);
            known.filter[b / 64] |= 1 << (b % 64);
            known.windows.insert(w);
        }
    }
}

/// A secret value. `Debug` prints `Secret(***)`; there is no `Display` and no
/// `Serialize`. Every secret created is remembered so [`scrub`] can remove it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        let value: String = value.into();
        let value: Arc<str> = value.trim().into();
        if value.len() >= FRAGMENT {
            remember(&value);
        }
        Secret(value)
    }

    /// Read a secret from a file (token files as ARGO passes them).
    pub fn from_file(path: &std::path::Path) -> std::io::Result<Secret> {
        let text = std::fs::read_to_string(path)?;
        Ok(Secret::new(text))
    }

    /// The value, for putting on the wire. Never format it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Replace any run of [`FRAGMENT`] or more characters of a known secret, and
/// anything shaped like a JWT or a Keystone fernet token, with `***`.
pub fn scrub(text: &str) -> String {
    let bytes = text.as_bytes();
    // Allocated on the first hit only: most texts hold no secret.
    let mut hide: Vec<bool> = Vec::new();
    if bytes.len() >= FRAGMENT {
        if let Ok(known) = KNOWN.read() {
            if let Some(known) = known.as_ref().filter(|k| !k.windows.is_empty()) {
                for at in 0..=bytes.len() - FRAGMENT {
                    if known.may_hold(window(&bytes[at..])) {
                        if hide.is_empty() {
                            hide = vec![false; bytes.len()];
                        }
                        hide[at..at + FRAGMENT].iter_mut().for_each(|h| *h = true);
                    }
                }
            }
        }
    }
    mark_token_shapes(text, &mut hide);
    if hide.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut in_hidden = false;
    for (i, ch) in text.char_indices() {
        let h = hide[i..i + ch.len_utf8()].iter().any(|x| *x);
        if h {
            if !in_hidden {
                out.push_str("***");
            }
            in_hidden = true;
        } else {
            in_hidden = false;
            out.push(ch);
        }
    }
    out
}

/// JWTs (`eyJ...`) and fernet tokens (`gAAAAA...`) of 20+ token characters.
/// `hide` is empty until something is to be hidden, then as long as `text`.
fn mark_token_shapes(text: &str, hide: &mut Vec<bool>) {
    let b = text.as_bytes();
    let tok = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.' || c == b'=';
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"eyJ") || b[i..].starts_with(b"gAAAAA") {
            let start_ok = i == 0 || !tok(b[i - 1]);
            let mut j = i;
            while j < b.len() && tok(b[j]) {
                j += 1;
            }
            if start_ok && j - i >= 20 {
                if hide.is_empty() {
                    *hide = vec![false; b.len()];
                }
                hide[i..j].iter_mut().for_each(|h| *h = true);
                i = j;
                continue;
            }
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_value() {
        let s = Secret::new("super-secret-value-123");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "super-secret-value-123");
    }

    #[test]
    fn scrub_removes_whole_and_partial_secrets() {
        let _s = Secret::new("abcdefghijklmnopqrstuvwxyz0123456789");
        let out = scrub("token=abcdefghijklmnopqrstuvwxyz0123456789 and prefix ghijklmnop end");
        assert!(!out.contains("abcdefgh"), "{out}");
        assert!(!out.contains("ghijklmn"), "{out}");
        assert!(out.contains("token=*** and prefix *** end"), "{out}");
    }

    #[test]
    fn scrub_removes_token_shapes() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        assert_eq!(scrub(&format!("bearer {jwt}!")), "bearer ***!");
        assert_eq!(scrub("X gAAAAABnXyZ0123456789abcdefghij-_x Y"), "X *** Y");
        assert_eq!(scrub("eyJ short"), "eyJ short");
    }

    #[test]
    fn scrub_finds_a_fragment_among_thousands_of_secrets() {
        let secrets: Vec<Secret> = (0..5000)
            .map(|i| Secret::new(format!("many-{i:05}-{:040}", i * 7919)))
            .collect();
        let middle = &secrets[2500].expose()[3..14];
        assert_eq!(scrub(&format!("x {middle} y")), "x *** y");
        assert_eq!(scrub("x plain words only y"), "x plain words only y");
    }

    #[test]
    fn scrub_keeps_unicode_intact() {
        let _s = Secret::new("ünïcödé-secret-xyz");
        assert_eq!(scrub("ä ünïcödé-secret-xyz ö"), "ä *** ö");
    }
}
