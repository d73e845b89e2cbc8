//! The producer state snapshot file (`<offset>.snapshot` in the partition directory): the
//! idempotent producer state as of `offset`, i.e. after every batch below it. Written at each
//! segment roll so start-up reads one small file plus the segments after it instead of the whole
//! log, and so a producer whose batches retention deleted is still known.
//!
//! Layout, big-endian:
//! ```text
//! version: i16 (1)    crc: u32 (CRC32C of everything after it)
//! offset: i64         producer_count: i32
//! producer_count × { producer_id: i64, epoch: i16, last_timestamp: i64, batch_count: i8,
//!                    batch_count × { first_seq: i32, last_seq: i32, base_offset: i64, last_offset: i64 } }
//! ```
//! Decoding checks the CRC and every count against the bytes that remain, and refuses a state
//! the machine could not have built (unordered ids, empty or unordered batch lists, a batch at or
//! beyond `offset`): a snapshot that decodes is one that was written.

use super::producer_state::{BatchRange, ProducerEntry, ProducerStates, BATCHES_REMEMBERED};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::VecDeque;

pub const SNAPSHOT_VERSION: i16 = 1;
/// Version and CRC.
const HEADER_LEN: usize = 2 + 4;
/// Offset and producer count.
const BODY_HEADER_LEN: usize = 8 + 4;
/// A producer without its batches.
const PRODUCER_LEN: usize = 8 + 2 + 8 + 1;
const BATCH_LEN: usize = 4 + 4 + 8 + 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot of {0} bytes is shorter than its header")]
    TooShort(usize),
    #[error("unsupported snapshot version {0}")]
    UnsupportedVersion(i16),
    #[error("snapshot CRC mismatch")]
    CrcMismatch,
    #[error("malformed snapshot: {0}")]
    Malformed(&'static str),
}

/// A decoded snapshot: the producer state after every batch below `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerSnapshot {
    pub offset: i64,
    pub producers: ProducerStates,
}

/// Encodes `producers` as the state at `offset`.
pub fn encode(offset: i64, producers: &ProducerStates) -> Bytes {
    let per_producer = PRODUCER_LEN + BATCHES_REMEMBERED * BATCH_LEN;
    let mut body = BytesMut::with_capacity(BODY_HEADER_LEN + producers.len() * per_producer);
    body.put_i64(offset);
    body.put_i32(i32::try_from(producers.len()).expect("fewer than 2^31 producers"));
    for (pid, entry) in producers.entries() {
        body.put_i64(pid);
        body.put_i16(entry.epoch);
        body.put_i64(entry.last_timestamp);
        body.put_i8(i8::try_from(entry.batches.len()).expect("at most BATCHES_REMEMBERED"));
        for b in &entry.batches {
            body.put_i32(b.first_seq);
            body.put_i32(b.last_seq);
            body.put_i64(b.base_offset);
            body.put_i64(b.last_offset);
        }
    }
    let mut out = BytesMut::with_capacity(HEADER_LEN + body.len());
    out.put_i16(SNAPSHOT_VERSION);
    out.put_u32(crc32c::crc32c(&body));
    out.put_slice(&body);
    out.freeze()
}

/// Decodes a snapshot file. Any byte string is safe to pass.
pub fn decode(data: &[u8]) -> Result<ProducerSnapshot, SnapshotError> {
    let mut r = Reader(data);
    let (Ok(version), Ok(crc)) = (r.i16(), r.u32()) else {
        return Err(SnapshotError::TooShort(data.len()));
    };
    if version != SNAPSHOT_VERSION {
        return Err(SnapshotError::UnsupportedVersion(version));
    }
    if crc32c::crc32c(r.0) != crc {
        return Err(SnapshotError::CrcMismatch);
    }
    let offset = r.i64()?;
    let count = r.i32()?;
    let count = usize::try_from(count).map_err(|_| malformed("negative producer count"))?;
    if count > r.0.len() / PRODUCER_LEN {
        return Err(malformed("producer count exceeds the file"));
    }
    if offset < 0 {
        return Err(malformed("negative offset"));
    }
    let mut producers = ProducerStates::default();
    let mut last_pid = -1;
    for _ in 0..count {
        let pid = r.i64()?;
        if pid <= last_pid {
            return Err(malformed("producer ids not strictly increasing"));
        }
        last_pid = pid;
        let epoch = r.i16()?;
        let last_timestamp = r.i64()?;
        let n = usize::try_from(r.i8()?).map_err(|_| malformed("negative batch count"))?;
        if n == 0 || n > BATCHES_REMEMBERED {
            return Err(malformed("batch count out of range"));
        }
        let mut batches = VecDeque::with_capacity(n);
        let mut next_offset = 0;
        for _ in 0..n {
            let b = BatchRange {
                first_seq: r.i32()?,
                last_seq: r.i32()?,
                base_offset: r.i64()?,
                last_offset: r.i64()?,
            };
            let sane = b.first_seq >= 0
                && b.last_seq >= 0
                && b.base_offset >= next_offset
                && b.last_offset >= b.base_offset
                && b.last_offset < offset;
            if !sane {
                return Err(malformed("batch range out of order or beyond the offset"));
            }
            next_offset = b.last_offset + 1;
            batches.push_back(b);
        }
        let entry = ProducerEntry {
            epoch,
            batches,
            last_timestamp,
        };
        producers.insert_entry(pid, entry);
    }
    if !r.0.is_empty() {
        return Err(malformed("trailing bytes"));
    }
    Ok(ProducerSnapshot { offset, producers })
}

fn malformed(why: &'static str) -> SnapshotError {
    SnapshotError::Malformed(why)
}

/// Big-endian reads that fail, never panic, when the bytes run out.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(malformed("truncated"))?;
        self.0 = rest;
        Ok(*head)
    }
    fn i8(&mut self) -> Result<i8, SnapshotError> {
        self.take().map(i8::from_be_bytes)
    }
    fn i16(&mut self) -> Result<i16, SnapshotError> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Result<i32, SnapshotError> {
        self.take().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        self.take().map(i64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::broker::producer_state::SequenceCheck;
    use proptest::prelude::*;

    fn sample() -> ProducerStates {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.record(3, 0, i * 2, i64::from(i) * 10, i64::from(i) * 10 + 1, 1_000);
        }
        s.record(9, 4, 0, 100, 104, 2_000);
        s.record(i64::MAX, i16::MAX, i32::MAX, 105, 105, i64::MIN);
        s
    }

    #[test]
    fn round_trip_keeps_every_answer() {
        let s = sample();
        let data = encode(106, &s);
        let back = decode(&data).unwrap();
        assert_eq!(back.offset, 106);
        assert_eq!(back.producers, s);
        assert_eq!(
            back.producers.check(9, 4, 0, 4),
            SequenceCheck::Duplicate { base_offset: 100 }
        );
        assert_eq!(back.producers.check(3, 0, 14, 0), SequenceCheck::Accept);
        let empty = decode(&encode(0, &ProducerStates::default())).unwrap();
        assert!(empty.producers.is_empty());
    }

    #[test]
    fn damage_is_refused() {
        let data = encode(106, &sample()).to_vec();
        for cut in 0..data.len() {
            assert!(decode(&data[..cut]).is_err(), "cut at {cut}");
        }
        for byte in 0..data.len() {
            let mut bad = data.clone();
            bad[byte] ^= 0x20;
            assert!(decode(&bad).is_err(), "flip at {byte}");
        }
        let mut longer = data.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }

    /// A body with a good CRC but a state the machine cannot build.
    fn with_crc(body: &[u8]) -> Vec<u8> {
        let mut out = SNAPSHOT_VERSION.to_be_bytes().to_vec();
        out.extend_from_slice(&crc32c::crc32c(body).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn impossible_states_are_refused() {
        let producer = |pid: i64, batches: &[(i64, i64)]| {
            let mut b = pid.to_be_bytes().to_vec();
            b.extend_from_slice(&0i16.to_be_bytes());
            b.extend_from_slice(&0i64.to_be_bytes());
            b.push(batches.len() as u8);
            for (base, last) in batches {
                b.extend_from_slice(&0i32.to_be_bytes());
                b.extend_from_slice(&0i32.to_be_bytes());
                b.extend_from_slice(&base.to_be_bytes());
                b.extend_from_slice(&last.to_be_bytes());
            }
            b
        };
        let body = |offset: i64, producers: &[Vec<u8>]| {
            let mut b = offset.to_be_bytes().to_vec();
            b.extend_from_slice(&(producers.len() as i32).to_be_bytes());
            for p in producers {
                b.extend_from_slice(p);
            }
            b
        };
        assert!(decode(&with_crc(&body(10, &[producer(1, &[(0, 3)])]))).is_ok());
        let bad = [
            body(3, &[producer(1, &[(0, 3)])]),
            body(10, &[producer(1, &[])]),
            body(10, &[producer(1, &[(4, 5), (0, 3)])]),
            body(10, &[producer(2, &[(0, 3)]), producer(1, &[(4, 5)])]),
            body(10, &[producer(-1, &[(0, 3)])]),
            body(10, &[producer(1, &[(3, 2)])]),
            body(-1, &[]),
        ];
        for b in bad {
            assert!(decode(&with_crc(&b)).is_err());
        }
        let mut huge = 0i64.to_be_bytes().to_vec();
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(
            decode(&with_crc(&huge)),
            Err(SnapshotError::Malformed("producer count exceeds the file"))
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&data);
            let _ = decode(&with_crc(&data));
        }

        #[test]
        fn random_states_round_trip(
            batches in proptest::collection::vec((0i64..4, any::<i16>(), 0i32..1000, 1i64..5, any::<i64>()), 0..40)
        ) {
            let mut s = ProducerStates::default();
            let mut offset = 0;
            for (pid, epoch, seq, len, ts) in batches {
                s.record(pid, epoch, seq, offset, offset + len - 1, ts);
                offset += len;
            }
            prop_assert_eq!(decode(&encode(offset, &s)).unwrap().producers, s);
        }
    }
}
