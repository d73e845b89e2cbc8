//! Counting for the bench: shared progress counters, request latencies and their percentiles.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Kafka's perf tools count a megabyte as 2^20 bytes; so do we, to compare like with like.
pub const MB: f64 = 1024.0 * 1024.0;

/// Records and payload bytes done so far, shared by the workers and the progress line.
#[derive(Debug, Default)]
pub struct Progress {
    records: AtomicU64,
    bytes: AtomicU64,
}

impl Progress {
    pub fn add(&self, records: u64, bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// (records, bytes).
    pub fn get(&self) -> (u64, u64) {
        (
            self.records.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// Every request's latency, kept exactly (a bench sends thousands, not billions, of requests).
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    micros: Vec<u64>,
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        self.micros
            .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn merge(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
    }

    pub fn summary(mut self) -> Option<LatencySummary> {
        if self.micros.is_empty() {
            return None;
        }
        self.micros.sort_unstable();
        let at = |q: f64| percentile(&self.micros, q);
        Some(LatencySummary {
            count: self.micros.len(),
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: self.micros.last().copied().unwrap_or(0),
        })
    }
}

/// Nearest-rank percentile of a sorted, non-empty slice.
fn percentile(sorted: &[u64], q: f64) -> u64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    let index = rank.saturating_sub(1).min(sorted.len().saturating_sub(1));
    sorted.get(index).copied().unwrap_or(0)
}

/// Percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySummary {
    pub count: usize,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |us: u64| us as f64 / 1000.0;
        write!(
            f,
            "latency over {} requests: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            self.count,
            ms(self.p50),
            ms(self.p99),
            ms(self.p999),
            ms(self.max)
        )
    }
}

/// The end-of-run figures.
#[derive(Debug, Clone)]
pub struct Report {
    /// "produced" or "consumed".
    pub verb: &'static str,
    pub records: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub latency: Option<LatencySummary>,
}

impl Report {
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / MB / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {} records, {} bytes in {:.3} s: {:.0} records/s, {:.2} MB/s (MB = 2^20 bytes)",
            self.verb,
            self.records,
            self.bytes,
            self.elapsed.as_secs_f64(),
            self.records_per_sec(),
            self.mb_per_sec()
        )?;
        match &self.latency {
            Some(l) => writeln!(f, "{l}"),
            None => writeln!(f, "latency: no responses (acks=0)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut l = Latencies::default();
        for us in (1..=1000).rev() {
            l.record(Duration::from_micros(us));
        }
        let s = l.summary().unwrap();
        assert_eq!(
            (s.count, s.p50, s.p99, s.p999, s.max),
            (1000, 500, 990, 999, 1000)
        );
        let mut one = Latencies::default();
        one.record(Duration::from_micros(7));
        let s = one.summary().unwrap();
        assert_eq!((s.p50, s.p999, s.max), (7, 7, 7));
        assert!(Latencies::default().summary().is_none());
    }

    #[test]
    fn report_prints_rates() {
        let r = Report {
            verb: "produced",
            records: 1024,
            bytes: 1 << 20,
            elapsed: Duration::from_millis(500),
            latency: None,
        };
        let text = r.to_string();
        assert!(
            text.starts_with(
                "produced 1024 records, 1048576 bytes in 0.500 s: 2048 records/s, 2.00 MB/s"
            ),
            "{text}"
        );
    }
}
