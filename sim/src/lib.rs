//! gregor's deterministic simulation harness (built with `--cfg madsim`; run it with `cargo sim`).
//!
//! # Layout
//! - [`spec`]: what a run is (seed, workload, faults, planted bug) and its replay command.
//! - `disk`: `SimDisk`, the madsim plugin that simulates each node's disk with crash semantics and
//!   faults, and `SimStorage`, its `gregor::storage::Storage` handle.
//! - `runner`: one fresh thread and runtime per seed; determinism check.
//! - `workload`: scenarios (`log`, `broker`) that build nodes, drive clients and inject faults.
//! - `kafka_client`: a minimal Kafka wire client for simulated clients; [`kafka_records`]: the
//!   batches they write and how they read fetched bytes.
//! - `faults`: the fault schedule drawn from the seed. `history`: what clients saw.
//!   [`checker`]: history and recovered state to violations.
//! - `trace`: timestamped events, compared line by line by the determinism check.

pub mod checker;
pub mod kafka_records;
pub mod spec;

#[cfg(madsim)]
pub mod disk;
#[cfg(madsim)]
pub mod faults;
#[cfg(madsim)]
pub mod history;
#[cfg(madsim)]
pub mod kafka_client;
#[cfg(madsim)]
pub mod runner;
#[cfg(madsim)]
pub mod trace;
#[cfg(madsim)]
pub mod workload;
