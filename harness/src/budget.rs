//! Jobs admitted under a memory budget and at the pace the CPU takes them.
//! A run over a thousand sites is CPU-bound long before `--jobs` is
//! reached, and every job in flight holds its connections, buffers and
//! evidence: a job that starts while the CPU is saturated only waits in the
//! runtime's queue, holding memory and using its own `-t`. So a job starts
//! when the runtime keeps up (a timer ticking every [`TICK`] is late by at
//! most [`LAG`]: then up to [`BURST`] start per tick) and, with a budget,
//! while the process's resident memory is under it; always while fewer
//! than a floor of jobs run (a run always progresses). Jobs waiting on a
//! cloud (a server booting) use no CPU, so against real sites the pace
//! admits as fast as `--jobs` allows.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Semaphore;

/// How often the head of the queue looks at the resident memory again.
const RECHECK: Duration = Duration::from_millis(10);
/// Longest wait of one job: past it the job starts anyway (the budget is a
/// target, not a reason to stall a run whose jobs hang until their deadline).
const MAX_WAIT: Duration = Duration::from_secs(120);
/// The pace's timer period.
pub const TICK: Duration = Duration::from_millis(2);
/// How late the pace's timer may wake for the runtime to count as keeping
/// up (tokio's timer wheel has millisecond slots: an idle runtime is late
/// by under one).
pub const LAG: Duration = Duration::from_millis(3);
/// Jobs started per tick at most (2,000 a second).
pub const BURST: usize = 4;

pub struct Gate {
    budget: Option<u64>,
    /// Jobs that run whatever the memory: a budget below what the process
    /// needs at rest still runs one site's worth at a time.
    floor: usize,
    max_wait: Duration,
    running: AtomicUsize,
    /// One waiter reads the memory at a time; the others queue behind it.
    head: tokio::sync::Mutex<()>,
    /// Starts handed out by the pace (see [`pace`]).
    starts: Semaphore,
    /// Turns to go on after a rest, handed out by the pace before starts.
    turns: Semaphore,
    /// Runs waiting for a turn, so the pace knows to give them first.
    waiting: AtomicUsize,
    /// Runs going on with a turn, or within the floor.
    awake: AtomicUsize,
}

/// A job admitted: counted as running until dropped.
pub struct Admitted(Arc<Gate>);

/// A run going on after its rest: counted awake until dropped.
struct Awake(Arc<Gate>);

impl Drop for Awake {
    fn drop(&mut self) {
        self.0.awake.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    /// `budget` in bytes of resident memory; `None` admits every job at once.
    /// `floor` jobs are admitted whatever the memory (at least one).
    pub fn new(budget: Option<u64>, floor: usize) -> Arc<Gate> {
        Gate::with_max_wait(budget, floor, MAX_WAIT)
    }

    fn with_max_wait(budget: Option<u64>, floor: usize, max_wait: Duration) -> Arc<Gate> {
        let gate = Arc::new(Gate {
            budget,
            floor: floor.max(1),
            max_wait,
            running: AtomicUsize::new(0),
            head: tokio::sync::Mutex::new(()),
            starts: Semaphore::new(0),
            turns: Semaphore::new(0),
            waiting: AtomicUsize::new(0),
            awake: AtomicUsize::new(0),
        });
        tokio::spawn(pace(Arc::downgrade(&gate)));
        gate
    }

    /// Wait until a rested run may go on: at once while fewer than the
    /// floor are awake, else at the pace (at most the longest wait).
    async fn take_turn(self: Arc<Gate>) -> Awake {
        if self.awake.load(Ordering::Acquire) >= self.floor {
            self.waiting.fetch_add(1, Ordering::AcqRel);
            let got = tokio::time::timeout(self.max_wait, self.turns.acquire()).await;
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            if let Ok(Ok(turn)) = got {
                turn.forget();
            }
        }
        self.awake.fetch_add(1, Ordering::AcqRel);
        Awake(self)
    }

    /// Wait until a job may start.
    pub async fn admit(self: &Arc<Gate>) -> Admitted {
        if let Some(budget) = self.budget {
            let _head = self.head.lock().await;
            let give_up = tokio::time::Instant::now() + self.max_wait;
            while self.running.load(Ordering::Acquire) >= self.floor
                && resident_bytes().is_some_and(|r| r >= budget)
                && tokio::time::Instant::now() < give_up
            {
                tokio::time::sleep(RECHECK).await;
            }
        }
        if self.running.load(Ordering::Acquire) >= self.floor {
            if let Ok(start) = self.starts.acquire().await {
                start.forget();
            }
        }
        self.running.fetch_add(1, Ordering::AcqRel);
        Admitted(self.clone())
    }
}

/// A gate paces the turns of the runs it admitted.
impl probes::poll::Pace for Gate {
    fn turn(
        self: Arc<Self>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = probes::poll::Turn> + Send>> {
        Box::pin(async move { Box::new(self.take_turn().await) as probes::poll::Turn })
    }
}

/// Hand out up to [`BURST`] starts and turns each [`TICK`] the timer is on
/// time (within [`LAG`]), turns first (their runs already hold memory);
/// ends with the gate. What is not taken does not pile up.
async fn pace(gate: Weak<Gate>) {
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(TICK).await;
        let now = tokio::time::Instant::now();
        let late = now.saturating_duration_since(last).saturating_sub(TICK);
        last = now;
        let Some(gate) = gate.upgrade() else {
            return;
        };
        let (starts, turns) = (&gate.starts, &gate.turns);
        if late > LAG {
            continue;
        }
        let want = gate.waiting.load(Ordering::Acquire).min(BURST);
        let given = want.saturating_sub(turns.available_permits());
        turns.add_permits(given);
        let left = BURST - want;
        let have = starts.available_permits();
        if have < left {
            starts.add_permits(left - have);
        }
    }
}

/// The process's resident memory now (Linux `/proc/self/status` VmRSS);
/// `None` where it cannot be read, which admits.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// How many finished sites the report side holds at once. A site is taken
/// off the shelf and graded only when there is a seat: the sites of a
/// thousand-site run finish within a second or two of each other, and each
/// graded site waiting for the renderer held its whole run in memory.
#[derive(Clone)]
pub struct Room(Arc<Semaphore>);

/// A site's place in the [`Room`], given back when it is dropped (after the
/// site is rendered).
pub struct Seat(#[allow(dead_code)] Option<tokio::sync::OwnedSemaphorePermit>);

impl Room {
    pub fn new(sites: usize) -> Room {
        Room(Arc::new(Semaphore::new(sites.max(1))))
    }

    /// For a consumer that keeps nothing (a count, a test).
    pub fn unbounded() -> Room {
        Room(Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)))
    }

    pub async fn seat(&self) -> Seat {
        // The semaphore is never closed; if it were, there is no bound.
        Seat(self.0.clone().acquire_owned().await.ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read() {
        let r = resident_bytes().expect("VmRSS on Linux");
        assert!(r > 1024 * 1024 && r < 64 * 1024 * 1024 * 1024, "{r}");
    }

    #[tokio::test]
    async fn over_budget_waits_for_running_jobs() {
        // A budget of one byte: always over.
        let gate = Gate::new(Some(1), 1);
        let first = gate.admit().await; // nothing runs: admitted
        let g = gate.clone();
        let second = tokio::spawn(async move { g.admit().await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !second.is_finished(),
            "admitted over budget while a job ran"
        );
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("admitted once the running job ended")
            .unwrap();
        assert_eq!(gate.running.load(Ordering::Acquire), 1);
        drop(second);
        assert_eq!(gate.running.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn the_floor_runs_whatever_the_memory() {
        let gate = Gate::new(Some(1), 3);
        let held = [gate.admit().await, gate.admit().await, gate.admit().await];
        let g = gate.clone();
        let fourth = tokio::spawn(async move { g.admit().await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!fourth.is_finished(), "a fourth job started over budget");
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), fourth)
            .await
            .expect("admitted under the floor")
            .unwrap();
    }

    #[tokio::test]
    async fn a_runtime_that_does_not_keep_up_starts_only_its_floor() {
        let busy = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let hog = hog(busy.clone());
        let gate = Gate::new(None, 1);
        let first = gate.admit().await; // under the floor: no wait
        let g = gate.clone();
        let second = tokio::spawn(async move { g.admit().await });
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!second.is_finished(), "started while the runtime lagged");
        busy.store(false, Ordering::Release);
        hog.await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("started once the runtime kept up")
            .unwrap();
        drop(first);
    }

    /// A task that holds the (one) runtime thread 20 ms at a time until
    /// `busy` turns false: the pace's timer is late at every tick.
    fn hog(busy: Arc<std::sync::atomic::AtomicBool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            while busy.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(20));
                tokio::task::yield_now().await;
            }
        })
    }

    #[tokio::test]
    async fn a_rested_run_goes_on_past_the_floor_only_while_the_runtime_keeps_up() {
        use probes::poll::Pace;
        let busy = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let hogging = hog(busy.clone());
        let gate = Gate::new(None, 1);
        let first = gate.clone().turn().await; // under the floor: no wait
        assert_eq!(gate.awake.load(Ordering::Acquire), 1);
        let second = tokio::spawn(gate.clone().turn());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!second.is_finished(), "went on while the runtime lagged");
        busy.store(false, Ordering::Release);
        hogging.await.unwrap();
        let second = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("went on once the runtime kept up")
            .unwrap();
        assert_eq!(gate.awake.load(Ordering::Acquire), 2);
        drop((first, second));
        assert_eq!(gate.awake.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn waiting_turns_are_given_before_new_starts() {
        use probes::poll::Pace;
        let busy = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let hogging = hog(busy.clone());
        let gate = Gate::new(None, 1);
        let _running = gate.admit().await; // the floor of jobs
        let _awake = gate.clone().turn().await; // the floor of turns
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for i in 0..BURST {
            let (g, o) = (gate.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let _ = g.admit().await;
                o.lock().unwrap().push(format!("start {i}"));
            }));
        }
        for i in 0..BURST {
            let (g, o) = (gate.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let _ = g.turn().await;
                o.lock().unwrap().push(format!("turn {i}"));
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            order.lock().unwrap().is_empty(),
            "{:?}",
            order.lock().unwrap()
        );
        busy.store(false, Ordering::Release);
        hogging.await.unwrap();
        for w in waiters {
            tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .expect("every start and turn given")
                .unwrap();
        }
        let order = order.lock().unwrap();
        let first_start = order.iter().position(|o| o.starts_with("start"));
        let last_turn = order.iter().rposition(|o| o.starts_with("turn"));
        assert!(last_turn < first_start, "starts before turns: {order:?}");
    }

    #[tokio::test]
    async fn without_budget_every_job_is_admitted_at_the_pace() {
        let gate = Gate::new(None, 1);
        let mut held = Vec::new();
        for _ in 0..100 {
            held.push(gate.admit().await);
        }
        assert_eq!(gate.running.load(Ordering::Acquire), 100);
        drop(held);
        assert_eq!(gate.running.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_stuck_job_does_not_stall_the_run_past_the_longest_wait() {
        let gate = Gate::with_max_wait(Some(1), 1, Duration::from_millis(300));
        let _stuck = gate.admit().await;
        let g = gate.clone();
        let next = tokio::spawn(async move { g.admit().await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!next.is_finished());
        tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("admitted after the longest wait")
            .unwrap();
    }
}
