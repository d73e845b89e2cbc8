//! `cargo sim ...`: builds and runs the simulator (`gregor-sim`) under madsim.
//!
//! The simulation needs `--cfg madsim` for every crate in the build, so it gets its own target
//! directory (`target/sim`) and never invalidates the normal build's artifacts.

use std::path::PathBuf;
use std::process::Command;

/// Runs `cargo run --profile sim -p gregor-sim -- <args>` with the madsim flags; returns its
/// exit code.
pub fn run(args: &[String]) -> i32 {
    let status = madsim_cargo()
        .args([
            "run",
            "--quiet",
            "--profile",
            "sim",
            "-p",
            "gregor-sim",
            "--",
        ])
        .args(args)
        .status();
    match status {
        Ok(status) => status.code().unwrap_or(1),
        Err(err) => {
            eprintln!("cargo sim: cannot start cargo: {err}");
            1
        }
    }
}

/// A `cargo` command for the workspace root with `--cfg madsim` and the `target/sim` directory.
pub fn madsim_cargo() -> Command {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let rustflags = match std::env::var("RUSTFLAGS") {
        Ok(flags) if !flags.trim().is_empty() => format!("{flags} --cfg madsim"),
        _ => "--cfg madsim".to_owned(),
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .env("RUSTFLAGS", rustflags)
        .env("CARGO_TARGET_DIR", root.join("target/sim"));
    command
}
