//! The driver's clock: read once per event and handed to the machines as [`Now`]. Under madsim
//! both clocks are simulated, so this same code is deterministic in simulation.
//!
//! The wall clock can be skewed through a shared [`ClockSkew`]: the simulator moves it while the
//! broker runs to model NTP steps and clocks that disagree between nodes. The monotonic clock is
//! never skewed (deadlines must not jump).
#![allow(clippy::disallowed_methods)]

use crate::core::time::{Instant, Now};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Milliseconds added to the host's wall clock; clones share one value, so whoever holds a clone
/// can step the clock of a running broker.
#[derive(Debug, Clone, Default)]
pub struct ClockSkew(Arc<AtomicI64>);

impl ClockSkew {
    pub fn new(offset_ms: i64) -> ClockSkew {
        ClockSkew(Arc::new(AtomicI64::new(offset_ms)))
    }

    pub fn offset_ms(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, offset_ms: i64) {
        self.0.store(offset_ms, Ordering::Relaxed);
    }

    /// Steps the wall clock by `by_ms` (negative: backwards); returns the new offset.
    pub fn jump(&self, by_ms: i64) -> i64 {
        let old = self.0.fetch_add(by_ms, Ordering::Relaxed);
        old.saturating_add(by_ms)
    }
}

#[derive(Debug, Clone)]
pub struct Clock {
    origin: tokio::time::Instant,
    skew: ClockSkew,
}

impl Clock {
    pub fn start() -> Clock {
        Clock::with_skew(ClockSkew::default())
    }

    /// A clock whose wall time is the host's plus `skew`, read afresh at every `now`.
    pub fn with_skew(skew: ClockSkew) -> Clock {
        Clock {
            origin: tokio::time::Instant::now(),
            skew,
        }
    }

    pub fn now(&self) -> Now {
        let mono = Instant(self.origin.elapsed().as_millis() as u64);
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Now {
            mono,
            wall_ms: wall.saturating_add(self.skew.offset_ms()),
        }
    }

    /// The driver's own monotonic now, for its timers.
    pub fn tokio_now(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }

    /// The tokio instant matching a machine deadline.
    pub fn instant(&self, at: Instant) -> tokio::time::Instant {
        self.origin + std::time::Duration::from_millis(at.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_skew_moves_wall_time_only() {
        let skew = ClockSkew::default();
        let clock = Clock::with_skew(skew.clone());
        let before = clock.now();
        assert_eq!(skew.jump(-3_600_000), -3_600_000);
        let after = clock.now();
        assert!(after.wall_ms <= before.wall_ms - 3_600_000 + 1_000);
        assert!(after.mono >= before.mono, "the monotonic clock never jumps");
        skew.set(5);
        assert_eq!(skew.offset_ms(), 5);
    }
}
