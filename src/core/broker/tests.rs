//! Broker machine tests: requests in, outputs checked as data, storage completions fed back by
//! hand. No runtime, no files.

use super::producer_state::SequenceCheck;
use super::*;
use crate::core::log::LogOp;
use crate::protocol::generated::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use crate::protocol::generated::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use crate::protocol::generated::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig, IncrementalAlterConfigsRequest,
};
use crate::protocol::generated::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use crate::protocol::records::builder::BatchBuilder;
use crate::protocol::records::compression::Compression;
use bytes::Bytes;

struct Harness {
    broker: Broker,
    now: Now,
    seq: u64,
    /// Storage work emitted and not yet completed, in order.
    work: Vec<(WorkId, LogTarget, Vec<LogOp>)>,
    responses: Vec<(ReplyTo, Option<ResponseBody>)>,
    fetches: Vec<fetch::FetchReply>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_config(BrokerConfig::default())
    }

    fn with_config(config: BrokerConfig) -> Harness {
        let (metadata_log, _) = PartitionLog::create(LogConfig::default(), 0);
        let broker = Broker::new(
            config,
            "test-cluster".into(),
            MetadataImage::default(),
            metadata_log,
            BTreeMap::new(),
            7,
        );
        Harness {
            broker,
            now: Now::default(),
            seq: 0,
            work: vec![],
            responses: vec![],
            fetches: vec![],
        }
    }

    fn request(&mut self, api_key: i16, api_version: i16, body: RequestBody) -> ReplyTo {
        self.seq += 1;
        let reply = ReplyTo {
            conn: 1,
            seq: self.seq,
        };
        self.broker.handle_request(
            RequestContext {
                reply,
                api_key,
                api_version,
            },
            body,
            self.now,
        );
        self.drain();
        reply
    }

    fn drain(&mut self) {
        while let Some(out) = self.broker.poll_output() {
            match out {
                Output::Respond { reply, body } => self.responses.push((reply, Some(body))),
                Output::NoResponse { reply } => self.responses.push((reply, None)),
                Output::Close { reply } => panic!("connection {reply:?} closed"),
                Output::Storage { work, target, ops } => self.work.push((work, target, ops)),
                Output::Fetch(f) => self.fetches.push(f),
                Output::ListOffsets(l) => panic!("unexpected timestamp search {l:?}"),
                Output::RemoveLog { .. } => {}
            }
        }
    }

    /// Completes the oldest pending storage work.
    fn complete_one(&mut self, ok: bool) -> Vec<LogOp> {
        let (id, _, ops) = self.work.remove(0);
        self.broker.handle_storage_done(id, ok, self.now);
        self.drain();
        ops
    }

    fn complete_all(&mut self) {
        while !self.work.is_empty() {
            self.complete_one(true);
        }
    }

    fn response(&self, reply: ReplyTo) -> Option<&Option<ResponseBody>> {
        self.responses
            .iter()
            .find(|(r, _)| *r == reply)
            .map(|(_, b)| b)
    }

    fn create_topic(&mut self, name: &str, partitions: i32) {
        let req = CreateTopicsRequest {
            topics: vec![CreatableTopic {
                name: name.into(),
                num_partitions: partitions,
                replication_factor: 1,
                ..Default::default()
            }],
            ..Default::default()
        };
        let reply = self.request(19, 7, RequestBody::CreateTopics(req));
        self.complete_all();
        let Some(Some(ResponseBody::CreateTopics(r))) = self.response(reply) else {
            panic!("no CreateTopics answer")
        };
        assert_eq!(r.topics[0].error_code, 0);
    }

    fn produce(&mut self, topic: &str, partition: i32, acks: i16, records: Bytes) -> ReplyTo {
        let req = ProduceRequest {
            acks,
            timeout_ms: 1000,
            topic_data: vec![TopicProduceData {
                name: topic.into(),
                partition_data: vec![PartitionProduceData {
                    index: partition,
                    records: Some(records),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        self.request(0, 9, RequestBody::Produce(req))
    }
}

fn batch(n: usize) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None);
    for i in 0..n {
        b.push(1000, None, Some(Bytes::from(format!("v{i}"))), vec![])
            .unwrap();
    }
    b.build().unwrap()
}

fn produce_answer(h: &Harness, reply: ReplyTo) -> (i16, i64) {
    let Some(Some(ResponseBody::Produce(r))) = h.response(reply) else {
        panic!("no produce answer")
    };
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[test]
fn a_topic_exists_only_once_its_metadata_record_is_durable() {
    let mut h = Harness::new();
    let req = CreateTopicsRequest {
        topics: vec![CreatableTopic {
            name: "t".into(),
            num_partitions: 2,
            replication_factor: -1,
            ..Default::default()
        }],
        ..Default::default()
    };
    let reply = h.request(19, 7, RequestBody::CreateTopics(req));
    assert!(
        h.response(reply).is_none(),
        "no answer before the metadata log synced"
    );
    assert!(h.broker.image().topics.is_empty());
    h.complete_one(true);
    assert!(h.response(reply).is_some());
    assert_eq!(h.broker.image().topics["t"].partitions, 2);
    // The partition logs are created next: the owner file naming the topic id, then the first
    // segment.
    let topic_id = h.broker.image().topics["t"].id;
    assert!(h.work.iter().all(|(_, _, ops)| matches!(
        ops.as_slice(),
        [
            LogOp::WritePartitionMetadata { topic_id: id },
            LogOp::CreateSegment { base_offset: 0 }
        ] if *id == topic_id
    )));
    assert_eq!(h.work.len(), 2);
}

#[test]
fn topic_already_exists_waits_until_the_creation_is_durable() {
    let mut h = Harness::new();
    let req = || {
        RequestBody::CreateTopics(CreateTopicsRequest {
            topics: vec![CreatableTopic {
                name: "t".into(),
                num_partitions: 1,
                replication_factor: -1,
                ..Default::default()
            }],
            ..Default::default()
        })
    };
    let first = h.request(19, 7, req());
    let second = h.request(19, 7, req());
    assert!(
        h.response(second).is_none(),
        "a crash now would undo the topic: TOPIC_ALREADY_EXISTS must wait"
    );
    h.complete_one(true);
    for (reply, code) in [(first, 0), (second, ErrorCode::TopicAlreadyExists.code())] {
        let Some(Some(ResponseBody::CreateTopics(r))) = h.response(reply) else {
            panic!("no CreateTopics answer")
        };
        assert_eq!(r.topics[0].error_code, code);
    }
}

#[test]
fn acks_all_waits_for_the_sync_and_acks_1_for_the_write() {
    let mut h = Harness::new();
    h.create_topic("t", 1);
    let all = h.produce("t", 0, -1, batch(3));
    assert_eq!(h.work.len(), 2, "a write, then a sync (flush.messages=1)");
    h.complete_one(true); // the write
    assert!(
        h.response(all).is_none(),
        "acks=all is not answered before the sync"
    );
    h.complete_one(true); // the sync
    assert_eq!(produce_answer(&h, all), (0, 0));

    let one = h.produce("t", 0, 1, batch(2));
    h.complete_one(true); // the write
    assert_eq!(
        produce_answer(&h, one),
        (0, 3),
        "acks=1 is answered after the write"
    );
    // Group commit: a second sync waits for the one in flight and covers everything after it.
    let a = h.produce("t", 0, -1, batch(1));
    let b = h.produce("t", 0, -1, batch(1));
    h.complete_all();
    assert_eq!(produce_answer(&h, a), (0, 5));
    assert_eq!(produce_answer(&h, b), (0, 6));
    assert_eq!(
        h.broker
            .partition(&TopicPartition::new("t", 0))
            .unwrap()
            .high_watermark(),
        7
    );

    let zero = h.produce("t", 0, 0, batch(1));
    assert_eq!(h.response(zero), Some(&None), "acks=0 gets no response");
}

#[test]
fn bad_batches_and_unknown_partitions_get_kafka_errors() {
    let mut h = Harness::new();
    h.create_topic("t", 1);
    let mut corrupt = batch(2).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    let r = h.produce("t", 0, -1, Bytes::from(corrupt));
    assert_eq!(produce_answer(&h, r).0, ErrorCode::CorruptMessage.code());
    let r = h.produce("t", 5, -1, batch(1));
    assert_eq!(
        produce_answer(&h, r).0,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    let r = h.produce("t", 0, 2, batch(1));
    assert_eq!(
        produce_answer(&h, r).0,
        ErrorCode::InvalidRequiredAcks.code()
    );
    // Larger than max.message.bytes (1 MiB by default).
    let mut big = BatchBuilder::new(Compression::None);
    big.push(1000, None, Some(Bytes::from(vec![7u8; 2 << 20])), vec![])
        .unwrap();
    let r = h.produce("t", 0, -1, big.build().unwrap());
    assert_eq!(produce_answer(&h, r).0, ErrorCode::MessageTooLarge.code());
    assert!(h.work.is_empty(), "nothing was written");
}

/// Two batches for one partition in one request are refused (Kafka: exactly one batch per
/// partition from Produce v3), and nothing is appended.
#[test]
fn a_request_with_two_batches_for_a_partition_is_refused() {
    let mut h = Harness::new();
    h.create_topic("t", 1);
    let mut two = bytes::BytesMut::from(batch(2).as_ref());
    two.extend_from_slice(&batch(3));
    let reply = h.produce("t", 0, -1, two.freeze());
    h.complete_all();
    assert_eq!(produce_answer(&h, reply).0, ErrorCode::InvalidRecord.code());
    let one = h.produce("t", 0, -1, batch(1));
    h.complete_all();
    assert_eq!(
        produce_answer(&h, one),
        (0, 0),
        "the refused request took no offset"
    );
}

#[test]
fn an_idempotent_retry_is_answered_with_the_original_offset() {
    let mut h = Harness::new();
    h.create_topic("t", 1);
    let idem = |seq: i32, n: usize| {
        let mut b = BatchBuilder::new(Compression::None).with_producer(42, 0, seq);
        for i in 0..n {
            b.push(1000, None, Some(Bytes::from(format!("v{i}"))), vec![])
                .unwrap();
        }
        b.build().unwrap()
    };
    let first = h.produce("t", 0, -1, idem(0, 5));
    h.complete_all();
    assert_eq!(produce_answer(&h, first), (0, 0));
    let retry = h.produce("t", 0, -1, idem(0, 5));
    assert!(h.work.is_empty(), "a duplicate is not written again");
    assert_eq!(produce_answer(&h, retry), (0, 0));
    let gap = h.produce("t", 0, -1, idem(9, 1));
    assert_eq!(
        produce_answer(&h, gap).0,
        ErrorCode::OutOfOrderSequenceNumber.code()
    );
    let next = h.produce("t", 0, -1, idem(5, 1));
    h.complete_all();
    assert_eq!(produce_answer(&h, next), (0, 5));
}

#[test]
fn rolls_snapshot_producers_retention_keeps_them_and_idleness_expires_them() {
    const DAY_MS: i64 = 86_400_000;
    let mut config = BrokerConfig::default();
    config.log.segment_bytes = 600;
    config.log.retention_bytes = 600;
    let mut h = Harness::with_config(config);
    h.create_topic("t", 1);
    let idem = |seq: i32| {
        let mut b = BatchBuilder::new(Compression::None).with_producer(42, 0, seq);
        for i in 0..5 {
            b.push(1000, None, Some(Bytes::from(format!("v{i}"))), vec![])
                .unwrap();
        }
        b.build().unwrap()
    };
    let first = h.produce("t", 0, -1, idem(0));
    h.complete_all();
    assert_eq!(produce_answer(&h, first), (0, 0));
    // Plain batches until the log rolls: the roll syncs the old segment, creates the new one,
    // then snapshots the producers as of its base.
    let snapshot = loop {
        h.produce("t", 0, -1, batch(5));
        let (_, _, ops) = h.work.first().expect("a write").clone();
        h.complete_all();
        let Some(at) = ops
            .iter()
            .position(|op| matches!(op, LogOp::WriteSnapshot { .. }))
        else {
            continue;
        };
        assert!(matches!(ops[at - 2], LogOp::Sync { .. }));
        let LogOp::CreateSegment { base_offset } = ops[at - 1] else {
            panic!("{ops:?}")
        };
        let LogOp::WriteSnapshot { offset, data } = &ops[at] else {
            unreachable!()
        };
        assert_eq!(*offset, base_offset);
        break producer_snapshot::decode(data).unwrap();
    };
    assert_eq!(
        snapshot.producers.check(42, 0, 0, 4),
        SequenceCheck::Duplicate { base_offset: 0 }
    );
    // Roll again, then retention deletes every segment but the last: the producer stays.
    let tp = TopicPartition::new("t", 0);
    let segments = h.broker.partition(&tp).unwrap().log.segments().len();
    while h.broker.partition(&tp).unwrap().log.segments().len() == segments {
        h.produce("t", 0, -1, batch(5));
        h.complete_all();
    }
    h.broker.enforce_retention(h.now);
    h.drain();
    let (_, _, ops) = h.work.first().expect("retention work").clone();
    h.complete_all();
    assert!(ops.contains(&LogOp::DeleteSegment { base_offset: 0 }));
    let p = h.broker.partition(&tp).unwrap();
    assert!(p.log.log_start_offset() > 5, "producer 42's batch is gone");
    let retry = h.produce("t", 0, -1, idem(0));
    assert!(h.work.is_empty(), "a duplicate is not written again");
    assert_eq!(produce_answer(&h, retry), (0, 0));
    // A day of idleness later the producer is forgotten: its next sequence is refused.
    h.now.wall_ms += DAY_MS;
    h.broker.enforce_retention(h.now);
    h.drain();
    h.complete_all();
    let next = h.produce("t", 0, -1, idem(5));
    assert_eq!(
        produce_answer(&h, next).0,
        ErrorCode::OutOfOrderSequenceNumber.code()
    );
}

#[test]
fn a_failed_sync_takes_the_partition_offline() {
    let mut h = Harness::new();
    h.create_topic("t", 1);
    let r = h.produce("t", 0, -1, batch(1));
    h.complete_one(true);
    h.complete_one(false);
    assert_eq!(produce_answer(&h, r).0, ErrorCode::KafkaStorageError.code());
    let again = h.produce("t", 0, -1, batch(1));
    assert_eq!(
        produce_answer(&h, again).0,
        ErrorCode::KafkaStorageError.code()
    );
}

#[test]
fn an_empty_fetch_waits_for_data_or_its_deadline() {
    let mut h = Harness::new();
    h.create_topic("t", 1);
    let fetch = |offset: i64| FetchRequest {
        max_wait_ms: 500,
        min_bytes: 1,
        max_bytes: 1 << 20,
        topics: vec![FetchTopic {
            topic: "t".into(),
            partitions: vec![FetchPartition {
                partition: 0,
                fetch_offset: offset,
                partition_max_bytes: 1 << 20,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    h.request(1, 12, RequestBody::Fetch(fetch(0)));
    assert!(h.fetches.is_empty(), "parked: nothing to read");
    assert_eq!(h.broker.next_deadline(), Some(Instant(500)));
    h.produce("t", 0, -1, batch(2));
    h.complete_one(true);
    assert!(
        h.fetches.is_empty(),
        "written but not durable: not visible yet"
    );
    h.complete_one(true);
    assert_eq!(h.fetches.len(), 1, "woken by the sync");
    let f = h.fetches.remove(0);
    assert_eq!(f.reads.len(), 1);
    assert_eq!(f.reads[0].high_watermark, 2);
    // At the end of the log, the deadline answers with nothing.
    h.request(1, 12, RequestBody::Fetch(fetch(2)));
    assert!(h.fetches.is_empty());
    h.now.mono = Instant(600);
    h.broker.handle_timeout(h.now);
    h.drain();
    assert_eq!(h.fetches.len(), 1);
    assert!(h.fetches[0].reads.is_empty());
    // Past the end: OFFSET_OUT_OF_RANGE at once.
    h.request(1, 12, RequestBody::Fetch(fetch(9)));
    let err = h.fetches.last().unwrap().response.responses[0].partitions[0].error_code;
    assert_eq!(err, ErrorCode::OffsetOutOfRange.code());
}

#[test]
fn incremental_alter_configs_sets_and_deletes_overrides() {
    let mut h = Harness::new();
    h.create_topic("t", 1);
    let alter = |ops: Vec<(&str, i8, Option<&str>)>| IncrementalAlterConfigsRequest {
        resources: vec![AlterConfigsResource {
            resource_type: 2,
            resource_name: "t".into(),
            configs: ops
                .into_iter()
                .map(|(n, op, v)| AlterableConfig {
                    name: n.into(),
                    config_operation: op,
                    value: v.map(Into::into),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let r = h.request(
        44,
        1,
        RequestBody::IncrementalAlterConfigs(alter(vec![("retention.ms", 0, Some("5000"))])),
    );
    h.complete_all();
    assert!(h.response(r).is_some());
    assert_eq!(
        h.broker
            .partition(&TopicPartition::new("t", 0))
            .unwrap()
            .log
            .config()
            .retention_ms,
        5000
    );
    let r = h.request(
        44,
        1,
        RequestBody::IncrementalAlterConfigs(alter(vec![("retention.ms", 0, Some("x"))])),
    );
    let Some(Some(ResponseBody::IncrementalAlterConfigs(resp))) = h.response(r) else {
        panic!()
    };
    assert_eq!(
        resp.responses[0].error_code,
        ErrorCode::InvalidConfig.code()
    );
    h.request(
        44,
        1,
        RequestBody::IncrementalAlterConfigs(alter(vec![("retention.ms", 1, None)])),
    );
    h.complete_all();
    assert_eq!(
        h.broker
            .partition(&TopicPartition::new("t", 0))
            .unwrap()
            .log
            .config()
            .retention_ms,
        LogConfig::default().retention_ms
    );
}

/// Admin requests in flight together are validated against each other, not only against what is
/// durable: otherwise two CreatePartitions could write a shrinking count (which no replay
/// accepts) and two auto-creations could give one topic two ids.
#[test]
fn admin_changes_in_flight_see_each_other() {
    use crate::protocol::generated::create_partitions_request::{
        CreatePartitionsRequest, CreatePartitionsTopic,
    };
    use crate::protocol::generated::delete_topics_request::DeleteTopicsRequest;
    use crate::protocol::generated::metadata_request::{MetadataRequest, MetadataRequestTopic};
    let mut h = Harness::new();
    h.broker.config.auto_create_topics_enable = true;
    h.create_topic("t", 2);
    let grow = |count| {
        RequestBody::CreatePartitions(CreatePartitionsRequest {
            topics: vec![CreatePartitionsTopic {
                name: "t".into(),
                count,
                assignments: None,
                ..Default::default()
            }],
            timeout_ms: 1000,
            ..Default::default()
        })
    };
    let six = h.request(37, 3, grow(6));
    let four = h.request(37, 3, grow(4));
    let lookup = || {
        RequestBody::Metadata(MetadataRequest {
            topics: Some(vec![MetadataRequestTopic {
                name: Some("auto".into()),
                ..Default::default()
            }]),
            allow_auto_topic_creation: true,
            ..Default::default()
        })
    };
    h.request(3, 12, lookup());
    h.request(3, 12, lookup());
    let delete = || {
        RequestBody::DeleteTopics(DeleteTopicsRequest {
            topic_names: vec!["auto".into()],
            timeout_ms: 1000,
            ..Default::default()
        })
    };
    let first_delete = h.request(20, 4, delete());
    let second_delete = h.request(20, 4, delete());
    // Every record written to the metadata log replays onto the image, in order.
    let mut replayed = h.broker.image().clone();
    while let Some((_, target, ops)) = h.work.first().cloned() {
        if target == LogTarget::Metadata {
            for op in ops {
                if let LogOp::Write { data, file, .. } = op {
                    if file.kind == crate::core::log::FileKind::Log {
                        for record in metadata::decode_batches(&data).unwrap() {
                            replayed.apply(&record).unwrap();
                        }
                    }
                }
            }
        }
        h.complete_one(true);
    }
    let partitions_error = |reply| match h.response(reply) {
        Some(Some(ResponseBody::CreatePartitions(r))) => r.results[0].error_code,
        other => panic!("{other:?}"),
    };
    assert_eq!(partitions_error(six), 0);
    assert_eq!(partitions_error(four), ErrorCode::InvalidPartitions.code());
    let delete_error = |reply| match h.response(reply) {
        Some(Some(ResponseBody::DeleteTopics(r))) => r.responses[0].error_code,
        other => panic!("{other:?}"),
    };
    assert_eq!(delete_error(first_delete), 0);
    assert_eq!(
        delete_error(second_delete),
        ErrorCode::UnknownTopicOrPartition.code()
    );
    assert_eq!(h.broker.image().topics["t"].partitions, 6);
    assert!(!h.broker.image().topics.contains_key("auto"));
    assert_eq!(&replayed, h.broker.image());
}

/// A failed metadata log sync stops the broker (found by the simulator).
mod metadata_faults {
    use super::*;
    use crate::protocol::generated::create_topics_request::{CreatableTopic, CreateTopicsRequest};

    fn broker() -> Broker {
        let (metadata_log, _) = PartitionLog::create(LogConfig::default(), 0);
        Broker::new(
            BrokerConfig::default(),
            "cluster".into(),
            MetadataImage::default(),
            metadata_log,
            BTreeMap::new(),
            1,
        )
    }

    fn create_topic(broker: &mut Broker) -> WorkId {
        let ctx = RequestContext {
            reply: ReplyTo { conn: 1, seq: 1 },
            api_key: 19,
            api_version: 5,
        };
        let request = CreateTopicsRequest {
            topics: vec![CreatableTopic {
                name: "t".into(),
                num_partitions: 1,
                replication_factor: 1,
                ..Default::default()
            }],
            ..Default::default()
        };
        broker.handle_request(ctx, RequestBody::CreateTopics(request), Now::default());
        let mut work = None;
        while let Some(out) = broker.poll_output() {
            match out {
                Output::Storage {
                    work: id,
                    target: LogTarget::Metadata,
                    ..
                } => work = Some(id),
                other => panic!("unexpected output before the metadata is durable: {other:?}"),
            }
        }
        work.expect("a metadata log write")
    }

    /// Found by the simulator: a retried create was answered TOPIC_ALREADY_EXISTS while the
    /// first create still waited for its fsync; the fsync failed, and the client went on
    /// believing in a topic that never existed.
    #[test]
    fn topic_already_exists_waits_for_the_pending_create() {
        let mut broker = broker();
        let work = create_topic(&mut broker);
        // The retry: refused, but not answered before the first create is durable.
        let _ = create_topic_again(&mut broker);
        broker.handle_storage_done(work, false, Now::default());
        assert!(broker.fatal_error().is_some());
        assert!(
            broker.poll_output().is_none(),
            "no answer rests on a create that was lost"
        );
    }

    fn create_topic_again(broker: &mut Broker) -> Option<Output> {
        let ctx = RequestContext {
            reply: ReplyTo { conn: 2, seq: 1 },
            api_key: 19,
            api_version: 5,
        };
        let request = CreateTopicsRequest {
            topics: vec![CreatableTopic {
                name: "t".into(),
                num_partitions: 1,
                replication_factor: 1,
                ..Default::default()
            }],
            ..Default::default()
        };
        broker.handle_request(ctx, RequestBody::CreateTopics(request), Now::default());
        let out = broker.poll_output();
        assert!(out.is_none(), "answered before durable: {out:?}");
        out
    }

    #[test]
    fn a_metadata_log_failure_stops_the_broker_without_answering() {
        let mut broker = broker();
        let work = create_topic(&mut broker);
        assert!(broker.fatal_error().is_none());
        broker.handle_storage_done(work, false, Now::default());
        assert!(broker.fatal_error().is_some());
        assert!(broker.poll_output().is_none(), "nothing is acknowledged");
        assert!(broker.image().topics.is_empty());
    }

    #[test]
    fn a_durable_metadata_write_answers_and_creates_the_topic() {
        let mut broker = broker();
        let work = create_topic(&mut broker);
        broker.handle_storage_done(work, true, Now::default());
        assert!(broker.fatal_error().is_none());
        assert!(broker.image().topics.contains_key("t"));
        let outputs: Vec<Output> = std::iter::from_fn(|| broker.poll_output()).collect();
        assert!(outputs.iter().any(|o| matches!(
            o,
            Output::Respond {
                body: ResponseBody::CreateTopics(_),
                ..
            }
        )));
    }
}

/// Topic ids must not repeat after a restart (found by the simulator: a topic deleted and
/// re-created after a restart got its old id back, and the old incarnation's records were taken
/// for the new one's).
#[test]
fn topic_ids_differ_after_a_restart_that_kept_a_metadata_change() {
    let broker = |records: usize| {
        let (mut metadata_log, _) = PartitionLog::create(LogConfig::default(), 0);
        for _ in 0..records {
            let batch = metadata::encode_batch(&[MetadataRecord::ProducerIds { next: 1 }], 0);
            metadata_log.append(batch, 0, 0).unwrap();
        }
        Broker::new(
            BrokerConfig::default(),
            "cluster".into(),
            MetadataImage::default(),
            metadata_log,
            BTreeMap::new(),
            7,
        )
    };
    let first = broker(1).next_uuid();
    assert_eq!(first, broker(1).next_uuid(), "deterministic");
    assert_ne!(first, broker(2).next_uuid());
    assert_ne!(first, broker(0).next_uuid());
}

/// Found by the admin client in the simulator: CreatePartitions was checked against the applied
/// image only. A second call made while the first waited for its fsync could ask for fewer
/// partitions than the first, and applying both broke "partition counts only grow" (and would
/// again on every replay of the metadata log).
#[test]
fn create_partitions_is_checked_against_pending_changes() {
    use crate::protocol::generated::create_partitions_request::{
        CreatePartitionsRequest, CreatePartitionsTopic,
    };
    use crate::protocol::generated::delete_topics_request::{
        DeleteTopicState, DeleteTopicsRequest,
    };
    let grow = |count| {
        RequestBody::CreatePartitions(CreatePartitionsRequest {
            topics: vec![CreatePartitionsTopic {
                name: "t".into(),
                count,
                assignments: None,
                ..Default::default()
            }],
            ..Default::default()
        })
    };
    let answer = |h: &Harness, reply| {
        let Some(Some(ResponseBody::CreatePartitions(r))) = h.response(reply) else {
            panic!("no CreatePartitions answer")
        };
        r.results[0].error_code
    };
    let mut h = Harness::new();
    h.create_topic("t", 1);
    let first = h.request(37, 3, grow(4));
    let second = h.request(37, 3, grow(3));
    h.complete_all();
    assert_eq!(answer(&h, first), 0);
    assert_eq!(answer(&h, second), ErrorCode::InvalidPartitions.code());
    assert_eq!(h.broker.image().topics["t"].partitions, 4);

    // Growing a topic whose delete is pending: the topic is gone by then.
    let delete = RequestBody::DeleteTopics(DeleteTopicsRequest {
        topics: vec![DeleteTopicState {
            name: Some("t".into()),
            ..Default::default()
        }],
        ..Default::default()
    });
    let _ = h.request(20, 6, delete);
    let late = h.request(37, 3, grow(5));
    h.complete_all();
    assert_eq!(answer(&h, late), ErrorCode::UnknownTopicOrPartition.code());
    assert!(!h.broker.image().topics.contains_key("t"));
    assert!(
        !h.broker.partitions.keys().any(|tp| tp.topic == "t"),
        "no partition logs for a deleted topic"
    );
}
