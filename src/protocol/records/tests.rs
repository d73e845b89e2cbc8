//! Property tests across the records modules: build → parse round trips for every codec,
//! offset assignment, corruption detection, hostile input, compression bombs.

use std::io::Write;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::batch::{BATCH_LENGTH_AT, CRC_AT, MAGIC_AT, PARTITION_LEADER_EPOCH_AT};
use super::compression::{self, Compression};
use super::control::{ControlRecordKey, EndTxnMarker};
use super::*;
use crate::protocol::error::ErrorCode;

/// What a producer hands the builder for one record.
#[derive(Debug, Clone)]
struct Input {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

fn input() -> impl Strategy<Value = Input> {
    let bytes = |max| proptest::collection::vec(any::<u8>(), 0..max);
    (
        1_700_000_000_000i64..1_700_000_100_000,
        proptest::option::of(bytes(40)),
        proptest::option::of(bytes(300)),
        proptest::collection::vec((bytes(10), proptest::option::of(bytes(20))), 0..4),
    )
        .prop_map(|(timestamp, key, value, headers)| Input {
            timestamp,
            key,
            value,
            headers,
        })
}

fn codec() -> impl Strategy<Value = Compression> {
    proptest::sample::select(Compression::ALL.to_vec())
}

fn build(codec: Compression, inputs: &[Input], producer: (i64, i16, i32)) -> Bytes {
    let mut b = BatchBuilder::new(codec).with_producer(producer.0, producer.1, producer.2);
    for i in inputs {
        let headers = i
            .headers
            .iter()
            .map(|(k, v)| RecordHeader {
                key: Bytes::from(k.clone()),
                value: v.clone().map(Bytes::from),
            })
            .collect();
        b.push(
            i.timestamp,
            i.key.clone().map(Bytes::from),
            i.value.clone().map(Bytes::from),
            headers,
        )
        .unwrap();
    }
    b.build().unwrap()
}

const LIMIT: usize = 1 << 20;

/// Parses, validates and decodes every batch in `blob`; never panics.
fn decode_all(blob: Bytes) -> RecordsResult<Vec<Record>> {
    let mut out = Vec::new();
    for batch in RecordBatches::new(blob) {
        let batch = batch?;
        batch.validate_for_produce()?;
        for r in batch.records(LIMIT)? {
            out.push(r?);
        }
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn built_batches_parse_back_to_the_same_records(
        inputs in proptest::collection::vec(input(), 1..20),
        codec in codec(),
        producer_id in -1i64..1000,
        base_sequence in 0i32..i32::MAX,
    ) {
        let bytes = build(codec, &inputs, (producer_id, 0, base_sequence));
        let batch = Batch::parse(bytes).unwrap();
        batch.validate_for_produce().unwrap();
        batch.validate_records(LIMIT).unwrap();
        let h = *batch.header();
        prop_assert_eq!(h.compression().unwrap(), codec);
        prop_assert_eq!(h.record_count as usize, inputs.len());
        prop_assert_eq!(h.base_timestamp, inputs[0].timestamp);
        prop_assert_eq!(h.max_timestamp, inputs.iter().map(|i| i.timestamp).max().unwrap());
        let records: Vec<Record> = batch.records(LIMIT).unwrap().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(records.len(), inputs.len());
        for (i, (r, input)) in records.iter().zip(&inputs).enumerate() {
            prop_assert_eq!(r.offset_delta as usize, i);
            prop_assert_eq!(h.base_timestamp + r.timestamp_delta, input.timestamp);
            prop_assert_eq!(r.key.as_deref(), input.key.as_deref());
            prop_assert_eq!(r.value.as_deref(), input.value.as_deref());
            let headers: Vec<(Vec<u8>, Option<Vec<u8>>)> = r
                .headers
                .iter()
                .map(|h| (h.key.to_vec(), h.value.as_ref().map(|v| v.to_vec())))
                .collect();
            prop_assert_eq!(&headers, &input.headers);
        }
    }

    #[test]
    fn offset_assignment_keeps_the_crc_valid_and_changes_only_its_fields(
        inputs in proptest::collection::vec(input(), 1..5),
        codec in codec(),
        base_offset in 0i64..i64::MAX / 2,
        epoch in -1i32..i32::MAX,
        log_append_time in proptest::option::of(0i64..i64::MAX),
    ) {
        let original = build(codec, &inputs, (5, 1, 0));
        let before = *Batch::parse(original.clone()).unwrap().header();
        let mut buf = BytesMut::from(&original[..]);
        let a = OffsetAssignment { base_offset, partition_leader_epoch: epoch, log_append_time };
        let after = assign_offsets(&mut buf, &a).unwrap();
        let batch = Batch::parse(buf.freeze()).unwrap();
        batch.validate_for_produce().unwrap();
        prop_assert_eq!(batch.header(), &after);

        let mut expected = before;
        expected.base_offset = base_offset;
        expected.partition_leader_epoch = epoch;
        if let Some(now) = log_append_time {
            expected.max_timestamp = now;
            expected.attributes = expected.attributes.with_timestamp_type(TimestampType::LogAppendTime);
        }
        expected.crc = after.crc;
        prop_assert_eq!(after, expected);
        prop_assert_eq!(&batch.as_bytes()[BATCH_HEADER_LEN..], &original[BATCH_HEADER_LEN..]);
        if log_append_time.is_none() {
            prop_assert_eq!(after.crc, before.crc);
        }
    }

    #[test]
    fn a_flipped_bit_is_caught_unless_it_is_in_an_uncovered_field(
        inputs in proptest::collection::vec(input(), 1..4),
        codec in codec(),
        bit in any::<prop::sample::Index>(),
    ) {
        let original = build(codec, &inputs, (-1, -1, -1));
        let bit = bit.index(original.len() * 8);
        let (byte, mask) = (bit / 8, 1u8 << (bit % 8));
        let mut damaged = original.to_vec();
        damaged[byte] ^= mask;
        let result = decode_all(Bytes::from(damaged));
        let uncovered = byte < BATCH_LENGTH_AT
            || (PARTITION_LEADER_EPOCH_AT..MAGIC_AT).contains(&byte);
        if uncovered {
            // Base offset and leader epoch are outside the CRC (the leader rewrites them):
            // the batch still decodes, to the same records.
            prop_assert_eq!(result.unwrap(), decode_all(original).unwrap());
        } else {
            let err = result.unwrap_err();
            prop_assert!(
                matches!(err.error_code(), ErrorCode::CorruptMessage | ErrorCode::InvalidRecord),
                "{:?}", err
            );
            if byte >= CRC_AT && !matches!(err, RecordsError::Truncated { .. } | RecordsError::BatchLengthOutOfRange(_)) {
                prop_assert!(matches!(err, RecordsError::CrcMismatch { .. }), "{:?}", err);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic_any_parser(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let bytes = Bytes::from(data.clone());
        let _ = decode_all(bytes.clone());
        for batch in RecordBatches::allowing_partial_tail(bytes.clone()).flatten() {
            let _ = batch.validate();
            let _ = batch.validate_records(LIMIT);
        }
        let _ = BatchHeader::parse(&data);
        let _ = Batch::parse(bytes.clone());
        let mut b = bytes.clone();
        while Record::decode(&mut b).is_ok() {}
        for codec in Compression::ALL {
            let _ = compression::decompress(codec, &data, 4096);
        }
        let _ = ControlRecordKey::parse(&data);
        let _ = EndTxnMarker::parse(&data);
        let mut buf = BytesMut::from(&data[..]);
        let _ = assign_offsets(&mut buf, &OffsetAssignment { base_offset: 1, partition_leader_epoch: 1, log_append_time: Some(1) });
    }

    /// Random damage behind a recomputed CRC reaches the record decoder and the decompressors.
    #[test]
    fn damaged_payload_with_a_valid_crc_never_panics(
        inputs in proptest::collection::vec(input(), 1..4),
        codec in codec(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let original = build(codec, &inputs, (-1, -1, -1));
        let mut damaged = original.to_vec();
        for (at, byte) in edits {
            let at = BATCH_HEADER_LEN + at.index(damaged.len() - BATCH_HEADER_LEN);
            damaged[at] = byte;
        }
        let crc = crc32c::crc32c(&damaged[batch::ATTRIBUTES_AT..]);
        damaged[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        let _ = decode_all(Bytes::from(damaged));
    }
}

/// `total` zero bytes (a multiple of 1 MiB) compressed with `codec`, built without ever holding
/// the uncompressed data: streamed 1 MiB at a time, or for the block codecs by repeating one
/// compressed block.
fn bomb(codec: Compression, total: usize) -> Vec<u8> {
    let zeros = vec![0u8; 1 << 20];
    let rounds = total / zeros.len();
    match codec {
        Compression::None => unreachable!(),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            for _ in 0..rounds {
                enc.write_all(&zeros).unwrap();
            }
            enc.finish().unwrap()
        }
        Compression::Lz4 => {
            // Independent 64 KiB blocks of zeros all compress the same: encode a two-block
            // frame, then repeat its first block to make one 1 GiB frame.
            let mut two = BytesMut::new();
            compression::compress(Compression::Lz4, &zeros[..128 << 10], &mut two).unwrap();
            const HEADER: usize = 7; // magic, FLG, BD, header checksum
            let block_len = u32::from_le_bytes(two[HEADER..HEADER + 4].try_into().unwrap());
            let block = &two[HEADER..HEADER + 4 + block_len as usize];
            let mut out = two[..HEADER].to_vec();
            for _ in 0..total / (64 << 10) {
                out.extend_from_slice(block);
            }
            out.extend_from_slice(&[0; 4]); // end mark
            out
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
            for _ in 0..rounds {
                enc.write_all(&zeros).unwrap();
            }
            enc.finish().unwrap()
        }
        Compression::Snappy => {
            // xerial chunks of 32 KiB each; every chunk compresses the same, so compress once.
            let mut one = BytesMut::new();
            compression::compress(
                Compression::Snappy,
                &zeros[..compression::SNAPPY_XERIAL_BLOCK],
                &mut one,
            )
            .unwrap();
            let (header, chunk) = one.split_at(16);
            let mut out = header.to_vec();
            for _ in 0..total / compression::SNAPPY_XERIAL_BLOCK {
                out.extend_from_slice(chunk);
            }
            out
        }
    }
}

#[test]
fn compression_bombs_are_refused_at_the_limit() {
    const LIMIT: usize = 8 << 20;
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let bomb = bomb(codec, 1 << 30);
        let err = compression::decompress(codec, &bomb, LIMIT).unwrap_err();
        assert_eq!(
            err,
            RecordsError::DecompressedTooLarge { limit: LIMIT },
            "{codec:?}"
        );
        assert_eq!(err.error_code(), ErrorCode::CorruptMessage);

        // The same bomb inside a batch with a valid CRC.
        let mut b = BatchBuilder::new(Compression::None);
        b.push(0, None, None, vec![]).unwrap();
        let plain = b.build().unwrap();
        let mut raw = plain[..BATCH_HEADER_LEN].to_vec();
        raw.extend_from_slice(&bomb);
        let len = (raw.len() - LOG_OVERHEAD) as i32;
        raw[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&len.to_be_bytes());
        raw[batch::ATTRIBUTES_AT + 1] |= codec.id() as u8;
        let crc = crc32c::crc32c(&raw[batch::ATTRIBUTES_AT..]);
        raw[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        let batch = Batch::parse(Bytes::from(raw)).unwrap();
        batch.validate_for_produce().unwrap();
        let err = batch.records(LIMIT).unwrap_err();
        assert_eq!(err.error_code(), ErrorCode::CorruptMessage, "{codec:?}");
    }
}

#[test]
fn bombs_are_what_they_claim() {
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let out = compression::decompress(codec, &bomb(codec, 2 << 20), 2 << 20).unwrap();
        assert_eq!(out.len(), 2 << 20, "{codec:?}");
        assert!(out.iter().all(|&b| b == 0));
    }
}

#[test]
fn raw_snappy_bomb_is_refused_from_its_declared_size() {
    // Varint 2^30 (1 GiB), then a one-byte literal and copies: refused before any allocation.
    let mut raw = vec![0x80, 0x80, 0x80, 0x80, 0x04, 0x00, 0x00];
    raw.extend(std::iter::repeat_n([0xfe, 0x01, 0x00], 1000).flatten());
    assert_eq!(
        compression::decompress(Compression::Snappy, &raw, 1 << 20),
        Err(RecordsError::DecompressedTooLarge { limit: 1 << 20 })
    );
    // A block that declares little but whose copies would write more is an error, not an
    // overflow: the decoder only has the declared buffer.
    let mut lying = vec![0x10, 0x00, 0x00];
    lying.extend(std::iter::repeat_n([0xfe, 0x01, 0x00], 10).flatten());
    assert!(compression::decompress(Compression::Snappy, &lying, 1 << 20).is_err());
}
