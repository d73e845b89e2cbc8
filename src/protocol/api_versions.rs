//! The one table of the APIs and versions this broker serves. The ApiVersions response is built
//! from it and request dispatch checks against it, so the two can never disagree.
//!
//! Minimums are Apache Kafka 4.1's (KIP-896 dropped the versions old clients no longer use;
//! checked against a 4.1 broker's ApiVersions answer, see `tests/kafka_peer_codec.rs`).
//! Maximums are the newest versions the generated code knows, at most Kafka 4.1's. Clients pick
//! the highest version both sides support: librdkafka 2.x, the Java client 3.x/4.x, kafka-python
//! (non-flexible Produce/Fetch/Metadata), kafkajs 2.2 and franz-go all find one here.

use crate::protocol::generated::api_versions_response::ApiVersion;
use crate::protocol::generated::{ApiKey, ApiVersionsResponse, ResponseBody};
use crate::protocol::header::encode_response;
use crate::protocol::primitives::EncodeResult;
use bytes::BytesMut;

/// Kafka's UNSUPPORTED_VERSION error code.
const UNSUPPORTED_VERSION: i16 = 35;

/// One served API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiRange {
    pub key: ApiKey,
    /// Lowest version served.
    pub min: i16,
    /// Highest version served.
    pub max: i16,
    /// Lowest version advertised in ApiVersions responses; below `min` only for Produce.
    pub advertised_min: i16,
}

const fn api(key: ApiKey, min: i16, max: i16) -> ApiRange {
    ApiRange {
        key,
        min,
        max,
        advertised_min: min,
    }
}

/// Served APIs in key order: exactly what `core::broker` answers. The group coordinator's APIs
/// (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
/// DescribeGroups, ListGroups, DeleteGroups, OffsetDelete) join when it lands. ConsumerGroupHeartbeat (KIP-848) is left out until the group
/// coordinator speaks it: advertising it would make Java 4.x consumers configured with
/// `group.protocol=consumer` use it.
pub const SUPPORTED_APIS: &[ApiRange] = &[
    // Produce v0-v2 carry message formats v0/v1, which are refused (UNSUPPORTED_VERSION), but
    // the advertised minimum stays 0 as in Kafka 4.x (KAFKA-18659): librdkafka turns off
    // idempotence and compression features when Produce v0 is missing from the range.
    ApiRange {
        key: ApiKey::Produce,
        min: 3,
        max: 11,
        advertised_min: 0,
    },
    api(ApiKey::Fetch, 4, 17),
    api(ApiKey::ListOffsets, 1, 10),
    api(ApiKey::Metadata, 0, 12),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::DescribeCluster, 0, 1),
];

fn entry(api_key: i16) -> Option<&'static ApiRange> {
    SUPPORTED_APIS.iter().find(|a| a.key.as_i16() == api_key)
}

/// The versions of `api_key` the broker serves, or `None` if it does not serve that API.
pub fn supported(api_key: i16) -> Option<(i16, i16)> {
    entry(api_key).map(|a| (a.min, a.max))
}

/// Whether the broker serves `version` of `api_key`. Requests failing this get
/// UNSUPPORTED_VERSION (ApiVersions: see [`unsupported_api_versions_response`]).
pub fn is_supported(api_key: i16, version: i16) -> bool {
    supported(api_key).is_some_and(|(min, max)| (min..=max).contains(&version))
}

/// The ApiVersions response body listing every served API (encode it at the request's version).
pub fn api_versions_response() -> ApiVersionsResponse {
    ApiVersionsResponse {
        error_code: 0,
        api_keys: SUPPORTED_APIS
            .iter()
            .map(|a| ApiVersion {
                api_key: a.key.as_i16(),
                min_version: a.advertised_min,
                max_version: a.max,
                unknown_tagged_fields: Vec::new(),
            })
            .collect(),
        ..ApiVersionsResponse::default()
    }
}

/// KIP-511: an ApiVersions request newer than we serve gets UNSUPPORTED_VERSION in a body that
/// lists only the ApiVersions range, so the client can retry at a version we know. The body
/// must be encoded at v0 (the client cannot know any other) with a v0 header.
pub fn unsupported_api_versions_response() -> ApiVersionsResponse {
    let (min, max) = supported(ApiKey::ApiVersions.as_i16()).unwrap_or((0, 0));
    ApiVersionsResponse {
        error_code: UNSUPPORTED_VERSION,
        api_keys: vec![ApiVersion {
            api_key: ApiKey::ApiVersions.as_i16(),
            min_version: min,
            max_version: max,
            unknown_tagged_fields: Vec::new(),
        }],
        ..ApiVersionsResponse::default()
    }
}

/// The whole KIP-511 response frame (v0 header + v0 body, no size prefix).
pub fn unsupported_api_versions_frame(correlation_id: i32) -> EncodeResult<BytesMut> {
    encode_response(
        correlation_id,
        0,
        &ResponseBody::ApiVersions(unsupported_api_versions_response()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::header::decode_response;

    #[test]
    fn served_ranges_are_within_what_the_code_can_encode() {
        for a in SUPPORTED_APIS {
            let (lo, hi) = a.key.valid_versions();
            assert!(lo <= a.advertised_min && a.advertised_min <= a.min, "{a:?}");
            assert!(a.min <= a.max && a.max <= hi, "{a:?}");
        }
    }

    #[test]
    fn table_is_in_key_order_without_duplicates() {
        assert!(SUPPORTED_APIS
            .windows(2)
            .all(|w| w[0].key.as_i16() < w[1].key.as_i16()));
    }

    #[test]
    fn produce_advertises_v0_but_serves_from_v3() {
        assert_eq!(supported(0), Some((3, 11)));
        assert!(!is_supported(0, 2));
        assert!(is_supported(0, 3));
        let resp = api_versions_response();
        let produce = resp.api_keys.iter().find(|a| a.api_key == 0).unwrap();
        assert_eq!((produce.min_version, produce.max_version), (0, 11));
    }

    #[test]
    fn client_maximums_land_in_range() {
        // librdkafka 2.x up to Produce v10, Fetch v16, Metadata v13 (capped at our 12);
        // kafka-python's newest non-flexible versions (Produce v8, Fetch v11, Metadata v8).
        for (key, version) in [(0, 10), (1, 16), (3, 12), (0, 8), (1, 11), (3, 8), (18, 3)] {
            assert!(is_supported(key, version), "api {key} v{version}");
        }
        assert_eq!(supported(68), None);
    }

    #[test]
    fn kip_511_fallback_is_a_v0_frame_listing_api_versions() {
        let frame = unsupported_api_versions_frame(7).unwrap();
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 7,       // correlation id (header v0)
            0, 35,            // UNSUPPORTED_VERSION
            0, 0, 0, 1,       // one api key (classic array)
            0, 18, 0, 0, 0, 4 // ApiVersions 0..=4
        ];
        assert_eq!(&frame[..], expected);
        let (header, body) = decode_response(ApiKey::ApiVersions, 0, frame.freeze()).unwrap();
        assert_eq!(header.correlation_id, 7);
        assert_eq!(
            body,
            ResponseBody::ApiVersions(unsupported_api_versions_response())
        );
    }

    #[test]
    fn full_response_encodes_at_every_served_version() {
        let body = ResponseBody::ApiVersions(api_versions_response());
        for v in 0..=4 {
            let frame = encode_response(1, v, &body).unwrap();
            let (_, decoded) = decode_response(ApiKey::ApiVersions, v, frame.freeze()).unwrap();
            assert_eq!(decoded, body);
        }
    }
}
