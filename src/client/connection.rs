//! One connection to a broker: requests out with correlation ids, responses back in order.
//!
//! Kafka answers the requests of one connection in the order they were sent, so the client only
//! needs a queue of what it is waiting for. A request is queued before its bytes are written, so
//! the reading side always knows what the next frame answers (API key and version, needed to
//! decode it). Each request may carry a caller's tag (a send time, a batch id) that comes back
//! with its response. `Produce` with `acks=0` gets no response and is not queued.
//!
//! The two directions can be split ([`Connection::split`]) and driven by two tasks, so a
//! caller can keep writing while responses arrive: that is the pipelining window.

use crate::protocol::error::ErrorCode;
use crate::protocol::frame::{FrameDecoder, FrameError};
use crate::protocol::generated::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestBody, RequestHeader, ResponseBody,
};
use crate::protocol::header::{decode_response, peek_correlation_id, request_header_version};
use crate::protocol::message::Message;
use crate::protocol::primitives::{DecodeError, EncodeError};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::BTreeMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// What can go wrong on a connection. Every error but `UnsupportedApi` and `Busy` leaves the
/// connection unusable.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed by the broker")]
    Closed,
    #[error("bad response frame: {0}")]
    Frame(#[from] FrameError),
    #[error("cannot decode response: {0}")]
    Decode(#[from] DecodeError),
    #[error("cannot encode request: {0}")]
    Encode(#[from] EncodeError),
    #[error("response has correlation id {got}, expected {expected}")]
    CorrelationMismatch { expected: i32, got: i32 },
    #[error("ApiVersions failed: {0}")]
    ApiVersions(ErrorCode),
    #[error("broker and client share no version of {0}")]
    UnsupportedApi(&'static str),
    #[error("the response is not a {0} response")]
    UnexpectedResponse(&'static str),
    #[error("no request is waiting for a response")]
    NothingInFlight,
    #[error("requests are in flight; call() needs an idle connection")]
    Busy,
}

pub type ClientResult<T> = Result<T, ClientError>;

/// The versions of each API both sides speak, from the broker's ApiVersions answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions {
    ranges: BTreeMap<ApiKey, (i16, i16)>,
}

impl Versions {
    /// Intersects the broker's ranges with what the generated code can encode and decode.
    pub fn negotiate(broker: &ApiVersionsResponse) -> Versions {
        let mut ranges = BTreeMap::new();
        for api in &broker.api_keys {
            let Some(key) = ApiKey::from_i16(api.api_key) else {
                continue;
            };
            let (ours_min, ours_max) = key.valid_versions();
            let (min, max) = (ours_min.max(api.min_version), ours_max.min(api.max_version));
            if min <= max {
                ranges.insert(key, (min, max));
            }
        }
        Versions { ranges }
    }

    /// Every API at the generated code's full range: for talking before negotiation.
    pub fn unnegotiated() -> Versions {
        Versions::default()
    }

    /// The usable range of `key`, if any.
    pub fn range(&self, key: ApiKey) -> Option<(i16, i16)> {
        self.ranges.get(&key).copied()
    }

    /// The highest usable version of `key` not above `cap`.
    pub fn pick(&self, key: ApiKey, cap: i16) -> Option<i16> {
        let (min, max) = self.range(key)?;
        let v = max.min(cap);
        (v >= min).then_some(v)
    }
}

/// A request the reading side is waiting on.
struct InFlight<T> {
    correlation_id: i32,
    api_key: ApiKey,
    api_version: i16,
    tag: T,
}

/// A decoded response with the tag its request was sent with.
#[derive(Debug)]
pub struct Response<T> {
    pub correlation_id: i32,
    pub api_version: i16,
    pub body: ResponseBody,
    pub tag: T,
}

/// The writing half: encodes and sends requests.
pub struct RequestSender<T = ()> {
    writer: Box<dyn AsyncWrite + Send + Unpin>,
    client_id: Option<String>,
    next_correlation_id: i32,
    versions: Versions,
    queue: mpsc::UnboundedSender<InFlight<T>>,
    expected: u64,
}

/// The reading half: reads frames and decodes them as answers to the queued requests.
pub struct ResponseReceiver<T = ()> {
    reader: Box<dyn AsyncRead + Send + Unpin>,
    buf: BytesMut,
    decoder: FrameDecoder,
    queue: mpsc::UnboundedReceiver<InFlight<T>>,
    received: u64,
}

/// Both halves of one connection.
pub struct Connection<T = ()> {
    sender: RequestSender<T>,
    receiver: ResponseReceiver<T>,
}

/// Read buffer kept free before each read; frames larger than this grow it once their size is
/// known (the frame decoder reserves the rest).
const READ_CHUNK: usize = 64 * 1024;

/// ApiVersions is sent at this version first (KIP-511: a broker that knows less answers v0
/// with its own range, and we retry at its maximum).
const API_VERSIONS_FIRST: i16 = 4;

impl<T: Send + 'static> Connection<T> {
    /// Connects over TCP and negotiates API versions.
    pub async fn connect(addr: &str, client_id: Option<&str>) -> ClientResult<Connection<T>>
    where
        T: Default,
    {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        Connection::handshake(stream, client_id).await
    }

    /// Wraps an open stream and negotiates API versions (ApiVersions, with the KIP-511 retry).
    pub async fn handshake<S>(stream: S, client_id: Option<&str>) -> ClientResult<Connection<T>>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
        T: Default,
    {
        let mut conn = Connection::new(stream, client_id, Versions::unnegotiated());
        let mut version = API_VERSIONS_FIRST;
        loop {
            let request = ApiVersionsRequest {
                client_software_name: "gregor".into(),
                client_software_version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            };
            let body = conn.call_at(request.into(), version).await?;
            let ResponseBody::ApiVersions(response) = body else {
                return Err(ClientError::UnexpectedResponse(ApiKey::ApiVersions.name()));
            };
            let error = ErrorCode::from_code_or_unknown(response.error_code);
            if error.is_ok() {
                conn.sender.versions = Versions::negotiate(&response);
                return Ok(conn);
            }
            let theirs = response
                .api_keys
                .iter()
                .find(|a| a.api_key == ApiKey::ApiVersions.as_i16())
                .map(|a| a.max_version);
            match theirs {
                Some(max) if error == ErrorCode::UnsupportedVersion && max < version => {
                    version = max.max(0);
                }
                _ => return Err(ClientError::ApiVersions(error)),
            }
        }
    }

    /// Wraps an open stream without negotiating; `versions` is what `send` will pick from.
    pub fn new<S>(stream: S, client_id: Option<&str>, versions: Versions) -> Connection<T>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (reader, writer) = tokio::io::split(stream);
        let (tx, rx) = mpsc::unbounded_channel();
        Connection {
            sender: RequestSender {
                writer: Box::new(writer),
                client_id: client_id.map(str::to_owned),
                next_correlation_id: 1,
                versions,
                queue: tx,
                expected: 0,
            },
            receiver: ResponseReceiver {
                reader: Box::new(reader),
                buf: BytesMut::new(),
                decoder: FrameDecoder::default(),
                queue: rx,
                received: 0,
            },
        }
    }

    pub fn versions(&self) -> &Versions {
        &self.sender.versions
    }

    /// Requests sent and not answered yet.
    pub fn in_flight(&self) -> u64 {
        self.sender.expected - self.receiver.received
    }

    /// Sends `body` at the highest version both sides speak; see [`RequestSender::send`].
    pub async fn send(&mut self, body: RequestBody, tag: T) -> ClientResult<i32> {
        self.sender.send(body, tag).await
    }

    /// Sends `body` at `version`; see [`RequestSender::send_at`].
    pub async fn send_at(&mut self, body: &RequestBody, version: i16, tag: T) -> ClientResult<i32> {
        self.sender.send_at(body, version, tag).await
    }

    /// The next response, in request order.
    pub async fn recv(&mut self) -> ClientResult<Response<T>> {
        if self.in_flight() == 0 {
            return Err(ClientError::NothingInFlight);
        }
        self.receiver.recv().await
    }

    /// Sends one request and waits for its response; nothing else may be in flight.
    pub async fn call(&mut self, body: RequestBody) -> ClientResult<ResponseBody>
    where
        T: Default,
    {
        let key = body.api_key();
        let version = self.sender.default_version(key)?;
        self.call_at(body, version).await
    }

    async fn call_at(&mut self, body: RequestBody, version: i16) -> ClientResult<ResponseBody>
    where
        T: Default,
    {
        if self.in_flight() != 0 {
            return Err(ClientError::Busy);
        }
        self.sender.send_at(&body, version, T::default()).await?;
        Ok(self.recv().await?.body)
    }

    /// The two halves, to be driven by separate tasks.
    pub fn split(self) -> (RequestSender<T>, ResponseReceiver<T>) {
        (self.sender, self.receiver)
    }
}

impl<T> RequestSender<T> {
    pub fn versions(&self) -> &Versions {
        &self.versions
    }

    fn default_version(&self, key: ApiKey) -> ClientResult<i16> {
        self.versions
            .pick(key, i16::MAX)
            .ok_or(ClientError::UnsupportedApi(key.name()))
    }

    /// Sends `body` at the highest version both sides speak; returns its correlation id.
    pub async fn send(&mut self, body: RequestBody, tag: T) -> ClientResult<i32> {
        let version = self.default_version(body.api_key())?;
        self.send_at(&body, version, tag).await
    }

    /// Sends `body` at `version`. Waits only for the bytes to be written, not for the answer.
    pub async fn send_at(&mut self, body: &RequestBody, version: i16, tag: T) -> ClientResult<i32> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = correlation_id.wrapping_add(1);
        let api_key = body.api_key();
        let frame = encode_request_frame(correlation_id, self.client_id.as_deref(), version, body)?;
        let answered = !matches!(body, RequestBody::Produce(p) if p.acks == 0);
        if answered {
            // Queued before the write so the reader knows the frame before it can arrive.
            let queued = self.queue.send(InFlight {
                correlation_id,
                api_key,
                api_version: version,
                tag,
            });
            if queued.is_err() {
                return Err(ClientError::Closed);
            }
            self.expected += 1;
        }
        self.writer.write_all(&frame).await?;
        // madsim's TcpStream sends nothing until flushed; real tokio's flush is free.
        self.writer.flush().await?;
        Ok(correlation_id)
    }
}

impl<T> ResponseReceiver<T> {
    /// The next response, in request order. Waits for a request to be sent if none is in
    /// flight; `NothingInFlight` once the sending half is gone and every answer was read.
    pub async fn recv(&mut self) -> ClientResult<Response<T>> {
        let Some(next) = self.queue.recv().await else {
            return Err(ClientError::NothingInFlight);
        };
        let frame = self.read_frame().await?;
        let got = peek_correlation_id(&frame)?;
        if got != next.correlation_id {
            return Err(ClientError::CorrelationMismatch {
                expected: next.correlation_id,
                got,
            });
        }
        let (_, body) = decode_response(next.api_key, next.api_version, frame)?;
        self.received += 1;
        Ok(Response {
            correlation_id: next.correlation_id,
            api_version: next.api_version,
            body,
            tag: next.tag,
        })
    }

    async fn read_frame(&mut self) -> ClientResult<Bytes> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf)? {
                return Ok(frame);
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                self.buf.reserve(READ_CHUNK);
            }
            if self.reader.read_buf(&mut self.buf).await? == 0 {
                return Err(ClientError::Closed);
            }
        }
    }
}

/// A whole request frame, size prefix included, in one buffer (one write per request).
pub fn encode_request_frame(
    correlation_id: i32,
    client_id: Option<&str>,
    api_version: i16,
    body: &RequestBody,
) -> ClientResult<Bytes> {
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
    let prefix = i32::try_from(size).map_err(|_| FrameError::TooLarge {
        size,
        max: i32::MAX as usize,
    })?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(prefix);
    header.encode(&mut buf, header_version)?;
    body.encode(&mut buf, api_version)?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::api_versions::api_versions_response;
    use crate::protocol::generated::{MetadataRequest, ProduceRequest};
    use crate::protocol::header::{decode_request, encode_response};

    /// A fake broker on the other end of a duplex pipe: answers ApiVersions and Metadata,
    /// ignores acks=0 produce, in order.
    async fn fake_broker(stream: tokio::io::DuplexStream) {
        let (mut reader, mut writer) = tokio::io::split(stream);
        let decoder = FrameDecoder::default();
        let mut buf = BytesMut::new();
        loop {
            while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                let (header, body) = decode_request(frame).unwrap();
                let response = match body {
                    RequestBody::ApiVersions(_) => {
                        ResponseBody::ApiVersions(api_versions_response())
                    }
                    RequestBody::Metadata(_) => ResponseBody::Metadata(Default::default()),
                    RequestBody::Produce(p) if p.acks == 0 => continue,
                    other => panic!("unexpected {:?}", other.api_key()),
                };
                let bytes =
                    encode_response(header.correlation_id, header.request_api_version, &response)
                        .unwrap();
                writer
                    .write_all(&(bytes.len() as u32).to_be_bytes())
                    .await
                    .unwrap();
                writer.write_all(&bytes).await.unwrap();
            }
            if reader.read_buf(&mut buf).await.unwrap() == 0 {
                return;
            }
        }
    }

    #[tokio::test]
    async fn negotiates_then_pipelines_in_order() {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        tokio::spawn(fake_broker(theirs));
        let mut conn = Connection::<u32>::handshake(ours, Some("t")).await.unwrap();
        assert_eq!(conn.versions().range(ApiKey::Metadata), Some((0, 12)));
        assert_eq!(conn.versions().pick(ApiKey::Fetch, 12), Some(12));
        for tag in 0..10 {
            conn.send(MetadataRequest::default().into(), tag)
                .await
                .unwrap();
        }
        // acks=0 is not waited for.
        let fire_and_forget = ProduceRequest {
            acks: 0,
            ..Default::default()
        };
        conn.send(fire_and_forget.into(), 99).await.unwrap();
        assert_eq!(conn.in_flight(), 10);
        for tag in 0..10 {
            let r = conn.recv().await.unwrap();
            assert_eq!(r.tag, tag);
            assert!(matches!(r.body, ResponseBody::Metadata(_)));
        }
        assert!(matches!(
            conn.recv().await,
            Err(ClientError::NothingInFlight)
        ));
    }

    #[tokio::test]
    async fn split_halves_run_in_separate_tasks() {
        let (ours, theirs) = tokio::io::duplex(1 << 10);
        tokio::spawn(fake_broker(theirs));
        let conn = Connection::<u32>::handshake(ours, None).await.unwrap();
        let (mut tx, mut rx) = conn.split();
        let writer = tokio::spawn(async move {
            for tag in 0..200 {
                tx.send(MetadataRequest::default().into(), tag)
                    .await
                    .unwrap();
            }
        });
        for tag in 0..200 {
            assert_eq!(rx.recv().await.unwrap().tag, tag);
        }
        writer.await.unwrap();
        assert!(matches!(rx.recv().await, Err(ClientError::NothingInFlight)));
    }

    #[test]
    fn versions_intersect_with_generated_ranges() {
        let mut broker = api_versions_response();
        broker
            .api_keys
            .retain(|a| a.api_key == ApiKey::Produce.as_i16());
        broker.api_keys[0].max_version = 99;
        let v = Versions::negotiate(&broker);
        assert_eq!(
            v.range(ApiKey::Produce),
            Some((0, ApiKey::Produce.valid_versions().1))
        );
        assert_eq!(v.pick(ApiKey::Produce, 9), Some(9));
        assert_eq!(v.range(ApiKey::Fetch), None);
    }
}
