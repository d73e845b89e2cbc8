//! Recovery decisions over bytes read back from disk. The driver reads; these functions decide
//! what is valid, where a torn or corrupt tail starts and what the indexes must say.

use super::index::{OffsetEntry, SegmentIndex, TimeEntry};
use super::partition::Segment;
use crate::protocol::records::batch::{Batch, BatchHeader};
use bytes::Bytes;

/// The result of scanning one segment file from its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedSegment {
    pub segment: Segment,
    /// Bytes of the file that hold whole, valid batches; anything after is cut.
    pub valid_len: u64,
    /// How many bytes were cut (a torn or corrupt tail).
    pub truncated_bytes: u64,
}

/// Scans `data` (a whole `.log` file) batch by batch: each batch must parse, pass its CRC and
/// start exactly where the one before ended (the first at the segment's base offset). The CRC
/// does not cover the base offset, so a damaged one is caught only by that rule. The first batch
/// that fails ends the valid prefix. Indexes are rebuilt exactly as `PartitionLog::append` would
/// have built them. (Compaction, when it comes, leaves gaps and must relax the rule.)
pub fn scan_segment(
    base_offset: i64,
    data: &Bytes,
    index_interval_bytes: u32,
    created_ms: i64,
) -> ScannedSegment {
    let mut seg = Segment::new(base_offset, created_ms);
    let mut pos = 0usize;
    while let Some(rest) = data.get(pos..) {
        let Ok(header) = BatchHeader::parse(rest) else {
            break;
        };
        let Some(len) = header.size_in_bytes().filter(|&l| l <= rest.len()) else {
            break;
        };
        let intact = Batch::parse(data.slice(pos..pos + len)).is_ok_and(|b| b.verify_crc().is_ok());
        // Offsets continue the batch before; a batch that claims to end before its base would
        // move the log's next offset backwards and let offsets be reused.
        if !intact || header.base_offset != seg.next_offset || header.last_offset_delta < 0 {
            break;
        }
        // The offset after the batch must exist: a batch ending at i64::MAX leaves none.
        let Some(next_offset) = header
            .base_offset
            .checked_add(i64::from(header.last_offset_delta))
            .and_then(|last| last.checked_add(1))
        else {
            break;
        };
        let last_offset = next_offset - 1;
        let rel = |o: i64| u32::try_from(o - base_offset).ok();
        let (Some(rel_base), Some(rel_last)) = (rel(header.base_offset), rel(last_offset)) else {
            break;
        };
        if seg.size == 0 || seg.bytes_since_index > u64::from(index_interval_bytes) {
            seg.index.offsets.push(OffsetEntry {
                relative_offset: rel_base,
                position: pos as u32,
            });
            seg.bytes_since_index = 0;
        }
        if header.max_timestamp > seg.max_timestamp {
            seg.index.times.push(TimeEntry {
                timestamp: header.max_timestamp,
                relative_offset: rel_last,
            });
            seg.max_timestamp = header.max_timestamp;
        }
        seg.size += len as u64;
        seg.bytes_since_index += len as u64;
        seg.next_offset = next_offset;
        pos += len;
    }
    let valid_len = pos as u64;
    ScannedSegment {
        segment: seg,
        valid_len,
        truncated_bytes: data.len() as u64 - valid_len,
    }
}

/// Rebuilds a sealed segment (one that was synced when the next one rolled, so it needs no
/// scan) from its index files. Its end is the next segment's base offset. `None` when the indexes
/// are damaged: scan it instead.
pub fn sealed_segment(
    base_offset: i64,
    next_base_offset: i64,
    size: u64,
    offset_index: &[u8],
    time_index: &[u8],
    created_ms: i64,
) -> Option<Segment> {
    let index = SegmentIndex::parse(offset_index, time_index, size)?;
    if next_base_offset < base_offset {
        return None;
    }
    let mut seg = Segment::new(base_offset, created_ms);
    seg.next_offset = next_base_offset;
    seg.size = size;
    seg.max_timestamp = index.times.last().map_or(-1, |t| t.timestamp);
    seg.index = index;
    Some(seg)
}

/// The producer state snapshots recovery found, sorted out against the recovered log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotChoice {
    /// Snapshots within the log (`first base ≤ offset ≤ log end`), newest first: load the first
    /// that reads back valid, then replay the log from its offset.
    pub candidates: Vec<i64>,
    /// Snapshots to remove before the log takes new writes: one beyond the log end claims
    /// offsets a cut tail took back (new batches will reuse them), and one below the first
    /// segment could only be replayed from through segments that are gone.
    pub stale: Vec<i64>,
}

/// Sorts out the snapshots in a partition directory for a log whose segments start at
/// `first_base` and end (next offset) at `log_end`.
pub fn choose_snapshots(offsets: &[i64], first_base: i64, log_end: i64) -> SnapshotChoice {
    let mut choice = SnapshotChoice::default();
    for &o in offsets {
        if (first_base..=log_end).contains(&o) {
            choice.candidates.push(o);
        } else {
            choice.stale.push(o);
        }
    }
    choice.candidates.sort_unstable_by(|a, b| b.cmp(a));
    choice.candidates.dedup();
    choice.stale.sort_unstable();
    choice.stale.dedup();
    choice
}

/// The whole batches of a read whose base offsets continue from `first_base` (each starts
/// where the one before ended), and a partial last batch if its header continues too. Cut at the
/// first batch that does not: the batch CRC does not cover the base offset, so a bit flipped on
/// the way from the disk would otherwise send records under wrong offsets. The caller's next
/// read starts again from the index.
pub fn chained_prefix(data: Bytes, first_base: i64) -> Bytes {
    let mut expected = first_base;
    let mut pos = 0usize;
    while let Some(rest) = data.get(pos..).filter(|rest| !rest.is_empty()) {
        let Ok(header) = BatchHeader::parse(rest) else {
            // Too short to judge: a partial tail, which trimming handles.
            return data;
        };
        if header.base_offset != expected {
            return data.slice(..pos);
        }
        let Some(len) = header.size_in_bytes() else {
            return data.slice(..pos);
        };
        if len >= rest.len() {
            return data;
        }
        expected = header
            .base_offset
            .saturating_add(i64::from(header.last_offset_delta))
            .saturating_add(1);
        pos += len;
    }
    data
}

/// Drops the leading batches of a read that end below `offset`, everything from the high
/// watermark on, and any partial batch at the end unless it is the only one (a client then asks
/// for more). The read is first cut where base offsets stop continuing from `first_base` (the
/// batch at the read's start, [`chained_prefix`]). Returns the bytes to send.
pub fn trim_to_offset(
    data: Bytes,
    first_base: i64,
    offset: i64,
    max_bytes: usize,
    high_watermark: i64,
) -> Bytes {
    let data = chained_prefix(data, first_base);
    let mut start = None;
    let mut end = 0usize;
    let mut pos = 0usize;
    while let Some(rest) = data.get(pos..) {
        let Ok(header) = BatchHeader::parse(rest) else {
            break;
        };
        let Some(len) = header.size_in_bytes() else {
            break;
        };
        let last = header
            .base_offset
            .saturating_add(i64::from(header.last_offset_delta));
        if last < offset {
            pos += len;
            continue;
        }
        if header.base_offset >= high_watermark {
            break;
        }
        let first = *start.get_or_insert(pos);
        if len > rest.len() {
            // A partial batch: keep it only if nothing whole precedes it (the client will grow its
            // fetch size), trimmed to what was asked.
            if end == first {
                end = pos + rest.len().min(max_bytes);
            }
            break;
        }
        if end > first && pos + len - first > max_bytes {
            break;
        }
        pos += len;
        end = pos;
    }
    match start {
        Some(s) if end > s => data.slice(s..end),
        _ => Bytes::new(),
    }
}
