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
