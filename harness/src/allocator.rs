//! mimalloc's settings for one process running thousands of probes at once.

use libmimalloc_sys::{mi_option_set, mi_option_t};

/// `mi_option_page_max_reclaim` and `mi_option_page_cross_thread_max_reclaim`
/// in the mimalloc v3 that libmimalloc-sys builds (`include/mimalloc.h`; the
/// crate names no constant for them). The test checks their defaults, so an
/// upgrade that renumbers them fails it.
const PAGE_MAX_RECLAIM: mi_option_t = 41;
const PAGE_CROSS_THREAD_MAX_RECLAIM: mi_option_t = 42;

/// A page a thread gave up (full, then partly freed by another thread) is
/// taken back by its thread on a free only while that thread holds at most
/// one page of the size class; otherwise it waits for whichever thread next
/// needs a fresh page. With mimalloc's default (no limit) a 1,000-site run
/// peaked at 187-191 MB resident, 161-178 MB with a limit of 0, 1 or 4, at
/// the same CPU (BENCHMARKS.md, harness at scale). The environment
/// (`MIMALLOC_PAGE_MAX_RECLAIM`, ...) still wins. Call it first in `main`:
/// mimalloc's option setters are not thread safe.
pub fn tune() {
    for (option, env) in [
        (PAGE_MAX_RECLAIM, "MIMALLOC_PAGE_MAX_RECLAIM"),
        (
            PAGE_CROSS_THREAD_MAX_RECLAIM,
            "MIMALLOC_PAGE_CROSS_THREAD_MAX_RECLAIM",
        ),
    ] {
        if std::env::var_os(env).is_none() {
            // SAFETY: a plain store into mimalloc's option table, made
            // before any other thread exists.
            unsafe { mi_option_set(option, 1) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libmimalloc_sys::mi_option_get;

    /// The two options as mimalloc holds them now.
    fn reclaim_limits() -> (i64, i64) {
        // SAFETY: plain reads of mimalloc's option table.
        unsafe {
            (
                mi_option_get(PAGE_MAX_RECLAIM) as i64,
                mi_option_get(PAGE_CROSS_THREAD_MAX_RECLAIM) as i64,
            )
        }
    }

    #[test]
    fn the_reclaim_limits_are_the_options_named_and_tune_sets_them() {
        let from_env = [
            "MIMALLOC_PAGE_MAX_RECLAIM",
            "MIMALLOC_PAGE_CROSS_THREAD_MAX_RECLAIM",
        ]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
        if !from_env {
            // mimalloc's documented defaults: unlimited, and 32 (options.c).
            assert_eq!(
                reclaim_limits(),
                (-1, 32),
                "mimalloc renumbered its options"
            );
            tune();
            assert_eq!(reclaim_limits(), (1, 1));
        }
    }
}
