//! A measurement build's allocator: mimalloc, counting the live heap by
//! size class, printed to stderr with the resident memory and the open
//! descriptors (`FEDPROBE_HEAP_TRACE=MS`). The peak RSS of a run is its
//! heap's peak plus the allocator's own pages; this shows which, and when.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Live bytes and blocks per size class: class `c` holds sizes in
/// `[2^(c-1), 2^c)`.
static BYTES: [AtomicUsize; 64] = [const { AtomicUsize::new(0) }; 64];
static BLOCKS: [AtomicUsize; 64] = [const { AtomicUsize::new(0) }; 64];

fn class(size: usize) -> usize {
    (usize::BITS - size.leading_zeros()) as usize % 64
}

fn add(size: usize) {
    let live = LIVE.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(live, Relaxed);
    BYTES[class(size)].fetch_add(size, Relaxed);
    BLOCKS[class(size)].fetch_add(1, Relaxed);
}

fn sub(size: usize) {
    LIVE.fetch_sub(size, Relaxed);
    BYTES[class(size)].fetch_sub(size, Relaxed);
    BLOCKS[class(size)].fetch_sub(1, Relaxed);
}

// SAFETY: every call is passed on to mimalloc unchanged; the counts are
// only arithmetic on atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { mimalloc::MiMalloc.alloc(l) };
        if !p.is_null() {
            add(l.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { mimalloc::MiMalloc.alloc_zeroed(l) };
        if !p.is_null() {
            add(l.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(p, l) };
        sub(l.size());
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { mimalloc::MiMalloc.realloc(p, l, new) };
        if !q.is_null() {
            sub(l.size());
            add(new);
        }
        q
    }
}

/// With `FEDPROBE_HEAP_TRACE=MS` set, print a line every MS milliseconds
/// from a thread of its own (it never blocks the runtime).
pub fn report_from_env() {
    let Some(every) = std::env::var("FEDPROBE_HEAP_TRACE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
    else {
        return;
    };
    let t0 = Instant::now();
    let _ = std::thread::Builder::new()
        .name("heap-count".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(every));
            eprintln!("{}", line(t0.elapsed()));
        });
}

/// `heap t=S live=MB peak=MB rss=MB fds=N [class=MB/blocks ...]`, the
/// classes holding 1 MiB or more, then the jobs at each stage
/// ([`fedprobe::stages`]).
fn line(t: Duration) -> String {
    let mb = |b: usize| b >> 20;
    let rss = fedprobe::budget::resident_bytes().unwrap_or(0);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    let mut out = format!(
        "heap t={:.2} live={}MB peak={}MB rss={}MB fds={fds}",
        t.as_secs_f64(),
        mb(LIVE.load(Relaxed)),
        mb(PEAK.load(Relaxed)),
        rss >> 20
    );
    for c in 1..64 {
        let bytes = BYTES[c].load(Relaxed);
        if bytes >= 1 << 20 {
            let from = 1usize << (c - 1);
            let size = if from >= 1024 {
                format!("{}K", from / 1024)
            } else {
                from.to_string()
            };
            out.push_str(&format!(
                " {size}+={}MB/{}",
                mb(bytes),
                BLOCKS[c].load(Relaxed)
            ));
        }
    }
    out.push(' ');
    out.push_str(&fedprobe::stages::STAGES.line());
    out.push_str(&format!(
        " secrets={} windows={}",
        probes::secret::known_count(),
        probes::secret::window_count()
    ));
    out
}
