//! gregor: a Kafka-compatible message broker built to be tested under deterministic simulation.
//!
//! # Layout
//! - [`protocol`]: bytes ⇄ values. Primitives, framing, request/response headers, the generated
//!   message types (one file per API), the ApiVersions table, error codes and record batches.
//!   No I/O and no tokio here.
//! - [`storage`]: the one interface to disk, its Linux implementation and an in-memory one.
//!   The simulator (`sim/`) adds a fault-injecting implementation behind the same trait.
//! - [`client`]: the client side of the protocol; for now one pipelined connection.
//! - [`cli`]: subcommands of the `gregor` binary other than `serve` (`gregor bench`).
//!
//! More modules (`core/` state machines, `runtime/` driver) arrive with the broker; see
//! `ARCHITECTURE.md` for the shape they take.

pub mod cli;
pub mod client;
pub mod config;
pub mod core;
#[doc(hidden)]
pub mod fuzzing;
pub mod protocol;
pub mod runtime;
pub mod storage;
