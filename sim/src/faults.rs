//! The fault schedule of a run, drawn from the seed: which disk faults are on, when the
//! supervisor kills servers, and when it clogs the network. Runs have two phases, as TigerBeetle's VOPR: a *safety* phase with
//! faults, then a *liveness* phase with none, in which the system must finish its work.

use crate::disk::DiskOptions;
use crate::spec::FaultSet;
use madsim::rand::Rng;
use std::time::Duration;

/// One kill of a server: when (since the start of the run) and for how long it stays down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kill {
    pub at: Duration,
    pub down_for: Duration,
}

/// Draws between 1 and `max` kills inside the safety window, in time order.
pub fn draw_kills(rng: &mut impl Rng, safety_window: Duration, max: u32) -> Vec<Kill> {
    let count = rng.gen_range(1..=max.max(1));
    let window_ms = u64::try_from(safety_window.as_millis())
        .unwrap_or(u64::MAX)
        .max(2);
    let mut kills: Vec<Kill> = (0..count)
        .map(|_| Kill {
            at: Duration::from_millis(rng.gen_range(1..window_ms)),
            down_for: Duration::from_millis(rng.gen_range(0..300)),
        })
        .collect();
    kills.sort_by_key(|kill| kill.at);
    kills
}

/// The disk options for a set of fault kinds.
pub fn disk_options(faults: FaultSet) -> DiskOptions {
    if faults.disk {
        DiskOptions::with_faults()
    } else {
        DiskOptions::faultless()
    }
}

/// A stretch of time during which a network target is cut off (`target` indexes the workload's
/// list of clog targets: a node, or the links between two nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clog {
    pub at: Duration,
    pub lasts: Duration,
    pub target: usize,
}

/// Draws up to `max` clogs inside the safety window over `targets` targets, in time order.
pub fn draw_clogs(
    rng: &mut impl Rng,
    safety_window: Duration,
    max: u32,
    targets: usize,
) -> Vec<Clog> {
    if targets == 0 {
        return Vec::new();
    }
    let count = rng.gen_range(0..=max);
    let window_ms = u64::try_from(safety_window.as_millis())
        .unwrap_or(u64::MAX)
        .max(2);
    let mut clogs: Vec<Clog> = (0..count)
        .map(|_| Clog {
            at: Duration::from_millis(rng.gen_range(1..window_ms)),
            lasts: Duration::from_millis(rng.gen_range(20..500)),
            target: rng.gen_range(0..targets),
        })
        .collect();
    clogs.sort_by_key(|clog| clog.at);
    clogs
}

/// Draws `0..=max` start times inside the safety window, in time order.
fn draw_times(rng: &mut impl Rng, safety_window: Duration, max: u32) -> Vec<Duration> {
    let count = rng.gen_range(0..=max);
    let window_ms = u64::try_from(safety_window.as_millis())
        .unwrap_or(u64::MAX)
        .max(2);
    let mut times: Vec<Duration> = (0..count)
        .map(|_| Duration::from_millis(rng.gen_range(1..window_ms)))
        .collect();
    times.sort();
    times
}

/// A stretch during which the broker process is paused (a long GC pause, SIGSTOP): its tasks do
/// not run, its sockets stay open, and its timers fire late once it resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    pub at: Duration,
    pub lasts: Duration,
}

/// Draws up to `max` pauses inside the safety window, in time order. Some are shorter than a
/// client's call timeout, some longer (the client gives up and reconnects).
pub fn draw_pauses(rng: &mut impl Rng, safety_window: Duration, max: u32) -> Vec<Pause> {
    draw_times(rng, safety_window, max)
        .into_iter()
        .map(|at| Pause {
            at,
            lasts: Duration::from_millis(rng.gen_range(10..1500)),
        })
        .collect()
}

/// A stretch of slow network: every packet takes between `latency_ms.0` and `latency_ms.1` ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySpike {
    pub at: Duration,
    pub lasts: Duration,
    pub latency_ms: (u64, u64),
}

/// Draws up to `max` latency spikes inside the safety window, in time order.
pub fn draw_latency_spikes(
    rng: &mut impl Rng,
    safety_window: Duration,
    max: u32,
) -> Vec<LatencySpike> {
    draw_times(rng, safety_window, max)
        .into_iter()
        .map(|at| {
            let low = rng.gen_range(20..200);
            LatencySpike {
                at,
                lasts: Duration::from_millis(rng.gen_range(50..800)),
                latency_ms: (low, low + rng.gen_range(1..400)),
            }
        })
        .collect()
}

/// A step of the broker's wall clock by `by_ms` (negative: backwards). The monotonic clock never
/// jumps; only wall time (timestamps, `segment.ms`, retention) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockJump {
    pub at: Duration,
    pub by_ms: i64,
}

/// Largest clock jump drawn: a few hours, either way.
const CLOCK_JUMP_MAX_MS: i64 = 4 * 3_600_000;

/// Draws up to `max` wall-clock jumps inside the safety window, in time order: from a second to a
/// few hours, forwards or backwards.
pub fn draw_clock_jumps(rng: &mut impl Rng, safety_window: Duration, max: u32) -> Vec<ClockJump> {
    draw_times(rng, safety_window, max)
        .into_iter()
        .map(|at| {
            // Half the jumps are small (seconds), half large (minutes to hours).
            let size = if rng.gen_bool(0.5) {
                rng.gen_range(1_000..60_000)
            } else {
                rng.gen_range(60_000..=CLOCK_JUMP_MAX_MS)
            };
            let by_ms = if rng.gen_bool(0.5) { size } else { -size };
            ClockJump { at, by_ms }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use madsim::rand::RngCore;

    /// A small seeded generator (SplitMix64), so schedules can be drawn outside a runtime.
    struct TestRng(u64);

    impl RngCore for TestRng {
        fn next_u32(&mut self) -> u32 {
            (self.next_u64() >> 32) as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for chunk in dest.chunks_mut(8) {
                let bytes = self.next_u64().to_le_bytes();
                chunk.copy_from_slice(&bytes[..chunk.len()]);
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), madsim::rand::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    const WINDOW: Duration = Duration::from_millis(2000);

    #[test]
    fn schedules_reproduce_from_a_seed() {
        for seed in 0..50 {
            let draw = |seed| {
                let mut rng = TestRng(seed);
                (
                    draw_kills(&mut rng, WINDOW, 4),
                    draw_clogs(&mut rng, WINDOW, 4, 7),
                    draw_pauses(&mut rng, WINDOW, 3),
                    draw_latency_spikes(&mut rng, WINDOW, 3),
                    draw_clock_jumps(&mut rng, WINDOW, 4),
                )
            };
            assert_eq!(draw(seed), draw(seed), "seed {seed}");
        }
        let mut a = TestRng(1);
        let mut b = TestRng(2);
        let many = |rng: &mut TestRng| draw_clock_jumps(rng, WINDOW, 50);
        assert_ne!(
            many(&mut a),
            many(&mut b),
            "different seeds, different schedules"
        );
    }

    #[test]
    fn schedules_stay_inside_the_window_and_in_order() {
        let mut rng = TestRng(7);
        for _ in 0..200 {
            let pauses = draw_pauses(&mut rng, WINDOW, 3);
            assert!(pauses.len() <= 3);
            assert!(pauses.windows(2).all(|w| w[0].at <= w[1].at));
            assert!(pauses.iter().all(|p| p.at < WINDOW && !p.lasts.is_zero()));
            for spike in draw_latency_spikes(&mut rng, WINDOW, 3) {
                assert!(spike.at < WINDOW);
                assert!(spike.latency_ms.0 < spike.latency_ms.1);
            }
            let jumps = draw_clock_jumps(&mut rng, WINDOW, 4);
            assert!(jumps.windows(2).all(|w| w[0].at <= w[1].at));
            for jump in jumps {
                assert!(jump.by_ms != 0 && jump.by_ms.abs() <= CLOCK_JUMP_MAX_MS);
            }
            let clogs = draw_clogs(&mut rng, WINDOW, 4, 5);
            assert!(clogs.iter().all(|c| c.target < 5 && c.at < WINDOW));
        }
    }
}
