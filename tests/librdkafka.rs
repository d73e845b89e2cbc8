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
