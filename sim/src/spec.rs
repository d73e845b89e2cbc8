//! What one simulation run is: a seed, a workload, a set of fault kinds and (for proving the
//! checkers) an optional planted bug. A [`Spec`] prints as the one command that replays it, and
//! the regression file holds such commands, one per line.
//!
//! This module has no madsim dependency, so its parsing is tested in the normal build too.

use clap::{Args, ValueEnum};
use std::fmt;
use std::str::FromStr;

/// The scenario that runs on the simulated cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// A one-node append-only log server and a client that sends numbered records.
    Log,
    /// One real gregor broker, producers (acks -1, 1, 0, idempotent) and a consumer.
    Broker,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Log => "log",
            Workload::Broker => "broker",
        }
    }
}

/// A bug planted on purpose, to prove that the checkers catch what they claim to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Bug {
    /// The log server acknowledges records before fsync returns.
    AckBeforeSync,
    /// The log server never fsyncs the directory after creating its file.
    NoDirSync,
}

impl Bug {
    pub fn name(self) -> &'static str {
        match self {
            Bug::AckBeforeSync => "ack-before-sync",
            Bug::NoDirSync => "no-dir-sync",
        }
    }
}

/// Which kinds of faults the run injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultSet {
    /// Kill and restart server nodes at times drawn from the seed.
    pub crash: bool,
    /// Disk faults: fsync errors, read bit flips, ENOSPC, torn writes on crash.
    pub disk: bool,
    /// Network faults: clogged nodes and links (both ways or one way), packet loss, latency
    /// spikes (workloads with a network).
    pub net: bool,
    /// Pause server processes (a long GC pause, SIGSTOP) and resume them.
    pub pause: bool,
    /// Step servers' wall clocks forwards and backwards (the monotonic clock never jumps).
    pub clock: bool,
    /// BUGGIFY: unusual but legal paths in the system under test (`gregor::core::buggify`).
    pub buggify: bool,
}

impl FaultSet {
    pub const ALL: FaultSet = FaultSet {
        crash: true,
        disk: true,
        net: true,
        pause: true,
        clock: true,
        buggify: true,
    };
    pub const NONE: FaultSet = FaultSet {
        crash: false,
        disk: false,
        net: false,
        pause: false,
        clock: false,
        buggify: false,
    };
}

impl FromStr for FaultSet {
    type Err = String;

    /// A comma-separated list of `crash`, `disk`, `net`, `pause`, `clock`; or `all` or `none`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut set = FaultSet::NONE;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "crash" => set.crash = true,
                "disk" => set.disk = true,
                "net" => set.net = true,
                "pause" => set.pause = true,
                "clock" => set.clock = true,
                "buggify" => set.buggify = true,
                "all" => set = FaultSet::ALL,
                "none" => {}
                other => {
                    return Err(format!(
                        "unknown fault kind {other:?} (crash, disk, net, pause, clock, buggify, all, none)"
                    ))
                }
            }
        }
        Ok(set)
    }
}

impl fmt::Display for FaultSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<&str> = [
            (self.crash, "crash"),
            (self.disk, "disk"),
            (self.net, "net"),
            (self.pause, "pause"),
            (self.clock, "clock"),
            (self.buggify, "buggify"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if kinds.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&kinds.join(","))
        }
    }
}

/// Workload, faults and planted bug: everything but the seed.
#[derive(Debug, Clone, Args)]
pub struct ScenarioArgs {
    /// Scenario to run.
    #[arg(long, value_enum, default_value = "log")]
    pub workload: Workload,
    /// Fault kinds, comma separated: crash, disk, net, pause, clock, buggify, all, none.
    #[arg(long, default_value = "all")]
    pub faults: FaultSet,
    /// Plant a known bug (proves the checker catches it).
    #[arg(long, value_enum, hide = true)]
    pub bug: Option<Bug>,
}

/// One run, fully determined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub seed: u64,
    pub workload: Workload,
    pub faults: FaultSet,
    pub bug: Option<Bug>,
}

impl Spec {
    pub fn new(seed: u64, scenario: &ScenarioArgs) -> Spec {
        Spec {
            seed,
            workload: scenario.workload,
            faults: scenario.faults,
            bug: scenario.bug,
        }
    }

    /// The arguments of `cargo sim run` that reproduce this run.
    pub fn run_args(&self) -> String {
        let bug = self
            .bug
            .map(|bug| format!(" --bug {}", bug.name()))
            .unwrap_or_default();
        let (seed, workload, faults) = (self.seed, self.workload.name(), self.faults);
        format!("--seed {seed} --workload {workload} --faults {faults}{bug}")
    }

    /// The one command that replays this run.
    pub fn replay_command(&self) -> String {
        format!("cargo sim run {}", self.run_args())
    }
}

/// A seed range `A..B` (B excluded) or `A..=B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedRange {
    pub start: u64,
    pub end: u64,
}

impl FromStr for SeedRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let number = |n: &str| {
            n.trim()
                .parse::<u64>()
                .map_err(|e| format!("bad seed {n:?}: {e}"))
        };
        let (start, end) = if let Some((a, b)) = s.split_once("..=") {
            let end = number(b)?
                .checked_add(1)
                .ok_or("seed range end overflows")?;
            (number(a)?, end)
        } else if let Some((a, b)) = s.split_once("..") {
            (number(a)?, number(b)?)
        } else {
            return Err(format!("expected A..B or A..=B, got {s:?}"));
        };
        if start >= end {
            return Err(format!("empty seed range {s:?}"));
        }
        Ok(SeedRange { start, end })
    }
}

impl SeedRange {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }
}

/// One line of the regression file: a run and whether it must fail (a planted-bug check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Regression {
    pub spec: Spec,
    pub expect_failure: bool,
    pub line: usize,
}

#[derive(clap::Parser)]
#[command(no_binary_name = true)]
struct RegressionLine {
    #[arg(long)]
    seed: u64,
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// The run must find a violation (used with --bug).
    #[arg(long)]
    expect_failure: bool,
}

/// Parses the regression file: one replay command per line (`cargo sim run` optional), `#`
/// starts a comment.
pub fn parse_regressions(text: &str) -> Result<Vec<Regression>, String> {
    use clap::Parser;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let line = line
            .strip_prefix("cargo sim")
            .map(str::trim_start)
            .unwrap_or(line);
        let line = line
            .strip_prefix("run")
            .map(str::trim_start)
            .unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let parsed = RegressionLine::try_parse_from(line.split_whitespace())
            .map_err(|e| format!("line {}: {}", i + 1, e.render().to_string().trim()))?;
        let spec = Spec::new(parsed.seed, &parsed.scenario);
        out.push(Regression {
            spec,
            expect_failure: parsed.expect_failure,
            line: i + 1,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_sets_round_trip() {
        for text in [
            "crash,disk",
            "crash",
            "disk",
            "net",
            "crash,disk,net",
            "crash,disk,net,pause,clock",
            "pause",
            "clock",
            "crash,disk,net,buggify",
            "buggify",
            "none",
        ] {
            assert_eq!(text.parse::<FaultSet>().unwrap().to_string(), text);
        }
        assert_eq!("all".parse::<FaultSet>().unwrap(), FaultSet::ALL);
        assert!("cpu".parse::<FaultSet>().is_err());
    }

    #[test]
    fn seed_ranges() {
        assert_eq!(
            "1..5".parse::<SeedRange>().unwrap(),
            SeedRange { start: 1, end: 5 }
        );
        assert_eq!(
            "1..=5".parse::<SeedRange>().unwrap(),
            SeedRange { start: 1, end: 6 }
        );
        assert!("5..5".parse::<SeedRange>().is_err());
        assert!("x..5".parse::<SeedRange>().is_err());
    }

    #[test]
    fn a_replay_command_parses_back_as_a_regression() {
        let spec = Spec {
            seed: 42,
            workload: Workload::Log,
            faults: FaultSet::ALL,
            bug: None,
        };
        let file = format!(
            "# comment\n\n{}\n--seed 7 --faults none # trailing\nrun --seed 9 --bug ack-before-sync --expect-failure\n",
            spec.replay_command()
        );
        let parsed = parse_regressions(&file).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0].spec, spec);
        assert_eq!(parsed[0].line, 3);
        assert_eq!(parsed[1].spec.faults, FaultSet::NONE);
        assert_eq!(parsed[2].spec.bug, Some(Bug::AckBeforeSync));
        assert!(parsed[2].expect_failure);
        assert!(parse_regressions("--seed x").is_err());
    }
}
