//! Whole-frame codec cost on the two hot messages: a Produce request and a Fetch response, each
//! carrying 1 MiB of records for one partition, next to a plain 1 MiB memcpy as the reference.
//!
//! Decoding slices the records out of the frame's `Bytes` (no copy), so its throughput is set
//! by the few dozen header bytes and should be far above memcpy. Encoding appends the records to
//! one contiguous output buffer, so it is a memcpy of the records plus the header work; the
//! `encode_without_records` rows show what is left once the records are not copied (what a
//! vectored write of header + records would cost).
//!
//! Run: `cargo bench --bench protocol -- --warm-up-time 1 --measurement-time 3`

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use gregor::protocol::generated::fetch_response::{FetchableTopicResponse, PartitionData};
use gregor::protocol::generated::produce_request::{PartitionProduceData, TopicProduceData};
use gregor::protocol::generated::{
    ApiKey, FetchResponse, ProduceRequest, RequestBody, ResponseBody,
};
use gregor::protocol::header::{decode_request, decode_response, encode_request, encode_response};
use gregor::protocol::primitives::Uuid;
use gregor::protocol::records::{BatchBuilder, Compression};

const MIB: usize = 1 << 20;
/// The versions librdkafka 2.12 sends (see tests/golden).
const PRODUCE_VERSION: i16 = 10;
const FETCH_VERSION: i16 = 16;

/// Just under 1 MiB of record batches: 1 KiB values, in batches of about 64 KiB as a producer
/// sends them.
fn one_mib_of_records() -> Bytes {
    const RECORD: usize = 1100;
    let mut out = Vec::with_capacity(MIB);
    let mut batch = BatchBuilder::new(Compression::None);
    let mut i = 0u64;
    while out.len() + batch.uncompressed_size() + RECORD < MIB {
        if batch.uncompressed_size() + RECORD > 64 * 1024 {
            let full = std::mem::replace(
                &mut batch,
                BatchBuilder::new(Compression::None).with_base_offset(i as i64),
            );
            out.extend_from_slice(&full.build().expect("batch builds"));
        }
        let value: Vec<u8> = (0..1024)
            .map(|j| b'a' + ((i * 31 + j) % 26) as u8)
            .collect();
        batch
            .push(
                1_700_000_000_000 + i as i64,
                Some(Bytes::from(i.to_string())),
                Some(Bytes::from(value)),
                vec![],
            )
            .expect("record fits");
        i += 1;
    }
    out.extend_from_slice(&batch.build().expect("batch builds"));
    Bytes::from(out)
}

fn produce_request(records: Bytes) -> RequestBody {
    RequestBody::Produce(ProduceRequest {
        transactional_id: None,
        acks: -1,
        timeout_ms: 30_000,
        topic_data: vec![TopicProduceData {
            name: "bench-topic".into(),
            partition_data: vec![PartitionProduceData {
                index: 0,
                records: Some(records),
                unknown_tagged_fields: Vec::new(),
            }],
            unknown_tagged_fields: Vec::new(),
        }],
        unknown_tagged_fields: Vec::new(),
    })
}

fn fetch_response(records: Bytes) -> ResponseBody {
    ResponseBody::Fetch(FetchResponse {
        responses: vec![FetchableTopicResponse {
            topic: String::new(),
            topic_id: Uuid([7; 16]),
            partitions: vec![PartitionData {
                partition_index: 0,
                high_watermark: 1_000_000,
                last_stable_offset: 1_000_000,
                log_start_offset: 0,
                records: Some(records),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    })
}

fn produce_records(body: &RequestBody) -> Option<&Bytes> {
    match body {
        RequestBody::Produce(p) => p
            .topic_data
            .first()?
            .partition_data
            .first()?
            .records
            .as_ref(),
        _ => None,
    }
}

fn fetch_records(body: &ResponseBody) -> Option<&Bytes> {
    match body {
        ResponseBody::Fetch(f) => f.responses.first()?.partitions.first()?.records.as_ref(),
        _ => None,
    }
}

fn memcpy(c: &mut Criterion) {
    let src = vec![0x5au8; MIB];
    let mut dst = vec![0u8; MIB];
    let mut g = c.benchmark_group("reference");
    g.throughput(Throughput::Bytes(MIB as u64));
    g.bench_function("memcpy_1MiB", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        })
    });
    g.finish();
}

fn produce(c: &mut Criterion) {
    let records = one_mib_of_records();
    let body = produce_request(records.clone());
    let frame = encode_request(1, Some("bench"), PRODUCE_VERSION, &body)
        .expect("encodes")
        .freeze();
    // Decoding must hand back a slice of the frame, not a copy.
    let (_, decoded) = decode_request(frame.clone()).expect("decodes");
    let slice = produce_records(&decoded).expect("records");
    assert_eq!(slice, &records);
    assert!(frame.as_ptr_range().contains(&slice.as_ptr()));
    let empty = produce_request(Bytes::new());

    let mut g = c.benchmark_group("produce_request_1MiB");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("decode", |b| {
        b.iter(|| decode_request(black_box(frame.clone())).expect("decodes"))
    });
    g.bench_function("encode", |b| {
        b.iter(|| encode_request(1, Some("bench"), PRODUCE_VERSION, black_box(&body)).expect("ok"))
    });
    g.bench_function("encode_without_records", |b| {
        b.iter(|| encode_request(1, Some("bench"), PRODUCE_VERSION, black_box(&empty)).expect("ok"))
    });
    g.finish();
}

fn fetch(c: &mut Criterion) {
    let records = one_mib_of_records();
    let body = fetch_response(records.clone());
    let frame = encode_response(1, FETCH_VERSION, &body)
        .expect("encodes")
        .freeze();
    let (_, decoded) = decode_response(ApiKey::Fetch, FETCH_VERSION, frame.clone()).expect("ok");
    let slice = fetch_records(&decoded).expect("records");
    assert_eq!(slice, &records);
    assert!(frame.as_ptr_range().contains(&slice.as_ptr()));
    let empty = fetch_response(Bytes::new());

    let mut g = c.benchmark_group("fetch_response_1MiB");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("decode", |b| {
        b.iter(|| {
            decode_response(ApiKey::Fetch, FETCH_VERSION, black_box(frame.clone())).expect("ok")
        })
    });
    g.bench_function("encode", |b| {
        b.iter(|| encode_response(1, FETCH_VERSION, black_box(&body)).expect("ok"))
    });
    g.bench_function("encode_without_records", |b| {
        b.iter(|| encode_response(1, FETCH_VERSION, black_box(&empty)).expect("ok"))
    });
    g.finish();
}

criterion_group!(benches, memcpy, produce, fetch);
criterion_main!(benches);
