//! How many of a run's jobs are queued, running and done, and how many sites
//! are admitted, complete and handed to the reports: printed with the live
//! heap by the `heap-count` build's timeline
//! (`bash ci/bench-harness-timeline.sh`), it shows how far ahead of the
//! reports a thousand sites' jobs run. Relaxed counters: a few adds per job.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

#[derive(Default)]
pub struct Stages {
    queued: AtomicUsize,
    running: AtomicUsize,
    jobs_done: AtomicUsize,
    sites_in: AtomicUsize,
    sites_done: AtomicUsize,
    sites_out: AtomicUsize,
}

/// The process's counts.
pub static STAGES: Stages = Stages::new();

/// One job counted as running until dropped.
pub struct Running<'a>(&'a Stages);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Relaxed);
    }
}

impl Stages {
    pub const fn new() -> Stages {
        Stages {
            queued: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            jobs_done: AtomicUsize::new(0),
            sites_in: AtomicUsize::new(0),
            sites_done: AtomicUsize::new(0),
            sites_out: AtomicUsize::new(0),
        }
    }

    /// A site admitted: its `jobs` wait for their turn.
    pub fn site_in(&self, jobs: usize) {
        self.sites_in.fetch_add(1, Relaxed);
        self.queued.fetch_add(jobs, Relaxed);
    }

    /// A queued job starts: counted running until the guard drops.
    pub fn start(&self) -> Running<'_> {
        self.queued.fetch_sub(1, Relaxed);
        self.running.fetch_add(1, Relaxed);
        Running(self)
    }

    pub fn job_done(&self) {
        self.jobs_done.fetch_add(1, Relaxed);
    }

    /// Every job of a site has ended.
    pub fn site_done(&self) {
        self.sites_done.fetch_add(1, Relaxed);
    }

    /// A complete site handed to the reports.
    pub fn site_out(&self) {
        self.sites_out.fetch_add(1, Relaxed);
    }

    /// `queued=N run=N done=N sites_in=N sites_done=N sites_out=N`.
    pub fn line(&self) -> String {
        format!(
            "queued={} run={} done={} sites_in={} sites_done={} sites_out={}",
            self.queued.load(Relaxed),
            self.running.load(Relaxed),
            self.jobs_done.load(Relaxed),
            self.sites_in.load(Relaxed),
            self.sites_done.load(Relaxed),
            self.sites_out.load(Relaxed)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_counted_where_it_is_until_it_moves_on() {
        let s = Stages::new();
        s.site_in(2);
        assert!(s.line().starts_with("queued=2 run=0 done=0 sites_in=1"));
        let running = s.start();
        assert!(s.line().starts_with("queued=1 run=1 done=0"));
        drop(running);
        s.job_done();
        s.site_done();
        s.site_out();
        assert_eq!(
            s.line(),
            "queued=1 run=0 done=1 sites_in=1 sites_done=1 sites_out=1"
        );
    }
}
