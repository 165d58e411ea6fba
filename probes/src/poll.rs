//! Adaptive polling: start well under a second, grow to a cap of a few
//! seconds, so a state change is noticed quickly with a bounded request count.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
    cap: Duration,
    fixed: bool,
}

impl Backoff {
    /// 250 ms, x1.5 per poll, capped at 2 s (detection lag under 2 s).
    pub fn adaptive() -> Backoff {
        Backoff {
            next: Duration::from_millis(250),
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
            self.next = self.next.mul_f64(1.5).min(self.cap);
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
        let delays: Vec<u128> = (0..8).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![250, 375, 562, 843, 1265, 1898, 2000, 2000]);
        let mut f = Backoff::fixed(Duration::from_secs(10));
        assert_eq!(f.next_delay(), f.next_delay());
    }
}
