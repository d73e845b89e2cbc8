//! BUGGIFY, after FoundationDB: code may ask the simulator to take an unusual but legal path
//! (a short read, an early answer, a smaller batch, an early segment roll) so that rare branches
//! run in every sweep instead of once a year in production.
//!
//! Semantics (FoundationDB's): each *site* (a name) is either active or not for a whole run,
//! decided by hashing the run seed with the site's name ([`SITE_ACTIVE`] of the sites per seed);
//! an active site fires with the probability given at the call each time it is reached.
//!
//! Randomness comes from the run seed, never from a global RNG: a [`Buggify`] is a value owned by
//! whoever asks (the broker machine, a log's I/O driver, a connection), with its own small
//! generator. [`Buggify::fork`] derives an independent stream for another owner; every fork of one
//! seed agrees on which sites are active.
//!
//! Outside simulation (`cfg(not(madsim))`) a [`Buggify`] is zero-sized and [`Buggify::fire`] is a
//! constant `false`, so every buggified branch is removed by the optimizer. Under `cfg(madsim)` it
//! is on unless the simulator turned it off for the run ([`sim::set_enabled`]); the simulator also
//! reads per-site counters from [`sim::counts`].

/// Share of sites active in one run (FoundationDB uses the same).
pub const SITE_ACTIVE: f64 = 0.25;

#[cfg(any(madsim, test))]
use std::sync::atomic::{AtomicU64, Ordering};

/// A source of buggify decisions for one owner. See the module docs. Not `Clone`: a copy would
/// repeat the same draws; [`Buggify::fork`] gives another owner its own stream.
#[derive(Debug, Default)]
pub struct Buggify {
    #[cfg(madsim)]
    engine: Option<Engine>,
}

#[cfg(not(madsim))]
impl Buggify {
    /// Buggify for a run with this seed: always off outside simulation.
    #[inline(always)]
    pub fn new(_seed: u64) -> Buggify {
        Buggify {}
    }

    /// Never fires.
    #[inline(always)]
    pub fn disabled() -> Buggify {
        Buggify {}
    }

    #[inline(always)]
    pub fn fork(&self, _name: &str) -> Buggify {
        Buggify {}
    }

    #[inline(always)]
    pub fn fork_id(&self, _id: u64) -> Buggify {
        Buggify {}
    }

    /// Whether `site` takes its unusual path now: always `false` outside simulation.
    #[inline(always)]
    pub fn fire(&self, _site: &'static str, _probability: f64) -> bool {
        false
    }

    /// A number in `0..n` (0 when `n` is 0) for shaping a path that fired: always 0 here.
    #[inline(always)]
    pub fn pick(&self, _n: u64) -> u64 {
        0
    }
}

#[cfg(madsim)]
impl Buggify {
    /// Buggify for a run with this seed: on unless the simulator turned it off for this run.
    pub fn new(seed: u64) -> Buggify {
        Buggify {
            engine: sim::enabled().then(|| Engine::new(seed)),
        }
    }

    /// Never fires.
    pub fn disabled() -> Buggify {
        Buggify { engine: None }
    }

    /// An independent stream for another owner named `name` (same active sites).
    pub fn fork(&self, name: &str) -> Buggify {
        self.fork_id(fnv1a(name.as_bytes()))
    }

    /// An independent stream for another owner numbered `id` (same active sites).
    pub fn fork_id(&self, id: u64) -> Buggify {
        Buggify {
            engine: self.engine.as_ref().map(|e| e.fork(id)),
        }
    }

    /// Whether `site` takes its unusual path now.
    pub fn fire(&self, site: &'static str, probability: f64) -> bool {
        let Some(engine) = &self.engine else {
            return false;
        };
        if !engine.active(site) {
            return false;
        }
        let fired = engine.draw(probability);
        sim::count(site, fired);
        fired
    }

    /// A number in `0..n` (0 when `n` is 0) for shaping a path that fired.
    pub fn pick(&self, n: u64) -> u64 {
        self.engine.as_ref().map_or(0, |e| e.pick(n))
    }
}

/// The decisions: per-site activation by hashing, firing by a splitmix64 stream. Compiled for
/// simulation and for the unit tests below (which run without madsim).
#[cfg(any(madsim, test))]
#[derive(Debug)]
struct Engine {
    seed: u64,
    /// Which fork this is (a hash of the fork path): forks of forks differ from their parents.
    lineage: u64,
    /// An atomic only so that owners stay `Sync` (futures borrow them across awaits); each
    /// stream has one owner, so the order of draws is the program's order.
    state: AtomicU64,
}

#[cfg(any(madsim, test))]
impl Engine {
    fn new(seed: u64) -> Engine {
        let lineage = 0x6275_6767_6966_7921;
        Engine {
            seed,
            lineage,
            state: AtomicU64::new(mix(seed ^ lineage)),
        }
    }

    /// A child stream that depends on the seed and the fork path only, never on how much the
    /// parent has drawn.
    fn fork(&self, id: u64) -> Engine {
        let lineage = mix(self.lineage ^ mix(id.wrapping_add(1)));
        Engine {
            seed: self.seed,
            lineage,
            state: AtomicU64::new(mix(self.seed ^ lineage)),
        }
    }

    /// Whether `site` is active in this run: a function of the seed and the name only.
    fn active(&self, site: &str) -> bool {
        unit(mix(self.seed ^ fnv1a(site.as_bytes()))) < SITE_ACTIVE
    }

    fn next(&self) -> u64 {
        let step = 0x9e37_79b9_7f4a_7c15;
        mix(self
            .state
            .fetch_add(step, Ordering::Relaxed)
            .wrapping_add(step))
    }

    #[cfg(test)]
    fn fire(&self, site: &str, probability: f64) -> bool {
        self.active(site) && self.draw(probability)
    }

    /// One draw of an active site: true with `probability`.
    fn draw(&self, probability: f64) -> bool {
        unit(self.next()) < probability
    }

    fn pick(&self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// splitmix64's output function: a good 64-bit mixer.
#[cfg(any(madsim, test))]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform value in `[0, 1)` from the top 53 bits.
#[cfg(any(madsim, test))]
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(any(madsim, test))]
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The simulator's side: turn buggify on or off for a run, and read what fired. The state is per
/// thread, so runs on parallel threads do not mix, and [`sim::set_enabled`] clears it at the
/// start of each run. This is bookkeeping only; no decision reads it except the on/off switch.
#[cfg(madsim)]
pub mod sim {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// How often one site was reached while active, and how often it fired.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct SiteCount {
        pub reached: u64,
        pub fired: u64,
    }

    struct State {
        enabled: bool,
        sites: BTreeMap<&'static str, SiteCount>,
    }

    thread_local! {
        static STATE: RefCell<State> = const {
            RefCell::new(State { enabled: true, sites: BTreeMap::new() })
        };
    }

    /// Turns buggify on or off for `Buggify`s created on this thread from now on, and clears the
    /// counters.
    pub fn set_enabled(on: bool) {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            s.enabled = on;
            s.sites.clear();
        });
    }

    pub(super) fn enabled() -> bool {
        STATE.with(|s| s.borrow().enabled)
    }

    pub(super) fn count(site: &'static str, fired: bool) {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let c = s.sites.entry(site).or_default();
            c.reached += 1;
            c.fired += u64::from(fired);
        });
    }

    /// Every active site reached on this thread since [`set_enabled`], by name.
    pub fn counts() -> Vec<(&'static str, SiteCount)> {
        STATE.with(|s| s.borrow().sites.iter().map(|(k, v)| (*k, *v)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITES: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

    #[cfg(not(madsim))]
    #[test]
    fn production_build_never_fires_and_costs_nothing() {
        assert_eq!(std::mem::size_of::<Buggify>(), 0);
        let b = Buggify::new(7);
        for seed in 0..100 {
            let b = Buggify::new(seed).fork("x").fork_id(seed);
            for site in SITES {
                assert!(!b.fire(site, 1.0));
            }
        }
        assert_eq!(b.pick(10), 0);
    }

    fn decisions(seed: u64) -> Vec<bool> {
        let e = Engine::new(seed);
        (0..200)
            .map(|i| e.fire(SITES[i % SITES.len()], 0.5))
            .collect()
    }

    #[test]
    fn same_seed_same_decisions() {
        for seed in [0, 1, 7, u64::MAX] {
            assert_eq!(decisions(seed), decisions(seed));
            let (a, b) = (Engine::new(seed).fork(3), Engine::new(seed).fork(3));
            let picks = |e: &Engine| (0..50).map(|_| e.pick(1000)).collect::<Vec<_>>();
            assert_eq!(picks(&a), picks(&b));
        }
        assert_ne!(decisions(1), decisions(2));
    }

    #[test]
    fn about_a_quarter_of_sites_are_active_and_each_independently() {
        let names: Vec<String> = (0..2000).map(|i| format!("site-{i}")).collect();
        let e = Engine::new(42);
        let active = names.iter().filter(|n| e.active(n)).count();
        assert!((400..600).contains(&active), "{active} of 2000 active");
        // Per site over many seeds: also about a quarter, and two sites do not move together.
        let seeds = 0..4000u64;
        let both = seeds
            .clone()
            .filter(|&s| Engine::new(s).active("x") && Engine::new(s).active("y"))
            .count();
        let x = seeds
            .clone()
            .filter(|&s| Engine::new(s).active("x"))
            .count();
        assert!((800..1200).contains(&x), "x active in {x} of 4000 seeds");
        assert!((150..350).contains(&both), "x and y both active in {both}");
    }

    #[test]
    fn forks_agree_on_active_sites_but_fire_independently() {
        let e = Engine::new(9);
        let (a, b) = (e.fork(1), e.fork(2));
        for site in SITES {
            assert_eq!(e.active(site), a.active(site));
            assert_eq!(e.active(site), b.active(site));
        }
        let site = (0..)
            .map(|i| format!("s{i}"))
            .find(|s| e.active(s))
            .unwrap();
        // A fork depends on its path, not on what the parent drew.
        let again = Engine::new(9);
        again.next();
        assert_eq!(again.fork(1).next(), e.fork(1).next());
        assert_ne!(e.fork(1).fork(2).next(), e.fork(2).next());
        let fa: Vec<bool> = (0..64).map(|_| a.fire(&site, 0.5)).collect();
        let fb: Vec<bool> = (0..64).map(|_| b.fire(&site, 0.5)).collect();
        assert_ne!(fa, fb);
        let fired = fa.iter().filter(|f| **f).count();
        assert!((16..48).contains(&fired), "{fired} of 64 at p=0.5");
    }

    #[test]
    fn inactive_sites_never_fire_and_pick_stays_in_range() {
        let e = Engine::new(5);
        let site = (0..)
            .map(|i| format!("s{i}"))
            .find(|s| !e.active(s))
            .unwrap();
        assert!((0..100).all(|_| !e.fire(&site, 1.0)));
        assert!((0..100).all(|_| e.pick(7) < 7));
        assert_eq!(e.pick(0), 0);
    }
}
