//! Partition log model tests: no runtime, no files; ops are checked as data and recovery runs on
//! the bytes the ops would have written.

use super::recovery::{choose_snapshots, scan_segment, trim_to_offset, SnapshotChoice};
use super::*;
use crate::config::LogConfig;
use crate::protocol::records::batch::{BatchHeader, RecordBatches};
use crate::protocol::records::builder::BatchBuilder;
use crate::protocol::records::compression::Compression;
use bytes::{Bytes, BytesMut};
use std::collections::BTreeMap;

fn batch(records: usize, ts: i64) -> BytesMut {
    let mut b = BatchBuilder::new(Compression::None);
    for i in 0..records {
        b.push(ts, None, Some(Bytes::from(format!("value-{i}"))), vec![])
            .unwrap();
    }
    BytesMut::from(b.build().unwrap().as_ref())
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1000,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

/// Applies ops to an in-memory file map, as a driver would.
fn apply(files: &mut BTreeMap<LogFile, Vec<u8>>, ops: &[LogOp]) {
    for op in ops {
        match op {
            LogOp::CreateSegment { base_offset } => {
                for kind in [FileKind::Log, FileKind::Index, FileKind::TimeIndex] {
                    files
                        .entry(LogFile {
                            base_offset: *base_offset,
                            kind,
                        })
                        .or_default();
                }
            }
            LogOp::Write { file, pos, data } => {
                let f = files.entry(*file).or_default();
                let end = *pos as usize + data.len();
                if f.len() < end {
                    f.resize(end, 0);
                }
                f[*pos as usize..end].copy_from_slice(data);
            }
            LogOp::Truncate { file, len } => {
                files.entry(*file).or_default().truncate(*len as usize)
            }
            LogOp::Sync { .. } | LogOp::SyncLog { .. } => {}
            LogOp::DeleteSegment { base_offset } => {
                files.retain(|f, _| f.base_offset != *base_offset)
            }
            // Producer snapshots and the owner file are not segment files; their ops are
            // checked as data.
            LogOp::WriteSnapshot { .. }
            | LogOp::DeleteSnapshots { .. }
            | LogOp::WritePartitionMetadata { .. } => {}
        }
    }
}

#[test]
fn offsets_are_dense_and_segments_roll_by_size() {
    let (mut log, op) = PartitionLog::create(config(), 0);
    let mut files = BTreeMap::new();
    apply(&mut files, &[op]);
    let mut expected = 0;
    let mut rolls_synced = 0;
    for i in 0..40 {
        let appended = log.append(batch(3, 1000 + i), 0, 0).unwrap();
        assert_eq!(appended.base_offset, expected);
        assert_eq!(appended.last_offset, expected + 2);
        expected += 3;
        // A roll seals the old segment with a sync of all its files (start-up trusts a sealed
        // segment's indexes), before the new segment exists.
        if let Some(at) = appended
            .ops
            .iter()
            .position(|op| matches!(op, LogOp::CreateSegment { .. }))
        {
            let sealed = log.segments()[log.segments().len() - 2].base_offset;
            assert!(appended.ops[..at].contains(&LogOp::Sync {
                base_offset: sealed
            }));
            rolls_synced += 1;
        }
        apply(&mut files, &appended.ops);
    }
    assert_eq!(log.log_end_offset(), 120);
    assert!(log.segments().len() > 3, "rolled at segment.bytes");
    assert_eq!(rolls_synced, log.segments().len() - 1);
    for s in log.segments() {
        assert!(s.size <= 1000 || s.next_offset - s.base_offset == 3);
        let data = &files[&s.file(FileKind::Log)];
        assert_eq!(data.len() as u64, s.size);
        // Every batch on disk carries the offsets the log assigned.
        let mut next = s.base_offset;
        for b in RecordBatches::new(Bytes::from(data.clone())) {
            let b = b.unwrap();
            b.verify_crc().unwrap();
            assert_eq!(b.header().base_offset, next);
            next = b.header().last_offset() + 1;
        }
        assert_eq!(next, s.next_offset);
    }
}

#[test]
fn reads_start_at_or_before_the_offset_and_trim_to_it() {
    let (mut log, op) = PartitionLog::create(
        LogConfig {
            index_interval_bytes: 100,
            ..config()
        },
        0,
    );
    let mut files = BTreeMap::new();
    apply(&mut files, &[op]);
    for i in 0..30 {
        let a = log.append(batch(2, i), 0, 0).unwrap();
        apply(&mut files, &a.ops);
    }
    for offset in [0, 1, 7, 31, 58, 59] {
        let plan = log.read(offset, 10_000).unwrap().unwrap();
        let data = &files[&plan.file];
        let bytes =
            Bytes::from(data[plan.position as usize..(plan.position + plan.len) as usize].to_vec());
        let sent = trim_to_offset(bytes, plan.first_base, offset, 10_000, log.log_end_offset());
        let first = BatchHeader::parse(&sent).unwrap();
        assert!(
            first.base_offset <= offset && offset <= first.last_offset(),
            "offset {offset}"
        );
    }
    assert_eq!(log.read(60, 100).unwrap(), None, "at the end: nothing yet");
    assert!(matches!(
        log.read(61, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn trim_respects_max_bytes_and_high_watermark() {
    let mut data = Vec::new();
    let mut next = 0;
    for _ in 0..5 {
        let mut b = batch(2, 0);
        crate::protocol::records::batch::assign_offsets(
            &mut b,
            &crate::protocol::records::batch::OffsetAssignment {
                base_offset: next,
                partition_leader_epoch: 0,
                log_append_time: None,
            },
        )
        .unwrap();
        next += 2;
        data.extend_from_slice(&b);
    }
    let data = Bytes::from(data);
    let one = BatchHeader::parse(&data).unwrap().size_in_bytes().unwrap();
    // The first batch is sent whole even when bigger than max_bytes (KIP-74).
    assert_eq!(trim_to_offset(data.clone(), 0, 0, 1, 100).len(), one);
    assert_eq!(
        trim_to_offset(data.clone(), 0, 0, 2 * one, 100).len(),
        2 * one
    );
    // Nothing at or beyond the high watermark.
    assert_eq!(
        trim_to_offset(data.clone(), 0, 0, 10 * one, 4).len(),
        2 * one
    );
    assert_eq!(
        trim_to_offset(data.clone(), 0, 3, 10 * one, 100).len(),
        4 * one
    );
}

#[test]
fn recovery_cuts_a_torn_tail_and_rebuilds_the_index() {
    let (mut log, op) = PartitionLog::create(
        LogConfig {
            segment_bytes: 1 << 20,
            ..config()
        },
        0,
    );
    let mut files = BTreeMap::new();
    apply(&mut files, &[op]);
    for i in 0..10 {
        let a = log.append(batch(4, 100 + i), 0, 0).unwrap();
        apply(&mut files, &a.ops);
    }
    let seg = log.segments()[0].clone();
    let data = files[&seg.file(FileKind::Log)].clone();
    // Intact: the scan rebuilds exactly what append built.
    let scanned = scan_segment(0, &Bytes::from(data.clone()), 200, 0);
    assert_eq!(scanned.truncated_bytes, 0);
    assert_eq!(scanned.segment.index, seg.index);
    assert_eq!(scanned.segment.next_offset, 40);
    // Torn: a prefix of the last batch survived.
    let torn = Bytes::from(data[..data.len() - 7].to_vec());
    let scanned = scan_segment(0, &torn, 200, 0);
    assert_eq!(scanned.segment.next_offset, 36);
    assert!(scanned.truncated_bytes > 0);
    // Corrupt: a flipped bit in the middle ends the valid prefix there.
    let mut flipped = data.clone();
    flipped[data.len() / 2] ^= 0x10;
    let scanned = scan_segment(0, &Bytes::from(flipped), 200, 0);
    assert!(scanned.segment.next_offset < 40 && scanned.valid_len < data.len() as u64);
    // A damaged base offset passes the CRC (it is not covered) but breaks the offset chain.
    let mut shifted = data.clone();
    let second = BatchHeader::parse(&data).unwrap().size_in_bytes().unwrap();
    shifted[second + 7] ^= 0x08;
    let scanned_shifted = scan_segment(0, &Bytes::from(shifted), 200, 0);
    assert_eq!(scanned_shifted.valid_len, second as u64);
    assert_eq!(scanned_shifted.segment.next_offset, 4);
    let again = PartitionLog::from_segments(config(), vec![scanned.segment.clone()], 0, 0);
    assert_eq!(
        again.log_end_offset(),
        scanned.segment.next_offset,
        "offsets resume after the cut"
    );
}

#[test]
fn retention_deletes_whole_old_segments_only() {
    let cfg = LogConfig {
        retention_ms: 1000,
        ..config()
    };
    let (mut log, _) = PartitionLog::create(cfg, 0);
    for i in 0..40 {
        log.append(batch(3, i * 100), 0, 0).unwrap();
    }
    let n = log.segments().len();
    let expired = log.expired_segments(2500);
    assert!(!expired.is_empty() && expired.len() < n, "{expired:?}");
    let last = *expired.last().unwrap();
    let ops = log.delete_segments_through(last);
    assert_eq!(ops.len(), expired.len());
    assert_eq!(log.log_start_offset(), log.segments()[0].base_offset);
    assert!(matches!(
        log.read(0, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // retention.bytes keeps at least that many bytes.
    let mut by_size = log.clone();
    by_size.set_config(LogConfig {
        retention_bytes: 1500,
        retention_ms: -1,
        ..config()
    });
    let expired = by_size.expired_segments(0);
    let kept: u64 = by_size
        .segments()
        .iter()
        .filter(|s| !expired.contains(&s.base_offset))
        .map(|s| s.size)
        .sum();
    assert!(kept >= 1500 - 1000 && expired.len() < by_size.segments().len());
}

#[test]
fn flush_policy_and_sync_tracking() {
    let (mut log, _) = PartitionLog::create(config(), 0);
    assert!(!log.flush_due(0));
    log.append(batch(1, 0), 0, 0).unwrap();
    assert!(log.flush_due(0), "flush.messages=1");
    let (op, upto) = log.flush(0);
    assert_eq!(op, LogOp::SyncLog { base_offset: 0 });
    assert_eq!(upto, 1);
    assert_eq!(
        log.synced_offset(),
        0,
        "not durable until the sync completes"
    );
    log.on_synced(upto);
    assert_eq!(log.synced_offset(), 1);
    let mut lazy = PartitionLog::create(
        LogConfig {
            flush_messages: None,
            flush_ms: Some(50),
            ..config()
        },
        0,
    )
    .0;
    lazy.append(batch(1, 0), 0, 0).unwrap();
    assert!(!lazy.flush_due(10));
    assert!(lazy.flush_due(60));
}

#[test]
fn oversized_and_corrupt_batches_are_refused() {
    let (mut log, _) = PartitionLog::create(
        LogConfig {
            max_message_bytes: 100,
            ..config()
        },
        0,
    );
    assert!(matches!(
        log.append(batch(20, 0), 0, 0),
        Err(LogError::MessageTooLarge { .. })
    ));
    let (mut log, _) = PartitionLog::create(config(), 0);
    assert!(log.append(BytesMut::from(&b"garbage"[..]), 0, 0).is_err());
    assert_eq!(log.log_end_offset(), 0);
}

/// A batch with these offsets and a correct CRC.
fn batch_at(base_offset: i64, records: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None).with_base_offset(base_offset);
    for i in 0..records {
        b.push(1, None, Some(Bytes::from(format!("v{i}"))), vec![])
            .unwrap();
    }
    b.build().unwrap().to_vec()
}

#[test]
fn trim_stops_at_a_batch_below_the_offset_after_the_start() {
    // Found by fuzzing (log_segment): damaged data with offsets going back.
    let data: Vec<u8> = [batch_at(10, 2), batch_at(0, 1), batch_at(20, 1)].concat();
    let first = batch_at(10, 2).len();
    let sent = trim_to_offset(Bytes::from(data), 10, 5, 10_000, 100);
    assert_eq!(sent.len(), first);
}

#[test]
fn recovery_stops_at_a_batch_ending_before_it_starts() {
    // Found by fuzzing (log_segment): a negative last offset delta moved next_offset back.
    let good = batch_at(0, 2);
    let mut bad = batch_at(2, 1);
    bad[23..27].copy_from_slice(&(-2i32).to_be_bytes()); // last offset delta
    let crc = crc32c::crc32c(&bad[21..]);
    bad[17..21].copy_from_slice(&crc.to_be_bytes());
    let data = Bytes::from([good.clone(), bad].concat());
    let scanned = scan_segment(0, &data, 4096, 0);
    assert_eq!(scanned.valid_len, good.len() as u64);
    assert_eq!(scanned.segment.next_offset, 2);
}

#[test]
fn recovery_stops_at_a_batch_ending_at_the_largest_offset() {
    // A segment named for offset i64::MAX holding a batch there has no next offset.
    let data = Bytes::from(batch_at(i64::MAX, 1));
    let scanned = scan_segment(i64::MAX, &data, 4096, 0);
    assert_eq!(scanned.valid_len, 0);
    assert_eq!(scanned.segment.next_offset, i64::MAX);
}

/// ListOffsets by time answers with the first record (not batch) at or after the timestamp, in
/// offset order, also when timestamps inside a batch are out of order and the batch is
/// compressed.
#[test]
fn a_time_search_finds_the_first_record_at_or_after_the_timestamp() {
    use super::time_lookup::first_record_at;
    let (mut log, op) = PartitionLog::create(config(), 0);
    let mut files = BTreeMap::new();
    apply(&mut files, &[op]);
    let batches: [&[i64]; 4] = [&[10, 30, 20], &[25, 40, 35], &[50], &[45, 50, 60]];
    for (i, stamps) in batches.iter().enumerate() {
        let codec = if i % 2 == 0 {
            Compression::None
        } else {
            Compression::Lz4
        };
        let mut b = BatchBuilder::new(codec);
        for &ts in *stamps {
            // Bytes without repeats, so compression keeps the batches big enough to roll.
            let value: Vec<u8> = (0..150u8).map(|j| j.wrapping_mul(7)).collect();
            b.push(ts, None, Some(Bytes::from(value)), vec![]).unwrap();
        }
        let appended = log
            .append(BytesMut::from(b.build().unwrap().as_ref()), 0, 0)
            .unwrap();
        apply(&mut files, &appended.ops);
    }
    let search = |target: i64| {
        let lookup = log.time_lookup(target)?;
        let data = &files[&lookup.plan.file];
        let start = lookup.plan.position as usize;
        let bytes = Bytes::copy_from_slice(&data[start..start + lookup.plan.len as usize]);
        first_record_at(bytes, target, lookup.batch_last_offset)
    };
    assert_eq!(search(0), Some((0, 10)));
    assert_eq!(search(15), Some((1, 30)));
    assert_eq!(search(31), Some((4, 40)));
    assert_eq!(search(36), Some((4, 40)));
    assert_eq!(search(41), Some((6, 50)));
    assert_eq!(search(55), Some((9, 60)));
    assert_eq!(search(61), None);
    assert_eq!(log.max_timestamp(), Some(60));
    assert!(log.segments().len() > 1, "the search crosses segments");
}

#[test]
fn rolls_report_the_new_base_and_snapshots_are_pruned() {
    let (mut log, _) = PartitionLog::create(config(), 0);
    let mut rolls = Vec::new();
    for _ in 0..40 {
        let appended = log.append(batch(3, 1000), 0, 0).unwrap();
        let created = appended.ops.iter().find_map(|op| match op {
            LogOp::CreateSegment { base_offset } => Some(*base_offset),
            _ => None,
        });
        assert_eq!(appended.rolled_to, created);
        if let Some(base) = appended.rolled_to {
            assert_eq!(
                base, appended.base_offset,
                "the rolling batch opens the segment"
            );
            rolls.push(base);
            let ops = log.write_snapshot(base, Bytes::from_static(b"state"));
            assert!(matches!(&ops[0], LogOp::WriteSnapshot { offset, .. } if *offset == base));
            // The newest and OLDER_SNAPSHOTS_KEPT before it stay.
            let kept = rolls.len().min(1 + partition::OLDER_SNAPSHOTS_KEPT);
            let expect: Vec<i64> = rolls[rolls.len() - kept..].to_vec();
            assert_eq!(log.snapshots().iter().copied().collect::<Vec<_>>(), expect);
            if rolls.len() > kept {
                let gone = rolls[rolls.len() - kept - 1];
                assert_eq!(
                    ops[1],
                    LogOp::DeleteSnapshots {
                        offsets: vec![gone]
                    }
                );
            }
        }
    }
    assert!(rolls.len() > 3);
    // Retention past the older snapshot removes it with its segment; the newest stays.
    let newest = *rolls.last().unwrap();
    let older = rolls[rolls.len() - 2];
    let ops = log.delete_segments_through(older);
    assert_eq!(
        ops.last(),
        Some(&LogOp::DeleteSnapshots {
            offsets: vec![older]
        })
    );
    assert_eq!(
        log.snapshots().iter().copied().collect::<Vec<_>>(),
        [newest]
    );
}

#[test]
fn snapshots_are_sorted_out_against_the_recovered_log() {
    assert_eq!(
        choose_snapshots(&[0, 40, 10, 90, 70], 10, 70),
        SnapshotChoice {
            candidates: vec![70, 40, 10],
            stale: vec![0, 90],
        }
    );
    assert_eq!(choose_snapshots(&[], 0, 0), SnapshotChoice::default());
}

#[test]
fn file_names_are_kafkas_twenty_digit_offsets() {
    for offset in [0, 7, 1234567890, i64::MAX] {
        let file = LogFile {
            base_offset: offset,
            kind: FileKind::TimeIndex,
        };
        assert_eq!(file.name(), format!("{offset:020}.timeindex"));
        assert_eq!(
            LogFile::snapshot_name(offset),
            format!("{offset:020}.snapshot")
        );
        let log = LogFile {
            base_offset: offset,
            kind: FileKind::Log,
        };
        assert_eq!(LogFile::parse_log_name(&log.name()), Some(offset));
    }
    assert_eq!(LogFile::snapshot_name(-1), format!("{:020}.snapshot", -1));
}

#[test]
fn a_read_is_cut_where_base_offsets_stop_continuing() {
    use super::recovery::chained_prefix;
    let (a, b, c) = (batch_at(10, 2), batch_at(12, 3), batch_at(15, 1));
    let data = Bytes::from([a.clone(), b.clone(), c.clone()].concat());
    assert_eq!(chained_prefix(data.clone(), 10), data);
    // A base offset flipped on the way from the disk: the batches before it are kept.
    let flipped = Bytes::from([a.clone(), batch_at(14, 3), c.clone()].concat());
    assert_eq!(chained_prefix(flipped, 10).len(), a.len());
    // The first batch is not the one the index names: nothing is sent, the client asks again.
    let first = Bytes::from([batch_at(12, 2), b.clone()].concat());
    assert!(chained_prefix(first, 10).is_empty());
    // A partial last batch whose header continues stays for trimming to judge.
    let partial = Bytes::from([a.clone(), b[..b.len() - 3].to_vec()].concat());
    assert_eq!(chained_prefix(partial.clone(), 10), partial);
}
