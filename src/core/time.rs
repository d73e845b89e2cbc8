//! Time as an argument. Drivers read their clock once per event and pass these values in.

/// Monotonic time in milliseconds since an arbitrary origin chosen by the driver: for deadlines,
/// timeouts and long polls. Never compared with wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(pub u64);

impl Instant {
    pub fn plus_ms(self, ms: u64) -> Instant {
        Instant(self.0.saturating_add(ms))
    }

    pub fn saturating_since(self, earlier: Instant) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// Both clocks at one moment: `mono` for deadlines, `wall_ms` (Unix epoch milliseconds) for
/// record timestamps, segment age and retention, as Kafka uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Now {
    pub mono: Instant,
    pub wall_ms: i64,
}
