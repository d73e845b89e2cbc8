//! Codec hot paths on the produce path: CRC-32C, batch parse + validate, offset assignment, and
//! each compression codec on realistic records.
//!
//! Run: `cargo bench --bench codec -- --warm-up-time 1 --measurement-time 3`

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gregor::protocol::records::compression::{self, Compression};
use gregor::protocol::records::{assign_offsets, BatchBuilder, OffsetAssignment, RecordBatches};

const MIB: usize = 1 << 20;

/// An uncompressed batch of about 1 MiB: 1 KiB values of varied, partly repetitive text.
fn one_mib_batch(codec: Compression) -> Bytes {
    let mut b = BatchBuilder::new(codec).with_producer(1, 0, 0);
    let mut i = 0u64;
    while b.uncompressed_size() < MIB - 1100 {
        let value: Vec<u8> = format!(
            "{{\"id\":{i},\"user\":\"user-{}\",\"event\":\"click\",\"pad\":\"",
            i % 977
        )
        .into_bytes()
        .into_iter()
        .chain((0..1000).map(|j| b'a' + ((i * 31 + j) % 26) as u8))
        .collect();
        b.push(
            1_700_000_000_000 + i as i64,
            Some(Bytes::from(i.to_string())),
            Some(Bytes::from(value)),
            vec![],
        )
        .unwrap();
        i += 1;
    }
    b.build().unwrap()
}

fn crc(c: &mut Criterion) {
    let data: Vec<u8> = (0..MIB).map(|i| (i * 7 + 3) as u8).collect();
    let mut g = c.benchmark_group("crc32c");
    g.throughput(Throughput::Bytes(MIB as u64));
    g.bench_function("1MiB", |b| b.iter(|| crc32c::crc32c(black_box(&data))));
    g.finish();
}

fn batch(c: &mut Criterion) {
    let batch = one_mib_batch(Compression::None);
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.bench_function("parse_validate_1MiB", |b| {
        b.iter(|| {
            let batch = RecordBatches::new(black_box(batch.clone()))
                .next()
                .unwrap()
                .unwrap();
            batch.validate_for_produce().unwrap();
            batch
        })
    });
    g.bench_function("parse_validate_decode_records_1MiB", |b| {
        b.iter(|| {
            let batch = RecordBatches::new(black_box(batch.clone()))
                .next()
                .unwrap()
                .unwrap();
            batch.validate_for_produce().unwrap();
            batch.validate_records(usize::MAX).unwrap();
        })
    });
    let mut buf = BytesMut::from(&batch[..]);
    let mut offset = 0i64;
    for (name, log_append_time) in [
        ("assign_offsets_create_time_1MiB", None),
        ("assign_offsets_log_append_time_1MiB", Some(1)),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                offset += 1;
                let a = OffsetAssignment {
                    base_offset: offset,
                    partition_leader_epoch: 3,
                    log_append_time: log_append_time.map(|t: i64| t + offset),
                };
                assign_offsets(black_box(&mut buf), &a).unwrap()
            })
        });
    }
    g.finish();
}

fn codecs(c: &mut Criterion) {
    let plain = one_mib_batch(Compression::None);
    let records = &plain[61..];
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Bytes(records.len() as u64));
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut compressed = BytesMut::new();
        compression::compress(codec, records, &mut compressed).unwrap();
        eprintln!(
            "{}: {} -> {} bytes",
            codec.name(),
            records.len(),
            compressed.len()
        );
        g.bench_with_input(
            BenchmarkId::new("compress", codec.name()),
            &codec,
            |b, &codec| {
                b.iter(|| {
                    let mut out = BytesMut::with_capacity(records.len());
                    compression::compress(codec, black_box(records), &mut out).unwrap();
                    out
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("decompress", codec.name()),
            &codec,
            |b, &codec| {
                b.iter(|| compression::decompress(codec, black_box(&compressed), 2 * MIB).unwrap())
            },
        );
    }
    g.finish();
}

criterion_group!(benches, crc, batch, codecs);
criterion_main!(benches);
