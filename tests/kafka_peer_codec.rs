//! Differential check of the generated codec against a real Apache Kafka broker (see
//! `../shared/peers/README.md`). For every API and version both sides serve, a request encoded
//! by gregor is sent to Kafka, Kafka's response is decoded by gregor, and re-encoding the decoded
//! response must give back Kafka's bytes exactly.
//!
//! A development aid, not part of CI: ignored unless run explicitly with a broker address:
//! `GREGOR_KAFKA_PEER=127.0.0.1:19092 cargo test --test kafka_peer_codec -- --ignored --nocapture`

use bytes::{BufMut, Bytes, BytesMut};
use gregor::protocol::api_versions;
use gregor::protocol::generated::*;
use gregor::protocol::header::{decode_response, encode_request, encode_response};
use gregor::protocol::primitives::{put_varint, put_varlong, Uuid};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;

const TOPIC: &str = "gregor-codec";

struct Peer {
    addr: String,
    stream: TcpStream,
    correlation_id: i32,
    failures: Vec<String>,
    /// Requests Kafka refused (closed the connection or never answered) while `lenient`: default
    /// bodies of APIs we do not serve can be invalid requests, which says nothing of the codec.
    refused: Vec<String>,
    lenient: bool,
    calls: usize,
}

impl Peer {
    fn open(addr: &str) -> TcpStream {
        let stream = TcpStream::connect(addr).expect("connect to the Kafka peer");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .expect("read timeout");
        stream
    }

    fn connect(addr: &str) -> Peer {
        Peer {
            addr: addr.to_string(),
            stream: Peer::open(addr),
            correlation_id: 0,
            failures: Vec::new(),
            refused: Vec::new(),
            lenient: false,
            calls: 0,
        }
    }

    fn reconnect(&mut self) {
        self.stream = Peer::open(&self.addr);
    }

    fn send_frame(&mut self, frame: &[u8]) -> std::io::Result<Bytes> {
        let mut out = Vec::with_capacity(frame.len() + 4);
        out.extend_from_slice(&(frame.len() as i32).to_be_bytes());
        out.extend_from_slice(frame);
        self.stream.write_all(&out)?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut resp)?;
        Ok(Bytes::from(resp))
    }

    /// Sends `body` at `version`; returns the decoded response if every check passed.
    fn call(&mut self, version: i16, body: RequestBody) -> Option<ResponseBody> {
        self.calls += 1;
        self.correlation_id += 1;
        let key = body.api_key();
        let what = format!("{}/v{version}", key.name());
        let frame = match encode_request(self.correlation_id, Some("gregor-codec"), version, &body)
        {
            Ok(f) => f,
            Err(e) => {
                self.failures.push(format!("{what}: encode request: {e}"));
                return None;
            }
        };
        let resp = match self.send_frame(&frame) {
            Ok(r) => r,
            Err(e) => {
                let note = format!("{what}: Kafka closed the connection or timed out ({e})");
                if self.lenient {
                    self.refused.push(note);
                } else {
                    self.failures.push(note);
                }
                self.reconnect();
                return None;
            }
        };
        let (header, decoded) = match decode_response(key, version, resp.clone()) {
            Ok(d) => d,
            Err(e) => {
                self.failures.push(format!(
                    "{what}: decode response: {e} ({} bytes)",
                    resp.len()
                ));
                return None;
            }
        };
        if header.correlation_id != self.correlation_id {
            self.failures
                .push(format!("{what}: correlation id mismatch"));
        }
        match encode_response(header.correlation_id, version, &decoded) {
            Ok(again) if again[..] == resp[..] => {}
            Ok(again) => self.failures.push(format!(
                "{what}: re-encoded response differs ({} vs {} bytes)\n  kafka: {:02x?}\n  ours:  {:02x?}",
                resp.len(),
                again.len(),
                &resp[..resp.len().min(96)],
                &again[..again.len().min(96)]
            )),
            Err(e) => self.failures.push(format!("{what}: re-encode: {e}")),
        }
        Some(decoded)
    }
}

/// One record batch (magic 2) holding one record with `value`.
fn record_batch(value: &[u8]) -> Bytes {
    let mut record = BytesMut::new();
    record.put_i8(0); // attributes
    put_varlong(&mut record, 0); // timestamp delta
    put_varint(&mut record, 0); // offset delta
    put_varint(&mut record, -1); // null key
    put_varint(&mut record, value.len() as i32);
    record.put_slice(value);
    put_varint(&mut record, 0); // no headers
    let mut tail = BytesMut::new();
    tail.put_i16(0); // attributes
    tail.put_i32(0); // last offset delta
    tail.put_i64(1_700_000_000_000); // base timestamp
    tail.put_i64(1_700_000_000_000); // max timestamp
    tail.put_i64(-1); // producer id
    tail.put_i16(-1); // producer epoch
    tail.put_i32(-1); // base sequence
    tail.put_i32(1); // record count
    put_varint(&mut tail, record.len() as i32);
    tail.put_slice(&record);
    let mut batch = BytesMut::new();
    batch.put_i64(0); // base offset
    batch.put_i32((4 + 1 + 4 + tail.len()) as i32);
    batch.put_i32(-1); // partition leader epoch
    batch.put_i8(2); // magic
    batch.put_u32(crc32c::crc32c(&tail));
    batch.put_slice(&tail);
    batch.freeze()
}

fn versions(kafka: &BTreeMap<i16, (i16, i16)>, key: ApiKey) -> Vec<i16> {
    let ours = api_versions::supported(key.as_i16());
    match (ours, kafka.get(&key.as_i16())) {
        (Some((a, b)), Some(&(c, d))) => (a.max(c)..=b.min(d)).collect(),
        _ => Vec::new(),
    }
}

#[test]
#[ignore = "needs a running Kafka broker: set GREGOR_KAFKA_PEER"]
fn generated_codec_matches_kafka_bytes() {
    let Ok(addr) = std::env::var("GREGOR_KAFKA_PEER") else {
        eprintln!("GREGOR_KAFKA_PEER not set: skipped");
        return;
    };
    let mut peer = Peer::connect(&addr);

    // ApiVersions at every version, and Kafka's ranges next to ours.
    let mut kafka = BTreeMap::new();
    for v in 0..=4 {
        if let Some(ResponseBody::ApiVersions(r)) = peer.call(
            v,
            RequestBody::ApiVersions(ApiVersionsRequest {
                client_software_name: "gregor-codec".into(),
                client_software_version: "0.1".into(),
                ..Default::default()
            }),
        ) {
            for a in r.api_keys {
                kafka.insert(a.api_key, (a.min_version, a.max_version));
            }
        }
    }
    eprintln!("api                      gregor     kafka-4.1");
    for a in api_versions::SUPPORTED_APIS {
        let k = kafka.get(&a.key.as_i16());
        eprintln!(
            "{:<24} {:>2}({:>2})-{:<3} {:?}",
            a.key.name(),
            a.advertised_min,
            a.min,
            a.max,
            k
        );
    }

    // KIP-511: an ApiVersions version Kafka does not know gets a v0 body with error 35.
    let mut future = BytesMut::new();
    future.put_slice(&[0, 18, 0, 99, 0, 0, 0x7f, 0x7f, 0, 1, b'c', 0]);
    let resp = peer.send_frame(&future).expect("KIP-511 answer");
    let (_, body) = decode_response(ApiKey::ApiVersions, 0, resp).expect("v0 body");
    let ResponseBody::ApiVersions(body) = body else {
        unreachable!()
    };
    assert_eq!(body.error_code, 35);
    eprintln!("KIP-511 fallback from Kafka: {:?}", body.api_keys);

    let topic = |name: &str| metadata_request::MetadataRequestTopic {
        name: Some(name.into()),
        ..Default::default()
    };
    for v in versions(&kafka, ApiKey::CreateTopics) {
        peer.call(
            v,
            RequestBody::CreateTopics(CreateTopicsRequest {
                topics: vec![create_topics_request::CreatableTopic {
                    name: TOPIC.into(),
                    num_partitions: 2,
                    replication_factor: 1,
                    ..Default::default()
                }],
                timeout_ms: 10_000,
                ..Default::default()
            }),
        );
    }
    let mut topic_id = Uuid::NIL;
    for v in versions(&kafka, ApiKey::Metadata) {
        if let Some(ResponseBody::Metadata(m)) = peer.call(
            v,
            RequestBody::Metadata(MetadataRequest {
                topics: Some(vec![topic(TOPIC)]),
                // Before v4 the field does not exist and means "true".
                allow_auto_topic_creation: v < 4,
                ..Default::default()
            }),
        ) {
            if let Some(t) = m.topics.first() {
                if !t.topic_id.is_nil() {
                    topic_id = t.topic_id;
                }
            }
        }
    }
    assert!(!topic_id.is_nil(), "no topic id from Metadata");

    for v in versions(&kafka, ApiKey::Produce) {
        peer.call(
            v,
            RequestBody::Produce(ProduceRequest {
                acks: 1,
                timeout_ms: 10_000,
                topic_data: vec![produce_request::TopicProduceData {
                    name: TOPIC.into(),
                    partition_data: vec![produce_request::PartitionProduceData {
                        index: 0,
                        records: Some(record_batch(format!("hello v{v}").as_bytes())),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
        );
    }
    for v in versions(&kafka, ApiKey::Fetch) {
        let by_id = v >= 13;
        peer.call(
            v,
            RequestBody::Fetch(FetchRequest {
                replica_id: -1,
                max_wait_ms: 0,
                min_bytes: 0,
                max_bytes: 1 << 20,
                session_epoch: -1,
                topics: vec![fetch_request::FetchTopic {
                    topic: if by_id { String::new() } else { TOPIC.into() },
                    topic_id: if by_id { topic_id } else { Uuid::NIL },
                    partitions: vec![fetch_request::FetchPartition {
                        partition: 0,
                        fetch_offset: 0,
                        partition_max_bytes: 1 << 20,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
        );
    }
    for v in versions(&kafka, ApiKey::ListOffsets) {
        peer.call(
            v,
            RequestBody::ListOffsets(ListOffsetsRequest {
                replica_id: -1,
                topics: vec![list_offsets_request::ListOffsetsTopic {
                    name: TOPIC.into(),
                    partitions: vec![list_offsets_request::ListOffsetsPartition {
                        partition_index: 0,
                        timestamp: -1,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                timeout_ms: 1000,
                ..Default::default()
            }),
        );
    }
    for v in versions(&kafka, ApiKey::FindCoordinator) {
        peer.call(
            v,
            RequestBody::FindCoordinator(if v >= 4 {
                FindCoordinatorRequest {
                    coordinator_keys: vec!["gregor-codec-g".into()],
                    ..Default::default()
                }
            } else {
                FindCoordinatorRequest {
                    key: "gregor-codec-g".into(),
                    ..Default::default()
                }
            }),
        );
    }

    // Group APIs against a group nobody joined (errors still exercise every field) and, for
    // JoinGroup, a fresh group per version.
    let group = "gregor-codec-g".to_string();
    for v in versions(&kafka, ApiKey::JoinGroup) {
        peer.call(
            v,
            RequestBody::JoinGroup(JoinGroupRequest {
                group_id: format!("{group}-join-{v}"),
                session_timeout_ms: 10_000,
                rebalance_timeout_ms: 10_000,
                protocol_type: "consumer".into(),
                protocols: vec![join_group_request::JoinGroupRequestProtocol {
                    name: "range".into(),
                    metadata: Bytes::from_static(&[
                        0, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff,
                    ]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        );
    }
    for v in versions(&kafka, ApiKey::SyncGroup) {
        peer.call(
            v,
            RequestBody::SyncGroup(SyncGroupRequest {
                group_id: group.clone(),
                generation_id: 1,
                member_id: "nobody".into(),
                protocol_type: (v >= 5).then(|| "consumer".into()),
                protocol_name: (v >= 5).then(|| "range".into()),
                ..Default::default()
            }),
        );
    }
    for v in versions(&kafka, ApiKey::Heartbeat) {
        peer.call(
            v,
            RequestBody::Heartbeat(HeartbeatRequest {
                group_id: group.clone(),
                generation_id: 1,
                member_id: "nobody".into(),
                ..Default::default()
            }),
        );
    }
    for v in versions(&kafka, ApiKey::LeaveGroup) {
        peer.call(
            v,
            RequestBody::LeaveGroup(if v >= 3 {
                LeaveGroupRequest {
                    group_id: group.clone(),
                    members: vec![leave_group_request::MemberIdentity {
                        member_id: "nobody".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }
            } else {
                LeaveGroupRequest {
                    group_id: group.clone(),
                    member_id: "nobody".into(),
                    ..Default::default()
                }
            }),
        );
    }
    for v in versions(&kafka, ApiKey::OffsetCommit) {
        peer.call(
            v,
            RequestBody::OffsetCommit(OffsetCommitRequest {
                group_id: group.clone(),
                generation_id_or_member_epoch: -1,
                topics: vec![offset_commit_request::OffsetCommitRequestTopic {
                    name: TOPIC.into(),
                    partitions: vec![offset_commit_request::OffsetCommitRequestPartition {
                        partition_index: 0,
                        committed_offset: 1,
                        committed_metadata: Some("m".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
        );
    }
    for v in versions(&kafka, ApiKey::OffsetFetch) {
        peer.call(
            v,
            RequestBody::OffsetFetch(if v >= 8 {
                OffsetFetchRequest {
                    groups: vec![offset_fetch_request::OffsetFetchRequestGroup {
                        group_id: group.clone(),
                        topics: None,
                        ..Default::default()
                    }],
                    ..Default::default()
                }
            } else {
                OffsetFetchRequest {
                    group_id: group.clone(),
                    topics: Some(vec![offset_fetch_request::OffsetFetchRequestTopic {
                        name: TOPIC.into(),
                        partition_indexes: vec![0, 1],
                        ..Default::default()
                    }]),
                    ..Default::default()
                }
            }),
        );
    }
    for v in versions(&kafka, ApiKey::DescribeGroups) {
        peer.call(
            v,
            RequestBody::DescribeGroups(DescribeGroupsRequest {
                groups: vec![group.clone(), format!("{group}-join-9")],
                ..Default::default()
            }),
        );
    }
    for v in versions(&kafka, ApiKey::ListGroups) {
        peer.call(v, RequestBody::ListGroups(ListGroupsRequest::default()));
    }
    for v in versions(&kafka, ApiKey::OffsetDelete) {
        peer.call(
            v,
            RequestBody::OffsetDelete(OffsetDeleteRequest {
                group_id: group.clone(),
                topics: vec![offset_delete_request::OffsetDeleteRequestTopic {
                    name: TOPIC.into(),
                    partitions: vec![offset_delete_request::OffsetDeleteRequestPartition {
                        partition_index: 0,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
        );
    }
    for v in versions(&kafka, ApiKey::DeleteGroups) {
        peer.call(
            v,
            RequestBody::DeleteGroups(DeleteGroupsRequest {
                groups_names: vec![group.clone(), "no-such-group".into()],
                ..Default::default()
            }),
        );
    }

    // Admin APIs (validate-only where they would change the topic).
    for v in versions(&kafka, ApiKey::DescribeConfigs) {
        peer.call(
            v,
            RequestBody::DescribeConfigs(DescribeConfigsRequest {
                resources: vec![describe_configs_request::DescribeConfigsResource {
                    resource_type: 2,
                    resource_name: TOPIC.into(),
                    configuration_keys: Some(vec!["retention.ms".into(), "cleanup.policy".into()]),
                    ..Default::default()
                }],
                include_synonyms: v >= 1,
                include_documentation: v >= 3,
                ..Default::default()
            }),
        );
    }
    for v in versions(&kafka, ApiKey::AlterConfigs) {
        peer.call(
            v,
            RequestBody::AlterConfigs(AlterConfigsRequest {
                resources: vec![alter_configs_request::AlterConfigsResource {
                    resource_type: 2,
                    resource_name: TOPIC.into(),
                    configs: vec![alter_configs_request::AlterableConfig {
                        name: "retention.ms".into(),
                        value: Some("3600000".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                validate_only: true,
                ..Default::default()
            }),
        );
    }
    for v in versions(&kafka, ApiKey::IncrementalAlterConfigs) {
        peer.call(
            v,
            RequestBody::IncrementalAlterConfigs(IncrementalAlterConfigsRequest {
                resources: vec![incremental_alter_configs_request::AlterConfigsResource {
                    resource_type: 2,
                    resource_name: TOPIC.into(),
                    configs: vec![incremental_alter_configs_request::AlterableConfig {
                        name: "retention.ms".into(),
                        config_operation: 0,
                        value: Some("3600000".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                validate_only: true,
                ..Default::default()
            }),
        );
    }
    for v in versions(&kafka, ApiKey::CreatePartitions) {
        peer.call(
            v,
            RequestBody::CreatePartitions(CreatePartitionsRequest {
                topics: vec![create_partitions_request::CreatePartitionsTopic {
                    name: TOPIC.into(),
                    count: 3,
                    assignments: None,
                    ..Default::default()
                }],
                timeout_ms: 10_000,
                validate_only: true,
                ..Default::default()
            }),
        );
    }
    for v in versions(&kafka, ApiKey::DeleteRecords) {
        peer.call(
            v,
            RequestBody::DeleteRecords(DeleteRecordsRequest {
                topics: vec![delete_records_request::DeleteRecordsTopic {
                    name: TOPIC.into(),
                    partitions: vec![delete_records_request::DeleteRecordsPartition {
                        partition_index: 1,
                        offset: 0,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                timeout_ms: 10_000,
                ..Default::default()
            }),
        );
    }
    for v in versions(&kafka, ApiKey::InitProducerId) {
        peer.call(
            v,
            RequestBody::InitProducerId(InitProducerIdRequest {
                transactional_id: None,
                transaction_timeout_ms: 60_000,
                producer_id: -1,
                producer_epoch: -1,
                ..Default::default()
            }),
        );
    }
    for v in versions(&kafka, ApiKey::DescribeCluster) {
        peer.call(
            v,
            RequestBody::DescribeCluster(DescribeClusterRequest {
                endpoint_type: 1,
                ..Default::default()
            }),
        );
    }
    for v in versions(&kafka, ApiKey::DeleteTopics) {
        let name = format!("{TOPIC}-absent");
        peer.call(
            v,
            RequestBody::DeleteTopics(if v >= 6 {
                DeleteTopicsRequest {
                    topics: vec![delete_topics_request::DeleteTopicState {
                        name: Some(name),
                        ..Default::default()
                    }],
                    timeout_ms: 10_000,
                    ..Default::default()
                }
            } else {
                DeleteTopicsRequest {
                    topic_names: vec![name],
                    timeout_ms: 10_000,
                    ..Default::default()
                }
            }),
        );
    }

    // Every other API Kafka answers on this listener, with default request bodies: the
    // responses (often errors) still exercise the generated decoders of many more specs.
    let served: Vec<i16> = api_versions::SUPPORTED_APIS
        .iter()
        .map(|a| a.key.as_i16())
        .collect();
    peer.lenient = true;
    for (&key, &(lo, hi)) in &kafka {
        let Some(api) = ApiKey::from_i16(key) else {
            eprintln!("Kafka serves api key {key}, unknown to the generated code");
            continue;
        };
        if served.contains(&key) {
            continue;
        }
        let (glo, ghi) = api.valid_versions();
        for v in lo.max(glo)..=hi.min(ghi) {
            peer.call(v, RequestBody::default_for(api));
        }
    }

    eprintln!(
        "{} calls, {} refused by Kafka (default bodies), {} failures",
        peer.calls,
        peer.refused.len(),
        peer.failures.len()
    );
    for r in &peer.refused {
        eprintln!("refused {r}");
    }
    for f in &peer.failures {
        eprintln!("FAIL {f}");
    }
    assert!(peer.failures.is_empty());
}
