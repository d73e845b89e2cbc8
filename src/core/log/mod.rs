//! The partition log model: offsets, segments, sparse indexes, retention and recovery decisions.
//!
//! # Contract
//! [`PartitionLog`] owns no file. Each call that changes the log returns the [`LogOp`]s a driver must
//! carry out, in order, through the `Storage` trait, before reporting back:
//! 1. `append` assigns offsets (by rewriting the batch header only) and returns the writes; the
//!    caller executes them in order and must not treat the batch as durable until a later `Sync`
//!    covering it has completed (`synced_to`).
//! 2. `flush` returns a `Sync` for everything appended so far (group commit: one sync covers every
//!    batch before it); when it completes the caller reports it with `on_synced`.
//! 3. If a sync fails, the caller must stop using this log and reopen it through recovery: the
//!    unsynced tail is unknown (never retry and carry on).
//! 4. `read` resolves an offset to a byte range of one segment file; the driver reads it and
//!    [`recovery::trim_to_offset`] drops the leading batches below the requested offset.
//! 5. Recovery (`recovery`) turns segment bytes read at start-up into a valid log: it checks every
//!    batch's CRC in the unflushed segment, cuts a torn or corrupt tail and rebuilds indexes.

pub mod index;
pub mod partition;
pub mod recovery;
pub mod time_lookup;

pub use partition::{
    Appended, FileKind, LogError, LogFile, LogOp, PartitionLog, ReadPlan, Segment,
};

#[cfg(test)]
mod tests;
