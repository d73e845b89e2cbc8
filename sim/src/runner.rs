//! The seed runner: one fresh OS thread and one fresh madsim runtime per seed.
//!
//! A fresh thread matters: std caches its hash keys per thread, and only the first runtime on a
//! thread can seed them, so a second seed on the same thread would iterate `HashMap`s in another
//! order than a replay of that seed alone. madsim's own `Builder` does the same; we cannot use it
//! because it cannot register our `SimDisk` plugin.

use crate::disk::{DiskStats, SimDisk};
use crate::spec::Spec;
use crate::trace::{sim_now, Trace};
use crate::workload;
use gregor::core::buggify::sim::{self as buggify, SiteCount};
use madsim::runtime::Runtime;
use madsim::Config;
use std::cell::Cell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

/// Simulated time after which a run is stopped as hung.
pub const TIME_LIMIT: Duration = Duration::from_secs(600);

/// What a workload reports back: broken properties, and a one-line summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub violations: Vec<String>,
    pub summary: String,
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub spec: Spec,
    pub verdict: Verdict,
    /// The panic message if the run panicked (an `assert!` in the system, a hang, a harness bug).
    pub panic: Option<String>,
    pub trace: Vec<String>,
    pub sim_elapsed: Duration,
    pub disk: DiskStats,
    /// Buggify sites active in this run that were reached: (site, reached, fired).
    pub buggify: Vec<(&'static str, SiteCount)>,
}

impl Outcome {
    pub fn failed(&self) -> bool {
        self.panic.is_some() || !self.verdict.violations.is_empty()
    }

    /// One line per problem, empty when the run passed.
    pub fn problems(&self) -> Vec<String> {
        let panic = self.panic.iter().map(|message| format!("panic: {message}"));
        panic
            .chain(self.verdict.violations.iter().cloned())
            .collect()
    }
}

thread_local! {
    /// Set once a run on this thread panicked. A panic may have left some thread-local state half
    /// updated, so later runs from this thread each get a thread of their own.
    static TAINTED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `scenario` in a fresh runtime for `seed` with `SimDisk` registered before any node
/// exists. Returns the scenario's output, or the panic message.
///
/// Runs go on the calling thread, one after another: a new thread per seed re-creates every
/// thread-local (compression contexts, allocator caches) and cost about 5% of a sweep. What a
/// run decides depends only on its seed; `--check-determinism` runs a seed twice on one thread
/// to confirm it. After a panic, runs move to fresh threads.
pub fn in_fresh_runtime<T, F, Fut>(seed: u64, scenario: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    if TAINTED.get() {
        return on_fresh_thread(seed, scenario);
    }
    let result = in_runtime(seed, scenario);
    if result.is_err() {
        TAINTED.set(true);
    }
    result
}

fn in_runtime<T, F, Fut>(seed: u64, scenario: F) -> Result<T, String>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    let mut runtime = Runtime::with_seed_and_config(seed, Config::default());
    runtime.add_simulator::<SimDisk>();
    runtime.set_time_limit(TIME_LIMIT);
    catch_unwind(AssertUnwindSafe(|| runtime.block_on(scenario()))).map_err(panic_message)
}

fn on_fresh_thread<T, F, Fut>(seed: u64, scenario: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    let thread = std::thread::Builder::new()
        .name(format!("sim-seed-{seed}"))
        .spawn(move || in_runtime(seed, scenario));
    match thread {
        Ok(thread) => thread
            .join()
            .map_err(panic_message)
            .and_then(|result| result),
        Err(err) => Err(format!("cannot start a simulation thread: {err}")),
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Runs one spec. `echo` prints trace events as they happen.
pub fn run(spec: Spec, echo: bool) -> Outcome {
    run_with_trace(spec, Trace::new(echo))
}

/// Runs one spec without a trace (`Outcome::trace` stays empty): the same run as [`run`], for
/// sweeps, which read only the verdict.
pub fn run_untraced(spec: Spec) -> Outcome {
    run_with_trace(spec, Trace::off())
}

fn run_with_trace(spec: Spec, trace: Trace) -> Outcome {
    let scenario_trace = trace.clone();
    let result = in_fresh_runtime(spec.seed, move || async move {
        let disk = madsim::plugin::simulator::<SimDisk>();
        disk.set_trace(scenario_trace.clone());
        buggify::set_enabled(spec.faults.buggify);
        let verdict = workload::run(spec, scenario_trace.clone()).await;
        let sites = buggify::counts();
        if spec.faults.buggify {
            let fired: Vec<String> = sites
                .iter()
                .map(|(site, c)| format!("{site} {}/{}", c.fired, c.reached))
                .collect();
            scenario_trace.event(
                "buggify",
                format_args!("fired/reached: {}", fired.join(", ")),
            );
        }
        (verdict, sim_now(), disk.stats(), sites)
    });
    let lines = trace.lines();
    match result {
        Ok((verdict, sim_elapsed, disk, buggify)) => Outcome {
            spec,
            verdict,
            panic: None,
            trace: lines,
            sim_elapsed,
            disk,
            buggify,
        },
        Err(message) => Outcome {
            spec,
            verdict: Verdict::default(),
            panic: Some(message),
            trace: lines,
            sim_elapsed: Duration::ZERO,
            disk: DiskStats::default(),
            buggify: Vec::new(),
        },
    }
}

/// Runs a spec twice and compares everything observable, then once more untraced (as sweeps
/// run it) and compares the end state. `Err` names the first difference.
pub fn check_determinism(spec: Spec) -> Result<Outcome, String> {
    let first = run(spec, false);
    let second = run(spec, false);
    compare(&first, &second)?;
    let untraced = run_untraced(spec);
    compare_ends(&first, &untraced).map_err(|diff| format!("untraced run: {diff}"))?;
    Ok(first)
}

fn compare(first: &Outcome, second: &Outcome) -> Result<(), String> {
    if let Some(i) = (0..first.trace.len().max(second.trace.len()))
        .find(|&i| first.trace.get(i) != second.trace.get(i))
    {
        let none = "<end of trace>".to_owned();
        return Err(format!(
            "traces differ at event {i}:\n  first:  {}\n  second: {}",
            first.trace.get(i).unwrap_or(&none),
            second.trace.get(i).unwrap_or(&none)
        ));
    }
    compare_ends(first, second)
}

/// Compares what two runs ended with (verdict, panic, simulated time, disk counters).
fn compare_ends(first: &Outcome, second: &Outcome) -> Result<(), String> {
    if first.verdict != second.verdict || first.panic != second.panic {
        return Err(format!(
            "verdicts differ:\n  first:  {:?}\n  second: {:?}",
            first.problems(),
            second.problems()
        ));
    }
    if first.sim_elapsed != second.sim_elapsed || first.disk != second.disk {
        return Err(format!(
            "end states differ: {:?} {:?} vs {:?} {:?}",
            first.sim_elapsed, first.disk, second.sim_elapsed, second.disk
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panicking run reports its message; runs after it (now on fresh threads) still work.
    #[test]
    fn runs_after_a_panic_still_run() {
        let panicked = in_fresh_runtime(1, || async { panic!("planted") });
        assert_eq!(panicked.err().as_deref(), Some("planted"));
        for seed in 2..4 {
            let elapsed = in_fresh_runtime(seed, move || async move {
                madsim::time::sleep(Duration::from_millis(5)).await;
                seed
            });
            assert_eq!(elapsed, Ok(seed));
        }
    }
}
