//! One record inside a v2 batch, and the iterator over a batch's records.
//!
//! ```text
//! length          varint  (bytes after this field)
//! attributes      i8      (unused, 0)
//! timestamp delta varlong (from the batch's base timestamp)
//! offset delta    varint  (from the batch's base offset)
//! key             varint length (-1 = null) + bytes
//! value           varint length (-1 = null) + bytes
//! header count    varint
//!   header key    varint length + bytes (not null)
//!   header value  varint length (-1 = null) + bytes
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use super::batch::{Batch, BATCH_HEADER_LEN, MIN_RECORD_LEN};
use super::compression::{self, Compression};
use super::{RecordsError, RecordsResult};
use crate::protocol::primitives::{
    put_varint, put_varlong, read_i8, read_varint, read_varlong, varint_len, varlong_len,
};

/// A record header: a string key (kept as bytes; Kafka clients write UTF-8) and a nullable value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordHeader {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// One decoded record. Key, value and headers are slices of the batch (or of its decompressed
/// payload), never copies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<RecordHeader>,
}

fn invalid(
    what: &'static str,
) -> impl Fn(crate::protocol::primitives::DecodeError) -> RecordsError {
    move |_| RecordsError::InvalidRecord(what)
}

/// A varint length, then that many bytes; -1 is null.
fn read_nullable_varint_bytes(buf: &mut Bytes, what: &'static str) -> RecordsResult<Option<Bytes>> {
    let len = read_varint(buf).map_err(invalid(what))?;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| RecordsError::InvalidRecord(what))?;
    if len > buf.len() {
        return Err(RecordsError::InvalidRecord(what));
    }
    Ok(Some(buf.split_to(len)))
}

fn varint_bytes_len(b: Option<&Bytes>) -> usize {
    match b {
        None => varint_len(-1),
        // Lengths were checked to fit an i32 by `check_len` before sizes are computed.
        Some(b) => varint_len(b.len() as i32) + b.len(),
    }
}

fn check_len(b: Option<&Bytes>) -> RecordsResult<()> {
    match b {
        Some(b) if i32::try_from(b.len()).is_err() => Err(RecordsError::InvalidRecord(
            "field longer than i32::MAX bytes",
        )),
        _ => Ok(()),
    }
}

fn put_nullable_varint_bytes(out: &mut BytesMut, b: Option<&Bytes>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.put_slice(b);
        }
    }
}

impl Record {
    /// Decodes one record from the front of `buf`, leaving `buf` after it.
    pub fn decode(buf: &mut Bytes) -> RecordsResult<Record> {
        let len = read_varint(buf).map_err(invalid("record length"))?;
        let len = usize::try_from(len)
            .map_err(|_| RecordsError::InvalidRecord("negative record length"))?;
        if len > buf.len() {
            return Err(RecordsError::InvalidRecord(
                "record length runs past the batch",
            ));
        }
        let mut body = buf.split_to(len);
        let attributes = read_i8(&mut body).map_err(invalid("record attributes"))?;
        let timestamp_delta = read_varlong(&mut body).map_err(invalid("timestamp delta"))?;
        let offset_delta = read_varint(&mut body).map_err(invalid("offset delta"))?;
        let key = read_nullable_varint_bytes(&mut body, "record key")?;
        let value = read_nullable_varint_bytes(&mut body, "record value")?;
        let count = read_varint(&mut body).map_err(invalid("header count"))?;
        let count = usize::try_from(count)
            .map_err(|_| RecordsError::InvalidRecord("negative header count"))?;
        // Each header takes at least two bytes: bound the allocation by what remains.
        if count > body.len() / 2 {
            return Err(RecordsError::InvalidRecord(
                "header count larger than the record",
            ));
        }
        let mut headers = Vec::with_capacity(count);
        for _ in 0..count {
            let key = read_nullable_varint_bytes(&mut body, "header key")?
                .ok_or(RecordsError::InvalidRecord("null header key"))?;
            let value = read_nullable_varint_bytes(&mut body, "header value")?;
            headers.push(RecordHeader { key, value });
        }
        if !body.is_empty() {
            return Err(RecordsError::InvalidRecord(
                "record length larger than its fields",
            ));
        }
        Ok(Record {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers,
        })
    }

    fn check_lengths(&self) -> RecordsResult<()> {
        check_len(self.key.as_ref())?;
        check_len(self.value.as_ref())?;
        for h in &self.headers {
            check_len(Some(&h.key))?;
            check_len(h.value.as_ref())?;
        }
        Ok(())
    }

    /// Bytes after the length prefix. Requires `check_lengths` to have passed.
    fn body_len(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|h| varint_bytes_len(Some(&h.key)) + varint_bytes_len(h.value.as_ref()))
            .sum();
        1 + varlong_len(self.timestamp_delta)
            + varint_len(self.offset_delta)
            + varint_bytes_len(self.key.as_ref())
            + varint_bytes_len(self.value.as_ref())
            + varint_len(self.headers.len() as i32)
            + headers
    }

    /// Bytes [`Record::encode`] writes.
    pub fn encoded_len(&self) -> RecordsResult<usize> {
        self.check_lengths()?;
        let body = self.body_len();
        let body_i32 = i32::try_from(body)
            .map_err(|_| RecordsError::InvalidRecord("record longer than i32::MAX bytes"))?;
        Ok(varint_len(body_i32) + body)
    }

    /// Appends the encoded record to `out`.
    pub fn encode(&self, out: &mut BytesMut) -> RecordsResult<()> {
        self.check_lengths()?;
        let body = self.body_len();
        let body_i32 = i32::try_from(body)
            .map_err(|_| RecordsError::InvalidRecord("record longer than i32::MAX bytes"))?;
        let header_count = i32::try_from(self.headers.len())
            .map_err(|_| RecordsError::InvalidRecord("too many headers"))?;
        out.reserve(varint_len(body_i32) + body);
        put_varint(out, body_i32);
        out.put_i8(self.attributes);
        put_varlong(out, self.timestamp_delta);
        put_varint(out, self.offset_delta);
        put_nullable_varint_bytes(out, self.key.as_ref());
        put_nullable_varint_bytes(out, self.value.as_ref());
        put_varint(out, header_count);
        for h in &self.headers {
            put_nullable_varint_bytes(out, Some(&h.key));
            put_nullable_varint_bytes(out, h.value.as_ref());
        }
        Ok(())
    }
}

/// The records of one batch, decoded one at a time. Built by [`Batch::records`].
///
/// Yields exactly the batch's record count; fewer records than announced, or bytes left over
/// after the last one, is an `INVALID_RECORD` error. The iterator stops after an error.
#[derive(Debug, Clone)]
pub struct BatchRecords {
    data: Bytes,
    left: usize,
    done: bool,
}

impl BatchRecords {
    fn step(&mut self) -> RecordsResult<Option<Record>> {
        if self.left == 0 {
            if !self.data.is_empty() {
                return Err(RecordsError::InvalidRecord(
                    "bytes left after the last record",
                ));
            }
            return Ok(None);
        }
        if self.data.is_empty() {
            return Err(RecordsError::InvalidRecord(
                "fewer records than the batch's record count",
            ));
        }
        self.left -= 1;
        Record::decode(&mut self.data).map(Some)
    }
}

impl Iterator for BatchRecords {
    type Item = RecordsResult<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.step().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            (0, Some(self.left))
        }
    }
}

impl std::iter::FusedIterator for BatchRecords {}

impl Batch {
    /// The batch's records. A compressed batch is decompressed first into one buffer of at most
    /// `max_decompressed` bytes (more is `CORRUPT_MESSAGE`: a compression bomb never gets the
    /// memory it asks for); records are then slices of that buffer. An uncompressed batch is
    /// read in place.
    pub fn records(&self, max_decompressed: usize) -> RecordsResult<BatchRecords> {
        let h = self.header();
        let count = usize::try_from(h.record_count)
            .map_err(|_| RecordsError::InvalidBatch("negative record count"))?;
        let payload = self.records_payload();
        let data = match h.compression()? {
            Compression::None => payload,
            codec => Bytes::from(compression::decompress(codec, &payload, max_decompressed)?),
        };
        if count > data.len() / MIN_RECORD_LEN {
            return Err(RecordsError::InvalidBatch(
                "record count larger than the batch can hold",
            ));
        }
        Ok(BatchRecords {
            data,
            left: count,
            done: false,
        })
    }

    /// Decodes every record and checks what a produced batch must satisfy inside: offset deltas
    /// 0, 1, 2, … in order, and exactly `record_count` records filling the payload.
    pub fn validate_records(&self, max_decompressed: usize) -> RecordsResult<()> {
        for (i, record) in self.records(max_decompressed)?.enumerate() {
            let record = record?;
            if i64::from(record.offset_delta) != i as i64 {
                return Err(RecordsError::InvalidRecord(
                    "offset deltas are not consecutive from 0",
                ));
            }
        }
        Ok(())
    }

    /// Bytes of the records once decompressed, if the batch is not compressed (cheap).
    pub fn uncompressed_payload_len(&self) -> Option<usize> {
        match self.header().compression() {
            Ok(Compression::None) => Some(self.size() - BATCH_HEADER_LEN),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            attributes: 0,
            timestamp_delta: -5,
            offset_delta: 3,
            key: Some(Bytes::from_static(b"k")),
            value: None,
            headers: vec![
                RecordHeader {
                    key: Bytes::from_static(b"h1"),
                    value: Some(Bytes::from_static(b"v1")),
                },
                RecordHeader {
                    key: Bytes::from_static(b""),
                    value: None,
                },
            ],
        }
    }

    #[test]
    fn record_round_trips() {
        let r = sample();
        let mut out = BytesMut::new();
        r.encode(&mut out).unwrap();
        assert_eq!(out.len(), r.encoded_len().unwrap());
        let mut bytes = out.freeze();
        assert_eq!(Record::decode(&mut bytes).unwrap(), r);
        assert!(bytes.is_empty());
    }

    #[test]
    fn known_encoding_of_a_minimal_record() {
        // length 6, attributes 0, ts delta 0, offset delta 0, key null, value null, 0 headers.
        let r = Record {
            key: None,
            value: None,
            ..Record::default()
        };
        let mut out = BytesMut::new();
        r.encode(&mut out).unwrap();
        assert_eq!(&out[..], &[12, 0, 0, 0, 1, 1, 0]);
        assert_eq!(out.len(), MIN_RECORD_LEN);
    }

    #[test]
    fn malformed_records_are_rejected() {
        let mut good = BytesMut::new();
        sample().encode(&mut good).unwrap();
        // Every strict prefix fails; none panics.
        for cut in 0..good.len() {
            let mut b = Bytes::copy_from_slice(&good[..cut]);
            assert!(Record::decode(&mut b).is_err(), "prefix {cut}");
        }
        // A length that claims more than the fields hold.
        let mut longer = good.to_vec();
        longer[0] += 2;
        longer.push(0);
        assert!(Record::decode(&mut Bytes::from(longer)).is_err());
        // A negative header count (zigzag 1 = -1).
        let r = Record::default();
        let mut out = BytesMut::new();
        r.encode(&mut out).unwrap();
        let last = out.len() - 1;
        out[last] = 1;
        let err = Record::decode(&mut out.freeze()).unwrap_err();
        assert_eq!(
            err.error_code(),
            crate::protocol::error::ErrorCode::InvalidRecord
        );
    }
}
