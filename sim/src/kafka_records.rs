//! Record batches as the simulated clients write and read them: a batch of string values, and
//! the `(offset, value)` pairs of fetched bytes.
//!
//! Reads may come back with a bit flipped (a disk fault). The batch CRC covers everything from
//! the attributes on, but not the base offset or the length, so a strict read also checks that
//! offsets continue where they should; the caller fetches again when it does not.

use bytes::Bytes;
use gregor::protocol::records::batch::RecordBatches;
use gregor::protocol::records::{BatchBuilder, Compression};

/// Largest decompressed batch a client accepts.
const MAX_DECOMPRESSED: usize = 1 << 20;

/// Who writes a batch: a plain producer, or an idempotent one with its id, epoch and sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    Plain,
    Idempotent {
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
    },
}

/// Encodes `values` as one v2 batch.
pub fn build_batch(
    values: &[String],
    writer: Writer,
    compression: Compression,
    timestamp_ms: i64,
) -> Result<Bytes, String> {
    let mut builder = BatchBuilder::new(compression);
    if let Writer::Idempotent {
        producer_id,
        epoch,
        base_sequence,
    } = writer
    {
        builder = builder.with_producer(producer_id, epoch, base_sequence);
    }
    for value in values {
        builder
            .push(
                timestamp_ms,
                None,
                Some(Bytes::from(value.clone().into_bytes())),
                Vec::new(),
            )
            .map_err(|err| err.to_string())?;
    }
    builder.build().map_err(|err| err.to_string())
}

/// How much to trust the offsets in fetched bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// The first batch must hold `fetch_offset` and each record must follow the one before:
    /// anything else is taken for a damaged read.
    Strict,
    /// Offsets as the batches say (the final read: the checker judges them).
    AsStored,
}

/// The `(offset, value)` pairs of fetched `records` at or after `fetch_offset`. `Err` means the
/// bytes are damaged (CRC mismatch, undecodable, or offsets that do not chain under `Strict`).
pub fn decode_fetched(
    records: Bytes,
    fetch_offset: i64,
    reading: Reading,
) -> Result<Vec<(i64, String)>, String> {
    let mut out = Vec::new();
    let mut expected = fetch_offset;
    for batch in RecordBatches::allowing_partial_tail(records) {
        let batch = batch.map_err(|err| format!("bad batch: {err}"))?;
        batch
            .verify_crc()
            .map_err(|err| format!("bad batch: {err}"))?;
        let header = *batch.header();
        let last = header
            .base_offset
            .checked_add(i64::from(header.last_offset_delta))
            .ok_or("batch offsets overflow")?;
        if reading == Reading::Strict {
            let first_batch = out.is_empty() && expected == fetch_offset;
            let chained = if first_batch {
                header.base_offset <= fetch_offset && fetch_offset <= last
            } else {
                header.base_offset == expected
            };
            if !chained {
                return Err(format!(
                    "batch {}..={last} does not continue at offset {expected}",
                    header.base_offset
                ));
            }
        }
        let records = batch
            .records(MAX_DECOMPRESSED)
            .map_err(|err| format!("bad records: {err}"))?;
        let mut count = 0i64;
        for record in records {
            let record = record.map_err(|err| format!("bad record: {err}"))?;
            count += 1;
            let offset = header
                .base_offset
                .checked_add(i64::from(record.offset_delta))
                .ok_or("record offset overflows")?;
            if offset < fetch_offset {
                continue;
            }
            if reading == Reading::Strict && offset != expected {
                return Err(format!("record at offset {offset}, expected {expected}"));
            }
            let value = record
                .value
                .as_deref()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            out.push((offset, value));
            expected = offset + 1;
        }
        if count != i64::from(header.record_count) {
            return Err(format!(
                "batch holds {count} records, its header says {}",
                header.record_count
            ));
        }
        expected = expected.max(last + 1);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor::protocol::records::batch::{assign_offsets, OffsetAssignment};

    fn stored(values: &[&str], base_offset: i64, compression: Compression) -> Vec<u8> {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let batch = build_batch(&values, Writer::Plain, compression, 1000).unwrap();
        let mut batch = bytes::BytesMut::from(&batch[..]);
        let assignment = OffsetAssignment {
            base_offset,
            partition_leader_epoch: 0,
            log_append_time: None,
        };
        assign_offsets(&mut batch, &assignment).unwrap();
        batch.to_vec()
    }

    fn values(pairs: &[(i64, String)]) -> Vec<(i64, &str)> {
        pairs.iter().map(|(o, v)| (*o, v.as_str())).collect()
    }

    #[test]
    fn fetched_batches_decode_from_the_fetch_offset() {
        let mut data = stored(&["a", "b"], 10, Compression::None);
        data.extend(stored(&["c"], 12, Compression::Zstd));
        let got = decode_fetched(Bytes::from(data.clone()), 11, Reading::Strict).unwrap();
        assert_eq!(values(&got), vec![(11, "b"), (12, "c")]);
        // A partial batch at the end is ignored.
        data.extend(&stored(&["d"], 13, Compression::None)[..20]);
        let got = decode_fetched(Bytes::from(data), 10, Reading::Strict).unwrap();
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn damaged_reads_are_refused() {
        let mut data = stored(&["a", "b"], 10, Compression::None);
        let last = data.len() - 1;
        data[last] ^= 1;
        assert!(decode_fetched(Bytes::from(data), 10, Reading::Strict).is_err());
        // A flipped base offset passes the CRC but not the chain check.
        let mut data = stored(&["a"], 10, Compression::None);
        data[7] ^= 4;
        assert!(decode_fetched(Bytes::from(data.clone()), 10, Reading::Strict).is_err());
        let got = decode_fetched(Bytes::from(data), 0, Reading::AsStored).unwrap();
        assert_eq!(values(&got), vec![(14, "a")]);
        // A hole between batches.
        let mut data = stored(&["a"], 10, Compression::None);
        data.extend(stored(&["b"], 12, Compression::None));
        assert!(decode_fetched(Bytes::from(data), 10, Reading::Strict).is_err());
    }

    #[test]
    fn idempotent_batches_carry_the_producer() {
        let writer = Writer::Idempotent {
            producer_id: 7,
            epoch: 0,
            base_sequence: 5,
        };
        let batch = build_batch(&["x".into()], writer, Compression::None, 1).unwrap();
        let header = *gregor::protocol::records::batch::Batch::parse(batch)
            .unwrap()
            .header();
        assert_eq!((header.producer_id, header.base_sequence), (7, 5));
    }
}
