//! Workloads: each builds its nodes on the simulated world, drives clients that record a
//! history, injects the faults of its spec, and returns a [`Verdict`] from the checkers.
//!
//! To add one: a module with `pub async fn run(spec, trace) -> Verdict`, a
//! variant in [`crate::spec::Workload`], and an arm below.

pub mod broker;
pub mod log;

use crate::runner::Verdict;
use crate::spec::{Spec, Workload};
use crate::trace::Trace;

/// Runs the spec's workload to its verdict.
pub async fn run(spec: Spec, trace: Trace) -> Verdict {
    match spec.workload {
        Workload::Log => log::run(spec, trace).await,
        Workload::Broker => broker::run(spec, trace).await,
    }
}
