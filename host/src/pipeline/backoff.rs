//! Exponential back-off of a plugin that keeps failing.

use std::time::{Duration, Instant};

/// Failures in a row that are retried at once, before backing off.
pub const FREE_FAILURES: u32 = 3;
/// The first back-off; each further failure doubles it.
pub const BASE_DELAY: Duration = Duration::from_secs(1);
/// The longest back-off.
pub const MAX_DELAY: Duration = Duration::from_secs(300);

/// Tracks consecutive failures: the first [`FREE_FAILURES`] are retried on
/// the next batch; after that the plugin rests [`BASE_DELAY`], doubling up
/// to [`MAX_DELAY`], until a call succeeds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    failures: u32,
    until: Option<Instant>,
}

impl Backoff {
    /// A call succeeded: forget the failures.
    pub fn success(&mut self) {
        *self = Backoff::default();
    }

    /// A call failed at `now`; returns the rest period it starts, if any.
    pub fn failure(&mut self, now: Instant) -> Option<Duration> {
        self.failures += 1;
        let over = self.failures.checked_sub(FREE_FAILURES)?;
        let delay = BASE_DELAY
            .checked_mul(1u32.checked_shl(over).unwrap_or(u32::MAX))
            .map_or(MAX_DELAY, |d| d.min(MAX_DELAY));
        self.until = Some(now + delay);
        Some(delay)
    }

    /// True while the plugin rests.
    pub fn resting(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_after_the_free_failures_and_caps() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        assert_eq!(b.failure(t0), None);
        assert_eq!(b.failure(t0), None);
        assert!(!b.resting(t0));
        assert_eq!(b.failure(t0), Some(Duration::from_secs(1)));
        assert!(b.resting(t0));
        assert!(!b.resting(t0 + Duration::from_secs(1)));
        assert_eq!(b.failure(t0), Some(Duration::from_secs(2)));
        assert_eq!(b.failure(t0), Some(Duration::from_secs(4)));
        for _ in 0..40 {
            b.failure(t0);
        }
        assert_eq!(b.failure(t0), Some(MAX_DELAY));
        b.success();
        assert!(!b.resting(t0));
        assert_eq!(b.failures(), 0);
    }
}
