//! Secrets (tokens, passwords, credential secrets) in a type that cannot be
//! printed, and a last scrub of every output for any fragment of one.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

/// Shortest run of a secret's characters we treat as a leak.
const FRAGMENT: usize = 8;

/// Every secret created so far, and every [`FRAGMENT`]-long window of them
/// as one `u64`. The window set is kept as secrets arrive, so a scrub is one
/// pass over its text whatever the number of secrets (a harness run over a
/// thousand sites knows thousands of tokens; rebuilding the set per scrub
/// made the run quadratic in the sites). `filter` rules almost every window
/// of a report out without touching the set.
struct Known {
    /// Each value, when it was last created, and its live copies: a value
    /// whose every `Secret` is gone can be forgotten ([`forget_unused`]).
    values: HashMap<Arc<str>, (Instant, Vec<Weak<str>>)>,
    /// Each window of the values. A set, not a count per window: it is
    /// most of the memory of a thousand sites' tokens, and forgetting
    /// (rare) rebuilds it from the values left.
    windows: HashSet<u64, foldhash::fast::RandomState>,
    filter: Filter,
    /// Every byte some value holds: a window with any other byte is no
    /// secret's, and most of a report (markup, spaces, quotes) is ruled out
    /// by this table alone, before the filter's cache misses.
    alphabet: [bool; 256],
}

/// A Bloom filter over the windows, two bits each, grown with them: at 16
/// to 32 bits a window, 0.4-1.4% of absent windows pass to the set. (A
/// fixed 2^20 bits, one each, let a large share through at a thousand
/// sites, several hundred thousand windows, and the set lookups were most
/// of the scrub's time.)
struct Filter {
    bits: u32,
    words: Vec<u64>,
}

impl Filter {
    const MIN_BITS: u32 = 20;
    /// 32 MiB: past this the filter only gets busier.
    const MAX_BITS: u32 = 28;

    fn new(bits: u32) -> Filter {
        Filter {
            bits,
            words: vec![0; (1usize << bits) / 64],
        }
    }

    fn at(&self, w: u64) -> [usize; 2] {
        let top = |m: u64| (w.wrapping_mul(m) >> (64 - self.bits)) as usize;
        [top(0x9E37_79B9_7F4A_7C15), top(0xC2B2_AE3D_27D4_EB4F)]
    }

    fn mark(&mut self, w: u64) {
        for b in self.at(w) {
            self.words[b / 64] |= 1 << (b % 64);
        }
    }

    fn may_hold(&self, w: u64) -> bool {
        self.at(w)
            .iter()
            .all(|b| self.words[b / 64] & (1 << (b % 64)) != 0)
    }

    /// The filter for `windows`: the smallest with 16 bits a window.
    fn of<'a>(windows: impl ExactSizeIterator<Item = &'a u64>) -> Filter {
        let mut f = Filter::new(Filter::bits_for(windows.len()));
        windows.for_each(|w| f.mark(*w));
        f
    }

    fn bits_for(n: usize) -> u32 {
        (n.saturating_mul(16)
            .max(1)
            .next_power_of_two()
            .trailing_zeros())
        .clamp(Filter::MIN_BITS, Filter::MAX_BITS)
    }
}

impl Known {
    fn new() -> Known {
        Known {
            values: HashMap::new(),
            windows: HashSet::default(),
            filter: Filter::new(Filter::MIN_BITS),
            alphabet: [false; 256],
        }
    }

    fn may_hold(&self, w: u64) -> bool {
        self.filter.may_hold(w) && self.windows.contains(&w)
    }

    fn remember(&mut self, value: &Arc<str>, now: Instant) {
        if let Some((at, copies)) = self.values.get_mut(value) {
            *at = now;
            copies.retain(|c| c.strong_count() > 0);
            copies.push(Arc::downgrade(value));
            return;
        }
        // The key is a copy: holding the `Secret`'s own `Arc` would keep it alive.
        self.values
            .insert(Arc::from(&**value), (now, vec![Arc::downgrade(value)]));
        for b in value.bytes() {
            self.alphabet[usize::from(b)] = true;
        }
        for w in value.as_bytes().windows(FRAGMENT).map(window) {
            self.filter.mark(w);
            self.windows.insert(w);
        }
        if Filter::bits_for(self.windows.len()) > self.filter.bits {
            self.filter = Filter::of(self.windows.iter());
        }
    }

    /// Forget the values no `Secret` holds any more, last created at least
    /// `older_than` before `now`; the filter is rebuilt from what is left.
    fn forget_unused(&mut self, now: Instant, older_than: Duration) -> usize {
        let stale: Vec<Arc<str>> = self
            .values
            .iter()
            .filter(|(_, (at, copies))| {
                now.saturating_duration_since(*at) >= older_than
                    && copies.iter().all(|c| c.strong_count() == 0)
            })
            .map(|(v, _)| v.clone())
            .collect();
        if stale.is_empty() {
            return 0;
        }
        for v in &stale {
            self.values.remove(v);
        }
        self.windows = self
            .values
            .keys()
            .flat_map(|v| v.as_bytes().windows(FRAGMENT).map(window))
            .collect();
        self.filter = Filter::of(self.windows.iter());
        self.alphabet = [false; 256];
        for b in self.values.keys().flat_map(|v| v.bytes()) {
            self.alphabet[usize::from(b)] = true;
        }
        stale.len()
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
    known
        .get_or_insert_with(Known::new)
        .remember(value, Instant::now());
}

/// Forget the secrets that no `Secret` holds any more and that were last
/// created at least `older_than` ago; returns how many. A long-running
/// process (`fedprobe serve`) calls it so the secrets of its past runs do not
/// pile up: `older_than` must exceed the longest run, so that whatever a
/// finished run rendered was scrubbed with its secrets still known.
pub fn forget_unused(older_than: Duration) -> usize {
    let Ok(mut known) = KNOWN.write() else {
        return 0;
    };
    known
        .as_mut()
        .map_or(0, |k| k.forget_unused(Instant::now(), older_than))
}

/// Secrets known to [`scrub`] now.
pub fn known_count() -> usize {
    KNOWN
        .read()
        .ok()
        .and_then(|k| k.as_ref().map(|k| k.values.len()))
        .unwrap_or(0)
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
                // Bytes in a row that some secret holds, ending at `end`.
                let mut run = 0;
                for (end, b) in bytes.iter().enumerate() {
                    if !known.alphabet[usize::from(*b)] {
                        run = 0;
                        continue;
                    }
                    run += 1;
                    if run < FRAGMENT {
                        continue;
                    }
                    let at = end + 1 - FRAGMENT;
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
    // Jump to the next `e` or `g`: most bytes start neither shape.
    while let Some(at) = memchr::memchr2(b'e', b'g', &b[i..]) {
        i += at;
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

    fn holds(k: &Known, text: &str) -> bool {
        k.may_hold(window(text.as_bytes()))
    }

    #[test]
    fn a_secret_no_one_holds_is_forgotten_once_old_enough() {
        let mut k = Known::new();
        let t0 = Instant::now();
        let gone: Arc<str> = "dropped-token-0123456789".into();
        let live: Arc<str> = "kept-token-9876543210".into();
        k.remember(&gone, t0);
        k.remember(&live, t0);
        drop(gone);
        // Too recent: a run may still render what it saw.
        assert_eq!(k.forget_unused(t0, Duration::from_secs(60)), 0);
        assert!(holds(&k, "dropped-"));
        let later = t0 + Duration::from_secs(61);
        assert_eq!(k.forget_unused(later, Duration::from_secs(60)), 1);
        assert!(!holds(&k, "dropped-"), "forgotten");
        assert!(holds(&k, "kept-tok"), "a live secret stays known");
        assert_eq!(k.values.len(), 1);
    }

    #[test]
    fn a_value_made_twice_stays_while_either_copy_lives() {
        let mut k = Known::new();
        let t0 = Instant::now();
        let first: Arc<str> = "same-value-abcdefgh".into();
        let second: Arc<str> = "same-value-abcdefgh".into();
        k.remember(&first, t0);
        k.remember(&second, t0);
        drop(first);
        let later = t0 + Duration::from_secs(10);
        assert_eq!(k.forget_unused(later, Duration::ZERO), 0);
        assert!(holds(&k, "same-val"));
        drop(second);
        assert_eq!(k.forget_unused(later, Duration::ZERO), 1);
        assert!(k.windows.is_empty() && k.values.is_empty());
        assert!(
            k.filter.words.iter().all(|b| *b == 0),
            "filter rebuilt empty"
        );
    }

    #[test]
    fn a_window_two_secrets_share_stays_while_one_is_known() {
        let mut k = Known::new();
        let t0 = Instant::now();
        let a: Arc<str> = "gAAAAABshared-prefix-one".into();
        let b: Arc<str> = "gAAAAABshared-prefix-two".into();
        k.remember(&a, t0);
        k.remember(&b, t0);
        drop(a);
        assert_eq!(k.forget_unused(t0, Duration::ZERO), 1);
        assert!(holds(&k, "gAAAAABs"), "shared window of the live one");
        assert!(holds(&k, "efix-two"));
        assert!(!holds(&k, "efix-one"));
    }

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

    /// A password of markup bytes (spaces, quotes, angle brackets,
    /// non-ASCII) is found whole and in part, at the text's ends too: the
    /// byte table skips only windows with a byte no secret holds.
    #[test]
    fn scrub_finds_secrets_made_of_markup_bytes() {
        let pw = "p\u{e9} <\"q\">& 7~|x";
        let _s = Secret::new(pw);
        let out = scrub(&format!("{pw}<td>{pw}</td> and \"q\">& 7~ then {pw}"));
        assert_eq!(out, "***<td>***</td> and *** then ***");
        // Each byte of the text is in the table but the window is no secret's.
        assert_eq!(scrub("q\"p <>& |x7~"), "q\"p <>& |x7~");
    }

    #[test]
    fn scrub_removes_token_shapes() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        assert_eq!(scrub(&format!("bearer {jwt}!")), "bearer ***!");
        assert_eq!(scrub("X gAAAAABnXyZ0123456789abcdefghij-_x Y"), "X *** Y");
        assert_eq!(scrub("eyJ short"), "eyJ short");
        // At the very start and end, two in a row, and one glued to a word
        // (part of something longer: kept).
        let fernet = "gAAAAABnXyZ0123456789abcdefghij";
        assert_eq!(scrub(&format!("{jwt} {fernet}")), "*** ***");
        // (Made of windows no test registers as a secret: the set is global.)
        for glued in ["eg-eyJ", "xeyJ", "_gAAAAA"].map(|s| format!("{s}{} e g", "Zq".repeat(12))) {
            assert_eq!(scrub(&glued), glued);
        }
        assert_eq!(
            scrub(&format!("eg eyJ{} e g", "Zq".repeat(12))),
            "eg *** e g"
        );
        assert_eq!(scrub(&format!("e:{fernet}")), "e:***");
    }

    #[test]
    fn the_filter_grows_with_the_windows_and_still_holds_each() {
        let mut k = Known::new();
        let now = Instant::now();
        let values: Vec<Arc<str>> = (0..20_000)
            .map(|i| Arc::from(format!("grow-{i:06}-{:032x}", i * 2_654_435_761u64)))
            .collect();
        for v in &values {
            k.remember(v, now);
        }
        assert!(k.windows.len() > 200_000, "{}", k.windows.len());
        assert!(k.filter.bits >= Filter::bits_for(k.windows.len()));
        assert!(k.filter.bits > Filter::MIN_BITS);
        for v in values.iter().step_by(997) {
            assert!(holds(&k, &v[7..15]), "{v}");
        }
        // Absent windows mostly stop at the filter (about 0.5% pass).
        let passed = (0..100_000u64)
            .filter(|i| k.filter.may_hold(i.wrapping_mul(0x5851_F42D_4C95_7F2D)))
            .count();
        assert!(passed < 2_000, "{passed} of 100,000 absent windows passed");
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
