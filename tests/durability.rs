//! Restart and crash: every acknowledged record survives a graceful restart and a kill -9, and
//! the log has no corrupt tail afterwards.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{free_port, temp_dir, BrokerProcess, TestBroker};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
struct Acked(Arc<Mutex<BTreeSet<Stored>>>);

/// (partition, offset, value) of one record.
type Stored = (i32, i64, Vec<u8>);

impl ClientContext for Acked {}
impl ProducerContext for Acked {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Ok(m) = result {
            self.0.lock().unwrap().insert((
                m.partition(),
                m.offset(),
                m.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
}

fn producer(bootstrap: &str) -> (ThreadedProducer<Acked>, Acked) {
    let acked = Acked::default();
    let p = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "5000")
        .set("topic.metadata.refresh.interval.ms", "500")
        .create_with_context(acked.clone())
        .unwrap();
    (p, acked)
}

/// Everything in the topic: (partition, offset, value).
fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> BTreeSet<Stored> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "durability-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut ends = Vec::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        ends.push(high);
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let total: i64 = ends.iter().sum();
    let mut out = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (out.len() as i64) < total && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            out.insert((
                m.partition(),
                m.offset(),
                m.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    assert_eq!(out.len() as i64, total, "read up to the high watermarks");
    out
}

#[test]
fn acknowledged_records_survive_a_restart() {
    let broker = TestBroker::start("restart");
    let bootstrap = broker.bootstrap();
    let (p, acked) = producer(&bootstrap);
    for i in 0..5000 {
        p.send(BaseRecord::<(), _>::to("restart").payload(&format!("v{i}")))
            .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
    drop(p);
    let dir = broker.stop();
    let acked = acked.0.lock().unwrap().clone();
    assert_eq!(acked.len(), 5000);

    let broker = TestBroker::start_in(dir, &[]);
    let stored = read_all(&broker.bootstrap(), "restart", 1);
    assert_eq!(
        stored, acked,
        "exactly the acknowledged records, at their offsets"
    );
    // The restarted broker continues the offsets.
    let (p, more) = producer(&broker.bootstrap());
    p.send(BaseRecord::<(), _>::to("restart").payload("after"))
        .unwrap();
    p.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(
        more.0.lock().unwrap().iter().next().map(|r| r.1),
        Some(5000)
    );
}

#[test]
fn acknowledged_records_survive_kill_9() {
    let dir = temp_dir("crash");
    let port = free_port();
    let broker = BrokerProcess::start(&dir, port);
    let bootstrap = broker.addr.to_string();
    let (p, acked) = producer(&bootstrap);
    // Produce continuously and kill the broker in the middle of it.
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_millis(1500) {
        let _ = p.send(BaseRecord::<(), _>::to("crash").payload(&format!("v{i}")));
        i += 1;
        if i % 100 == 0 {
            p.poll(Duration::from_millis(1));
        }
    }
    broker.kill9();
    let _ = p.flush(Duration::from_secs(6));
    drop(p);
    let acked = acked.0.lock().unwrap().clone();
    assert!(
        acked.len() > 100,
        "the producer got acknowledgements before the kill ({})",
        acked.len()
    );

    let broker = BrokerProcess::start(&dir, port);
    let stored = read_all(&broker.addr.to_string(), "crash", 1);
    let lost: Vec<_> = acked.difference(&stored).take(5).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but lost after kill -9: {lost:?}"
    );
    // Offsets are dense from 0: no corrupt tail, no hole.
    for (expected, (_, offset, _)) in stored.iter().enumerate() {
        assert_eq!(*offset, expected as i64);
    }
}

#[test]
fn sigterm_stops_cleanly_and_keeps_acks_1_data() {
    let dir = temp_dir("sigterm");
    let port = free_port();
    let mut broker = BrokerProcess::start(&dir, port);
    let bootstrap = broker.addr.to_string();
    let acked = Acked::default();
    let p: ThreadedProducer<Acked> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "1")
        .set("linger.ms", "2")
        .create_with_context(acked.clone())
        .unwrap();
    for i in 0..2000 {
        p.send(BaseRecord::<(), _>::to("term").payload(&format!("v{i}")))
            .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
    drop(p);
    let pid = broker.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = broker.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "gregor did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "exit status {exit:?}");
    let broker = BrokerProcess::start(&dir, port);
    let stored = read_all(&broker.addr.to_string(), "term", 1);
    assert_eq!(stored, *acked.0.lock().unwrap());
}
