//! The `cargo sim` command line (madsim builds only).
// The simulator's CLI reads the regression file from the real disk.
#![allow(clippy::disallowed_methods)]

use clap::{Args, Parser, Subcommand};
use gregor_sim::runner::{self, Outcome};
use gregor_sim::spec::{parse_regressions, ScenarioArgs, SeedRange, Spec};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "cargo sim",
    about = "Deterministic simulation of gregor under madsim"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one seed; on failure print the trace's end and the replay command.
    Run(RunArgs),
    /// Run one seed and print its whole trace as it happens.
    Replay(RunArgs),
    /// Run a range of seeds in parallel and summarize.
    Sweep(SweepArgs),
    /// Replay every run listed in the regression file.
    Regressions(RegressionArgs),
}

#[derive(Args)]
struct RunArgs {
    #[arg(long)]
    seed: u64,
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// Run twice and compare traces and verdicts.
    #[arg(long)]
    check_determinism: bool,
    /// Print the whole trace.
    #[arg(long, short)]
    verbose: bool,
    /// Exit 0 only if the run fails (regression lines for planted bugs).
    #[arg(long, hide = true)]
    expect_failure: bool,
}

#[derive(Args)]
struct SweepArgs {
    /// Seeds `A..B` (B excluded) or `A..=B`.
    #[arg(long)]
    seeds: SeedRange,
    /// Seeds run in parallel (default: the number of CPUs).
    #[arg(long)]
    jobs: Option<usize>,
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// Run every seed twice and compare.
    #[arg(long)]
    check_determinism: bool,
}

#[derive(Args)]
struct RegressionArgs {
    /// The regression file: one replay command per line, `#` comments.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/regressions.txt"))]
    file: PathBuf,
    /// Also run every entry twice and compare.
    #[arg(long)]
    check_determinism: bool,
}

/// Real time, for the sweep's speed figure: read on a thread outside any simulation, where
/// madsim does not replace the clock.
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> Instant {
    Instant::now()
}

pub fn main() -> i32 {
    match Cli::parse().command {
        Command::Run(args) => run(args, false),
        Command::Replay(args) => run(args, true),
        Command::Sweep(args) => sweep(args),
        Command::Regressions(args) => regressions(args),
    }
}

/// How much of a run's trace the command reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TraceUse {
    /// Only the verdict (sweeps, regressions): no trace is kept.
    None,
    /// The end of it on failure.
    Tail,
    /// All of it, printed as it happens.
    Echo,
}

/// One run, or two when checking determinism (which compares traces, so always keeps them).
fn run_spec(spec: Spec, check_determinism: bool, trace: TraceUse) -> Result<Outcome, String> {
    Ok(match (check_determinism, trace) {
        (true, _) => return runner::check_determinism(spec),
        (false, TraceUse::None) => runner::run_untraced(spec),
        (false, TraceUse::Tail) => runner::run(spec, false),
        (false, TraceUse::Echo) => runner::run(spec, true),
    })
}

fn run(args: RunArgs, replay: bool) -> i32 {
    let spec = Spec::new(args.seed, &args.scenario);
    let echo = replay || args.verbose;
    let trace = if echo { TraceUse::Echo } else { TraceUse::Tail };
    let outcome = match run_spec(spec, args.check_determinism, trace) {
        Ok(outcome) => outcome,
        Err(diff) => {
            println!("NON-DETERMINISTIC seed {}: {diff}", spec.seed);
            println!("replay: {} --check-determinism", spec.replay_command());
            return 1;
        }
    };
    if args.check_determinism {
        println!(
            "deterministic: two runs gave the same {} trace events",
            outcome.trace.len()
        );
    }
    println!("seed {}: {}", spec.seed, outcome.verdict.summary);
    if spec.faults.buggify {
        let sites: Vec<String> = outcome
            .buggify
            .iter()
            .map(|(site, c)| format!("{site} {}/{}", c.fired, c.reached))
            .collect();
        println!("buggify (fired/reached): {}", sites.join(", "));
    }
    println!("simulated {:.3} s", outcome.sim_elapsed.as_secs_f64());
    if !outcome.failed() {
        println!("PASS");
        return i32::from(args.expect_failure);
    }
    if !echo {
        let tail = outcome.trace.len().saturating_sub(40);
        println!("--- last trace events (cargo sim replay for all) ---");
        outcome.trace[tail..]
            .iter()
            .for_each(|line| println!("{line}"));
    }
    for problem in outcome.problems() {
        println!("VIOLATION: {problem}");
    }
    println!("FAIL: {}", spec.replay_command());
    i32::from(!args.expect_failure)
}

struct Failure {
    spec: Spec,
    problem: String,
}

fn sweep(args: SweepArgs) -> i32 {
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let SeedRange { start, end } = args.seeds;
    let next_seed = AtomicU64::new(start);
    let (results, finished) = mpsc::channel();
    let began = wall_clock();
    let (mut done, mut simulated, mut failures) = (0u64, Duration::ZERO, Vec::new());
    // Per buggify site: seeds where it fired, and total fires.
    let mut buggified: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let results = results.clone();
            let (next_seed, scenario) = (&next_seed, &args.scenario);
            scope.spawn(move || loop {
                let seed = next_seed.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    break;
                }
                let spec = Spec::new(seed, scenario);
                if results
                    .send((spec, run_spec(spec, args.check_determinism, TraceUse::None)))
                    .is_err()
                {
                    break;
                }
            });
        }
        drop(results);
        for (spec, result) in finished {
            done += 1;
            match result {
                Ok(outcome) => {
                    simulated += outcome.sim_elapsed;
                    for (site, count) in &outcome.buggify {
                        let entry = buggified.entry(site).or_default();
                        entry.0 += u64::from(count.fired > 0);
                        entry.1 += count.fired;
                    }
                    if let Some(problem) = outcome.problems().into_iter().next() {
                        failures.push(Failure { spec, problem });
                    }
                }
                Err(diff) => failures.push(Failure {
                    spec,
                    problem: format!("non-deterministic: {diff}"),
                }),
            }
            if done % 50 == 0 || done == args.seeds.len() {
                let wall = began.elapsed().as_secs_f64();
                eprint!(
                    "\r{done}/{} seeds, {} failed, {:.1} sim s in {wall:.1} wall s   ",
                    args.seeds.len(),
                    failures.len(),
                    simulated.as_secs_f64()
                );
            }
        }
    });
    eprintln!();
    let wall = began.elapsed().as_secs_f64();
    failures.sort_by_key(|failure| failure.spec.seed);
    let scenario = Spec::new(start, &args.scenario);
    println!(
        "sweep: seeds {start}..{end} ({done} run), workload {}, faults {}{}: {} failed",
        scenario.workload.name(),
        scenario.faults,
        scenario
            .bug
            .map(|bug| format!(", planted bug {}", bug.name()))
            .unwrap_or_default(),
        failures.len()
    );
    println!(
        "simulated {:.1} s in {wall:.2} s wall with {jobs} jobs: {:.0} simulated seconds per wall second",
        simulated.as_secs_f64(),
        simulated.as_secs_f64() / wall.max(1e-9)
    );
    if !buggified.is_empty() {
        let sites: Vec<String> = buggified
            .iter()
            .map(|(site, (seeds, fires))| format!("{site} {fires} in {seeds} seeds"))
            .collect();
        println!("buggify fired: {}", sites.join(", "));
    }
    for failure in &failures {
        println!("seed {}: {}", failure.spec.seed, failure.problem);
        println!("  {}", failure.spec.replay_command());
    }
    i32::from(!failures.is_empty())
}

fn regressions(args: RegressionArgs) -> i32 {
    let text = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(err) => {
            println!("cannot read {}: {err}", args.file.display());
            return 2;
        }
    };
    let entries = match parse_regressions(&text) {
        Ok(entries) => entries,
        Err(err) => {
            println!("{}: {err}", args.file.display());
            return 2;
        }
    };
    let mut bad = 0;
    for entry in &entries {
        let verdict = match run_spec(entry.spec, args.check_determinism, TraceUse::None) {
            Err(diff) => format!("NON-DETERMINISTIC: {diff}"),
            Ok(outcome) if outcome.failed() == entry.expect_failure => "ok".to_owned(),
            Ok(outcome) if entry.expect_failure => {
                format!(
                    "MISSED: the planted bug was not caught ({})",
                    outcome.verdict.summary
                )
            }
            Ok(outcome) => format!("FAIL: {}", outcome.problems().join("; ")),
        };
        if verdict != "ok" {
            bad += 1;
        }
        println!(
            "line {:>3}: {:<8} {}",
            entry.line,
            verdict,
            entry.spec.run_args()
        );
    }
    println!("regressions: {} run, {bad} bad", entries.len());
    i32::from(bad > 0)
}
