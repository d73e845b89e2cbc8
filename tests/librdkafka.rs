//! Compatibility: librdkafka (through the `rdkafka` crate) against a real gregor over TCP.
// Tests drive real clocks: they are drivers, not machines.
#![allow(clippy::disallowed_methods)]

mod common;

use common::TestBroker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records every delivery report: (partition, offset, key) on success, errors counted.
/// (partition, offset, key) of one acknowledged record.
type Acked = (i32, i64, Vec<u8>);

#[derive(Clone, Default)]
struct Deliveries {
    acked: Arc<Mutex<Vec<Acked>>>,
    failed: Arc<Mutex<Vec<String>>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => self.acked.lock().unwrap().push((
                m.partition(),
                m.offset(),
                m.key().unwrap_or_default().to_vec(),
            )),
            Err((e, _)) => self.failed.lock().unwrap().push(e.to_string()),
        }
    }
}

fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> (ThreadedProducer<Deliveries>, Deliveries) {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let ctx = Deliveries::default();
    (
        config.create_with_context(ctx.clone()).expect("producer"),
        ctx,
    )
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

/// rdkafka's admin futures need no particular runtime: a tiny current-thread runtime is enough.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = block_on(admin(bootstrap).create_topics(&[topic], &AdminOptions::new()))
        .expect("create_topics");
    for r in results {
        r.expect("topic created");
    }
}

/// Reads every record of `topic` from the beginning until `expected` arrive (or a timeout).
fn consume_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
) -> Vec<(i32, i64, Vec<u8>, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // librdkafka wants a group id even for assign(); no group protocol is used here.
        .set("group.id", "gregor-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::with_capacity(expected);
    let deadline = Instant::now() + Duration::from_secs(120);
    while out.len() < expected && Instant::now() < deadline {
        if let Some(result) = consumer.poll(Duration::from_millis(200)) {
            let m = result.expect("consume");
            out.push((
                m.partition(),
                m.offset(),
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    out
}

fn payload_for(key: &str) -> Vec<u8> {
    // Compressible but not trivial: the key repeated with a counter.
    let mut v = Vec::with_capacity(200);
    while v.len() < 200 {
        v.extend_from_slice(key.as_bytes());
        v.push(b'|');
    }
    v
}

#[test]
fn produce_and_consume_with_every_codec() {
    let broker = TestBroker::start("codecs");
    let bootstrap = broker.bootstrap();
    const PER_CODEC: usize = 100_000;
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(&bootstrap, &topic, 3, &[]);
        let (producer, deliveries) = producer(&bootstrap, &[("compression.codec", codec)]);
        for i in 0..PER_CODEC {
            let key = format!("key-{}", i % 997);
            let value = payload_for(&format!("{key}-{i}"));
            producer
                .send(BaseRecord::to(&topic).key(&key).payload(&value))
                .expect("enqueue");
        }
        producer.flush(Duration::from_secs(60)).expect("flush");
        assert!(
            deliveries.failed.lock().unwrap().is_empty(),
            "{codec}: {:?}",
            deliveries.failed.lock().unwrap()
        );
        let acked = deliveries.acked.lock().unwrap().clone();
        assert_eq!(acked.len(), PER_CODEC, "{codec}: every record acknowledged");

        let records = consume_all(&bootstrap, &topic, 3, PER_CODEC);
        assert_eq!(records.len(), PER_CODEC, "{codec}: every record consumed");
        // Per-partition order: offsets dense from 0, and keys always map to the same partition.
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        let mut key_partition: BTreeMap<Vec<u8>, i32> = BTreeMap::new();
        for (partition, offset, key, value) in &records {
            let expect = next.entry(*partition).or_insert(0);
            assert_eq!(
                offset, expect,
                "{codec}: partition {partition} offsets are dense and ordered"
            );
            *expect += 1;
            assert_eq!(
                *key_partition.entry(key.clone()).or_insert(*partition),
                *partition,
                "{codec}: key stability"
            );
            assert!(
                value.starts_with(key),
                "{codec}: payload belongs to its key"
            );
        }
        assert_eq!(next.len(), 3, "{codec}: all partitions used");
        // What the producer was told matches what is there.
        let stored: BTreeMap<(i32, i64), &Vec<u8>> =
            records.iter().map(|(p, o, k, _)| ((*p, *o), k)).collect();
        for (p, o, k) in &acked {
            assert_eq!(
                stored.get(&(*p, *o)),
                Some(&k),
                "{codec}: acked record at {p}/{o}"
            );
        }
    }
}

#[test]
fn idempotent_producer_writes_each_record_once_in_order() {
    let broker = TestBroker::start("idempotent");
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "idem", 2, &[]);
    let (producer, deliveries) = producer(
        &bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "5"),
            ("linger.ms", "1"),
        ],
    );
    const N: usize = 20_000;
    for i in 0..N {
        let key = format!("k{}", i % 13);
        producer
            .send(
                BaseRecord::to("idem")
                    .key(&key)
                    .payload(&format!("{key}:{i}")),
            )
            .expect("enqueue");
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    assert!(deliveries.failed.lock().unwrap().is_empty());
    let records = consume_all(&bootstrap, "idem", 2, N);
    assert_eq!(records.len(), N);
    // Per key, the sequence numbers in the values appear exactly once and in send order.
    let mut last: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    for (_, _, key, value) in &records {
        let n: i64 = String::from_utf8_lossy(value)
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let prev = last.insert(key.clone(), n).unwrap_or(-1);
        assert!(n > prev, "key {key:?}: {n} after {prev}");
    }
}

#[test]
fn list_offsets_earliest_latest_and_by_time() {
    let broker = TestBroker::start("offsets");
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "times", 1, &[]);
    let (producer, _) = producer(&bootstrap, &[("linger.ms", "0")]);
    for i in 0..10i64 {
        let ts = 1_000_000 + i * 1000;
        producer
            .send(
                BaseRecord::<(), _>::to("times")
                    .partition(0)
                    .payload("x")
                    .timestamp(ts),
            )
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "offsets-reader")
        .create()
        .unwrap();
    let (low, high) = consumer
        .fetch_watermarks("times", 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!((low, high), (0, 10));
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("times", 0, Offset::Offset(1_004_500))
        .unwrap();
    let found = consumer
        .offsets_for_times(tpl, Duration::from_secs(10))
        .unwrap();
    let offset = found.find_partition("times", 0).unwrap().offset();
    assert_eq!(
        offset,
        Offset::Offset(5),
        "first record at or after the timestamp"
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("times", 0, Offset::Offset(9_999_999))
        .unwrap();
    let found = consumer
        .offsets_for_times(tpl, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        found.find_partition("times", 0).unwrap().offset(),
        Offset::End,
        "nothing that new"
    );

    // Ten records in one compressed batch: the answer is a record inside it, not the batch.
    create_topic(&bootstrap, "batched", 1, &[]);
    let (batching, _) = self::producer(
        &bootstrap,
        &[("linger.ms", "500"), ("compression.type", "lz4")],
    );
    for i in 0..10i64 {
        batching
            .send(
                BaseRecord::<(), _>::to("batched")
                    .partition(0)
                    .payload("y")
                    .timestamp(2_000_000 + i * 1000),
            )
            .unwrap();
    }
    batching.flush(Duration::from_secs(10)).unwrap();
    for (timestamp, expected) in [(2_004_500, 5), (2_000_000, 0), (2_009_000, 9)] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("batched", 0, Offset::Offset(timestamp))
            .unwrap();
        let found = consumer
            .offsets_for_times(tpl, Duration::from_secs(10))
            .unwrap();
        assert_eq!(
            found.find_partition("batched", 0).unwrap().offset(),
            Offset::Offset(expected),
            "first record at or after {timestamp} in one batch"
        );
    }
}

#[test]
fn admin_creates_describes_and_deletes_topics() {
    let broker = TestBroker::start("admin");
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    let opts = AdminOptions::new();
    create_topic(
        &bootstrap,
        "configured",
        4,
        &[("retention.ms", "60000"), ("cleanup.policy", "delete")],
    );
    // Creating it again fails with TOPIC_ALREADY_EXISTS; a bad name or config is refused.
    let again = block_on(admin.create_topics(
        &[NewTopic::new("configured", 1, TopicReplication::Fixed(1))],
        &opts,
    ))
    .unwrap();
    assert!(
        matches!(
            &again[0],
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))
        ),
        "{again:?}"
    );
    let bad = block_on(admin.create_topics(
        &[
            NewTopic::new("bad/name", 1, TopicReplication::Fixed(1)),
            NewTopic::new("badcfg", 1, TopicReplication::Fixed(1)).set("retention.ms", "soon"),
        ],
        &opts,
    ))
    .unwrap();
    assert!(
        matches!(
            &bad[0],
            Err((_, rdkafka::types::RDKafkaErrorCode::InvalidTopic))
        ),
        "{bad:?}"
    );
    assert!(
        matches!(
            &bad[1],
            Err((_, rdkafka::types::RDKafkaErrorCode::InvalidConfig))
        ),
        "{bad:?}"
    );

    let metadata = admin
        .inner()
        .fetch_metadata(Some("configured"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 4);

    let described = block_on(admin.describe_configs(
        &[rdkafka::admin::ResourceSpecifier::Topic("configured")],
        &opts,
    ))
    .unwrap();
    let resource = described[0].as_ref().expect("described");
    let retention = resource.get("retention.ms").expect("retention.ms listed");
    assert_eq!(retention.value.as_deref(), Some("60000"));
    assert!(!retention.is_default);
    let segment = resource.get("segment.bytes").expect("segment.bytes listed");
    assert!(segment.is_default);

    let deleted = block_on(admin.delete_topics(&["configured"], &opts)).unwrap();
    assert!(deleted[0].is_ok(), "{deleted:?}");
    let missing = block_on(admin.delete_topics(&["configured"], &opts)).unwrap();
    assert!(
        matches!(
            &missing[0],
            Err((_, rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition))
        ),
        "{missing:?}"
    );
}

#[test]
fn admin_adds_partitions_alters_configs_and_deletes_records() {
    let broker = TestBroker::start("admin-alter");
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    let opts = AdminOptions::new();
    create_topic(&bootstrap, "grow", 2, &[("retention.ms", "60000")]);

    // CreatePartitions: 2 -> 5; shrinking is refused.
    let grown =
        block_on(admin.create_partitions(&[rdkafka::admin::NewPartitions::new("grow", 5)], &opts))
            .unwrap();
    assert!(grown[0].is_ok(), "{grown:?}");
    let shrink =
        block_on(admin.create_partitions(&[rdkafka::admin::NewPartitions::new("grow", 3)], &opts))
            .unwrap();
    assert!(
        matches!(
            &shrink[0],
            Err((_, rdkafka::types::RDKafkaErrorCode::InvalidPartitions))
        ),
        "{shrink:?}"
    );
    let metadata = admin
        .inner()
        .fetch_metadata(Some("grow"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 5);

    // AlterConfigs replaces the overrides: retention.ms goes back to its default.
    let alter = rdkafka::admin::AlterConfig::new(rdkafka::admin::ResourceSpecifier::Topic("grow"))
        .set("segment.bytes", "1048576");
    let altered = block_on(admin.alter_configs(&[alter], &opts)).unwrap();
    assert!(altered[0].is_ok(), "{altered:?}");
    let described = block_on(
        admin.describe_configs(&[rdkafka::admin::ResourceSpecifier::Topic("grow")], &opts),
    )
    .unwrap();
    let resource = described[0].as_ref().unwrap();
    assert_eq!(
        resource.get("segment.bytes").unwrap().value.as_deref(),
        Some("1048576")
    );
    assert!(resource.get("retention.ms").unwrap().is_default);
    let bad = rdkafka::admin::AlterConfig::new(rdkafka::admin::ResourceSpecifier::Topic("grow"))
        .set("retention.ms", "-7");
    // (The rdkafka crate reports AlterConfigs per-resource errors as success, so check the effect.)
    block_on(admin.alter_configs(&[bad], &opts)).unwrap();
    let described = block_on(
        admin.describe_configs(&[rdkafka::admin::ResourceSpecifier::Topic("grow")], &opts),
    )
    .unwrap();
    let resource = described[0].as_ref().unwrap();
    assert!(
        resource.get("retention.ms").unwrap().is_default,
        "an invalid value is refused"
    );
    assert_eq!(
        resource.get("segment.bytes").unwrap().value.as_deref(),
        Some("1048576"),
        "nothing changed"
    );

    // DeleteRecords moves the low watermark; reads below it are out of range.
    let (producer, _) = producer(&bootstrap, &[]);
    for i in 0..10 {
        producer
            .send(
                BaseRecord::<(), _>::to("grow")
                    .partition(0)
                    .payload(&format!("v{i}")),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("grow", 0, Offset::Offset(4))
        .unwrap();
    let result = block_on(admin.delete_records(&tpl, &opts)).unwrap();
    assert_eq!(
        result.find_partition("grow", 0).unwrap().offset(),
        Offset::Offset(4)
    );
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "lw")
        .create()
        .unwrap();
    assert_eq!(
        consumer
            .fetch_watermarks("grow", 0, Duration::from_secs(10))
            .unwrap(),
        (4, 10)
    );
    let records = consume_all(&bootstrap, "grow", 1, 6);
    assert_eq!(
        records.first().map(|r| r.1),
        Some(4),
        "earliest is now offset 4"
    );
    drop(consumer);

    // The new low watermark survives a restart.
    let dir = broker.stop();
    let broker = TestBroker::start_in(dir, &[]);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "lw")
        .create()
        .unwrap();
    assert_eq!(
        consumer
            .fetch_watermarks("grow", 0, Duration::from_secs(10))
            .unwrap(),
        (4, 10)
    );
}

/// Dynamic broker configs (`kafka-configs --entity-type brokers`): a broker-level log default set
/// through AlterConfigs applies to topics without an override, is reported with its source, and
/// survives a restart; static settings are described read-only.
#[test]
fn admin_alters_and_describes_broker_configs() {
    use rdkafka::admin::{AlterConfig, ConfigSource, ResourceSpecifier};
    let broker = TestBroker::start_in(
        common::temp_dir("broker-configs"),
        &[("log.segment.bytes", "2097152")],
    );
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    let opts = AdminOptions::new();
    create_topic(&bootstrap, "plain", 1, &[]);
    create_topic(&bootstrap, "kept", 1, &[("retention.ms", "1000")]);

    let described =
        block_on(admin.describe_configs(&[ResourceSpecifier::Broker(1)], &opts)).unwrap();
    let resource = described[0].as_ref().unwrap();
    let segment = resource.get("log.segment.bytes").unwrap();
    assert_eq!(segment.value.as_deref(), Some("2097152"));
    assert_eq!(segment.source, ConfigSource::StaticBroker);
    let node = resource.get("node.id").unwrap();
    assert_eq!(node.value.as_deref(), Some("1"));
    assert!(node.is_read_only);

    let alter = AlterConfig::new(ResourceSpecifier::Broker(1)).set("log.retention.ms", "123456");
    let altered = block_on(admin.alter_configs(&[alter], &opts)).unwrap();
    assert!(altered[0].is_ok(), "{altered:?}");
    let check = |admin: &AdminClient<DefaultClientContext>| {
        let described = block_on(admin.describe_configs(
            &[
                ResourceSpecifier::Topic("plain"),
                ResourceSpecifier::Topic("kept"),
                ResourceSpecifier::Broker(1),
            ],
            &opts,
        ))
        .unwrap();
        let value = |i: usize, key: &str| {
            let entry = described[i].as_ref().unwrap().get(key).unwrap();
            (entry.value.clone(), format!("{:?}", entry.source))
        };
        assert_eq!(
            value(0, "retention.ms"),
            (Some("123456".into()), "DynamicBroker".to_owned()),
            "a topic without an override takes the dynamic broker default"
        );
        assert_eq!(
            value(1, "retention.ms"),
            (Some("1000".into()), "DynamicTopic".to_owned()),
            "a topic override wins"
        );
        assert_eq!(
            value(0, "segment.bytes"),
            (Some("2097152".into()), "StaticBroker".to_owned())
        );
        assert_eq!(
            value(2, "log.retention.ms"),
            (Some("123456".into()), "DynamicBroker".to_owned())
        );
    };
    check(&admin);

    // Unknown or static keys are refused; the rdkafka crate reports per-resource errors as
    // success, so check that nothing changed.
    let bad = AlterConfig::new(ResourceSpecifier::Broker(1))
        .set("log.retention.ms", "123456")
        .set("num.partitions", "9");
    block_on(admin.alter_configs(&[bad], &opts)).unwrap();
    check(&admin);

    let dir = broker.stop();
    let broker = TestBroker::start_in(dir, &[("log.segment.bytes", "2097152")]);
    check(&self::admin(&broker.bootstrap()));
}

/// A batch larger than the topic's `max.message.bytes` is refused with MESSAGE_TOO_LARGE; the
/// producer's next, smaller record is stored.
#[test]
fn an_oversized_batch_is_refused_with_message_too_large() {
    let broker = TestBroker::start("too-large");
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "small", 1, &[("max.message.bytes", "1000")]);
    let (producer, deliveries) = producer(&bootstrap, &[("retries", "0")]);
    let big = vec![b'x'; 5000];
    producer
        .send(BaseRecord::<(), _>::to("small").partition(0).payload(&big))
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let failed = deliveries.failed.lock().unwrap().clone();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("MessageSizeTooLarge"), "{failed:?}");
    producer
        .send(BaseRecord::<(), _>::to("small").partition(0).payload("ok"))
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let acked = deliveries.acked.lock().unwrap().clone();
    assert_eq!(acked.len(), 1);
    assert_eq!(acked[0].1, 0, "the refused batch took no offset");
}
