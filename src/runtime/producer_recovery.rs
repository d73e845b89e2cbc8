//! Rebuilds a partition's idempotent producer state at start-up: the newest producer snapshot
//! that reads back valid, then the batches after it. A producer's latest batches may sit in any
//! segment, and forgetting them would refuse its next sequence (OUT_OF_ORDER_SEQUENCE_NUMBER) or
//! accept a retry twice; the snapshot saves replaying the whole log and remembers producers whose
//! batches retention deleted. With no valid snapshot, every segment that exists is replayed.

use super::log_io::{LogFiles, Opened};
use crate::core::broker::producer_snapshot::{self, ProducerSnapshot};
use crate::core::broker::producer_state::ProducerStates;
use crate::core::log::recovery::scan_segment;
use crate::protocol::records::batch::RecordBatches;
use bytes::Bytes;
use std::io;

/// Reads of a snapshot that fails its checks before trying an older one: a transient read error
/// (a flipped bit on the way from the disk) must not cost a long replay.
const SNAPSHOT_READS: usize = 4;
/// Reads of a sealed segment whose batches fail their checks, before what is valid is used.
const SEGMENT_READS: usize = 4;

/// Producer state rebuilt from storage, and what it took.
#[derive(Debug)]
pub struct RecoveredProducers {
    pub producers: ProducerStates,
    /// The offset of the snapshot loaded, if one was.
    pub snapshot: Option<i64>,
    /// Sealed segments read to replay batches after the snapshot (the last segment's bytes were
    /// already read by log recovery).
    pub segments_read: usize,
}

/// Loads the producer state of a just-opened log. Replayed batches count as seen at `now_ms`
/// (the log does not say when a batch arrived, and a client's timestamp may be arbitrarily old);
/// producers idle for `expiration_ms` are then forgotten.
pub async fn load(
    files: &mut LogFiles,
    opened: &Opened,
    now_ms: i64,
    expiration_ms: i64,
) -> io::Result<RecoveredProducers> {
    let mut loaded = None;
    for &offset in &opened.snapshots {
        if let Some(snapshot) = read_snapshot(files, offset).await? {
            loaded = Some(snapshot);
            break;
        }
    }
    let snapshot = loaded.as_ref().map(|s| s.offset);
    let (from, mut producers) = match loaded {
        Some(s) => (s.offset, s.producers),
        None => (i64::MIN, ProducerStates::default()),
    };
    let mut segments_read = 0;
    if let Some((last, sealed)) = opened.log.segments().split_last() {
        let interval = opened.log.config().index_interval_bytes;
        for seg in sealed.iter().filter(|s| s.next_offset > from && s.size > 0) {
            // The longest valid prefix over a few reads: a sealed segment was synced whole, so a
            // batch failing its checks (the CRC does not cover the base offset) is read damage.
            let mut valid = Bytes::new();
            for _ in 0..SEGMENT_READS {
                let data = files.read_segment(seg.base_offset, seg.size).await?;
                let len = scan_segment(seg.base_offset, &data, interval, now_ms).valid_len;
                let len = usize::try_from(len).unwrap_or(usize::MAX).min(data.len());
                if len >= valid.len() {
                    valid = data.slice(..len);
                }
                if len == data.len() {
                    break;
                }
            }
            segments_read += 1;
            record_producers(&mut producers, &valid, from, now_ms);
        }
        if last.next_offset > from {
            record_producers(&mut producers, &opened.tail, from, now_ms);
        }
    }
    producers.expire(now_ms, expiration_ms);
    tracing::info!(
        dir = %files.dir(),
        ?snapshot,
        segments_read,
        producers = producers.len(),
        "producer state loaded"
    );
    Ok(RecoveredProducers {
        producers,
        snapshot,
        segments_read,
    })
}

/// The snapshot at `offset`, read until it decodes (at most [`SNAPSHOT_READS`] times); `None`
/// when it is absent or stays damaged.
async fn read_snapshot(files: &mut LogFiles, offset: i64) -> io::Result<Option<ProducerSnapshot>> {
    let mut why = String::new();
    for _ in 0..SNAPSHOT_READS {
        let data = match files.read_snapshot(offset).await {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match producer_snapshot::decode(&data) {
            Ok(s) if s.offset == offset => return Ok(Some(s)),
            Ok(s) => why = format!("names offset {} in its body", s.offset),
            Err(e) => why = e.to_string(),
        }
    }
    tracing::warn!(dir = %files.dir(), offset, %why, "ignoring a damaged producer snapshot");
    Ok(None)
}

/// Adds the idempotent batches of `data` (a scanned, valid prefix of a segment) at or after
/// `from` to `producers`.
fn record_producers(producers: &mut ProducerStates, data: &Bytes, from: i64, now_ms: i64) {
    let intact = RecordBatches::new(data.clone())
        .map_while(Result::ok)
        .filter(|b| b.verify_crc().is_ok());
    for header in intact.map(|b| *b.header()) {
        if header.producer_id >= 0 && header.base_offset >= from {
            let last = header
                .base_offset
                .saturating_add(i64::from(header.last_offset_delta));
            producers.record(
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
                header.base_offset,
                last,
                now_ms,
            );
        }
    }
}

#[cfg(test)]
mod tests;
