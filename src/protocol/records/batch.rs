//! The v2 batch header, the iterator over the batches of a `records` blob, the broker's
//! validation of a produced batch, and offset assignment by rewriting header fields in place.
//!
//! Layout (big-endian), 61 bytes before the records:
//!
//! | offset | field                  | type | in CRC |
//! |--------|------------------------|------|--------|
//! | 0      | base offset            | i64  | no     |
//! | 8      | batch length           | i32  | no     |
//! | 12     | partition leader epoch | i32  | no     |
//! | 16     | magic (2)              | i8   | no     |
//! | 17     | crc (CRC-32C)          | u32  | no     |
//! | 21     | attributes             | i16  | yes    |
//! | 23     | last offset delta      | i32  | yes    |
//! | 27     | base timestamp         | i64  | yes    |
//! | 35     | max timestamp          | i64  | yes    |
//! | 43     | producer id            | i64  | yes    |
//! | 51     | producer epoch         | i16  | yes    |
//! | 53     | base sequence          | i32  | yes    |
//! | 57     | record count           | i32  | yes    |
//! | 61     | records …              |      | yes    |
//!
//! The batch length counts every byte after the length field itself, so a batch occupies
//! `batch_length + 12` bytes.

use bytes::{Buf, Bytes};

use super::compression::Compression;
use super::{crc, RecordsError, RecordsResult};

/// Bytes before the records: the whole fixed header.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before the batch length field ends: base offset + batch length. `batch_length`
/// counts everything after them.
pub const LOG_OVERHEAD: usize = 12;
/// The only record format this broker speaks.
pub const MAGIC_V2: i8 = 2;
/// Smallest legal `batch_length`: a header with no records.
pub const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
/// Smallest possible encoded record: length, attributes, timestamp delta, offset delta, key
/// length, value length and header count, one byte each.
pub const MIN_RECORD_LEN: usize = 7;

pub(crate) const BASE_OFFSET_AT: usize = 0;
pub(crate) const BATCH_LENGTH_AT: usize = 8;
pub(crate) const PARTITION_LEADER_EPOCH_AT: usize = 12;
pub(crate) const MAGIC_AT: usize = 16;
pub(crate) const CRC_AT: usize = 17;
pub(crate) const ATTRIBUTES_AT: usize = 21;
pub(crate) const LAST_OFFSET_DELTA_AT: usize = 23;
pub(crate) const BASE_TIMESTAMP_AT: usize = 27;
pub(crate) const MAX_TIMESTAMP_AT: usize = 35;
pub(crate) const PRODUCER_ID_AT: usize = 43;
pub(crate) const PRODUCER_EPOCH_AT: usize = 51;
pub(crate) const BASE_SEQUENCE_AT: usize = 53;
pub(crate) const RECORD_COUNT_AT: usize = 57;

/// Producer id, epoch and sequence of a batch from a non-idempotent producer.
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PRODUCER_EPOCH: i16 = -1;
pub const NO_SEQUENCE: i32 = -1;
/// Partition leader epoch of a batch no leader has stamped yet.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;
/// Timestamp of a record or batch without one.
pub const NO_TIMESTAMP: i64 = -1;

/// How the batch's timestamps were set: by the producer, or by the broker on append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

/// The attributes bit field of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchAttributes(pub i16);

impl BatchAttributes {
    const COMPRESSION_MASK: i16 = 0x07;
    const TIMESTAMP_TYPE: i16 = 0x08;
    const TRANSACTIONAL: i16 = 0x10;
    const CONTROL: i16 = 0x20;
    const DELETE_HORIZON: i16 = 0x40;

    /// The raw compression codec id (bits 0-2).
    pub fn compression_id(self) -> i16 {
        self.0 & Self::COMPRESSION_MASK
    }

    /// The compression codec; ids 5-7 are not codecs.
    pub fn compression(self) -> RecordsResult<Compression> {
        let id = self.compression_id();
        Compression::from_id(id).ok_or(RecordsError::UnknownCompression(id))
    }

    pub fn timestamp_type(self) -> TimestampType {
        if self.0 & Self::TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(self) -> bool {
        self.0 & Self::TRANSACTIONAL != 0
    }

    pub fn is_control(self) -> bool {
        self.0 & Self::CONTROL != 0
    }

    /// Set by log compaction (KIP-534): the base timestamp then holds the delete horizon.
    pub fn has_delete_horizon(self) -> bool {
        self.0 & Self::DELETE_HORIZON != 0
    }

    pub fn with_compression(self, c: Compression) -> Self {
        Self((self.0 & !Self::COMPRESSION_MASK) | c.id())
    }

    pub fn with_timestamp_type(self, t: TimestampType) -> Self {
        self.with_bit(Self::TIMESTAMP_TYPE, t == TimestampType::LogAppendTime)
    }

    pub fn with_transactional(self, on: bool) -> Self {
        self.with_bit(Self::TRANSACTIONAL, on)
    }

    pub fn with_control(self, on: bool) -> Self {
        self.with_bit(Self::CONTROL, on)
    }

    pub fn with_delete_horizon(self, on: bool) -> Self {
        self.with_bit(Self::DELETE_HORIZON, on)
    }

    fn with_bit(self, bit: i16, on: bool) -> Self {
        if on {
            Self(self.0 | bit)
        } else {
            Self(self.0 & !bit)
        }
    }
}

/// Every field of a v2 batch header, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: BatchAttributes,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn need(buf: &[u8], needed: usize) -> RecordsResult<()> {
    if buf.len() < needed {
        return Err(RecordsError::Truncated {
            needed,
            available: buf.len(),
        });
    }
    Ok(())
}

fn put_i16_at(buf: &mut [u8], at: usize, v: i16) {
    buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
fn put_i32_at(buf: &mut [u8], at: usize, v: i32) {
    buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
fn put_i64_at(buf: &mut [u8], at: usize, v: i64) {
    buf[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

impl BatchHeader {
    /// Parses the header at the start of `buf`. Checks the magic byte before reading the rest,
    /// as older formats lay the following bytes out differently. Does not check the CRC or the
    /// batch length against `buf`: see [`Batch::parse`] and [`Batch::validate`].
    pub fn parse(buf: &[u8]) -> RecordsResult<BatchHeader> {
        need(buf, MAGIC_AT + 1)?;
        let magic = buf[MAGIC_AT] as i8;
        if magic != MAGIC_V2 {
            return Err(RecordsError::UnsupportedMagic(magic));
        }
        need(buf, BATCH_HEADER_LEN)?;
        let mut b = &buf[..BATCH_HEADER_LEN];
        let base_offset = b.get_i64();
        let batch_length = b.get_i32();
        let partition_leader_epoch = b.get_i32();
        let magic = b.get_i8();
        let crc = b.get_u32();
        Ok(BatchHeader {
            base_offset,
            batch_length,
            partition_leader_epoch,
            magic,
            crc,
            attributes: BatchAttributes(b.get_i16()),
            last_offset_delta: b.get_i32(),
            base_timestamp: b.get_i64(),
            max_timestamp: b.get_i64(),
            producer_id: b.get_i64(),
            producer_epoch: b.get_i16(),
            base_sequence: b.get_i32(),
            record_count: b.get_i32(),
        })
    }

    /// The header as its 61 wire bytes (the `crc` field as stored, not recomputed).
    pub fn to_bytes(&self) -> [u8; BATCH_HEADER_LEN] {
        let mut out = [0u8; BATCH_HEADER_LEN];
        put_i64_at(&mut out, BASE_OFFSET_AT, self.base_offset);
        put_i32_at(&mut out, BATCH_LENGTH_AT, self.batch_length);
        put_i32_at(
            &mut out,
            PARTITION_LEADER_EPOCH_AT,
            self.partition_leader_epoch,
        );
        out[MAGIC_AT] = self.magic as u8;
        out[CRC_AT..CRC_AT + 4].copy_from_slice(&self.crc.to_be_bytes());
        put_i16_at(&mut out, ATTRIBUTES_AT, self.attributes.0);
        put_i32_at(&mut out, LAST_OFFSET_DELTA_AT, self.last_offset_delta);
        put_i64_at(&mut out, BASE_TIMESTAMP_AT, self.base_timestamp);
        put_i64_at(&mut out, MAX_TIMESTAMP_AT, self.max_timestamp);
        put_i64_at(&mut out, PRODUCER_ID_AT, self.producer_id);
        put_i16_at(&mut out, PRODUCER_EPOCH_AT, self.producer_epoch);
        put_i32_at(&mut out, BASE_SEQUENCE_AT, self.base_sequence);
        put_i32_at(&mut out, RECORD_COUNT_AT, self.record_count);
        out
    }

    /// Bytes the whole batch occupies, header included, if the length field is sane.
    pub fn size_in_bytes(&self) -> Option<usize> {
        if self.batch_length < MIN_BATCH_LENGTH {
            return None;
        }
        usize::try_from(self.batch_length)
            .ok()?
            .checked_add(LOG_OVERHEAD)
    }

    pub fn compression(&self) -> RecordsResult<Compression> {
        self.attributes.compression()
    }

    pub fn timestamp_type(&self) -> TimestampType {
        self.attributes.timestamp_type()
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes.is_transactional()
    }

    pub fn is_control(&self) -> bool {
        self.attributes.is_control()
    }

    /// Whether an idempotent or transactional producer wrote the batch.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id > NO_PRODUCER_ID
    }

    /// Offset of the batch's last record (saturating: a hostile header cannot overflow it).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// The offset after the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// Sequence number of the batch's last record; sequences wrap from `i32::MAX` to 0.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// `sequence + increment`, wrapping past `i32::MAX` to 0 as producers do.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    let sum = i64::from(sequence) + i64::from(increment);
    let span = i64::from(i32::MAX) + 1;
    // rem_euclid keeps the result in 0..span for any inputs.
    sum.rem_euclid(span) as i32
}

/// One whole batch: its parsed header and the bytes it occupies (header included), a
/// zero-copy slice of the `records` blob it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    header: BatchHeader,
    bytes: Bytes,
}

impl Batch {
    /// Parses `bytes` as exactly one batch: the header's batch length must match its size.
    pub fn parse(bytes: Bytes) -> RecordsResult<Batch> {
        let header = BatchHeader::parse(&bytes)?;
        let size = header
            .size_in_bytes()
            .ok_or(RecordsError::BatchLengthOutOfRange(i64::from(
                header.batch_length,
            )))?;
        if size > bytes.len() {
            return Err(RecordsError::Truncated {
                needed: size,
                available: bytes.len(),
            });
        }
        if size < bytes.len() {
            return Err(RecordsError::BatchLengthOutOfRange(i64::from(
                header.batch_length,
            )));
        }
        Ok(Batch { header, bytes })
    }

    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The whole batch, header included, as received.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Bytes the batch occupies, header included.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// The bytes after the header: the records, compressed as one blob if the batch is.
    pub fn records_payload(&self) -> Bytes {
        self.bytes.slice(BATCH_HEADER_LEN..)
    }

    /// CRC-32C of the bytes the CRC field covers (attributes to the end of the batch).
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[ATTRIBUTES_AT..])
    }

    pub fn verify_crc(&self) -> RecordsResult<()> {
        let computed = self.compute_crc();
        if computed != self.header.crc {
            return Err(RecordsError::CrcMismatch {
                stored: self.header.crc,
                computed,
            });
        }
        Ok(())
    }

    /// Checks any stored batch: CRC, a known codec, a non-negative record count and, when the
    /// records are not compressed, a count the payload can hold. Magic and length were
    /// checked when the batch was parsed.
    pub fn validate(&self) -> RecordsResult<()> {
        self.verify_crc()?;
        let h = &self.header;
        let compression = h.compression()?;
        if h.record_count < 0 {
            return Err(RecordsError::InvalidBatch("negative record count"));
        }
        if compression == Compression::None {
            let payload = self.size() - BATCH_HEADER_LEN;
            // i32 -> usize cannot fail on the 32- and 64-bit targets we build for; the count is
            // non-negative here.
            let count = usize::try_from(h.record_count).unwrap_or(usize::MAX);
            if count > payload / MIN_RECORD_LEN {
                return Err(RecordsError::InvalidBatch(
                    "record count larger than the batch can hold",
                ));
            }
        }
        Ok(())
    }

    /// Checks a batch a client produced, as Kafka's broker does before appending it:
    /// everything [`Batch::validate`] checks, plus a positive record count that matches the
    /// offset range, no control records (only the broker writes those), and a sequence number
    /// for idempotent producers.
    pub fn validate_for_produce(&self) -> RecordsResult<()> {
        self.validate()?;
        let h = &self.header;
        let count_from_offsets = i64::from(h.last_offset_delta) + 1;
        if count_from_offsets <= 0 {
            return Err(RecordsError::InvalidBatch("invalid offset range"));
        }
        if h.record_count <= 0 {
            return Err(RecordsError::InvalidBatch("record count must be positive"));
        }
        if count_from_offsets != i64::from(h.record_count) {
            return Err(RecordsError::InvalidBatch(
                "last offset delta does not match the record count",
            ));
        }
        if h.is_control() {
            return Err(RecordsError::InvalidBatch(
                "clients may not write control batches",
            ));
        }
        if h.has_producer_id() && h.base_sequence < 0 {
            return Err(RecordsError::InvalidBatch(
                "idempotent batch without a sequence number",
            ));
        }
        Ok(())
    }
}

/// Iterates the batches of a `records` blob, yielding each as a zero-copy slice.
///
/// A batch whose length field is impossible, or that runs past the end of the blob, is an
/// error and ends the iteration. Fetch responses may legitimately end with a partial batch
/// (the broker cuts at `max.bytes`); build the iterator with
/// [`RecordBatches::allowing_partial_tail`] to stop silently there instead.
#[derive(Debug, Clone)]
pub struct RecordBatches {
    rest: Bytes,
    allow_partial_tail: bool,
    done: bool,
}

impl RecordBatches {
    pub fn new(records: Bytes) -> Self {
        RecordBatches {
            rest: records,
            allow_partial_tail: false,
            done: false,
        }
    }

    /// For fetched data: a truncated last batch ends the iteration without an error.
    pub fn allowing_partial_tail(records: Bytes) -> Self {
        RecordBatches {
            rest: records,
            allow_partial_tail: true,
            done: false,
        }
    }

    /// Bytes not consumed yet.
    pub fn remaining(&self) -> &Bytes {
        &self.rest
    }

    fn next_batch(&mut self) -> RecordsResult<Option<Batch>> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let truncated =
            |needed: usize, available: usize| RecordsError::Truncated { needed, available };
        if self.rest.len() < LOG_OVERHEAD {
            return Err(truncated(LOG_OVERHEAD, self.rest.len()));
        }
        let mut len_field = &self.rest[BATCH_LENGTH_AT..LOG_OVERHEAD];
        let batch_length = len_field.get_i32();
        if batch_length < MIN_BATCH_LENGTH {
            return Err(RecordsError::BatchLengthOutOfRange(i64::from(batch_length)));
        }
        // batch_length is at least MIN_BATCH_LENGTH, so positive, and usize holds any i32
        // on our targets.
        let size = usize::try_from(batch_length)
            .ok()
            .and_then(|n| n.checked_add(LOG_OVERHEAD))
            .ok_or(RecordsError::BatchLengthOutOfRange(i64::from(batch_length)))?;
        if size > self.rest.len() {
            return Err(truncated(size, self.rest.len()));
        }
        let bytes = self.rest.split_to(size);
        let header = BatchHeader::parse(&bytes)?;
        Ok(Some(Batch { header, bytes }))
    }
}

impl Iterator for RecordBatches {
    type Item = RecordsResult<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_batch() {
            Ok(Some(batch)) => Some(Ok(batch)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(RecordsError::Truncated { .. }) if self.allow_partial_tail => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for RecordBatches {}

/// What the leader stamps on a batch when it appends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAssignment {
    /// Offset of the batch's first record in the partition.
    pub base_offset: i64,
    /// The leader's epoch, for log truncation after leader changes.
    pub partition_leader_epoch: i32,
    /// `Some(now_ms)` when the topic's `message.timestamp.type` is `LogAppendTime`: the
    /// batch's max timestamp becomes `now_ms` and its timestamp type bit is set.
    pub log_append_time: Option<i64>,
}

/// Assigns offsets to a validated batch by rewriting header fields in place: base offset and
/// partition leader epoch (outside the CRC), and for `LogAppendTime` the attributes and max
/// timestamp. Records are never touched or re-encoded.
///
/// The CRC is updated from the header bytes that changed (see `crc.rs`), so this costs the
/// same for any batch size and never launders corruption: a batch whose CRC was wrong before
/// still fails [`Batch::verify_crc`] after. Returns the new header.
pub fn assign_offsets(batch: &mut [u8], a: &OffsetAssignment) -> RecordsResult<BatchHeader> {
    let header = BatchHeader::parse(batch)?;
    let size = header
        .size_in_bytes()
        .ok_or(RecordsError::BatchLengthOutOfRange(i64::from(
            header.batch_length,
        )))?;
    if size != batch.len() {
        return Err(RecordsError::BatchLengthOutOfRange(i64::from(
            header.batch_length,
        )));
    }
    put_i64_at(batch, BASE_OFFSET_AT, a.base_offset);
    put_i32_at(batch, PARTITION_LEADER_EPOCH_AT, a.partition_leader_epoch);
    if let Some(now_ms) = a.log_append_time {
        // The attributes and max timestamp live in the first 22 CRC-covered bytes.
        const EDITED: usize = PRODUCER_ID_AT - ATTRIBUTES_AT;
        let mut old = [0u8; EDITED];
        old.copy_from_slice(&batch[ATTRIBUTES_AT..PRODUCER_ID_AT]);
        let attributes = header
            .attributes
            .with_timestamp_type(TimestampType::LogAppendTime);
        put_i16_at(batch, ATTRIBUTES_AT, attributes.0);
        put_i64_at(batch, MAX_TIMESTAMP_AT, now_ms);
        let crc = crc::update_for_prefix_change(
            header.crc,
            &old,
            &batch[ATTRIBUTES_AT..PRODUCER_ID_AT],
            batch.len() - PRODUCER_ID_AT,
        );
        batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    }
    BatchHeader::parse(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch with `payload` as its record bytes and a correct CRC.
    pub(crate) fn raw_batch(record_count: i32, payload: &[u8]) -> Vec<u8> {
        let header = BatchHeader {
            base_offset: 0,
            batch_length: (BATCH_HEADER_LEN - LOG_OVERHEAD + payload.len()) as i32,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            magic: MAGIC_V2,
            crc: 0,
            attributes: BatchAttributes::default(),
            last_offset_delta: record_count - 1,
            base_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_005,
            producer_id: 42,
            producer_epoch: 3,
            base_sequence: 7,
            record_count,
        };
        let mut out = header.to_bytes().to_vec();
        out.extend_from_slice(payload);
        let crc = crc32c::crc32c(&out[ATTRIBUTES_AT..]);
        out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        out
    }

    #[test]
    fn header_round_trips_through_bytes() {
        let raw = raw_batch(2, &[0u8; 14]);
        let h = BatchHeader::parse(&raw).unwrap();
        assert_eq!(h.batch_length, 49 + 14);
        assert_eq!(h.record_count, 2);
        assert_eq!(h.last_offset_delta, 1);
        assert_eq!(h.producer_id, 42);
        assert_eq!(h.producer_epoch, 3);
        assert_eq!(h.base_sequence, 7);
        assert_eq!(h.last_sequence(), 8);
        assert_eq!(h.size_in_bytes(), Some(raw.len()));
        assert_eq!(&h.to_bytes()[..], &raw[..BATCH_HEADER_LEN]);
    }

    #[test]
    fn attributes_decode_every_flag() {
        let a = BatchAttributes(0x7c | 4);
        assert_eq!(a.compression().unwrap(), Compression::Zstd);
        assert_eq!(a.timestamp_type(), TimestampType::LogAppendTime);
        assert!(a.is_transactional() && a.is_control() && a.has_delete_horizon());
        let b = BatchAttributes::default()
            .with_compression(Compression::Lz4)
            .with_transactional(true);
        assert_eq!(b.0, 0x13);
        assert_eq!(
            BatchAttributes(6).compression(),
            Err(RecordsError::UnknownCompression(6))
        );
    }

    #[test]
    fn header_parse_checks_magic_before_length() {
        let mut raw = raw_batch(1, &[0u8; 7]);
        raw[MAGIC_AT] = 1;
        assert_eq!(
            BatchHeader::parse(&raw),
            Err(RecordsError::UnsupportedMagic(1))
        );
        assert!(matches!(
            BatchHeader::parse(&raw[..16]),
            Err(RecordsError::Truncated { .. })
        ));
        raw[MAGIC_AT] = 2;
        assert!(matches!(
            BatchHeader::parse(&raw[..60]),
            Err(RecordsError::Truncated { .. })
        ));
    }

    #[test]
    fn sequences_wrap_to_zero() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 0), 5);
    }

    #[test]
    fn iterator_yields_each_batch_zero_copy() {
        let mut blob = raw_batch(1, &[0u8; 7]);
        blob.extend(raw_batch(2, &[0u8; 14]));
        let blob = Bytes::from(blob);
        let batches: Vec<Batch> = RecordBatches::new(blob.clone())
            .collect::<RecordsResult<_>>()
            .unwrap();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].size(), 68);
        assert_eq!(batches[1].header().record_count, 2);
        // Zero-copy: the slice points into the original blob.
        assert_eq!(batches[1].as_bytes().as_ptr(), blob[68..].as_ptr());
        for b in &batches {
            b.validate_for_produce().unwrap();
        }
    }

    #[test]
    fn iterator_rejects_truncation_and_bad_lengths() {
        let blob = raw_batch(1, &[0u8; 7]);
        let cut = Bytes::from(blob[..blob.len() - 1].to_vec());
        let mut it = RecordBatches::new(cut.clone());
        assert!(matches!(
            it.next(),
            Some(Err(RecordsError::Truncated { .. }))
        ));
        assert!(it.next().is_none());
        assert!(RecordBatches::allowing_partial_tail(cut).next().is_none());

        let mut short = blob.clone();
        short[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&48i32.to_be_bytes());
        let err = RecordBatches::new(Bytes::from(short))
            .next()
            .unwrap()
            .unwrap_err();
        assert_eq!(err, RecordsError::BatchLengthOutOfRange(48));
        assert_eq!(
            err.error_code(),
            crate::protocol::error::ErrorCode::CorruptMessage
        );

        let mut negative = blob.clone();
        negative[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(RecordBatches::new(Bytes::from(negative))
            .next()
            .unwrap()
            .is_err());

        let mut magic1 = blob;
        magic1[MAGIC_AT] = 1;
        let err = RecordBatches::new(Bytes::from(magic1))
            .next()
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err.error_code(),
            crate::protocol::error::ErrorCode::InvalidRecord
        );

        assert!(matches!(
            RecordBatches::new(Bytes::from_static(&[0; 5])).next(),
            Some(Err(RecordsError::Truncated { .. }))
        ));
        assert!(RecordBatches::new(Bytes::new()).next().is_none());
    }

    #[test]
    fn validation_catches_crc_and_semantic_errors() {
        let good = raw_batch(2, &[0u8; 14]);
        let check = |raw: &[u8]| Batch::parse(Bytes::from(raw.to_vec())).unwrap();

        let mut flipped = good.clone();
        flipped[70] ^= 1;
        let err = check(&flipped).validate().unwrap_err();
        assert!(matches!(err, RecordsError::CrcMismatch { .. }));
        assert_eq!(
            err.error_code(),
            crate::protocol::error::ErrorCode::CorruptMessage
        );

        let too_many = raw_batch(3, &[0u8; 14]);
        assert!(matches!(
            check(&too_many).validate(),
            Err(RecordsError::InvalidBatch(_))
        ));

        let empty = raw_batch(0, &[]);
        check(&empty).validate().unwrap();
        assert!(check(&empty).validate_for_produce().is_err());

        let mut mismatch = BatchHeader::parse(&good).unwrap();
        mismatch.last_offset_delta = 5;
        let mut raw = mismatch.to_bytes().to_vec();
        raw.extend_from_slice(&[0u8; 14]);
        let crc = crc32c::crc32c(&raw[ATTRIBUTES_AT..]);
        raw[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        let err = check(&raw).validate_for_produce().unwrap_err();
        assert_eq!(
            err.error_code(),
            crate::protocol::error::ErrorCode::InvalidRecord
        );
    }

    #[test]
    fn parse_requires_the_exact_size() {
        let mut raw = raw_batch(1, &[0u8; 7]);
        raw.push(0);
        assert!(matches!(
            Batch::parse(Bytes::from(raw)),
            Err(RecordsError::BatchLengthOutOfRange(_))
        ));
    }

    #[test]
    fn assign_offsets_rewrites_only_the_header() {
        let original = raw_batch(2, &[9u8; 14]);
        let mut buf = bytes::BytesMut::from(&original[..]);
        let h = assign_offsets(
            &mut buf,
            &OffsetAssignment {
                base_offset: 1000,
                partition_leader_epoch: 7,
                log_append_time: None,
            },
        )
        .unwrap();
        assert_eq!((h.base_offset, h.partition_leader_epoch), (1000, 7));
        assert_eq!(h.crc, BatchHeader::parse(&original).unwrap().crc);
        assert_eq!(&buf[CRC_AT..], &original[CRC_AT..]);

        let h = assign_offsets(
            &mut buf,
            &OffsetAssignment {
                base_offset: 2000,
                partition_leader_epoch: 8,
                log_append_time: Some(1_800_000_000_000),
            },
        )
        .unwrap();
        assert_eq!(h.max_timestamp, 1_800_000_000_000);
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        let batch = Batch::parse(buf.freeze()).unwrap();
        batch.validate_for_produce().unwrap();
        assert_eq!(
            &batch.as_bytes()[BATCH_HEADER_LEN..],
            &original[BATCH_HEADER_LEN..]
        );
    }

    #[test]
    fn assign_offsets_keeps_a_bad_crc_bad() {
        let mut raw = raw_batch(1, &[1u8; 7]);
        raw[65] ^= 0x10;
        let mut buf = bytes::BytesMut::from(&raw[..]);
        assign_offsets(
            &mut buf,
            &OffsetAssignment {
                base_offset: 5,
                partition_leader_epoch: 1,
                log_append_time: Some(123),
            },
        )
        .unwrap();
        let batch = Batch::parse(buf.freeze()).unwrap();
        assert!(matches!(
            batch.verify_crc(),
            Err(RecordsError::CrcMismatch { .. })
        ));
    }
}
