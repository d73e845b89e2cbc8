//! `cargo xtask test`: the whole test suite, as CI runs it.
//! 1. unit, property and integration tests of every workspace crate (fuzz corpora run as tests);
//! 2. the simulator: its own unit tests under madsim (simulated disk, runner), the regression
//!    seeds, a bounded sweep of fresh seeds, and a few seeds run twice to compare their traces.

use std::process::Command;

/// The bounded CI sweep: seeds per workload (well under a minute on 2 cores once built).
const SWEEPS: &[(&str, &str)] = &[("log", "1..500"), ("broker", "1..500")];
/// Seeds per workload run twice with their traces compared (`--check-determinism`).
const DETERMINISM_SEEDS: &str = "1000..1050";

pub fn run(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--no-sim");
    step("cargo", &["test", "--workspace", "--all-features"])?;
    if !quick {
        eprintln!("==> (madsim) cargo test --profile sim -p gregor-sim");
        let status = super::sim::madsim_cargo()
            .args(["test", "--profile", "sim", "-p", "gregor-sim"])
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("simulator unit tests failed ({status})"));
        }
        step("cargo", &["sim", "regressions"])?;
        for (workload, seeds) in SWEEPS {
            sweep(workload, seeds, &[])?;
        }
        for (workload, _) in SWEEPS {
            sweep(workload, DETERMINISM_SEEDS, &["--check-determinism"])?;
        }
    }
    Ok(())
}

/// `cargo sim sweep` of `seeds` of `workload` on 2 jobs, plus `extra` flags.
fn sweep(workload: &str, seeds: &str, extra: &[&str]) -> Result<(), String> {
    let mut args = vec![
        "sim",
        "sweep",
        "--workload",
        workload,
        "--seeds",
        seeds,
        "--jobs",
        "2",
    ];
    args.extend_from_slice(extra);
    step("cargo", &args)
}

fn step(program: &str, args: &[&str]) -> Result<(), String> {
    eprintln!("==> {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}
