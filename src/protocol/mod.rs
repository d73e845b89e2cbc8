//! The Kafka wire protocol: everything that turns bytes from a client, a peer or the disk into
//! values and back. Decoders never panic on any input (see `fuzz/`).
//!
//! - [`primitives`]: integers, varints, strings, bytes, arrays, tagged fields.
//! - [`generated`]: one module per Kafka message spec, written by `cargo xtask codegen`.
//! - [`message`]: the trait every generated message implements.
//! - [`header`]: request/response headers and whole frames.
//! - [`api_versions`]: the APIs and versions this broker serves.
//! - [`error`]: Kafka's error codes. [`frame`]: size-prefixed framing.
//! - [`records`]: record batches v2, records, compression.

pub mod api_versions;
pub mod generated;
pub mod header;
pub mod message;
pub mod primitives;

// Error codes, framing and record batches.
pub mod error;
pub mod frame;
pub mod records;

#[cfg(test)]
pub(crate) mod arbitrary;
#[cfg(test)]
mod codec_tests;
