//! The Kafka wire protocol: everything that turns bytes from a client, a peer or the disk into
//! values and back. Decoders never panic on any input (see `fuzz/`).

pub mod primitives;

// Error codes, framing and record batches.
pub mod error;
pub mod frame;
pub mod records;
