//! Producer state across restarts: through the broker's own append path (which snapshots at each
//! roll), `LogFiles` and a storage whose reads may come back damaged.

use super::*;
use crate::config::LogConfig;
use crate::core::broker::producer_state::SequenceCheck;
use crate::core::broker::PartitionState;
use crate::core::log::{LogFile, LogOp};
use crate::protocol::error::ErrorCode;
use crate::protocol::records::batch::BatchHeader;
use crate::protocol::records::builder::BatchBuilder;
use crate::protocol::records::compression::Compression;
use crate::runtime::log_io::tests::FlakyReads;
use crate::storage::Storage;
use bytes::BytesMut;
use std::sync::Arc;

const DAY_MS: i64 = 86_400_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        ..LogConfig::default()
    }
}

fn batch(producer: Option<(i64, i32)>) -> BytesMut {
    let mut b = BatchBuilder::new(Compression::None);
    if let Some((id, seq)) = producer {
        b = b.with_producer(id, 0, seq);
    }
    for _ in 0..4 {
        b.push(1000, None, Some(Bytes::from_static(b"some value")), vec![])
            .unwrap();
    }
    BytesMut::from(b.build().unwrap().as_ref())
}

/// One partition as the broker drives it: appends through `PartitionState::append_batch`, each
/// followed by its writes and a sync.
struct Partition {
    state: PartitionState,
    files: LogFiles,
}

impl Partition {
    async fn open(storage: &Arc<FlakyReads>, now_ms: i64) -> (Partition, RecoveredProducers) {
        let mut files = LogFiles::new(storage.clone(), "t-0".to_owned());
        let opened = files.open_log(config(), now_ms).await.unwrap();
        let recovered = load(&mut files, &opened, now_ms, DAY_MS).await.unwrap();
        let state = PartitionState::new(opened.log, recovered.producers.clone());
        (Partition { state, files }, recovered)
    }

    async fn append(&mut self, producer: Option<(i64, i32)>, now_ms: i64) -> i64 {
        let data = batch(producer);
        let header = BatchHeader::parse(&data).unwrap();
        let appended = self
            .state
            .append_batch(data, &header, now_ms, DAY_MS)
            .unwrap();
        self.files.execute(&appended.ops).await.unwrap();
        let (sync, _) = self.state.log.flush(now_ms);
        self.files.execute(&[sync]).await.unwrap();
        appended.base_offset
    }

    async fn run(&mut self, ops: &[LogOp]) {
        self.files.execute(ops).await.unwrap();
    }

    async fn close(mut self) -> PartitionState {
        self.files.close_all().await;
        self.state
    }
}

/// Producer 7's first batch at offset 0, plain batches until the log has three or more
/// segments, then producer 8's first batch in the last one.
async fn write_log(storage: &Arc<FlakyReads>) -> PartitionState {
    let (mut p, _) = Partition::open(storage, 0).await;
    assert_eq!(p.append(Some((7, 0)), 0).await, 0);
    while p.state.log.segments().len() < 4 {
        p.append(None, 0).await;
    }
    p.append(Some((8, 0)), 0).await;
    p.close().await
}

fn snapshot_path(offset: i64) -> String {
    format!("t-0/{}", LogFile::snapshot_name(offset))
}

async fn names(storage: &Arc<FlakyReads>) -> Vec<String> {
    storage.list("t-0").await.unwrap()
}

fn answers_as_before(producers: &ProducerStates) {
    assert_eq!(
        producers.check(7, 0, 0, 3),
        SequenceCheck::Duplicate { base_offset: 0 },
        "a retry of producer 7's batch is answered with its offset"
    );
    assert_eq!(producers.check(7, 0, 4, 0), SequenceCheck::Accept);
    assert_eq!(producers.check(8, 0, 4, 0), SequenceCheck::Accept);
    assert_eq!(
        producers.check(8, 0, 5, 0),
        SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
    );
}

#[tokio::test]
async fn a_restart_loads_the_newest_snapshot_and_replays_only_after_it() {
    let storage = Arc::new(FlakyReads::default());
    let before = write_log(&storage).await;
    let last_base = before.log.segments().last().unwrap().base_offset;
    let (p, recovered) = Partition::open(&storage, 0).await;
    assert_eq!(recovered.snapshot, Some(last_base));
    assert_eq!(recovered.segments_read, 0, "no sealed segment is read");
    assert_eq!(recovered.producers, before.producers);
    answers_as_before(&recovered.producers);
    // The newest snapshot and one older fallback are kept, nothing else.
    let kept: Vec<i64> = p.state.log.snapshots().iter().copied().collect();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[1], last_base);
    let on_disk: Vec<String> = names(&storage)
        .await
        .into_iter()
        .filter(|n| n.contains(".snapshot"))
        .collect();
    let expected: Vec<String> = kept.iter().map(|&o| LogFile::snapshot_name(o)).collect();
    assert_eq!(on_disk, expected);
}

#[tokio::test]
async fn producers_outlive_the_segments_retention_deletes() {
    let storage = Arc::new(FlakyReads::default());
    write_log(&storage).await;
    let (mut p, _) = Partition::open(&storage, 0).await;
    let bases: Vec<i64> = p
        .state
        .log
        .segments()
        .iter()
        .map(|s| s.base_offset)
        .collect();
    let ops = p.state.log.delete_segments_through(bases[bases.len() - 2]);
    p.run(&ops).await;
    p.close().await;
    assert!(!names(&storage).await.contains(&format!("{:020}.log", 0)));

    let (p, recovered) = Partition::open(&storage, 0).await;
    assert_eq!(
        p.state.log.segments().len(),
        1,
        "retention left the last segment"
    );
    assert_eq!(recovered.snapshot, Some(bases[bases.len() - 1]));
    answers_as_before(&recovered.producers);
}

#[tokio::test]
async fn a_damaged_snapshot_is_read_again_then_an_older_one_is_used() {
    let storage = Arc::new(FlakyReads::default());
    let before = write_log(&storage).await;
    let bases: Vec<i64> = before
        .log
        .segments()
        .iter()
        .map(|s| s.base_offset)
        .collect();
    let (newest, older) = (bases[bases.len() - 1], bases[bases.len() - 2]);

    // Damaged on one read: read again, and believed.
    storage.damage_next_reads(&snapshot_path(newest), 1, 20);
    let (p, recovered) = Partition::open(&storage, 0).await;
    p.close().await;
    assert_eq!(storage.damages_left(&snapshot_path(newest)), 0);
    assert_eq!(recovered.snapshot, Some(newest));

    // Damaged on every read: the older snapshot and one more segment do.
    storage.damage_next_reads(&snapshot_path(newest), usize::MAX, 20);
    let (p, recovered) = Partition::open(&storage, 0).await;
    p.close().await;
    assert_eq!(recovered.snapshot, Some(older));
    assert_eq!(recovered.segments_read, 1);
    assert_eq!(recovered.producers, before.producers);

    // Both damaged: every segment is replayed.
    storage.damage_next_reads(&snapshot_path(older), usize::MAX, 20);
    let (_, recovered) = Partition::open(&storage, 0).await;
    assert_eq!(recovered.snapshot, None);
    assert_eq!(recovered.segments_read, bases.len() - 1);
    assert_eq!(recovered.producers, before.producers);
}

#[tokio::test]
async fn a_snapshot_beyond_the_recovered_end_is_removed_not_loaded() {
    let storage = Arc::new(FlakyReads::default());
    let before = write_log(&storage).await;
    let end = before.log.log_end_offset();
    // What a cut tail leaves behind: a snapshot claiming offsets the log no longer has.
    let mut claims = ProducerStates::default();
    claims.record(7, 0, 0, end + 10, end + 13, 0);
    let beyond = end + 20;
    let (mut p, _) = Partition::open(&storage, 0).await;
    p.run(&[LogOp::WriteSnapshot {
        offset: beyond,
        data: producer_snapshot::encode(beyond, &claims),
    }])
    .await;
    p.close().await;
    assert!(names(&storage)
        .await
        .contains(&LogFile::snapshot_name(beyond)));

    let (p, recovered) = Partition::open(&storage, 0).await;
    assert_ne!(recovered.snapshot, Some(beyond));
    answers_as_before(&recovered.producers);
    assert!(!p.state.log.snapshots().contains(&beyond));
    assert!(!names(&storage)
        .await
        .contains(&LogFile::snapshot_name(beyond)));
}

#[tokio::test]
async fn without_snapshots_every_segment_is_replayed() {
    let storage = Arc::new(FlakyReads::default());
    let mut files = LogFiles::new(storage.clone(), "t-0".to_owned());
    let mut log = files.open_log(config(), 0).await.unwrap().log;
    // Appended straight to the log: no producer state, no snapshots.
    let mut ops = log.append(batch(Some((7, 0))), 0, 0).unwrap().ops;
    for _ in 0..20 {
        ops.extend(log.append(batch(None), 0, 0).unwrap().ops);
    }
    ops.extend(log.append(batch(Some((8, 0))), 0, 0).unwrap().ops);
    ops.push(log.flush(0).0);
    files.execute(&ops).await.unwrap();
    files.close_all().await;
    let sealed = log.segments().len() - 1;
    assert!(sealed > 1);

    let (_, recovered) = Partition::open(&storage, 0).await;
    assert_eq!(recovered.snapshot, None);
    assert_eq!(recovered.segments_read, sealed);
    answers_as_before(&recovered.producers);
}

#[tokio::test]
async fn idle_producers_expire_at_a_roll_and_at_start_up() {
    let storage = Arc::new(FlakyReads::default());
    let (mut p, _) = Partition::open(&storage, 0).await;
    p.append(Some((7, 0)), 0).await;
    p.append(Some((8, 0)), DAY_MS / 2).await;
    // A day after producer 7 was last seen: the next roll forgets it, and its snapshot too.
    let segments = p.state.log.segments().len();
    while p.state.log.segments().len() == segments {
        p.append(None, DAY_MS).await;
    }
    assert_eq!(
        p.state.producers.check(7, 0, 4, 0),
        SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
    );
    assert_eq!(p.state.producers.len(), 1);
    p.close().await;
    let (_, recovered) = Partition::open(&storage, DAY_MS).await;
    assert_eq!(recovered.producers.len(), 1);
    // Half a day later producer 8 is gone too.
    let (_, recovered) = Partition::open(&storage, DAY_MS + DAY_MS / 2).await;
    assert!(recovered.producers.is_empty());
}
