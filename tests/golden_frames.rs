//! Golden request frames from librdkafka.
//!
//! `librdkafka_frames_decode_and_round_trip` runs librdkafka (through the `rdkafka` crate)
//! against a tiny fake broker in this file: a std TCP listener that answers just enough for the
//! client to send ApiVersions, Metadata, Produce (once per compression codec), Fetch,
//! FindCoordinator and JoinGroup. Every request frame it captures must decode with our codec,
//! carry the values the client was configured with, and re-encode to the identical bytes.
//!
//! `committed_golden_frames_decode_and_round_trip` runs the same checks on the frames committed
//! under `tests/golden/` (header + body, without the 4-byte size prefix), so the golden bytes
//! stay checked without librdkafka and whatever a newer librdkafka sends. They also seed the
//! request-decoder fuzz corpus. Refresh them with
//! `GOLDEN_BLESS=1 cargo test --test golden_frames librdkafka` (the capture writes whatever the
//! current librdkafka sends, after checking it).
// The fake broker and the test waits use real clocks: they are drivers, not machines.
#![allow(clippy::disallowed_methods)]

use bytes::{Bytes, BytesMut};
use gregor::protocol::api_versions::{api_versions_response, unsupported_api_versions_frame};
use gregor::protocol::error::ErrorCode;
use gregor::protocol::frame::{encode_frame, FrameDecoder};
use gregor::protocol::generated::api_versions_response::ApiVersion;
use gregor::protocol::generated::fetch_response::{FetchableTopicResponse, PartitionData};
use gregor::protocol::generated::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use gregor::protocol::generated::produce_response::{
    PartitionProduceResponse, TopicProduceResponse,
};
use gregor::protocol::generated::{
    ApiKey, ApiVersionsResponse, ConsumerProtocolSubscription, FetchResponse,
    FindCoordinatorResponse, JoinGroupResponse, MetadataResponse, ProduceResponse, RequestBody,
    RequestHeader, ResponseBody,
};
use gregor::protocol::header::{
    decode_request, decode_request_header, encode_request, encode_response,
};
use gregor::protocol::message::Message;
use gregor::protocol::primitives::Uuid;
use gregor::protocol::records::{Compression, RecordBatches};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const TOPIC: &str = "golden-topic";
const TOPIC_ID: Uuid = Uuid([
    0x67, 0x6f, 0x6c, 0x64, 0x65, 0x6e, 0x2d, 0x74, 0x6f, 0x70, 0x69, 0x63, 0x2d, 0x69, 0x64, 0x01,
]);
const CLIENT_ID: &str = "gregor-golden";
const GROUP: &str = "golden-group";
const NODE_ID: i32 = 1;
const FETCH_OFFSET: i64 = 42;
const FETCH_WAIT_MAX_MS: i32 = 250;
const REQUEST_TIMEOUT_MS: i32 = 5000;
const SESSION_TIMEOUT_MS: i32 = 10_000;
const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];
/// How long any one wait for the client may take before the test fails.
const WAIT: Duration = Duration::from_secs(15);

/// The records each producer sends: repetitive enough that every codec shrinks them (librdkafka
/// sends a batch uncompressed when compression does not pay).
fn sent_records(codec: Compression) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..3)
        .map(|i| {
            let key = format!("key-{i}").into_bytes();
            let value = format!("value-{}-{i}-{}", codec.name(), "golden ".repeat(12)).into_bytes();
            (key, value)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The checks, shared by the capture test and the committed-files test.

/// Decodes `frame`, checks the header, and checks that re-encoding it at the same version
/// gives back exactly the same bytes.
fn decode_and_round_trip(frame: &Bytes, key: ApiKey) -> (RequestHeader, RequestBody) {
    let (header, body) = decode_request(frame.clone()).expect("request decodes");
    assert_eq!(header.request_api_key, key.as_i16(), "api key");
    assert_eq!(header.client_id.as_deref(), Some(CLIENT_ID), "client id");
    let again = encode_request(
        header.correlation_id,
        header.client_id.as_deref(),
        header.request_api_version,
        &body,
    )
    .expect("request re-encodes");
    assert_eq!(
        &again[..],
        &frame[..],
        "{} v{} does not re-encode to the same bytes",
        key.name(),
        header.request_api_version
    );
    (header, body)
}

fn check_api_versions(frame: &Bytes) {
    let (header, body) = decode_and_round_trip(frame, ApiKey::ApiVersions);
    let RequestBody::ApiVersions(req) = body else {
        panic!("not ApiVersions")
    };
    assert!(header.request_api_version >= 3, "librdkafka 2.x asks v3+");
    assert_eq!(req.client_software_name, "librdkafka");
    assert!(
        req.client_software_version.starts_with("2."),
        "{}",
        req.client_software_version
    );
}

fn check_metadata(frame: &Bytes) {
    let (_, body) = decode_and_round_trip(frame, ApiKey::Metadata);
    let RequestBody::Metadata(req) = body else {
        panic!("not Metadata")
    };
    let names: Vec<_> = req
        .topics
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| t.name)
        .collect();
    assert_eq!(names, [TOPIC]);
}

fn check_produce(frame: &Bytes, codec: Compression) {
    let (_, body) = decode_and_round_trip(frame, ApiKey::Produce);
    let RequestBody::Produce(req) = body else {
        panic!("not Produce")
    };
    assert_eq!(req.acks, -1, "acks=all");
    assert_eq!(req.timeout_ms, REQUEST_TIMEOUT_MS, "request.timeout.ms");
    assert_eq!(req.transactional_id, None);
    let [topic] = &req.topic_data[..] else {
        panic!("one topic expected: {:?}", req.topic_data)
    };
    assert_eq!(topic.name, TOPIC);
    let [partition] = &topic.partition_data[..] else {
        panic!("one partition expected")
    };
    assert_eq!(partition.index, 0);
    let records = partition.records.clone().expect("records");
    // The records field is a slice of the frame, not a copy.
    assert!(frame.as_ptr_range().contains(&records.as_ptr()));

    let mut got = Vec::new();
    for batch in RecordBatches::new(records) {
        let batch = batch.expect("record batch parses");
        batch.verify_crc().expect("CRC valid");
        batch
            .validate_for_produce()
            .expect("batch valid for produce");
        assert_eq!(batch.header().compression().expect("known codec"), codec);
        for record in batch.records(1 << 20).expect("records decompress") {
            let record = record.expect("record decodes");
            got.push((
                record.key.expect("key").to_vec(),
                record.value.expect("value").to_vec(),
            ));
        }
    }
    assert_eq!(got, sent_records(codec));
}

fn check_fetch(frame: &Bytes) {
    let (header, body) = decode_and_round_trip(frame, ApiKey::Fetch);
    let RequestBody::Fetch(req) = body else {
        panic!("not Fetch")
    };
    let version = header.request_api_version;
    // A consumer fetches as replica -1: in the header field before v15, in replica_state since.
    if version >= 15 {
        assert_eq!(req.replica_state.replica_id, -1);
    } else {
        assert_eq!(req.replica_id, -1);
    }
    assert_eq!(req.max_wait_ms, FETCH_WAIT_MAX_MS, "fetch.wait.max.ms");
    assert_eq!(req.min_bytes, 1, "fetch.min.bytes");
    assert_eq!(
        req.isolation_level, 1,
        "read_committed is librdkafka's default"
    );
    let [topic] = &req.topics[..] else {
        panic!("one topic expected: {:?}", req.topics)
    };
    // Fetch v13 names topics by id only.
    if version >= 13 {
        assert_eq!(topic.topic_id, TOPIC_ID);
    } else {
        assert_eq!(topic.topic, TOPIC);
    }
    let [partition] = &topic.partitions[..] else {
        panic!("one partition expected")
    };
    assert_eq!(partition.partition, 0);
    assert_eq!(partition.fetch_offset, FETCH_OFFSET);
    assert!(partition.partition_max_bytes > 0);
}

fn check_find_coordinator(frame: &Bytes) {
    let (header, body) = decode_and_round_trip(frame, ApiKey::FindCoordinator);
    let RequestBody::FindCoordinator(req) = body else {
        panic!("not FindCoordinator")
    };
    assert_eq!(req.key_type, 0, "group coordinator");
    // v4 batches keys (KIP-699).
    if header.request_api_version >= 4 {
        assert_eq!(req.coordinator_keys, [GROUP]);
    } else {
        assert_eq!(req.key, GROUP);
    }
}

fn check_join_group(frame: &Bytes) {
    let (_, body) = decode_and_round_trip(frame, ApiKey::JoinGroup);
    let RequestBody::JoinGroup(req) = body else {
        panic!("not JoinGroup")
    };
    assert_eq!(req.group_id, GROUP);
    assert_eq!(req.protocol_type, "consumer");
    assert_eq!(
        req.session_timeout_ms, SESSION_TIMEOUT_MS,
        "session.timeout.ms"
    );
    assert!(!req.protocols.is_empty());
    for protocol in &req.protocols {
        // The metadata is a ConsumerProtocolSubscription behind its own i16 version.
        let mut metadata = protocol.metadata.clone();
        let version = gregor::protocol::primitives::read_i16(&mut metadata).expect("version");
        let subscription = ConsumerProtocolSubscription::decode(&mut metadata, version)
            .unwrap_or_else(|e| panic!("{} subscription v{version}: {e}", protocol.name));
        assert!(metadata.is_empty(), "bytes left after the subscription");
        assert_eq!(subscription.topics, [TOPIC], "{}", protocol.name);
        let again = subscription.to_bytes(version).expect("re-encodes");
        assert_eq!(&again[..], &protocol.metadata[2..], "{}", protocol.name);
    }
}

/// What one golden frame must hold.
type Check = Box<dyn Fn(&Bytes)>;

/// The golden files and what each must hold.
fn golden_cases() -> Vec<(String, Check)> {
    let mut cases: Vec<(String, Check)> = vec![
        ("api_versions".into(), Box::new(check_api_versions)),
        ("metadata".into(), Box::new(check_metadata)),
        ("fetch".into(), Box::new(check_fetch)),
        ("find_coordinator".into(), Box::new(check_find_coordinator)),
        ("join_group".into(), Box::new(check_join_group)),
    ];
    for codec in CODECS {
        cases.push((
            format!("produce_{}", codec.name()),
            Box::new(move |f: &Bytes| check_produce(f, codec)),
        ));
    }
    cases
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.bin"))
}

#[test]
fn committed_golden_frames_decode_and_round_trip() {
    for (name, check) in golden_cases() {
        let path = golden_path(&name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        check(&Bytes::from(bytes));
    }
}

// ---------------------------------------------------------------------------------------------
// The fake broker.

/// Every request frame one connection or listener received, in arrival order.
type Captured = Arc<Mutex<Vec<Bytes>>>;

/// A one-node "cluster" on 127.0.0.1 that records every request frame and answers the few
/// APIs librdkafka needs to get to the request under test. Requests it does not answer are
/// left pending; the client times them out on its own.
struct FakeBroker {
    port: u16,
    captured: Captured,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeBroker {
    fn start() -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("local addr").port();
        let captured = Captured::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (captured, stop) = (captured.clone(), stop.clone());
            std::thread::spawn(move || accept_loop(listener, port, captured, stop))
        };
        FakeBroker {
            port,
            captured,
            stop,
            thread: Some(thread),
        }
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The first captured frame whose decoded request satisfies `pred`, calling `drive` (a
    /// client's poll) between looks; `None` after [`WAIT`].
    fn wait_for(
        &self,
        mut drive: impl FnMut(),
        pred: impl Fn(&RequestHeader, &RequestBody) -> bool,
    ) -> Option<Bytes> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let frames = self.captured.lock().map(|f| f.clone()).unwrap_or_default();
            let found = frames.into_iter().find(|f| {
                decode_request(f.clone()).is_ok_and(|(header, body)| pred(&header, &body))
            });
            if found.is_some() {
                return found;
            }
            drive();
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: TcpListener, port: u16, captured: Captured, stop: Arc<AtomicBool>) {
    let mut connections = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let (captured, stop) = (captured.clone(), stop.clone());
                connections.push(std::thread::spawn(move || {
                    serve_connection(stream, port, captured, stop)
                }));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(_) => break,
        }
    }
    for c in connections {
        let _ = c.join();
    }
}

/// Reads frames until the peer closes, an I/O error, or `stop`; every read and write has a
/// timeout so the thread always notices `stop`.
fn serve_connection(mut stream: TcpStream, port: u16, captured: Captured, stop: Arc<AtomicBool>) {
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(Duration::from_millis(50))))
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(2))))
        .and_then(|()| stream.set_nodelay(true));
    if setup.is_err() {
        return;
    }
    let decoder = FrameDecoder::new(1 << 20);
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 16 * 1024];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        }
        loop {
            let frame = match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(_) => return,
            };
            if let Ok(mut c) = captured.lock() {
                c.push(frame.clone());
            }
            if let Some(response) = respond(frame, port) {
                let mut out = BytesMut::new();
                if encode_frame(&response, &mut out).is_err() || stream.write_all(&out).is_err() {
                    return;
                }
            }
        }
    }
}

/// The response payload (header + body) for one request frame, or `None` to leave it pending.
fn respond(frame: Bytes, port: u16) -> Option<BytesMut> {
    let header = decode_request_header(&mut frame.clone()).ok()?;
    let (corr, version) = (header.correlation_id, header.request_api_version);
    let Ok((_, body)) = decode_request(frame) else {
        // An ApiVersions newer than we know: KIP-511's answer makes the client retry lower.
        return if header.request_api_key == ApiKey::ApiVersions.as_i16() {
            unsupported_api_versions_frame(corr).ok()
        } else {
            None
        };
    };
    let response = match body {
        RequestBody::ApiVersions(_) => ResponseBody::ApiVersions(fake_api_versions()),
        RequestBody::Metadata(_) => ResponseBody::Metadata(metadata(port)),
        RequestBody::Produce(req) => ResponseBody::Produce(ProduceResponse {
            responses: req
                .topic_data
                .iter()
                .map(|t| TopicProduceResponse {
                    name: t.name.clone(),
                    partition_responses: t
                        .partition_data
                        .iter()
                        .map(|p| PartitionProduceResponse {
                            index: p.index,
                            base_offset: 0,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        RequestBody::Fetch(req) => {
            // Nothing to return: hold the answer a little, as a broker waits for min.bytes.
            let wait = u64::try_from(req.max_wait_ms).unwrap_or(0).min(50);
            std::thread::sleep(Duration::from_millis(wait));
            ResponseBody::Fetch(FetchResponse {
                responses: req
                    .topics
                    .iter()
                    .map(|t| FetchableTopicResponse {
                        topic: t.topic.clone(),
                        topic_id: t.topic_id,
                        partitions: t
                            .partitions
                            .iter()
                            .map(|p| PartitionData {
                                partition_index: p.partition,
                                high_watermark: p.fetch_offset,
                                last_stable_offset: p.fetch_offset,
                                log_start_offset: 0,
                                records: Some(Bytes::new()),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
        }
        RequestBody::FindCoordinator(req) => {
            use gregor::protocol::generated::find_coordinator_response::Coordinator;
            ResponseBody::FindCoordinator(FindCoordinatorResponse {
                node_id: NODE_ID,
                host: "127.0.0.1".into(),
                port: i32::from(port),
                coordinators: req
                    .coordinator_keys
                    .iter()
                    .map(|key| Coordinator {
                        key: key.clone(),
                        node_id: NODE_ID,
                        host: "127.0.0.1".into(),
                        port: i32::from(port),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
        }
        // Turn every join away (retriably), so the consumer keeps trying until it is closed
        // and never waits on an unanswered request.
        RequestBody::JoinGroup(_) => ResponseBody::JoinGroup(JoinGroupResponse {
            error_code: ErrorCode::CoordinatorLoadInProgress.code(),
            ..Default::default()
        }),
        _ => return None,
    };
    encode_response(corr, version, &response).ok()
}

/// The broker's own ApiVersions table plus the group APIs (not served by gregor yet), so that
/// librdkafka's consumer group reaches JoinGroup.
fn fake_api_versions() -> ApiVersionsResponse {
    let mut response = api_versions_response();
    for key in [
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::FindCoordinator,
        ApiKey::JoinGroup,
        ApiKey::Heartbeat,
        ApiKey::LeaveGroup,
        ApiKey::SyncGroup,
    ] {
        let (min_version, max_version) = key.valid_versions();
        response.api_keys.push(ApiVersion {
            api_key: key.as_i16(),
            min_version,
            max_version,
            unknown_tagged_fields: Vec::new(),
        });
    }
    response.api_keys.sort_by_key(|a| a.api_key);
    response
}

fn metadata(port: u16) -> MetadataResponse {
    MetadataResponse {
        brokers: vec![MetadataResponseBroker {
            node_id: NODE_ID,
            host: "127.0.0.1".into(),
            port: i32::from(port),
            rack: None,
            unknown_tagged_fields: Vec::new(),
        }],
        cluster_id: Some("golden-cluster".into()),
        controller_id: NODE_ID,
        topics: vec![MetadataResponseTopic {
            error_code: 0,
            name: Some(TOPIC.into()),
            topic_id: TOPIC_ID,
            is_internal: false,
            partitions: vec![MetadataResponsePartition {
                error_code: 0,
                partition_index: 0,
                leader_id: NODE_ID,
                leader_epoch: 0,
                replica_nodes: vec![NODE_ID],
                isr_nodes: vec![NODE_ID],
                offline_replicas: Vec::new(),
                unknown_tagged_fields: Vec::new(),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The capture test.

fn client_config(broker: &FakeBroker) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker.bootstrap())
        .set("client.id", CLIENT_ID)
        .set("socket.timeout.ms", "5000")
        .set("reconnect.backoff.ms", "10")
        .set("retry.backoff.ms", "20")
        .set("topic.metadata.refresh.interval.ms", "600000");
    config
}

fn is(key: ApiKey) -> impl Fn(&RequestHeader, &RequestBody) -> bool {
    move |h, _| h.request_api_key == key.as_i16()
}

/// Produces `sent_records(codec)` through a fresh fake broker; returns the ApiVersions,
/// Metadata (naming the topic) and Produce frames.
fn capture_produce(codec: Compression) -> (Bytes, Bytes, Bytes) {
    let broker = FakeBroker::start();
    let producer: BaseProducer = client_config(&broker)
        .set("acks", "all")
        .set("compression.codec", codec.name())
        .set("linger.ms", "20")
        .set("request.timeout.ms", REQUEST_TIMEOUT_MS.to_string())
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    for (key, value) in sent_records(codec) {
        producer
            .send(BaseRecord::to(TOPIC).partition(0).key(&key).payload(&value))
            .map_err(|(e, _)| e)
            .expect("enqueue");
    }
    producer.flush(WAIT).expect("delivered");
    let none = || {};
    let produce = broker
        .wait_for(none, is(ApiKey::Produce))
        .expect("a Produce request");
    let api_versions = broker
        .wait_for(none, is(ApiKey::ApiVersions))
        .expect("an ApiVersions request");
    let metadata = broker
        .wait_for(none, |_, body| {
            matches!(body, RequestBody::Metadata(m) if m.topics.as_ref().is_some_and(|t| !t.is_empty()))
        })
        .expect("a Metadata request naming the topic");
    drop(producer);
    (api_versions, metadata, produce)
}

fn capture_fetch() -> Bytes {
    let broker = FakeBroker::start();
    let consumer: BaseConsumer = client_config(&broker)
        // librdkafka wants a group id even for assign(); no group protocol runs.
        .set("group.id", "golden-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", FETCH_WAIT_MAX_MS.to_string())
        .set("fetch.min.bytes", "1")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Offset(FETCH_OFFSET))
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let fetch = broker.wait_for(
        || {
            let _ = consumer.poll(Duration::from_millis(10));
        },
        is(ApiKey::Fetch),
    );
    drop(consumer);
    fetch.expect("a Fetch request")
}

fn capture_join_group() -> (Bytes, Bytes) {
    let broker = FakeBroker::start();
    let consumer: BaseConsumer = client_config(&broker)
        .set("group.id", GROUP)
        .set("session.timeout.ms", SESSION_TIMEOUT_MS.to_string())
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    let poll = || {
        let _ = consumer.poll(Duration::from_millis(10));
    };
    let join = broker.wait_for(poll, is(ApiKey::JoinGroup));
    let find = broker.wait_for(poll, is(ApiKey::FindCoordinator));
    drop(consumer);
    (
        find.expect("a FindCoordinator request"),
        join.expect("a JoinGroup request"),
    )
}

#[test]
fn librdkafka_frames_decode_and_round_trip() {
    let started = Instant::now();
    let mut captured: Vec<(String, Bytes)> = Vec::new();
    for codec in CODECS {
        let (api_versions, metadata, produce) = capture_produce(codec);
        if codec == Compression::None {
            captured.push(("api_versions".into(), api_versions));
            captured.push(("metadata".into(), metadata));
        }
        captured.push((format!("produce_{}", codec.name()), produce));
    }
    captured.push(("fetch".into(), capture_fetch()));
    let (find, join) = capture_join_group();
    captured.push(("find_coordinator".into(), find));
    captured.push(("join_group".into(), join));

    let bless = std::env::var_os("GOLDEN_BLESS").is_some();
    for (name, check) in golden_cases() {
        let frame = captured
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| f)
            .unwrap_or_else(|| panic!("{name} not captured"));
        let (header, _) = decode_request(frame.clone()).expect("decodes");
        eprintln!(
            "{name}: {} v{}, {} bytes",
            ApiKey::from_i16(header.request_api_key).map_or("?", |k| k.name()),
            header.request_api_version,
            frame.len()
        );
        check(frame);
        if bless {
            let path = golden_path(&name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, frame).expect("write golden file");
        }
    }
    eprintln!("captured in {:?}", started.elapsed());
}
