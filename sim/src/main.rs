//! `cargo sim`: run, sweep and replay deterministic simulations of gregor.
//!
//! Built normally, this binary only explains how to run it: the simulation needs
//! `RUSTFLAGS="--cfg madsim"` and its own target directory, which `cargo sim` (an xtask alias)
//! sets up.

#[cfg(not(madsim))]
fn main() {
    println!(
        "gregor-sim runs only in a madsim build. Use the cargo alias, from the workspace root:\n\
         \x20 cargo sim run --seed 1234 [--workload log|broker] [--faults crash,disk,net] [--check-determinism]\n\
         \x20 cargo sim replay --seed 1234        # same run, full trace\n\
         \x20 cargo sim sweep --seeds 1..1000 [--jobs 2]\n\
         \x20 cargo sim regressions               # replays sim/regressions.txt\n\
         (it runs `cargo run --release -p gregor-sim` with RUSTFLAGS=\"--cfg madsim\" and\n\
         CARGO_TARGET_DIR=target/sim)"
    );
}

#[cfg(madsim)]
mod cli;

#[cfg(madsim)]
fn main() {
    std::process::exit(cli::main());
}
