//! mimalloc's settings for one process running thousands of probes at once.

use libmimalloc_sys::{mi_option_set, mi_option_t};

/// `mi_option_page_max_reclaim` and `mi_option_page_cross_thread_max_reclaim`
/// in the mimalloc v3 that libmimalloc-sys builds (`include/mimalloc.h`; the
/// crate names no constant for them). The test checks their defaults, so an
/// upgrade that renumbers them fails it.
const PAGE_MAX_RECLAIM: mi_option_t = 41;
const PAGE_CROSS_THREAD_MAX_RECLAIM: mi_option_t = 42;
/// `mi_option_purge_delay` (its default in v3: 1,000 ms).
const PURGE_DELAY: mi_option_t = 15;

/// A page a thread gave up (full, then partly freed by another thread) is
/// taken back by its thread on a free only while that thread holds at most
/// one page of the size class; otherwise it waits for whichever thread next
/// needs a fresh page. With mimalloc's default (no limit) a 1,000-site run
/// peaked at 187-191 MB resident, 161-178 MB with a limit of 0, 1 or 4, at
/// the same CPU (BENCHMARKS.md, harness at scale). The environment
/// (`MIMALLOC_PAGE_MAX_RECLAIM`, ...) still wins. Call it first in `main`:
/// mimalloc's option setters are not thread safe.
///
/// Memory freed is also given back to the kernel at once, not a second later:
/// a run's allocations churn much faster than that, so delayed purges let freed
/// pages stay resident until the peak. 1,000 demo sites (`dist` build)
/// peaked at 130-133 MB against 155-170 MB, for about 4% more CPU in
/// madvise (BENCHMARKS.md, 2026-12-03 evening).
pub fn tune() {
    for (option, value, env) in [
        (PAGE_MAX_RECLAIM, 1, "MIMALLOC_PAGE_MAX_RECLAIM"),
        (
            PAGE_CROSS_THREAD_MAX_RECLAIM,
            1,
            "MIMALLOC_PAGE_CROSS_THREAD_MAX_RECLAIM",
        ),
        (PURGE_DELAY, 0, "MIMALLOC_PURGE_DELAY"),
    ] {
        if std::env::var_os(env).is_none() {
            // SAFETY: a plain store into mimalloc's option table, made
            // before any other thread exists.
            unsafe { mi_option_set(option, value) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libmimalloc_sys::mi_option_get;

    /// The three options as mimalloc holds them now.
    fn options() -> (i64, i64, i64) {
        // SAFETY: plain reads of mimalloc's option table.
        unsafe {
            (
                mi_option_get(PAGE_MAX_RECLAIM) as i64,
                mi_option_get(PAGE_CROSS_THREAD_MAX_RECLAIM) as i64,
                mi_option_get(PURGE_DELAY) as i64,
            )
        }
    }

    #[test]
    fn the_options_are_the_ones_named_and_tune_sets_them() {
        let from_env = [
            "MIMALLOC_PAGE_MAX_RECLAIM",
            "MIMALLOC_PAGE_CROSS_THREAD_MAX_RECLAIM",
            "MIMALLOC_PURGE_DELAY",
        ]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
        if !from_env {
            // mimalloc's defaults: unlimited, 32 and 1,000 ms (options.c).
            assert_eq!(options(), (-1, 32, 1000), "mimalloc renumbered its options");
            tune();
            assert_eq!(options(), (1, 1, 0));
        }
    }
}
