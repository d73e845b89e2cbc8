//! Tests of the generated message code: round trips of every message at every version, decoders
//! fed truncated, corrupted and random input, and the encoding rules the generator implements
//! (tagged fields, absent fields, nullable structs, unknown tags, zero-copy records).

use crate::protocol::arbitrary::{Arbitrary, Entropy, MessageVisitor};
use crate::protocol::generated::api_versions_response::ApiVersion;
use crate::protocol::generated::fetch_response::{
    FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
};
use crate::protocol::generated::produce_request::{PartitionProduceData, TopicProduceData};
use crate::protocol::generated::{
    self, ApiKey, ApiVersionsResponse, ConsumerGroupHeartbeatResponse, FetchResponse,
    MetadataRequest, ProduceRequest, RequestBody, ResponseBody,
};
use crate::protocol::message::Message;
use crate::protocol::primitives::{DecodeError, EncodeError, RawTaggedField};
use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::fmt::Debug;

/// Cases per message and version; ~700 message-versions keep the whole sweep to seconds.
const CASES_PER_VERSION: u32 = 32;

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn encode<M: Message>(m: &M, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    m.encode(&mut buf, version).expect("encodes");
    buf.freeze()
}

/// Value → bytes → value → bytes: same value, same bytes, exact size; a strict prefix never
/// decodes and a corrupted byte never panics.
fn check_round_trip<M: Message + Arbitrary + PartialEq + Debug>(
    entropy: &[u8],
    version: i16,
    at: Index,
) -> Result<(), TestCaseError> {
    let fail = |what: &str, e: &dyn Debug| TestCaseError::fail(format!("{what}: {e:?}"));
    let value = M::arbitrary(&mut Entropy::new(entropy), version);
    let size = value
        .compute_size(version)
        .map_err(|e| fail("compute_size", &e))?;
    let mut buf = BytesMut::new();
    value
        .encode(&mut buf, version)
        .map_err(|e| fail("encode", &e))?;
    prop_assert_eq!(
        buf.len(),
        size,
        "compute_size differs from the encoded length"
    );
    let bytes = buf.freeze();

    let mut rest = bytes.clone();
    let decoded = M::decode(&mut rest, version).map_err(|e| fail("decode", &e))?;
    prop_assert!(rest.is_empty(), "decode left {} bytes", rest.len());
    prop_assert_eq!(&decoded, &value);
    let mut again = BytesMut::new();
    decoded
        .encode(&mut again, version)
        .map_err(|e| fail("re-encode", &e))?;
    prop_assert_eq!(&again[..], &bytes[..], "re-encoding changed the bytes");

    if !bytes.is_empty() {
        let cut = at.index(bytes.len());
        let mut prefix = bytes.slice(..cut);
        prop_assert!(
            M::decode(&mut prefix, version).is_err(),
            "a {cut}-byte prefix of {} decoded",
            bytes.len()
        );
        let mut corrupted = bytes.to_vec();
        corrupted[cut] ^= entropy.first().copied().unwrap_or(0) | 0x81;
        let _ = M::decode(&mut Bytes::from(corrupted), version);
    }
    Ok(())
}

#[derive(Default)]
struct RoundTripAll {
    messages: usize,
    versions: usize,
}

impl MessageVisitor for RoundTripAll {
    fn visit<M: Message + Arbitrary + PartialEq + Debug>(&mut self) {
        self.messages += 1;
        for version in M::VERSIONS.0..=M::VERSIONS.1 {
            self.versions += 1;
            runner(CASES_PER_VERSION)
                .run(&(vec(any::<u8>(), 0..512), any::<Index>()), |(data, at)| {
                    check_round_trip::<M>(&data, version, at)
                })
                .unwrap_or_else(|e| panic!("{} v{version}: {e}", M::NAME));
        }
    }
}

#[test]
fn every_message_round_trips_at_every_version() {
    let mut all = RoundTripAll::default();
    generated::visit_all_messages(&mut all);
    eprintln!(
        "round-tripped {} messages at {} message-versions, {CASES_PER_VERSION} cases each",
        all.messages, all.versions
    );
    assert!(all.messages > 200 && all.versions > 700);
}

#[test]
fn random_bytes_never_panic_any_decoder() {
    for &key in ApiKey::ALL {
        let (lo, hi) = key.valid_versions();
        for version in lo..=hi {
            runner(8)
                .run(&vec(any::<u8>(), 0..256), |data| {
                    let bytes = Bytes::from(data);
                    let _ = RequestBody::decode(key.as_i16(), version, &mut bytes.clone());
                    let _ = ResponseBody::decode(key.as_i16(), version, &mut bytes.clone());
                    Ok(())
                })
                .unwrap();
        }
    }
}

proptest! {
    #[test]
    fn random_frames_never_panic_decode_request(data in vec(any::<u8>(), 0..512)) {
        let _ = crate::protocol::header::decode_request(Bytes::from(data));
    }

    #[test]
    fn random_frames_with_a_valid_prefix_never_panic(
        key in 0usize..64, version in -1i16..20, data in vec(any::<u8>(), 0..512)
    ) {
        let key = ApiKey::ALL[key % ApiKey::ALL.len()].as_i16();
        let mut frame = Vec::new();
        frame.extend_from_slice(&key.to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&data);
        let _ = crate::protocol::header::decode_request(Bytes::from(frame));
    }
}

// ---- tagged fields ----

/// ApiVersionsResponse v3 with no APIs: error code, empty compact array, throttle, tag count.
const EMPTY_API_VERSIONS_V3: [u8; 8] = [0, 0, 1, 0, 0, 0, 0, 0];

#[test]
fn tagged_field_at_its_default_is_omitted() {
    let resp = ApiVersionsResponse::default();
    assert_eq!(resp.finalized_features_epoch, -1);
    assert_eq!(&encode(&resp, 3)[..], &EMPTY_API_VERSIONS_V3);
}

#[test]
fn tagged_field_off_its_default_is_written() {
    let resp = ApiVersionsResponse {
        finalized_features_epoch: 5,
        zk_migration_ready: true,
        ..ApiVersionsResponse::default()
    };
    let bytes = encode(&resp, 3);
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0, 0, 1, 0, 0, 0, 0,
        2,                           // two tagged fields
        1, 8, 0, 0, 0, 0, 0, 0, 0, 5, // tag 1: FinalizedFeaturesEpoch
        3, 1, 1,                     // tag 3: ZkMigrationReady
    ];
    assert_eq!(&bytes[..], expected);
    assert_eq!(
        ApiVersionsResponse::decode(&mut bytes.clone(), 3).unwrap(),
        resp
    );
}

#[test]
fn tagged_struct_is_written_only_when_it_differs_from_its_default() {
    let mut partition = PartitionData::default();
    let response = |p: PartitionData| FetchResponse {
        responses: vec![FetchableTopicResponse {
            partitions: vec![p],
            ..Default::default()
        }],
        ..Default::default()
    };
    let plain = encode(&response(partition.clone()), 12);
    partition.current_leader = LeaderIdAndEpoch {
        leader_id: 3,
        leader_epoch: 9,
        ..Default::default()
    };
    let with_leader = encode(&response(partition.clone()), 12);
    // tag 1, size 9 (two int32 + an empty tag section), then the struct.
    let tagged: &[u8] = &[1, 1, 9, 0, 0, 0, 3, 0, 0, 0, 9, 0];
    assert_eq!(with_leader.len(), plain.len() + tagged.len() - 1);
    assert!(with_leader.windows(tagged.len()).any(|w| w == tagged));
    let decoded = FetchResponse::decode(&mut with_leader.clone(), 12).unwrap();
    assert_eq!(decoded.responses[0].partitions[0], partition);
}

#[test]
fn unknown_tagged_fields_survive_and_keep_tag_order() {
    let resp = ApiVersionsResponse {
        finalized_features_epoch: 1,
        unknown_tagged_fields: vec![
            RawTaggedField {
                tag: 0,
                data: Bytes::from_static(&[1]),
            },
            RawTaggedField {
                tag: 9,
                data: Bytes::from_static(&[7, 7]),
            },
        ],
        ..ApiVersionsResponse::default()
    };
    // Tag 0 is a known field (SupportedFeatures) but the value is unknown-typed here; the
    // writer must still interleave it before the known tag 1.
    let bytes = encode(&resp, 3);
    assert_eq!(
        &bytes[7..],
        &[3, 0, 1, 1, 1, 8, 0, 0, 0, 0, 0, 0, 0, 1, 9, 2, 7, 7]
    );
    assert_eq!(bytes.len(), resp.compute_size(3).unwrap());

    let only_unknown = ApiVersionsResponse {
        unknown_tagged_fields: vec![RawTaggedField {
            tag: 40,
            data: Bytes::from_static(b"xyz"),
        }],
        ..ApiVersionsResponse::default()
    };
    let bytes = encode(&only_unknown, 4);
    assert_eq!(
        ApiVersionsResponse::decode(&mut bytes.clone(), 4).unwrap(),
        only_unknown
    );
}

#[test]
fn unknown_tagged_fields_cannot_be_written_before_flexible_versions() {
    let resp = ApiVersionsResponse {
        unknown_tagged_fields: vec![RawTaggedField {
            tag: 40,
            data: Bytes::new(),
        }],
        ..ApiVersionsResponse::default()
    };
    let mut buf = BytesMut::new();
    assert!(matches!(
        resp.encode(&mut buf, 2),
        Err(EncodeError::FieldNotSupported {
            field: "unknown_tagged_fields",
            ..
        })
    ));
}

#[test]
fn known_tagged_field_with_trailing_bytes_is_rejected() {
    // FinalizedFeaturesEpoch (tag 1) declared 9 bytes long: one too many for an int64.
    let bytes = Bytes::from_static(&[0, 0, 1, 0, 0, 0, 0, 1, 1, 9, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    assert!(ApiVersionsResponse::decode(&mut bytes.clone(), 3).is_err());
}

// ---- fields a version lacks ----

#[test]
fn non_ignorable_field_at_a_version_lacking_it_is_an_error() {
    let req = ProduceRequest {
        transactional_id: Some("tx".into()),
        ..Default::default()
    };
    let mut buf = BytesMut::new();
    assert_eq!(
        req.encode(&mut buf, 2),
        Err(EncodeError::FieldNotSupported {
            message: "ProduceRequest",
            field: "transactional_id",
            version: 2
        })
    );
    // At its default it is simply not written.
    let req = ProduceRequest::default();
    assert_eq!(encode(&req, 2).len(), 2 + 4 + 4);
}

#[test]
fn ignorable_field_at_a_version_lacking_it_is_dropped() {
    let resp = ApiVersionsResponse {
        throttle_time_ms: 100,
        ..Default::default()
    };
    let bytes = encode(&resp, 0);
    assert_eq!(&bytes[..], &[0, 0, 0, 0, 0, 0]);
    assert_eq!(
        ApiVersionsResponse::decode(&mut bytes.clone(), 0)
            .unwrap()
            .throttle_time_ms,
        0
    );
}

#[test]
fn null_in_a_version_that_forbids_it_is_an_error() {
    // MetadataRequest.Topics may be null (all topics) from v1 on, never in v0.
    let all_topics = MetadataRequest {
        topics: None,
        ..Default::default()
    };
    let mut buf = BytesMut::new();
    assert!(matches!(
        all_topics.encode(&mut buf, 0),
        Err(EncodeError::UnexpectedNull(_))
    ));
    assert!(all_topics.compute_size(0).is_err());
    assert_eq!(&encode(&all_topics, 1)[..], &[0xff, 0xff, 0xff, 0xff]);
    let null_array = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]);
    assert_eq!(
        MetadataRequest::decode(&mut null_array.clone(), 0),
        Err(DecodeError::UnexpectedNull)
    );
    assert_eq!(
        MetadataRequest::decode(&mut null_array.clone(), 1).unwrap(),
        all_topics
    );
}

// ---- nullable structs ----

#[test]
fn nullable_struct_has_a_presence_marker() {
    let none = ConsumerGroupHeartbeatResponse::default();
    assert_eq!(none.assignment, None);
    let some = ConsumerGroupHeartbeatResponse {
        assignment: Some(Default::default()),
        ..Default::default()
    };
    let a = encode(&none, 0);
    let b = encode(&some, 0);
    // -1 marks null; 1 + an empty assignment (empty compact array, empty tag section) otherwise.
    assert_eq!(a[a.len() - 2], 0xff);
    assert_eq!(&b[b.len() - 4..], &[1, 1, 0, 0]);
    assert_eq!(
        ConsumerGroupHeartbeatResponse::decode(&mut b.clone(), 0).unwrap(),
        some
    );
}

// ---- versions and dispatch ----

#[test]
fn versions_outside_the_spec_are_refused_both_ways() {
    let mut buf = BytesMut::new();
    assert!(matches!(
        ProduceRequest::default().encode(&mut buf, 12),
        Err(EncodeError::UnsupportedVersion { .. })
    ));
    assert!(matches!(
        ProduceRequest::default().compute_size(-1),
        Err(EncodeError::UnsupportedVersion { .. })
    ));
    assert!(matches!(
        ProduceRequest::decode(&mut Bytes::new(), 12),
        Err(DecodeError::UnsupportedVersion { .. })
    ));
}

#[test]
fn dispatch_rejects_unknown_api_keys() {
    assert_eq!(
        RequestBody::decode(999, 0, &mut Bytes::new()),
        Err(DecodeError::UnknownApiKey(999))
    );
    assert_eq!(ApiKey::from_i16(0), Some(ApiKey::Produce));
    assert_eq!(ApiKey::Produce.name(), "Produce");
    assert_eq!(ApiKey::ApiVersions.as_i16(), 18);
    assert!(ApiKey::Fetch.is_flexible(12) && !ApiKey::Fetch.is_flexible(11));
}

#[test]
fn dispatch_round_trips_a_body() {
    let body = ResponseBody::ApiVersions(ApiVersionsResponse {
        api_keys: vec![ApiVersion {
            api_key: 0,
            min_version: 0,
            max_version: 11,
            ..Default::default()
        }],
        ..Default::default()
    });
    let mut buf = BytesMut::new();
    body.encode(&mut buf, 3).unwrap();
    assert_eq!(buf.len(), body.compute_size(3).unwrap());
    assert_eq!(
        ResponseBody::decode(18, 3, &mut buf.freeze()).unwrap(),
        body
    );
    assert_eq!(body.api_key(), ApiKey::ApiVersions);
}

// ---- records are never copied ----

#[test]
fn produce_records_are_a_slice_of_the_input() {
    let records = Bytes::from(vec![0xab; 1 << 20]);
    let req = ProduceRequest {
        acks: -1,
        timeout_ms: 30_000,
        topic_data: vec![TopicProduceData {
            name: "t".into(),
            partition_data: vec![PartitionProduceData {
                index: 0,
                records: Some(records),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    for version in [3, 9, 11] {
        let input = encode(&req, version);
        let decoded = ProduceRequest::decode(&mut input.clone(), version).unwrap();
        let got = decoded.topic_data[0].partition_data[0]
            .records
            .as_ref()
            .unwrap();
        assert_eq!(got.len(), 1 << 20);
        let range = input.as_ptr_range();
        assert!(
            range.contains(&got.as_ptr()),
            "records were copied at v{version}"
        );
    }
}
