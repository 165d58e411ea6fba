//! The hard overall deadline (`-t`) and the grace budget kept for cleanup.

use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    end: Instant,
}

impl Deadline {
    pub fn after(d: Duration) -> Deadline {
        Deadline {
            end: Instant::now() + d,
        }
    }

    pub fn at(end: Instant) -> Deadline {
        Deadline { end }
    }

    pub fn end(&self) -> Instant {
        self.end
    }

    pub fn remaining(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    pub fn expired(&self) -> bool {
        self.remaining().is_zero()
    }

    /// The earlier of this deadline and `d` from now.
    pub fn within(&self, d: Duration) -> Deadline {
        Deadline {
            end: self.end.min(Instant::now() + d),
        }
    }

    /// Sleep for `d`, or until the deadline if that comes first.
    pub async fn sleep(&self, d: Duration) {
        tokio::time::sleep_until(self.end.min(Instant::now() + d)).await
    }
}

/// Something that sends requests under a deadline and can be re-bound to
/// another one (the runner's cleanup deadline, a bounded sub-stage).
pub trait WithDeadline: Clone + Send + Sync + 'static {
    fn with_deadline(&self, deadline: Deadline) -> Self;
}

/// How the `-t` budget is split: probe work, then cleanup in what is left.
/// The reserve is a fifth of the timeout, between 1 s and 60 s.
pub fn cleanup_reserve(total: Duration) -> Duration {
    (total / 5).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_bounds() {
        assert_eq!(
            cleanup_reserve(Duration::from_secs(3)),
            Duration::from_secs(1)
        );
        assert_eq!(
            cleanup_reserve(Duration::from_secs(100)),
            Duration::from_secs(20)
        );
        assert_eq!(
            cleanup_reserve(Duration::from_secs(900)),
            Duration::from_secs(60)
        );
    }

    #[tokio::test]
    async fn within_takes_the_earlier() {
        let d = Deadline::after(Duration::from_secs(10));
        assert!(d.within(Duration::from_secs(1)).remaining() <= Duration::from_secs(1));
        assert!(d.within(Duration::from_secs(100)).remaining() <= Duration::from_secs(10));
    }
}
