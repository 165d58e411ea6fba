//! Secrets (tokens, passwords, credential secrets) in a type that cannot be
//! printed, and a last scrub of every output for any fragment of one.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
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
    values: HashMap<Arc<str>, Entry>,
    /// The values each open [`Scope`] created.
    by_scope: HashMap<u64, Vec<Arc<str>>>,
    /// Values whose scopes are all closed but a `Secret` still holds:
    /// looked at again as later scopes close.
    lingering: Vec<Arc<str>>,
    /// Each window of the values. A set, not a count per window: it is
    /// most of the memory of a thousand sites' tokens. Windows of forgotten
    /// values stay until they outnumber the others (`stale`), then the set
    /// is rebuilt from the values left: a forgotten fragment scrubbed a
    /// while longer is harmless, and the rebuilds cost amortised O(1) a
    /// window.
    windows: HashSet<u64, foldhash::fast::RandomState>,
    stale: usize,
    filter: Filter,
    /// Every byte some value holds: a window with any other byte is no
    /// secret's, and most of a report (markup, spaces, quotes) is ruled out
    /// by this table alone, before the filter's cache misses.
    alphabet: [bool; 256],
}

/// What is known of one value: when it was last created, its live copies
/// (a value no `Secret` holds can be forgotten), and the open scopes that
/// created it; `pinned` once created outside any scope.
struct Entry {
    at: Instant,
    copies: Vec<Weak<str>>,
    scopes: Vec<u64>,
    pinned: bool,
}

impl Entry {
    fn unheld(&self) -> bool {
        self.copies.iter().all(|c| c.strong_count() == 0)
    }
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
            by_scope: HashMap::new(),
            lingering: Vec::new(),
            windows: HashSet::default(),
            stale: 0,
            filter: Filter::new(Filter::MIN_BITS),
            alphabet: [false; 256],
        }
    }

    fn may_hold(&self, w: u64) -> bool {
        self.filter.may_hold(w) && self.windows.contains(&w)
    }

    fn remember(&mut self, value: &Arc<str>, now: Instant, scope: Option<Scope>) {
        if let Some(e) = self.values.get_mut(value) {
            e.at = now;
            e.copies.retain(|c| c.strong_count() > 0);
            e.copies.push(Arc::downgrade(value));
            match scope {
                None => e.pinned = true,
                Some(Scope(s)) if !e.scopes.contains(&s) => {
                    e.scopes.push(s);
                    let key = self.values.get_key_value(value).map(|(k, _)| k.clone());
                    self.by_scope.entry(s).or_default().extend(key);
                }
                Some(_) => {}
            }
            return;
        }
        // The key is a copy: holding the `Secret`'s own `Arc` would keep it alive.
        let key: Arc<str> = Arc::from(&**value);
        if let Some(Scope(s)) = scope {
            self.by_scope.entry(s).or_default().push(key.clone());
        }
        self.values.insert(
            key,
            Entry {
                at: now,
                copies: vec![Arc::downgrade(value)],
                scopes: scope.map(|s| s.0).into_iter().collect(),
                pinned: scope.is_none(),
            },
        );
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

    /// Close `scope`: forget the values it created that no open scope
    /// shares, no `Secret` holds and nothing outside a scope created;
    /// returns how many were forgotten (with earlier lingering ones).
    fn close(&mut self, scope: Scope) -> usize {
        for key in self.by_scope.remove(&scope.0).unwrap_or_default() {
            if let Some(e) = self.values.get_mut(&key) {
                e.scopes.retain(|s| *s != scope.0);
                if e.scopes.is_empty() && !e.pinned {
                    self.lingering.push(key);
                }
            }
        }
        let mut forgotten = 0;
        for key in std::mem::take(&mut self.lingering) {
            let Some(e) = self.values.get(&key) else {
                continue;
            };
            if !e.scopes.is_empty() || e.pinned {
                continue; // created again: its new scopes or the pin decide
            }
            if e.unheld() {
                self.values.remove(&key);
                self.stale += key.len().saturating_sub(FRAGMENT - 1);
                forgotten += 1;
            } else {
                self.lingering.push(key);
            }
        }
        if self.stale > Known::REBUILD_AT && self.stale > self.windows.len() / 2 {
            self.rebuild();
        }
        forgotten
    }

    /// Below this many stale windows the set is not worth rebuilding.
    const REBUILD_AT: usize = 4096;

    /// Forget the values no `Secret` holds any more, last created at least
    /// `older_than` before `now`, whatever their scopes.
    fn forget_unused(&mut self, now: Instant, older_than: Duration) -> usize {
        let stale: Vec<Arc<str>> = self
            .values
            .iter()
            .filter(|(_, e)| now.saturating_duration_since(e.at) >= older_than && e.unheld())
            .map(|(v, _)| v.clone())
            .collect();
        if stale.is_empty() {
            return 0;
        }
        for v in &stale {
            self.values.remove(v);
        }
        self.rebuild();
        stale.len()
    }

    /// The windows, filter and alphabet of the values left.
    fn rebuild(&mut self) {
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
        self.stale = 0;
        self.by_scope.shrink_to_fit();
    }
}

static KNOWN: RwLock<Option<Known>> = RwLock::new(None);

fn window(bytes: &[u8]) -> u64 {
    let mut w = [0u8; FRAGMENT];
    w.copy_from_slice(&bytes[..FRAGMENT]);
    u64::from_ne_bytes(w)
}

fn remember(value: &Arc<str>) {
    let scope = Scope::current();
    let Ok(mut known) = KNOWN.write() else {
        return;
    };
    known
        .get_or_insert_with(Known::new)
        .remember(value, Instant::now(), scope);
}

tokio::task_local! {
    static SCOPE: Option<Scope>;
}

/// A unit of work (one site of a harness run) whose secrets can be
/// forgotten once whatever it printed has been scrubbed: the secrets
/// created while a future runs in it ([`Scope::enter`]) are counted to it,
/// and [`Scope::close`] forgets those that no other open scope created,
/// nothing outside a scope created and no `Secret` holds. A secret created
/// outside every scope (the command line's, a profile's) is kept to the end,
/// or until [`forget_unused`]. A thousand sites' tokens would otherwise all
/// stay known to the end of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scope(u64);

impl Scope {
    /// A scope no other has been or will be.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Scope {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Scope(NEXT.fetch_add(1, Relaxed))
    }

    /// `fut`, with the secrets it creates counted to this scope.
    pub fn enter<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        SCOPE.scope(Some(self), fut)
    }

    /// `f`'s value, with the secrets it creates counted to this scope.
    pub fn sync<R>(self, f: impl FnOnce() -> R) -> R {
        SCOPE.sync_scope(Some(self), f)
    }

    /// The scope the running task is in, if any.
    pub fn current() -> Option<Scope> {
        SCOPE.try_with(|s| *s).ok().flatten()
    }

    /// Forget what only this scope knew. Call it once every text the scope's
    /// work produced has been scrubbed: a fragment of a forgotten secret is
    /// no longer hidden. Returns how many secrets were forgotten.
    pub fn close(self) -> usize {
        let Ok(mut known) = KNOWN.write() else {
            return 0;
        };
        known.as_mut().map_or(0, |k| k.close(self))
    }
}

/// `fut` in the scope of the task that calls this (none if none): for a
/// task spawned by a scoped one, which a task-local does not follow.
pub fn carry<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    SCOPE.scope(Scope::current(), fut)
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

/// Whether `value` is a secret known now (a forgotten one's fragments may
/// still be hidden a while: [`Known::windows`]).
pub fn is_known(value: &str) -> bool {
    KNOWN
        .read()
        .ok()
        .and_then(|k| k.as_ref().map(|k| k.values.contains_key(value)))
        .unwrap_or(false)
}

/// Windows of [`FRAGMENT`] bytes [`scrub`] looks for now (with those of
/// forgotten secrets not yet dropped).
pub fn window_count() -> usize {
    KNOWN
        .read()
        .ok()
        .and_then(|k| k.as_ref().map(|k| k.windows.len()))
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

    /// The credentials of HTTP Basic auth (base64 of `user:password`), a
    /// secret of their own: a server that echoes the `Authorization` header
    /// back shows the password in that form, which scrubbing the password
    /// alone misses. The header is `Basic ` and this value.
    pub fn basic_credentials(user: &str, password: &Secret) -> Secret {
        use base64::Engine as _;
        let plain = format!("{user}:{}", password.expose());
        Secret::new(base64::engine::general_purpose::STANDARD.encode(plain))
    }

    /// Read a secret from a file (token files as ARGO passes them).
    pub fn from_file(path: &std::path::Path) -> std::io::Result<Secret> {
        let text = crate::files::read_to_string(path, crate::files::SMALL)?;
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
        k.remember(&gone, t0, None);
        k.remember(&live, t0, None);
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
        k.remember(&first, t0, None);
        k.remember(&second, t0, None);
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
        k.remember(&a, t0, None);
        k.remember(&b, t0, None);
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
            k.remember(v, now, None);
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

    /// A closed scope's secrets are forgotten unless another open scope
    /// made them too, something outside every scope made them, or a
    /// `Secret` still holds them (then at a later close, once dropped).
    #[test]
    fn closing_a_scope_forgets_what_only_it_knew_and_no_one_holds() {
        let mut k = Known::new();
        let t0 = Instant::now();
        let (a, b) = (Scope::new(), Scope::new());
        let only_a: Arc<str> = "only-site-a-token-0001".into();
        let shared: Arc<str> = "shared-by-a-and-b-0002".into();
        let shared_b: Arc<str> = "shared-by-a-and-b-0002".into();
        let pinned: Arc<str> = "from-the-command-line-3".into();
        let pinned_a: Arc<str> = "from-the-command-line-3".into();
        let held: Arc<str> = "still-held-by-a-probe-4".into();
        k.remember(&only_a, t0, Some(a));
        k.remember(&shared, t0, Some(a));
        k.remember(&shared_b, t0, Some(b));
        k.remember(&pinned, t0, None);
        k.remember(&pinned_a, t0, Some(a));
        k.remember(&held, t0, Some(a));
        drop((only_a, shared, pinned, pinned_a));

        assert_eq!(k.close(a), 1);
        assert!(!k.values.contains_key("only-site-a-token-0001"));
        for v in [
            "shared-by-a-and-b-0002",
            "from-the-command-line-3",
            "still-held-by-a-probe-4",
        ] {
            assert!(k.values.contains_key(v), "{v} forgotten too soon");
        }
        assert_eq!(k.lingering.len(), 1, "the held one waits");

        drop((shared_b, held));
        assert_eq!(k.close(b), 2, "b's own, and a's lingering one now unheld");
        assert!(k.lingering.is_empty() && k.by_scope.is_empty());
        assert_eq!(k.values.len(), 1, "only the pinned value is left");
        // A few forgotten windows are not worth a rebuild: they stay and
        // are still hidden a while, which does no harm.
        assert!(holds(&k, "only-sit") && k.stale > 0);
    }

    /// Once forgotten windows outnumber the live ones the set is rebuilt:
    /// the memory follows the scopes still open, not all that ever were.
    #[test]
    fn the_window_set_shrinks_to_the_open_scopes() {
        let mut k = Known::new();
        let t0 = Instant::now();
        let live_scope = Scope::new();
        let live: Arc<str> = "a-token-of-a-site-still-running".into();
        k.remember(&live, t0, Some(live_scope));
        let mut closed = 0;
        for site in 0..300 {
            let s = Scope::new();
            for probe in 0..4 {
                let v: Arc<str> =
                    format!("site-{site:04}-probe-{probe}-token-abcdefghijklmnop").into();
                k.remember(&v, t0, Some(s));
            }
            closed += k.close(s);
        }
        assert_eq!(closed, 1200);
        let per_value = "site-0000-probe-0-token-abcdefghijklmnop".len() - FRAGMENT + 1;
        assert!(
            k.windows.len() < 2 * Known::REBUILD_AT + 4 * per_value + 100,
            "{} windows kept for one live value",
            k.windows.len()
        );
        assert!(holds(&k, "still-ru"));
        let out = {
            let text = "x a-token-of-a-site-still-running y";
            let w: Vec<bool> = (0..=text.len() - FRAGMENT)
                .map(|i| k.may_hold(window(&text.as_bytes()[i..])))
                .collect();
            w.iter().filter(|h| **h).count()
        };
        assert_eq!(
            out,
            live.len() - FRAGMENT + 1,
            "every window of the live value"
        );
    }

    /// Secrets made in a task take the scope it runs in, and a task it
    /// spawns through [`carry`] too; outside any scope there is none.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scope_follows_its_task_and_the_tasks_it_carries_to() {
        assert_eq!(Scope::current(), None);
        let s = Scope::new();
        let (inner, spawned, plain) = s
            .enter(async {
                let spawned = tokio::spawn(carry(async { Scope::current() }));
                let plain = tokio::spawn(async { Scope::current() });
                (
                    Scope::current(),
                    spawned.await.unwrap(),
                    plain.await.unwrap(),
                )
            })
            .await;
        assert_eq!((inner, spawned, plain), (Some(s), Some(s), None));
        assert_eq!(s.sync(Scope::current), Some(s));

        // Through the process's own table: a secret made in the scope is
        // hidden until the scope closes, then no more.
        let text = "the site said zq-scoped-secret-77531 back";
        let made = s
            .enter(async { Secret::new("zq-scoped-secret-77531") })
            .await;
        assert_eq!(scrub(text), "the site said *** back");
        assert!(is_known("zq-scoped-secret-77531"));
        drop(made);
        s.close();
        assert!(!is_known("zq-scoped-secret-77531"));
    }
}
