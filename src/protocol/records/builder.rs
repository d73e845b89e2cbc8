//! Building a v2 batch from records: what a producer does, and what the broker does for its own
//! writes (transaction markers, internal topics).

use bytes::{BufMut, Bytes, BytesMut};

use super::batch::{
    BatchAttributes, BatchHeader, TimestampType, ATTRIBUTES_AT, BATCH_HEADER_LEN, CRC_AT,
    LOG_OVERHEAD, MAGIC_V2, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
    NO_SEQUENCE,
};
use super::compression::{self, Compression};
use super::record::{Record, RecordHeader};
use super::{RecordsError, RecordsResult};

/// Accumulates records, then encodes them as one batch with [`BatchBuilder::build`].
///
/// Records are encoded as they are pushed, after a reserved header, so an uncompressed batch
/// is built without copying and [`BatchBuilder::uncompressed_size`] tells a producer how full
/// the batch is.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    compression: Compression,
    timestamp_type: TimestampType,
    transactional: bool,
    control: bool,
    base_offset: i64,
    partition_leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    base_timestamp: Option<i64>,
    max_timestamp_delta: Option<i64>,
    last_offset_delta: Option<i32>,
    record_count: i32,
    /// Reserved header bytes, then the encoded records.
    buf: BytesMut,
}

impl BatchBuilder {
    pub fn new(compression: Compression) -> Self {
        let mut buf = BytesMut::with_capacity(1024);
        buf.put_bytes(0, BATCH_HEADER_LEN);
        BatchBuilder {
            compression,
            timestamp_type: TimestampType::CreateTime,
            transactional: false,
            control: false,
            base_offset: 0,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            base_timestamp: None,
            max_timestamp_delta: None,
            last_offset_delta: None,
            record_count: 0,
            buf,
        }
    }

    /// Idempotent (or transactional) producer identity and the first record's sequence.
    pub fn with_producer(
        mut self,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn with_transactional(mut self, on: bool) -> Self {
        self.transactional = on;
        self
    }

    pub fn with_control(mut self, on: bool) -> Self {
        self.control = on;
        self
    }

    pub fn with_timestamp_type(mut self, t: TimestampType) -> Self {
        self.timestamp_type = t;
        self
    }

    pub fn with_base_offset(mut self, base_offset: i64) -> Self {
        self.base_offset = base_offset;
        self
    }

    pub fn with_partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Sets the base timestamp explicitly; otherwise the first pushed record's timestamp is used.
    pub fn with_base_timestamp(mut self, ts: i64) -> Self {
        self.base_timestamp = Some(ts);
        self
    }

    pub fn record_count(&self) -> i32 {
        self.record_count
    }

    /// Bytes of the batch if built without compression.
    pub fn uncompressed_size(&self) -> usize {
        self.buf.len()
    }

    /// Appends a record with an absolute timestamp; offsets follow each other from 0.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<Bytes>,
        value: Option<Bytes>,
        headers: Vec<RecordHeader>,
    ) -> RecordsResult<()> {
        let base = *self.base_timestamp.get_or_insert(timestamp);
        let timestamp_delta = timestamp
            .checked_sub(base)
            .ok_or(RecordsError::InvalidRecord(
                "timestamp too far from the base timestamp",
            ))?;
        let offset_delta = match self.last_offset_delta {
            None => 0,
            Some(d) => d
                .checked_add(1)
                .ok_or(RecordsError::InvalidBatch("too many records"))?,
        };
        self.push_record(&Record {
            attributes: 0,
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers,
        })
    }

    /// Appends a record with its deltas as given (e.g. re-encoding a compacted batch). Offset
    /// deltas must increase; the base timestamp must be set first (`with_base_timestamp`) unless
    /// records were pushed with [`BatchBuilder::push`].
    pub fn push_record(&mut self, record: &Record) -> RecordsResult<()> {
        if self.base_timestamp.is_none() {
            return Err(RecordsError::InvalidBatch("base timestamp not set"));
        }
        if record.offset_delta < 0
            || self
                .last_offset_delta
                .is_some_and(|d| record.offset_delta <= d)
        {
            return Err(RecordsError::InvalidBatch(
                "offset deltas must increase from 0",
            ));
        }
        let count = self
            .record_count
            .checked_add(1)
            .ok_or(RecordsError::InvalidBatch("too many records"))?;
        record.encode(&mut self.buf)?;
        self.record_count = count;
        self.last_offset_delta = Some(record.offset_delta);
        self.max_timestamp_delta = Some(
            self.max_timestamp_delta
                .map_or(record.timestamp_delta, |m| m.max(record.timestamp_delta)),
        );
        Ok(())
    }

    /// Encodes the batch: header with a correct CRC, records compressed if asked.
    pub fn build(self) -> RecordsResult<Bytes> {
        let (Some(base_timestamp), Some(last_offset_delta)) =
            (self.base_timestamp, self.last_offset_delta)
        else {
            return Err(RecordsError::InvalidBatch(
                "a batch needs at least one record",
            ));
        };
        let max_timestamp = base_timestamp.saturating_add(self.max_timestamp_delta.unwrap_or(0));
        let mut out = match self.compression {
            Compression::None => self.buf,
            codec => {
                let records = &self.buf[BATCH_HEADER_LEN..];
                let mut out = BytesMut::with_capacity(BATCH_HEADER_LEN + records.len() / 2);
                out.put_bytes(0, BATCH_HEADER_LEN);
                compression::compress(codec, records, &mut out)?;
                out
            }
        };
        let batch_length = i32::try_from(out.len() - LOG_OVERHEAD)
            .map_err(|_| RecordsError::InvalidBatch("batch longer than i32::MAX bytes"))?;
        let attributes = BatchAttributes::default()
            .with_compression(self.compression)
            .with_timestamp_type(self.timestamp_type)
            .with_transactional(self.transactional)
            .with_control(self.control);
        let header = BatchHeader {
            base_offset: self.base_offset,
            batch_length,
            partition_leader_epoch: self.partition_leader_epoch,
            magic: MAGIC_V2,
            crc: 0,
            attributes,
            last_offset_delta,
            base_timestamp,
            max_timestamp,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            record_count: self.record_count,
        };
        out[..BATCH_HEADER_LEN].copy_from_slice(&header.to_bytes());
        let crc = crc32c::crc32c(&out[ATTRIBUTES_AT..]);
        out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        Ok(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::records::batch::Batch;

    #[test]
    fn builds_a_batch_the_parser_accepts() {
        let mut b = BatchBuilder::new(Compression::None).with_producer(7, 1, 100);
        b.push(
            1_000,
            Some(Bytes::from_static(b"a")),
            Some(Bytes::from_static(b"x")),
            vec![],
        )
        .unwrap();
        b.push(990, None, Some(Bytes::from_static(b"y")), vec![])
            .unwrap();
        b.push(1_020, None, None, vec![]).unwrap();
        let batch = Batch::parse(b.build().unwrap()).unwrap();
        batch.validate_for_produce().unwrap();
        batch.validate_records(1 << 20).unwrap();
        let h = batch.header();
        assert_eq!((h.base_timestamp, h.max_timestamp), (1_000, 1_020));
        assert_eq!((h.record_count, h.last_offset_delta), (3, 2));
        assert_eq!(
            (
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                h.last_sequence()
            ),
            (7, 1, 100, 102)
        );
        let records: Vec<Record> = batch
            .records(1 << 20)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records[1].timestamp_delta, -10);
        assert_eq!(records[2].offset_delta, 2);
    }

    #[test]
    fn empty_builder_is_an_error() {
        assert!(BatchBuilder::new(Compression::Zstd).build().is_err());
    }

    #[test]
    fn push_record_requires_increasing_offsets() {
        let mut b = BatchBuilder::new(Compression::None).with_base_timestamp(0);
        let r = |offset_delta| Record {
            offset_delta,
            ..Record::default()
        };
        b.push_record(&r(0)).unwrap();
        b.push_record(&r(5)).unwrap();
        assert!(b.push_record(&r(5)).is_err());
        let batch = Batch::parse(b.build().unwrap()).unwrap();
        assert_eq!(batch.header().last_offset_delta, 5);
        batch.validate().unwrap();
        // A compacted-style batch is not a valid produce batch.
        assert!(batch.validate_for_produce().is_err());
    }
}
