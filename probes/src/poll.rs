//! Waiting for a cloud to reach a state: one loop for every probe, with
//! adaptive polling (start well under a second, grow to a cap of a few
//! seconds, so a change is noticed quickly with a bounded request count) and
//! the part of `-t` kept for what follows.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;

use crate::deadline::Deadline;
use crate::fail::Fail;
use crate::record::Recorder;

/// A wait that sleeps this long or longer first lets its run rest
/// ([`Recorder::rest`]: its HTTP clients and their idle connections go, and
/// are made again for the next look). Shorter sleeps keep them: a look every
/// few hundred milliseconds is cheaper on a kept connection than on a new
/// TLS handshake, and the first looks at a fresh create are that quick.
pub const REST_AFTER: Duration = Duration::from_millis(500);

tokio::task_local! {
    /// The run whose waits these are; set by the runner around a probe body.
    static RUN: std::sync::Arc<Recorder>;
    /// Who hands out turns to go on after a rest; set by a harness around a
    /// run ([`paced`]), read by the runner when it makes the run's recorder.
    static PACE: std::sync::Arc<dyn Pace>;
}

/// Held while a run goes on after a rest; let go at its next rest or end.
pub type Turn = Box<dyn Send + Sync>;

/// Hands out turns to runs that go on after a rest. A harness running
/// thousands of probes at once gives them at the pace its CPU keeps up
/// with: servers that come up together would otherwise wake every run at
/// once, each taking a connection (both ends' buffers) and its next
/// requests' state while it queues for the CPU.
pub trait Pace: Send + Sync {
    /// A turn, when there is one (bounded by the pace's own longest wait).
    fn turn(self: std::sync::Arc<Self>) -> Pin<Box<dyn Future<Output = Turn> + Send>>;
}

/// Run `body` with its runs' turns handed out by `pace`.
pub fn paced<F: Future>(
    pace: std::sync::Arc<dyn Pace>,
    body: F,
) -> impl Future<Output = F::Output> {
    PACE.scope(pace, body)
}

/// The pace of the run being made here, if a harness set one.
pub fn current_pace() -> Option<std::sync::Arc<dyn Pace>> {
    PACE.try_with(std::sync::Arc::clone).ok()
}

/// After a rest: wait for a turn (until `end`, if the wait has one) and
/// hold it in the run.
async fn take_turn(end: Option<Instant>) {
    let Some((rec, pace)) = RUN
        .try_with(|rec| rec.pace().map(|p| (rec.clone(), p)))
        .ok()
        .flatten()
    else {
        return;
    };
    let turn = match end {
        Some(end) => tokio::time::timeout_at(end, pace.turn()).await.ok(),
        None => Some(pace.turn().await),
    };
    if let Some(turn) = turn {
        rec.hold_turn(turn);
    }
}

/// Run `body` as `rec`'s: its waits let `rec` rest while they sleep long.
pub fn as_run<F: Future>(
    rec: std::sync::Arc<Recorder>,
    body: F,
) -> impl Future<Output = F::Output> {
    RUN.scope(rec, body)
}

/// One look at the state.
pub enum Poll<T> {
    Ready(T),
    /// Not yet; the state as the cloud words it, for the timeout message.
    Pending(String),
}

/// How a wait ended (a failed look ends it with that failure instead).
#[derive(Debug)]
pub enum Waited<T> {
    Ready {
        value: T,
        polls: u64,
    },
    TimedOut {
        /// How long it waited.
        limit: Duration,
        /// The wait was cut short to keep time for what follows.
        cut_by_deadline: bool,
        /// The last pending state seen.
        last: String,
        polls: u64,
    },
}

/// A wait that timed out, for wording its failure ([`Waited::or_fail`]).
pub struct Late<'a> {
    pub limit: Duration,
    pub cut_by_deadline: bool,
    pub last: &'a str,
    pub polls: u64,
}

impl<T> Waited<T> {
    /// The value and the looks it took, or the timeout as the site's
    /// failure: `say` words it, and it is marked cut by the deadline when
    /// it was, so no wait forgets to tell the two apart.
    pub fn or_fail(self, say: impl FnOnce(&Late) -> String) -> Result<(T, u64), Fail> {
        match self {
            Waited::Ready { value, polls } => Ok((value, polls)),
            Waited::TimedOut {
                limit,
                cut_by_deadline,
                last,
                polls,
            } => {
                let late = Late {
                    limit,
                    cut_by_deadline,
                    last: &last,
                    polls,
                };
                // -t left no time to wait (a look at most, at once): the
                // site was given none, so it is a timeout (as
                // --timeout-status says), not the site's failure.
                let fail = if cut_by_deadline && polls <= 1 {
                    Fail::timeout(say(&late))
                } else {
                    Fail::critical(say(&late))
                };
                Err(fail.cut_by_deadline(cut_by_deadline))
            }
        }
    }
}

/// Look with `exists` until it says no, within `within` and what
/// `deadline` leaves; the looks it took. Still there at the end is the
/// site's failure ([`Waited::or_fail`]).
pub async fn gone<F, Fut>(deadline: Deadline, within: Duration, mut exists: F) -> Result<u64, Fail>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, Fail>>,
{
    let wait = Wait::bounded(deadline, within, None);
    let waited = wait_for(wait, || {
        let fut = exists();
        async move {
            Ok(if fut.await? {
                Poll::Pending("still there".into())
            } else {
                Poll::Ready(())
            })
        }
    })
    .await?;
    waited
        .or_fail(|l| {
            format!(
                "still there {:.0}s after the delete was accepted",
                l.limit.as_secs_f64()
            )
        })
        .map(|(_, polls)| polls)
}

/// How long and how often to look.
#[derive(Clone, Copy, Debug)]
pub struct Wait {
    end: Option<Instant>,
    limit: Duration,
    cut: bool,
    every: Option<Duration>,
    sleep_first: bool,
}

impl Wait {
    /// Up to `want`, but not into the part of `deadline` kept for what comes
    /// after (the delete): a fifth of what is left, 2 s to 30 s.
    /// `every`: fixed poll interval, else adaptive.
    pub fn bounded(deadline: Deadline, want: Duration, every: Option<Duration>) -> Wait {
        let left = deadline.remaining();
        let reserve = (left / 5).clamp(Duration::from_secs(2), Duration::from_secs(30));
        let limit = want.min(left.saturating_sub(reserve));
        Wait {
            end: Some(Instant::now() + limit),
            limit,
            cut: limit < want,
            every,
            sleep_first: false,
        }
    }

    /// Until the looks themselves fail on their client's deadline.
    pub fn until_deadline() -> Wait {
        Wait {
            end: None,
            limit: Duration::ZERO,
            cut: false,
            every: None,
            sleep_first: false,
        }
    }

    /// Wait one interval before the first look (a fresh create is never ready).
    pub fn sleep_first(mut self) -> Wait {
        self.sleep_first = true;
        self
    }
}

/// Look with `check` until it is ready, fails, or the wait runs out.
pub async fn wait_for<T, F, Fut>(w: Wait, mut check: F) -> Result<Waited<T>, Fail>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, Fail>>,
{
    let mut backoff = Backoff::from_option(w.every);
    let mut polls = 0u64;
    let mut last = String::from("none yet");
    loop {
        if w.sleep_first || polls > 0 {
            let now = Instant::now();
            let mut delay = backoff.next_delay();
            if let Some(end) = w.end {
                if now >= end {
                    return Ok(Waited::TimedOut {
                        limit: w.limit,
                        cut_by_deadline: w.cut,
                        last,
                        polls,
                    });
                }
                delay = delay.min(end - now);
            }
            let rest = delay >= REST_AFTER;
            if rest {
                let _ = RUN.try_with(|rec| rec.rest());
            }
            tokio::time::sleep(delay).await;
            if rest {
                take_turn(w.end).await;
            }
        }
        polls += 1;
        match check().await? {
            Poll::Ready(value) => return Ok(Waited::Ready { value, polls }),
            Poll::Pending(state) => last = state,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
    cap: Duration,
    fixed: bool,
}

impl Backoff {
    /// 100 ms, x1.3 per poll, capped at 2 s: a fast cloud is noticed
    /// within a fraction of its own time (most servers turn ACTIVE in the
    /// first seconds), a slow one costs one request per 2 s (detection lag
    /// under 2 s; 12 polls reach the cap after 9.4 s).
    pub fn adaptive() -> Backoff {
        Backoff {
            next: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            fixed: false,
        }
    }

    /// Every `every` (`--poll-interval`).
    pub fn fixed(every: Duration) -> Backoff {
        Backoff {
            next: every,
            cap: every,
            fixed: true,
        }
    }

    pub fn from_option(every: Option<Duration>) -> Backoff {
        every.map(Backoff::fixed).unwrap_or_else(Backoff::adaptive)
    }

    /// The wait before the next poll.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        if !self.fixed {
            self.next = self.next.mul_f64(1.3).min(self.cap);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_cap() {
        let mut b = Backoff::adaptive();
        let delays: Vec<u128> = (0..14).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(
            delays,
            vec![100, 130, 169, 219, 285, 371, 482, 627, 815, 1060, 1378, 1792, 2000, 2000]
        );
        let mut f = Backoff::fixed(Duration::from_secs(10));
        assert_eq!(f.next_delay(), f.next_delay());
    }

    #[tokio::test]
    async fn waits_until_ready_and_counts_polls() {
        let mut n = 0;
        let w = Wait::bounded(
            Deadline::after(Duration::from_secs(30)),
            Duration::from_secs(10),
            Some(Duration::from_millis(1)),
        );
        let got = wait_for(w, || {
            n += 1;
            let v = n;
            async move {
                Ok(if v < 3 {
                    Poll::Pending(format!("step {v}"))
                } else {
                    Poll::Ready(v)
                })
            }
        })
        .await
        .unwrap();
        assert!(
            matches!(got, Waited::Ready { value: 3, polls: 3 }),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn keeps_a_reserve_of_the_deadline_and_says_so() {
        let w = Wait::bounded(
            Deadline::after(Duration::from_secs(3)),
            Duration::from_secs(300),
            Some(Duration::from_millis(50)),
        );
        let t0 = Instant::now();
        let got = wait_for(w, || async { Ok(Poll::<()>::Pending("BUILD".into())) })
            .await
            .unwrap();
        // 3 s left, 2 s kept: about 1 s of waiting.
        assert!(t0.elapsed() < Duration::from_millis(1800));
        match got {
            Waited::TimedOut {
                cut_by_deadline,
                last,
                polls,
                ..
            } => {
                assert!(cut_by_deadline);
                assert_eq!(last, "BUILD");
                assert!(polls > 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_timeout_fails_worded_and_marked_as_cut_or_not() {
        // Its own limit first (300 ms of 60 s), or what -t leaves first (300 s of 3 s).
        for (left, limit, cut) in [(60, 300, false), (3, 300_000, true)] {
            let w = Wait::bounded(
                Deadline::after(Duration::from_secs(left)),
                Duration::from_millis(limit),
                Some(Duration::from_millis(50)),
            );
            let f = wait_for(w, || async { Ok(Poll::<()>::Pending("BUILD".into())) })
                .await
                .unwrap()
                .or_fail(|l| format!("still {} after {} looks", l.last, l.polls))
                .unwrap_err();
            assert_eq!(f.cut_by_deadline, cut, "{f:?}");
            assert_eq!(f.status, crate::model::Status::Critical);
            assert!(f.to_string().starts_with("still BUILD after "), "{f}");
        }
        // -t left nothing to wait with: one look at once, so no verdict on
        // the site; a timeout, as --timeout-status says.
        let w = Wait::bounded(
            Deadline::after(Duration::from_secs(1)),
            Duration::from_secs(300),
            None,
        );
        let f = wait_for(w, || async { Ok(Poll::<()>::Pending("BUILD".into())) })
            .await
            .unwrap()
            .or_fail(|l| format!("not ready after {} looks", l.polls))
            .unwrap_err();
        assert!(f.cut_by_deadline, "{f:?}");
        assert_eq!(f.kind, crate::fail::FailKind::Timeout, "{f:?}");
        assert_eq!(f.to_string(), "not ready after 1 looks");
        let ready = Waited::Ready { value: 7, polls: 2 }.or_fail(|_| unreachable!());
        assert_eq!(ready.unwrap(), (7, 2));
    }

    #[tokio::test]
    async fn a_failed_look_ends_the_wait() {
        let w = Wait::until_deadline();
        let r = wait_for(w, || async {
            Err::<Poll<()>, _>(Fail::critical("HTTP 500"))
        })
        .await;
        assert_eq!(r.unwrap_err().message, "HTTP 500");
    }
}
