//! One partition's log: the in-memory image of its segments and the decisions about them.

use super::index::{OffsetEntry, SegmentIndex, TimeEntry};
use crate::config::LogConfig;
use crate::protocol::error::ErrorCode;
use crate::protocol::primitives::Uuid;
use crate::protocol::records::batch::{assign_offsets, BatchHeader, OffsetAssignment};
use bytes::{Bytes, BytesMut};
use std::collections::BTreeSet;

/// Producer snapshots kept besides the newest: fallbacks should the newest read back damaged.
pub const OLDER_SNAPSHOTS_KEPT: usize = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    Log,
    Index,
    TimeIndex,
}

/// One file of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogFile {
    pub base_offset: i64,
    pub kind: FileKind,
}

impl LogFile {
    /// Kafka's file names: the base offset in 20 digits plus `.log`, `.index` or `.timeindex`.
    pub fn name(&self) -> String {
        let ext = match self.kind {
            FileKind::Log => "log",
            FileKind::Index => "index",
            FileKind::TimeIndex => "timeindex",
        };
        offset_name(self.base_offset, ext)
    }

    /// Parses a `.log` file name back to its base offset.
    pub fn parse_log_name(name: &str) -> Option<i64> {
        parse_offset_name(name, ".log")
    }

    /// A producer state snapshot's file name: the offset it describes in 20 digits plus
    /// `.snapshot`, as Kafka names them.
    pub fn snapshot_name(offset: i64) -> String {
        offset_name(offset, "snapshot")
    }

    /// Parses a `.snapshot` file name back to its offset.
    pub fn parse_snapshot_name(name: &str) -> Option<i64> {
        parse_offset_name(name, ".snapshot")
    }
}

/// `offset` in 20 zero-padded digits, a dot and `ext`. Written by hand: names are made at every
/// file open, and `format!` with padding costs several times more.
fn offset_name(offset: i64, ext: &str) -> String {
    let Ok(mut rest) = u64::try_from(offset) else {
        return format!("{offset:020}.{ext}");
    };
    let mut digits = [b'0'; 20];
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let mut name = String::with_capacity(21 + ext.len());
    name.extend(digits.iter().map(|&d| char::from(d)));
    name.push('.');
    name.push_str(ext);
    name
}

fn parse_offset_name(name: &str, suffix: &str) -> Option<i64> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Storage work for the driver, executed in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOp {
    /// Write `partition.metadata` naming the topic id this directory's log belongs to, and make
    /// it durable (file and directory). Issued before a new partition's first segment.
    WritePartitionMetadata { topic_id: Uuid },
    /// Create the segment's three files, then sync the partition directory so they survive a crash.
    CreateSegment { base_offset: i64 },
    /// Write `data` at `pos` of one file.
    Write {
        file: LogFile,
        pos: u64,
        data: Bytes,
    },
    /// Cut a file to `len` bytes.
    Truncate { file: LogFile, len: u64 },
    /// fdatasync the segment's three files: every write before this op is durable once it
    /// completes. Issued when a segment is sealed: start-up trusts a sealed segment's indexes.
    Sync { base_offset: i64 },
    /// fdatasync the active segment's `.log` only: the group commit of `flush`. Its indexes need
    /// no sync, because recovery always rescans the last segment and rewrites them (a later
    /// roll syncs all three files before the segment stops being the last).
    SyncLog { base_offset: i64 },
    /// Remove the segment's files and sync the directory.
    DeleteSegment { base_offset: i64 },
    /// Write a producer state snapshot as `<offset>.snapshot` so that it is whole or absent:
    /// write a temporary file, sync it, rename it into place, sync the directory.
    WriteSnapshot { offset: i64, data: Bytes },
    /// Remove these producer state snapshots and sync the directory.
    DeleteSnapshots { offsets: Vec<i64> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("offset {offset} is outside [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    #[error("batch of {size} bytes exceeds max.message.bytes")]
    MessageTooLarge { size: usize },
    #[error("invalid batch: {0}")]
    InvalidBatch(ErrorCode),
}

impl LogError {
    pub fn code(&self) -> ErrorCode {
        match self {
            LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            LogError::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
            LogError::InvalidBatch(code) => *code,
        }
    }
}

/// Where a read starts: a byte range of one segment's `.log` file. The range starts at or before
/// the batch holding `offset`; `recovery::trim_to_offset` drops what comes before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPlan {
    pub file: LogFile,
    pub position: u64,
    pub len: u64,
    pub offset: i64,
    /// Base offset of the batch at `position`: batches from there on must continue it
    /// (`recovery::chained_prefix`), which a base offset damaged on the way from the disk, not
    /// covered by the batch CRC, would not.
    pub first_base: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub base_offset: i64,
    /// Next offset after the last batch in this segment.
    pub next_offset: i64,
    pub size: u64,
    pub max_timestamp: i64,
    /// Wall-clock time the segment was created (drives `segment.ms`).
    pub created_ms: i64,
    pub index: SegmentIndex,
    /// Bytes appended since the last offset-index entry.
    pub bytes_since_index: u64,
}

impl Segment {
    pub fn new(base_offset: i64, created_ms: i64) -> Segment {
        Segment {
            base_offset,
            next_offset: base_offset,
            size: 0,
            max_timestamp: -1,
            created_ms,
            index: SegmentIndex::default(),
            bytes_since_index: 0,
        }
    }

    fn relative(&self, offset: i64) -> u32 {
        u32::try_from(offset.saturating_sub(self.base_offset)).unwrap_or(u32::MAX)
    }

    /// Where the batch the index places at or before `offset` starts, and its base offset.
    pub fn floor(&self, offset: i64) -> (u64, i64) {
        match self.index.floor(self.relative(offset)) {
            Some(entry) => (
                u64::from(entry.position),
                self.base_offset + i64::from(entry.relative_offset),
            ),
            None => (0, self.base_offset),
        }
    }
}

/// What `append` did: the offsets given and the storage work to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The batch's max timestamp after the broker's rewrite (LogAppendTime sets it).
    pub max_timestamp: i64,
    /// The base offset of the segment this append rolled to: the caller snapshots its producer
    /// state as of that offset (before recording this batch) with [`PartitionLog::write_snapshot`].
    pub rolled_to: Option<i64>,
    pub ops: Vec<LogOp>,
}

#[derive(Debug, Clone)]
pub struct PartitionLog {
    config: LogConfig,
    /// Ordered by base offset; never empty; the last one is active.
    segments: Vec<Segment>,
    log_start_offset: i64,
    /// Everything below this offset is durable.
    synced_offset: i64,
    /// Appended records not yet covered by a sync, for `flush.messages`.
    unsynced_records: u64,
    last_flush_ms: i64,
    /// Offsets of the producer state snapshots in the directory.
    snapshots: BTreeSet<i64>,
}

impl PartitionLog {
    /// A new, empty log. The caller creates the first segment with the returned op.
    pub fn create(config: LogConfig, now_ms: i64) -> (PartitionLog, LogOp) {
        let log = PartitionLog::from_segments(config, vec![Segment::new(0, now_ms)], 0, now_ms);
        (log, LogOp::CreateSegment { base_offset: 0 })
    }

    /// A log rebuilt by recovery. Segments must be non-empty, contiguous and ordered; everything in
    /// them is durable (recovery only keeps what it read back from disk).
    pub fn from_segments(
        config: LogConfig,
        mut segments: Vec<Segment>,
        log_start_offset: i64,
        now_ms: i64,
    ) -> PartitionLog {
        if segments.is_empty() {
            segments.push(Segment::new(log_start_offset.max(0), now_ms));
        }
        for pair in segments.windows(2) {
            assert!(
                pair[0].next_offset <= pair[1].base_offset,
                "segments overlap"
            );
        }
        let end = segments.last().map_or(0, |s| s.next_offset);
        let first = segments.first().map_or(0, |s| s.base_offset);
        PartitionLog {
            config,
            log_start_offset: log_start_offset.clamp(first, end),
            synced_offset: end,
            segments,
            unsynced_records: 0,
            last_flush_ms: now_ms,
            snapshots: BTreeSet::new(),
        }
    }

    /// The producer state snapshots recovery found (and kept) in the directory.
    pub fn set_snapshots(&mut self, offsets: impl IntoIterator<Item = i64>) {
        self.snapshots = offsets.into_iter().collect();
    }

    pub fn snapshots(&self) -> &BTreeSet<i64> {
        &self.snapshots
    }

    /// Plans writing the producer state as of `offset` (encoded in `data`) and removing the
    /// snapshots it makes unnecessary: all but [`OLDER_SNAPSHOTS_KEPT`] older ones. `offset` must
    /// be the base of a segment whose predecessors were synced (a roll), so the snapshot never
    /// describes records a crash could take back.
    pub fn write_snapshot(&mut self, offset: i64, data: Bytes) -> Vec<LogOp> {
        assert!(
            offset <= self.log_end_offset(),
            "a snapshot cannot describe offsets the log has not reached"
        );
        self.snapshots.insert(offset);
        let mut ops = vec![LogOp::WriteSnapshot { offset, data }];
        let obsolete: Vec<i64> = self
            .snapshots
            .range(..offset)
            .rev()
            .skip(OLDER_SNAPSHOTS_KEPT)
            .copied()
            .collect();
        if !obsolete.is_empty() {
            for o in &obsolete {
                self.snapshots.remove(o);
            }
            ops.push(LogOp::DeleteSnapshots { offsets: obsolete });
        }
        ops
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The next offset to be assigned (Kafka's log end offset).
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    /// Offsets below this are durable.
    pub fn synced_offset(&self) -> i64 {
        self.synced_offset
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
    }

    /// Assigns offsets to a validated batch by rewriting its header, and plans its writes.
    /// `log_append_time` is the broker's wall clock when the topic uses LogAppendTime.
    pub fn append(
        &mut self,
        mut batch: BytesMut,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<Appended, LogError> {
        if batch.len() > self.config.max_message_bytes as usize {
            return Err(LogError::MessageTooLarge { size: batch.len() });
        }
        let header =
            BatchHeader::parse(&batch).map_err(|e| LogError::InvalidBatch(e.error_code()))?;
        let base_offset = self.log_end_offset();
        let last_offset = base_offset + i64::from(header.last_offset_delta);
        let append_time = self.config.log_append_time.then_some(now_ms);
        let assignment = OffsetAssignment {
            base_offset,
            partition_leader_epoch: leader_epoch,
            log_append_time: append_time,
        };
        assign_offsets(&mut batch, &assignment)
            .map_err(|e| LogError::InvalidBatch(e.error_code()))?;
        let max_timestamp = append_time.unwrap_or(header.max_timestamp);
        let data = batch.freeze();

        let mut ops = Vec::with_capacity(4);
        let mut rolled_to = None;
        if self.should_roll(data.len() as u64, last_offset, now_ms) {
            ops.extend(self.roll(now_ms));
            rolled_to = Some(base_offset);
        }
        let interval = u64::from(self.config.index_interval_bytes);
        let seg = self.active_mut();
        let rel = seg.relative(base_offset);
        let position = seg.size;
        if seg.size == 0 || seg.bytes_since_index > interval {
            let entry = OffsetEntry {
                relative_offset: rel,
                position: position as u32,
            };
            let pos = (seg.index.offsets.len() * super::index::OFFSET_ENTRY_BYTES) as u64;
            ops.push(LogOp::Write {
                file: seg.file(FileKind::Index),
                pos,
                data: entry.encode(),
            });
            seg.index.offsets.push(entry);
            seg.bytes_since_index = 0;
        }
        if max_timestamp > seg.max_timestamp {
            let entry = TimeEntry {
                timestamp: max_timestamp,
                relative_offset: seg.relative(last_offset),
            };
            let pos = (seg.index.times.len() * super::index::TIME_ENTRY_BYTES) as u64;
            ops.push(LogOp::Write {
                file: seg.file(FileKind::TimeIndex),
                pos,
                data: entry.encode(),
            });
            seg.index.times.push(entry);
            seg.max_timestamp = max_timestamp;
        }
        ops.push(LogOp::Write {
            file: seg.file(FileKind::Log),
            pos: position,
            data: data.clone(),
        });
        seg.size += data.len() as u64;
        seg.bytes_since_index += data.len() as u64;
        assert!(last_offset >= seg.next_offset, "offsets only grow");
        seg.next_offset = last_offset + 1;
        self.unsynced_records += u64::from(header.record_count.max(1) as u32);
        Ok(Appended {
            base_offset,
            last_offset,
            max_timestamp,
            rolled_to,
            ops,
        })
    }

    fn should_roll(&self, incoming: u64, last_offset: i64, now_ms: i64) -> bool {
        let seg = self.active();
        if seg.size == 0 {
            return false;
        }
        seg.size + incoming > self.config.segment_bytes
            || now_ms.saturating_sub(seg.created_ms) > self.config.segment_ms
            || last_offset - seg.base_offset > i64::from(u32::MAX)
            || seg.size + incoming > u64::from(u32::MAX)
    }

    /// Syncs the active segment and starts a new one at the log end offset.
    fn roll(&mut self, now_ms: i64) -> Vec<LogOp> {
        let old = self.active().base_offset;
        let base = self.log_end_offset();
        self.segments.push(Segment::new(base, now_ms));
        vec![
            LogOp::Sync { base_offset: old },
            LogOp::CreateSegment { base_offset: base },
        ]
    }

    /// Seals the active segment now, before `segment.bytes` or `segment.ms` ask for it (legal:
    /// those are upper bounds). Nothing when the active segment is empty.
    pub fn roll_early(&mut self, now_ms: i64) -> Vec<LogOp> {
        if self.active().size == 0 {
            return Vec::new();
        }
        self.roll(now_ms)
    }

    /// Whether `flush.messages` / `flush.ms` ask for a sync now.
    pub fn flush_due(&self, now_ms: i64) -> bool {
        if self.synced_offset == self.log_end_offset() {
            return false;
        }
        let by_count = self
            .config
            .flush_messages
            .is_some_and(|n| self.unsynced_records >= n);
        let by_time = self
            .config
            .flush_ms
            .is_some_and(|ms| now_ms.saturating_sub(self.last_flush_ms) >= ms as i64);
        by_count || by_time
    }

    /// A sync covering everything appended so far, and the offset it makes durable.
    /// Segments before the active one were synced when they rolled.
    pub fn flush(&mut self, now_ms: i64) -> (LogOp, i64) {
        self.unsynced_records = 0;
        self.last_flush_ms = now_ms;
        (
            LogOp::SyncLog {
                base_offset: self.active().base_offset,
            },
            self.log_end_offset(),
        )
    }

    /// A sync issued by `flush` completed: offsets below `upto` are durable.
    pub fn on_synced(&mut self, upto: i64) {
        self.synced_offset = self.synced_offset.max(upto);
    }

    /// Resolves a fetch at `offset` for at most `max_bytes` (the first batch is always whole, as
    /// KIP-74 requires, so the plan reaches one index interval plus `max_bytes` further).
    pub fn read(&self, offset: i64, max_bytes: u64) -> Result<Option<ReadPlan>, LogError> {
        let end = self.log_end_offset();
        if offset < self.log_start_offset || offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset,
                end,
            });
        }
        if offset == end {
            return Ok(None);
        }
        let i = self
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        let Some(seg) = self.segments.get(i) else {
            return Ok(None);
        };
        if offset >= seg.next_offset {
            // A gap left by compaction or deletion: continue in the next segment.
            return self.read(seg.next_offset.max(offset + 1).min(end), max_bytes);
        }
        let (position, first_base) = seg.floor(offset);
        let slack =
            u64::from(self.config.index_interval_bytes) + u64::from(self.config.max_message_bytes);
        let len = seg
            .size
            .saturating_sub(position)
            .min(max_bytes.saturating_add(slack));
        Ok(Some(ReadPlan {
            file: seg.file(FileKind::Log),
            position,
            len,
            offset,
            first_base,
        }))
    }

    /// Segments retention may delete now (`retention.ms` by max timestamp, `retention.bytes` by
    /// size, and everything wholly below `log_start_offset`), oldest first. Never the active one.
    pub fn expired_segments(&self, now_ms: i64) -> Vec<i64> {
        let mut out = Vec::new();
        let mut size = self.size_bytes() as i64;
        let Some((_, older)) = self.segments.split_last() else {
            return out;
        };
        for seg in older {
            let by_time = self.config.retention_ms >= 0
                && seg.max_timestamp >= 0
                && now_ms.saturating_sub(seg.max_timestamp) > self.config.retention_ms;
            let by_size = self.config.retention_bytes >= 0
                && size - seg.size as i64 >= self.config.retention_bytes;
            let below_start = seg.next_offset <= self.log_start_offset;
            if !(by_time || by_size || below_start) {
                break;
            }
            size -= seg.size as i64;
            out.push(seg.base_offset);
        }
        out
    }

    /// Deletes the oldest segments up to and including `base_offset`; the log start moves to the
    /// next segment's base. Producer snapshots below that base go too: replaying from one would
    /// need the deleted segments. (The producer state itself outlives them: it is in memory and in
    /// the newer snapshots, and only `producer.id.expiration.ms` forgets a producer.)
    pub fn delete_segments_through(&mut self, base_offset: i64) -> Vec<LogOp> {
        let mut ops = Vec::new();
        while self.segments.len() > 1 && self.segments[0].base_offset <= base_offset {
            let seg = self.segments.remove(0);
            ops.push(LogOp::DeleteSegment {
                base_offset: seg.base_offset,
            });
        }
        let first = self.segments.first().map_or(0, |s| s.base_offset);
        self.log_start_offset = self.log_start_offset.max(first);
        let below: Vec<i64> = self.snapshots.range(..first).copied().collect();
        if !below.is_empty() {
            for o in &below {
                self.snapshots.remove(o);
            }
            ops.push(LogOp::DeleteSnapshots { offsets: below });
        }
        ops
    }

    /// DeleteRecords: moves the log start offset forward (never back, never past the end).
    pub fn advance_log_start(&mut self, offset: i64) -> Result<i64, LogError> {
        let end = self.log_end_offset();
        if offset > end || offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset,
                end,
            });
        }
        self.log_start_offset = self.log_start_offset.max(offset);
        Ok(self.log_start_offset)
    }
}

impl Segment {
    pub fn file(&self, kind: FileKind) -> LogFile {
        LogFile {
            base_offset: self.base_offset,
            kind,
        }
    }
}
