//! How many of a run's jobs wait at each of their stages, and how many sites
//! are complete and handed to the reports: printed with the live heap by the
//! `heap-count` build's timeline (`bash ci/bench-harness-timeline.sh`), it
//! shows where a thousand sites' jobs queue and when their sites complete.
//! Relaxed counters: a few adds per job.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Where a job is: waiting for its site's slot, for one of `--jobs`, for
/// the gate's pace, or running (one waiting for the probe it is chained to,
/// check_usage for the VM probe's server, is in none yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    SiteSlot,
    JobSlot,
    Gate,
    Running,
}

#[derive(Default)]
pub struct Stages {
    at: [AtomicUsize; 4],
    jobs_done: AtomicUsize,
    sites_done: AtomicUsize,
    sites_out: AtomicUsize,
}

/// The process's counts.
pub static STAGES: Stages = Stages::new();

/// One job counted at a stage until dropped.
pub struct At<'a>(&'a Stages, Stage);

impl Drop for At<'_> {
    fn drop(&mut self) {
        self.0.at[self.1 as usize].fetch_sub(1, Relaxed);
    }
}

impl Stages {
    pub const fn new() -> Stages {
        Stages {
            at: [const { AtomicUsize::new(0) }; 4],
            jobs_done: AtomicUsize::new(0),
            sites_done: AtomicUsize::new(0),
            sites_out: AtomicUsize::new(0),
        }
    }

    /// `f`'s output, the job counted at `stage` while it is awaited.
    pub async fn during<T>(&self, stage: Stage, f: impl std::future::Future<Output = T>) -> T {
        let _at = self.at(stage);
        f.await
    }

    pub fn at(&self, stage: Stage) -> At<'_> {
        self.at[stage as usize].fetch_add(1, Relaxed);
        At(self, stage)
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

    /// `wsite=N wjobs=N wgate=N run=N done=N sites_done=N sites_out=N`.
    pub fn line(&self) -> String {
        let at = |s: Stage| self.at[s as usize].load(Relaxed);
        format!(
            "wsite={} wjobs={} wgate={} run={} done={} sites_done={} sites_out={}",
            at(Stage::SiteSlot),
            at(Stage::JobSlot),
            at(Stage::Gate),
            at(Stage::Running),
            self.jobs_done.load(Relaxed),
            self.sites_done.load(Relaxed),
            self.sites_out.load(Relaxed)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_counted_at_its_stage_until_it_moves_on() {
        let s = Stages::new();
        let waiting = s.at(Stage::SiteSlot);
        assert!(s.line().starts_with("wsite=1 wjobs=0 wgate=0 run=0 done=0"));
        drop(waiting);
        let running = s.at(Stage::Running);
        assert!(s.line().starts_with("wsite=0 wjobs=0 wgate=0 run=1 done=0"));
        drop(running);
        s.job_done();
        s.site_done();
        s.site_out();
        assert_eq!(
            s.line(),
            "wsite=0 wjobs=0 wgate=0 run=0 done=1 sites_done=1 sites_out=1"
        );
    }
}
