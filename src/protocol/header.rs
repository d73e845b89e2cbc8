//! Request and response headers: which header version goes with which API version, and whole
//! frames (header + body) in both directions. A frame here is what follows the 4-byte size prefix.
//!
//! Header versions: a request header is v2 (compact, with tagged fields) when its API version
//! is flexible, v1 otherwise, and v0 only for ControlledShutdown v0. A response header is v1
//! when flexible, v0 otherwise, except that ApiVersions responses always use v0 (KIP-511): a
//! client reads that response before it knows which versions the broker speaks.

use crate::protocol::generated::{
    ApiKey, RequestBody, RequestHeader, ResponseBody, ResponseHeader,
};
use crate::protocol::message::Message;
use crate::protocol::primitives::{DecodeError, DecodeResult, EncodeResult};
use bytes::{Bytes, BytesMut};

/// The request header version for `api_version` of `api_key`. Unknown keys get v1, which is
/// enough to read their correlation id.
pub fn request_header_version(api_key: i16, api_version: i16) -> i16 {
    match ApiKey::from_i16(api_key) {
        Some(ApiKey::ControlledShutdown) if api_version == 0 => 0,
        Some(key) if key.is_flexible(api_version) => 2,
        _ => 1,
    }
}

/// The response header version for `api_version` of `api_key`.
pub fn response_header_version(api_key: i16, api_version: i16) -> i16 {
    match ApiKey::from_i16(api_key) {
        Some(ApiKey::ApiVersions) => 0,
        Some(key) if key.is_flexible(api_version) => 1,
        _ => 0,
    }
}

/// Reads the request header from the front of a frame, leaving the body in `frame`. The API
/// key and version are read first to pick the header version; an unknown API key is an error
/// (Kafka closes the connection). The API version is not checked here: the caller decides what
/// to do with versions it does not serve (see `api_versions`, KIP-511).
pub fn decode_request_header(frame: &mut Bytes) -> DecodeResult<RequestHeader> {
    let [k0, k1, v0, v1, ..] = frame[..] else {
        return Err(DecodeError::Truncated {
            needed: 4,
            remaining: frame.len(),
        });
    };
    let api_key = i16::from_be_bytes([k0, k1]);
    let api_version = i16::from_be_bytes([v0, v1]);
    ApiKey::try_from(api_key)?;
    RequestHeader::decode(frame, request_header_version(api_key, api_version))
}

/// Decodes a whole request frame: header, then the body for its API key and version. Bytes
/// after the body are ignored, as Kafka does.
pub fn decode_request(mut frame: Bytes) -> DecodeResult<(RequestHeader, RequestBody)> {
    let header = decode_request_header(&mut frame)?;
    let body = RequestBody::decode(
        header.request_api_key,
        header.request_api_version,
        &mut frame,
    )?;
    Ok((header, body))
}

/// Encodes a request frame (header + body, no size prefix) at `api_version`.
pub fn encode_request(
    correlation_id: i32,
    client_id: Option<&str>,
    api_version: i16,
    body: &RequestBody,
) -> EncodeResult<BytesMut> {
    let api_key = body.api_key().as_i16();
    let header = RequestHeader {
        request_api_key: api_key,
        request_api_version: api_version,
        correlation_id,
        client_id: client_id.map(str::to_owned),
        unknown_tagged_fields: Vec::new(),
    };
    let header_version = request_header_version(api_key, api_version);
    let size = header.compute_size(header_version)? + body.compute_size(api_version)?;
    let mut buf = BytesMut::with_capacity(size);
    header.encode(&mut buf, header_version)?;
    body.encode(&mut buf, api_version)?;
    Ok(buf)
}

/// Encodes a response frame (header + body, no size prefix) at `api_version`; the API key is
/// the body's.
pub fn encode_response(
    correlation_id: i32,
    api_version: i16,
    body: &ResponseBody,
) -> EncodeResult<BytesMut> {
    let header = ResponseHeader {
        correlation_id,
        unknown_tagged_fields: Vec::new(),
    };
    let header_version = response_header_version(body.api_key().as_i16(), api_version);
    let size = header.compute_size(header_version)? + body.compute_size(api_version)?;
    let mut buf = BytesMut::with_capacity(size);
    header.encode(&mut buf, header_version)?;
    body.encode(&mut buf, api_version)?;
    Ok(buf)
}

/// The correlation id that opens every response frame, read without consuming it: a client
/// needs it to find which request (API key and version) the frame answers.
pub fn peek_correlation_id(frame: &Bytes) -> DecodeResult<i32> {
    match frame[..] {
        [a, b, c, d, ..] => Ok(i32::from_be_bytes([a, b, c, d])),
        _ => Err(DecodeError::Truncated {
            needed: 4,
            remaining: frame.len(),
        }),
    }
}

/// Decodes a response frame to a request sent with `api_key` at `api_version`.
pub fn decode_response(
    api_key: ApiKey,
    api_version: i16,
    mut frame: Bytes,
) -> DecodeResult<(ResponseHeader, ResponseBody)> {
    let key = api_key.as_i16();
    let header = ResponseHeader::decode(&mut frame, response_header_version(key, api_version))?;
    let body = ResponseBody::decode(key, api_version, &mut frame)?;
    Ok((header, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::generated::{
        ApiVersionsRequest, ControlledShutdownRequest, ProduceRequest,
    };

    fn frame(parts: &[&[u8]]) -> Bytes {
        Bytes::from(parts.concat())
    }

    #[test]
    fn header_versions_follow_flexibility() {
        assert_eq!(request_header_version(7, 0), 0); // ControlledShutdown v0
        assert_eq!(request_header_version(7, 1), 1);
        assert_eq!(request_header_version(0, 8), 1);
        assert_eq!(request_header_version(0, 9), 2);
        assert_eq!(request_header_version(18, 3), 2);
        // Newer than the generated code knows: flexible ranges are open-ended.
        assert_eq!(request_header_version(18, 9), 2);
        assert_eq!(response_header_version(1, 11), 0);
        assert_eq!(response_header_version(1, 12), 1);
        // KIP-511: ApiVersions responses keep header v0 even when flexible.
        assert_eq!(response_header_version(18, 3), 0);
    }

    #[test]
    fn request_header_v0_has_no_client_id() {
        // ControlledShutdown v0: key 7, version 0, correlation 42, then the body (broker id 5).
        let (header, body) =
            decode_request(frame(&[&[0, 7, 0, 0, 0, 0, 0, 42], &[0, 0, 0, 5]])).unwrap();
        assert_eq!(header.correlation_id, 42);
        assert_eq!(
            body,
            RequestBody::ControlledShutdown(ControlledShutdownRequest {
                broker_id: 5,
                ..Default::default()
            })
        );
    }

    #[test]
    fn request_header_v1_has_a_nullable_client_id() {
        let mut f = frame(&[&[0, 0, 0, 3, 0, 0, 0, 1], &[0, 3], b"abc", &[9]]);
        let header = decode_request_header(&mut f).unwrap();
        assert_eq!(header.client_id.as_deref(), Some("abc"));
        assert_eq!((header.request_api_key, header.request_api_version), (0, 3));
        assert_eq!(&f[..], &[9]);

        let mut f = frame(&[&[0, 0, 0, 3, 0, 0, 0, 1], &[0xff, 0xff]]);
        assert_eq!(decode_request_header(&mut f).unwrap().client_id, None);
    }

    #[test]
    fn request_header_v2_keeps_a_classic_client_id_and_adds_tagged_fields() {
        let mut f = frame(&[&[0, 0, 0, 9, 0, 0, 0, 1], &[0, 3], b"abc", &[0], &[9]]);
        let header = decode_request_header(&mut f).unwrap();
        assert_eq!(header.client_id.as_deref(), Some("abc"));
        assert_eq!(&f[..], &[9]);
    }

    #[test]
    fn request_frames_round_trip() {
        let body = RequestBody::Produce(ProduceRequest {
            acks: -1,
            timeout_ms: 1000,
            ..Default::default()
        });
        for version in [3, 8, 9, 11] {
            let bytes = encode_request(17, Some("gregor"), version, &body).unwrap();
            let (header, decoded) = decode_request(bytes.freeze()).unwrap();
            assert_eq!(header.correlation_id, 17);
            assert_eq!(header.client_id.as_deref(), Some("gregor"));
            assert_eq!(header.request_api_version, version);
            assert_eq!(decoded, body);
        }
    }

    #[test]
    fn response_frames_round_trip_with_the_right_header() {
        let body = ResponseBody::Produce(Default::default());
        let v8 = encode_response(3, 8, &body).unwrap();
        let v9 = encode_response(3, 9, &body).unwrap();
        assert_eq!(&v9[..5], &[0, 0, 0, 3, 0]); // header v1: correlation id + tag count
        assert_eq!(peek_correlation_id(&v9.clone().freeze()).unwrap(), 3);
        for (version, bytes) in [(8, v8), (9, v9)] {
            let (header, decoded) =
                decode_response(ApiKey::Produce, version, bytes.freeze()).unwrap();
            assert_eq!(header.correlation_id, 3);
            assert_eq!(decoded, body);
        }
    }

    #[test]
    fn unknown_api_key_and_short_frames_are_errors() {
        assert_eq!(
            decode_request(frame(&[&[0x7f, 0, 0, 0, 0, 0, 0, 1]])).unwrap_err(),
            DecodeError::UnknownApiKey(0x7f00)
        );
        assert!(matches!(
            decode_request(frame(&[&[0, 0, 0]])),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(peek_correlation_id(&Bytes::from_static(&[1, 2])).is_err());
    }

    #[test]
    fn truncated_body_is_an_error() {
        let body = RequestBody::ApiVersions(ApiVersionsRequest {
            client_software_name: "librdkafka".into(),
            client_software_version: "2.6.0".into(),
            ..Default::default()
        });
        let bytes = encode_request(1, None, 3, &body).unwrap().freeze();
        for cut in 0..bytes.len() {
            assert!(decode_request(bytes.slice(..cut)).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn api_versions_newer_than_known_still_yields_its_header() {
        // KIP-511: ApiVersions v9 from a future client. The header (v2) decodes so the broker
        // can answer with the correlation id; the body does not.
        let f = frame(&[
            &[0, 18, 0, 9, 0, 0, 0, 5],
            &[0, 1],
            b"c",
            &[0],
            &[2, b'x', 2, b'y', 0],
        ]);
        let header = decode_request_header(&mut f.clone()).unwrap();
        assert_eq!((header.request_api_version, header.correlation_id), (9, 5));
        assert!(matches!(
            decode_request(f),
            Err(DecodeError::UnsupportedVersion { .. })
        ));
    }
}
