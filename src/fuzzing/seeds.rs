//! Small valid inputs for each target: the starting corpus under `fuzz/corpus/<target>/`
//! (written by `cargo test --test fuzz_corpus -- --ignored write_seed_corpus`) and replayed by
//! `tests/fuzz_corpus.rs` straight from here as well.

use bytes::{BufMut, Bytes, BytesMut};

use super::{FLAG_PARTIAL_TAIL, FLAG_WRAP_PAYLOAD};
use crate::core::broker::metadata::{encode_batch, MetadataRecord};
use crate::core::broker::producer_snapshot;
use crate::core::broker::producer_state::ProducerStates;
use crate::protocol::frame::encode_frame;
use crate::protocol::generated::{
    fetch_response::{FetchableTopicResponse, PartitionData},
    produce_request::{PartitionProduceData, TopicProduceData},
    ApiKey, FetchResponse, ProduceRequest, RequestBody, ResponseBody,
};
use crate::protocol::header::{encode_request, encode_response};
use crate::protocol::primitives::Uuid;
use crate::protocol::records::builder::BatchBuilder;
use crate::protocol::records::compression::{self, Compression};
use crate::protocol::records::control::end_txn_marker_batch;
use crate::protocol::records::record::{Record, RecordHeader};
use crate::protocol::records::TimestampType;

/// One seed input: the target it feeds, a file name, the bytes.
#[derive(Debug, Clone)]
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub data: Vec<u8>,
}

/// Every seed of every target.
pub fn seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    request_frame_seeds(&mut out);
    response_frame_seeds(&mut out);
    metadata_record_seeds(&mut out);
    frame_seeds(&mut out);
    record_batch_seeds(&mut out);
    log_segment_seeds(&mut out);
    producer_snapshot_seeds(&mut out);
    out
}

fn seed(out: &mut Vec<Seed>, target: &'static str, name: impl Into<String>, data: Vec<u8>) {
    out.push(Seed {
        target,
        name: name.into(),
        data,
    });
}

/// The versions worth a seed: oldest, first flexible, newest.
fn seed_versions(key: ApiKey) -> Vec<i16> {
    let (min, max) = key.valid_versions();
    let mut v = vec![min, max];
    if let Some(f) = key.flexible_min().filter(|f| (min..=max).contains(f)) {
        v.push(f);
    }
    v.sort_unstable();
    v.dedup();
    v
}

fn request_frame_seeds(out: &mut Vec<Seed>) {
    for &key in ApiKey::ALL {
        for version in seed_versions(key) {
            let body = RequestBody::default_for(key);
            if let Ok(frame) = encode_request(7, Some("seed"), version, &body) {
                let name = format!("default_{}_v{version}", key.name());
                seed(out, "request_frame", name, frame.to_vec());
            }
        }
    }
    // A produce request carrying real batches, at the oldest and newest versions.
    let blob = [
        batch(Compression::Zstd, 3, 0, 1_700_000_000_000),
        batch(Compression::None, 1, 0, 5),
    ]
    .concat();
    let produce = RequestBody::from(ProduceRequest {
        transactional_id: None,
        acks: -1,
        timeout_ms: 30_000,
        topic_data: vec![TopicProduceData {
            name: "orders".into(),
            partition_data: vec![PartitionProduceData {
                index: 0,
                records: Some(Bytes::from(blob)),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    });
    for version in seed_versions(ApiKey::Produce) {
        if let Ok(frame) = encode_request(8, Some("producer-1"), version, &produce) {
            seed(
                out,
                "request_frame",
                format!("produce_records_v{version}"),
                frame.to_vec(),
            );
        }
    }
}

/// `response_frame` inputs: the API key's index in `ApiKey::ALL`, the version, the frame.
fn response_input(key: ApiKey, version: i16, frame: &[u8]) -> Option<Vec<u8>> {
    let index = ApiKey::ALL.iter().position(|&k| k == key)?;
    let mut v = vec![u8::try_from(index).ok()?, u8::try_from(version).ok()?];
    v.extend_from_slice(frame);
    Some(v)
}

fn response_frame_seeds(out: &mut Vec<Seed>) {
    for &key in ApiKey::ALL {
        for version in seed_versions(key) {
            let body = ResponseBody::default_for(key);
            let Ok(frame) = encode_response(7, version, &body) else {
                continue;
            };
            if let Some(input) = response_input(key, version, &frame) {
                seed(
                    out,
                    "response_frame",
                    format!("default_{}_v{version}", key.name()),
                    input,
                );
            }
        }
    }
    let fetch = ResponseBody::from(FetchResponse {
        responses: vec![FetchableTopicResponse {
            topic: "orders".into(),
            topic_id: Uuid([7; 16]),
            partitions: vec![PartitionData {
                partition_index: 0,
                high_watermark: 4,
                last_stable_offset: 4,
                records: Some(batch(Compression::Lz4, 4, 0, 1_700_000_000_000)),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    });
    for version in seed_versions(ApiKey::Fetch) {
        let Ok(frame) = encode_response(9, version, &fetch) else {
            continue;
        };
        if let Some(input) = response_input(ApiKey::Fetch, version, &frame) {
            seed(
                out,
                "response_frame",
                format!("fetch_records_v{version}"),
                input,
            );
        }
    }
}

fn metadata_record_seeds(out: &mut Vec<Seed>) {
    let records = [
        MetadataRecord::Topic {
            name: "orders".into(),
            id: Uuid([3; 16]),
            partitions: 3,
        },
        MetadataRecord::Config {
            name: "orders".into(),
            key: "retention.ms".into(),
            value: Some("60000".into()),
        },
        MetadataRecord::Config {
            name: "orders".into(),
            key: "cleanup.policy".into(),
            value: None,
        },
        MetadataRecord::Partitions {
            name: "orders".into(),
            partitions: 6,
        },
        MetadataRecord::ProducerIds { next: 1_000 },
        MetadataRecord::RemoveTopic {
            name: "orders".into(),
        },
    ];
    let mut log = vec![0u8];
    log.extend_from_slice(&encode_batch(&records[..3], 1_700_000_000_000));
    log.extend_from_slice(&encode_batch(&records[3..], 1_700_000_000_001));
    seed(out, "metadata_record", "log_two_batches", log);
    for (i, r) in records.iter().enumerate() {
        let mut value = vec![0u8];
        value.extend_from_slice(&r.encode());
        seed(out, "metadata_record", format!("value_{i}"), value);
    }
}

fn frame_seeds(out: &mut Vec<Seed>) {
    let frames = |payloads: &[&[u8]]| {
        let mut b = BytesMut::new();
        for p in payloads {
            encode_frame(p, &mut b).expect("small frame");
        }
        b.to_vec()
    };
    // Params: max frame size (u16), chunk size (u8); then the stream.
    let with = |max: u16, chunk: u8, stream: Vec<u8>| {
        let mut v = max.to_be_bytes().to_vec();
        v.push(chunk);
        v.extend(stream);
        v
    };
    seed(out, "frame", "one", with(256, 255, frames(&[b"hello"])));
    seed(
        out,
        "frame",
        "pipelined_split",
        with(256, 3, frames(&[b"one", b"", b"three", &[7u8; 40]])),
    );
    let mut partial = frames(&[b"whole"]);
    partial.extend_from_slice(&frames(&[b"partial frame"])[..9]);
    seed(out, "frame", "partial_tail", with(256, 5, partial));
    seed(out, "frame", "too_large", with(8, 1, frames(&[&[1u8; 9]])));
    seed(
        out,
        "frame",
        "negative",
        with(8, 2, (-5i32).to_be_bytes().to_vec()),
    );
}

fn sample_records(b: &mut BatchBuilder, n: usize, ts: i64) {
    for i in 0..n {
        let headers = if i % 2 == 0 {
            vec![RecordHeader {
                key: Bytes::from_static(b"trace"),
                value: Some(Bytes::from(format!("t{i}"))),
            }]
        } else {
            Vec::new()
        };
        let key = (i % 3 != 0).then(|| Bytes::from(format!("key-{i}")));
        b.push(
            ts + i as i64,
            key,
            Some(Bytes::from(format!("value number {i} value number {i}"))),
            headers,
        )
        .expect("small record");
    }
}

fn batch(codec: Compression, n: usize, base_offset: i64, ts: i64) -> Bytes {
    let mut b = BatchBuilder::new(codec).with_base_offset(base_offset);
    sample_records(&mut b, n, ts);
    b.build().expect("small batch")
}

/// Params of `record_batch`: flags, limit (u16, in 16-byte units less one).
fn record_batch_input(flags: u8, extra: &[u8], blob: &[u8]) -> Vec<u8> {
    let mut v = vec![flags, 0xff, 0xff];
    v.extend_from_slice(extra);
    v.extend_from_slice(blob);
    v
}

fn record_batch_seeds(out: &mut Vec<Seed>) {
    for codec in Compression::ALL {
        let b = batch(codec, 3, 0, 1_700_000_000_000);
        seed(
            out,
            "record_batch",
            format!("batch_{}", codec.name()),
            record_batch_input(0, &[], &b),
        );
    }
    let mut idem = BatchBuilder::new(Compression::Lz4).with_producer(4_000, 2, 17);
    sample_records(&mut idem, 5, 1_700_000_000_000);
    let idem = idem.build().expect("batch");
    seed(
        out,
        "record_batch",
        "idempotent_lz4",
        record_batch_input(0, &[], &idem),
    );

    let mut txn = BatchBuilder::new(Compression::Gzip)
        .with_producer(9, 0, 0)
        .with_transactional(true)
        .with_timestamp_type(TimestampType::LogAppendTime);
    sample_records(&mut txn, 2, 1_700_000_000_000);
    let txn = txn.build().expect("batch");
    let marker = end_txn_marker_batch(9, 0, true, 3, 1_700_000_000_500).expect("marker");
    let blob = [txn.as_ref(), marker.as_ref()].concat();
    seed(
        out,
        "record_batch",
        "transaction_and_marker",
        record_batch_input(0, &[], &blob),
    );

    // A compacted-style batch: offset deltas with gaps.
    let mut compacted = BatchBuilder::new(Compression::None).with_base_timestamp(5);
    for delta in [0, 2, 7] {
        compacted
            .push_record(&Record {
                offset_delta: delta,
                value: Some(Bytes::from_static(b"v")),
                ..Record::default()
            })
            .expect("record");
    }
    let compacted = compacted.build().expect("batch");
    seed(
        out,
        "record_batch",
        "compacted_gaps",
        record_batch_input(0, &[], &compacted),
    );

    // Fetched data ending in a partial batch.
    let two = [
        batch(Compression::None, 2, 0, 1).as_ref(),
        &batch(Compression::Zstd, 4, 2, 9)[..70],
    ]
    .concat();
    seed(
        out,
        "record_batch",
        "fetch_partial_tail",
        record_batch_input(FLAG_PARTIAL_TAIL, &[], &two),
    );

    // Bare payloads for the wrap mode, one per codec, and raw snappy as librdkafka writes it.
    let mut records = BytesMut::new();
    for i in 0..4 {
        Record {
            offset_delta: i,
            timestamp_delta: i64::from(i) * 3,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from(vec![b'x'; 50])),
            ..Record::default()
        }
        .encode(&mut records)
        .expect("record");
    }
    for codec in Compression::ALL {
        let mut payload = BytesMut::new();
        compression::compress(codec, &records, &mut payload).expect("compress");
        let mut extra = codec.id().to_be_bytes().to_vec();
        extra.extend_from_slice(&4i16.to_be_bytes());
        seed(
            out,
            "record_batch",
            format!("payload_{}", codec.name()),
            record_batch_input(FLAG_WRAP_PAYLOAD, &extra, &payload),
        );
    }
    let raw_snappy = snap::raw::Encoder::new()
        .compress_vec(&records)
        .expect("snappy");
    let mut extra = Compression::Snappy.id().to_be_bytes().to_vec();
    extra.extend_from_slice(&4i16.to_be_bytes());
    seed(
        out,
        "record_batch",
        "payload_snappy_raw",
        record_batch_input(FLAG_WRAP_PAYLOAD, &extra, &raw_snappy),
    );
}

/// Params of `log_segment`: flags, base offset selector, index interval, fetch offset,
/// max bytes, high watermark, index split; then the file.
fn log_segment_input(
    fetch_offset: i64,
    max_bytes: u16,
    hw: i64,
    index_split: u16,
    file: &[u8],
) -> Vec<u8> {
    let mut v = BytesMut::new();
    v.put_u8(0); // flags
    v.put_u8(0); // base offset 0
    v.put_u16(128); // index.interval.bytes
    v.put_i64(fetch_offset);
    v.put_u16(max_bytes);
    v.put_i64(hw);
    v.put_u16(index_split);
    v.extend_from_slice(file);
    v.to_vec()
}

fn log_segment_seeds(out: &mut Vec<Seed>) {
    let mut file = Vec::new();
    let mut next = 0;
    for (i, codec) in [
        Compression::None,
        Compression::Gzip,
        Compression::None,
        Compression::Zstd,
    ]
    .into_iter()
    .enumerate()
    {
        let n = i + 1;
        file.extend_from_slice(&batch(codec, n, next, 1_700_000_000_000 + 10 * i as i64));
        next += n as i64;
    }
    seed(
        out,
        "log_segment",
        "four_batches",
        log_segment_input(0, u16::MAX, i64::MAX, 0, &file),
    );
    seed(
        out,
        "log_segment",
        "fetch_middle_small_max",
        log_segment_input(2, 100, 8, 0, &file),
    );
    let torn = &file[..file.len() - 10];
    seed(
        out,
        "log_segment",
        "torn_tail",
        log_segment_input(3, 40, i64::MAX, 0, torn),
    );

    // Index files: two offset entries then one time entry.
    let mut idx = BytesMut::new();
    idx.put_u32(0);
    idx.put_u32(0);
    idx.put_u32(3);
    idx.put_u32(20);
    idx.put_i64(1_700_000_000_000);
    idx.put_u32(2);
    seed(
        out,
        "log_segment",
        "index_files",
        log_segment_input(0, 0, 0, 16, &idx),
    );
}

fn producer_snapshot_seeds(out: &mut Vec<Seed>) {
    let mut producers = ProducerStates::default();
    let empty = [&[0u8][..], &producer_snapshot::encode(0, &producers)].concat();
    seed(out, "producer_snapshot", "empty", empty);
    for i in 0..6 {
        producers.record(
            7,
            0,
            i * 3,
            i64::from(i) * 3,
            i64::from(i) * 3 + 2,
            1_700_000_000_000,
        );
    }
    producers.record(42, 3, i32::MAX, 20, 21, 1_700_000_000_500);
    let file = producer_snapshot::encode(22, &producers);
    seed(
        out,
        "producer_snapshot",
        "two_producers",
        [&[0u8][..], &file].concat(),
    );
}
