//! The driver's clock: read once per event and handed to the machines as [`Now`]. Under madsim
//! both clocks are simulated, so this same code is deterministic in simulation.
#![allow(clippy::disallowed_methods)]

use crate::core::time::{Instant, Now};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: tokio::time::Instant,
    /// Added to the wall clock: the simulator skews nodes' clocks with it.
    pub wall_offset_ms: i64,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            origin: tokio::time::Instant::now(),
            wall_offset_ms: 0,
        }
    }

    pub fn now(&self) -> Now {
        let mono = Instant(self.origin.elapsed().as_millis() as u64);
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Now {
            mono,
            wall_ms: wall.saturating_add(self.wall_offset_ms),
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
