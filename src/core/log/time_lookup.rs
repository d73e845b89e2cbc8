//! ListOffsets by timestamp, to the record: the time index names the batch in which the running
//! maximum timestamp first reaches the target; the driver reads that batch and
//! [`first_record_at`] finds the first record in it whose timestamp is at least the target.
//! (KIP-734's "max timestamp" query is the same search with the largest timestamp as target.)

use super::partition::{FileKind, PartitionLog, ReadPlan};
use crate::protocol::records::batch::{RecordBatches, TimestampType};
use bytes::Bytes;

/// Decompressed bytes one batch may take while it is searched (its records are never larger than
/// what a produce request may carry, compressed or not).
const MAX_DECOMPRESSED: usize = 64 << 20;

/// Where to look for the first record at or after a timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeLookup {
    pub target: i64,
    /// The bytes to read: from the offset-index entry at or below the batch, up to the next entry
    /// after it (or the end of the segment).
    pub plan: ReadPlan,
    /// The last offset of the batch that holds the answer.
    pub batch_last_offset: i64,
}

impl PartitionLog {
    /// The batch holding the first record whose timestamp is ≥ `target`; `None` when no record
    /// is that new.
    pub fn time_lookup(&self, target: i64) -> Option<TimeLookup> {
        let seg = self.segments().iter().find(|s| s.max_timestamp >= target)?;
        let rel = seg.index.lookup_time(target)?;
        let (position, first_base) = seg.floor(seg.base_offset + i64::from(rel));
        let position = position.min(seg.size);
        let end = seg
            .index
            .offsets
            .iter()
            .find(|e| e.relative_offset > rel)
            .map_or(seg.size, |e| u64::from(e.position).min(seg.size));
        Some(TimeLookup {
            target,
            plan: ReadPlan {
                file: seg.file(FileKind::Log),
                position,
                len: end.saturating_sub(position),
                offset: seg.base_offset + i64::from(rel),
                first_base,
            },
            batch_last_offset: seg.base_offset + i64::from(rel),
        })
    }

    /// The largest timestamp in the log, if any record has one.
    pub fn max_timestamp(&self) -> Option<i64> {
        self.segments()
            .iter()
            .map(|s| s.max_timestamp)
            .filter(|&ts| ts >= 0)
            .max()
    }
}

/// The offset and timestamp of the first record at or after `target` in the batch ending at
/// `batch_last_offset` within `data`. `None` if that batch is not there or is damaged (a bad
/// CRC, records that do not decode).
pub fn first_record_at(data: Bytes, target: i64, batch_last_offset: i64) -> Option<(i64, i64)> {
    let batch = RecordBatches::new(data)
        .map_while(Result::ok)
        .find(|b| b.header().last_offset() >= batch_last_offset)?;
    let header = *batch.header();
    if header.last_offset() != batch_last_offset || batch.verify_crc().is_err() {
        return None;
    }
    if header.timestamp_type() == TimestampType::LogAppendTime {
        // Every record carries the time the broker appended the batch.
        return Some((header.base_offset, header.max_timestamp));
    }
    for record in batch.records(MAX_DECOMPRESSED).ok()? {
        let record = record.ok()?;
        let timestamp = header.base_timestamp.checked_add(record.timestamp_delta)?;
        if timestamp >= target {
            let offset = header
                .base_offset
                .checked_add(i64::from(record.offset_delta))?;
            return Some((offset, timestamp));
        }
    }
    None
}
