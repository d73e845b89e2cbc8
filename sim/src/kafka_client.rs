//! A minimal Kafka wire client for the simulator, until gregor's own client exists: one request
//! at a time per connection ([`KafkaClient::call`]), or several sent back to back and answered in
//! order ([`KafkaClient::pipeline`], as real producers keep up to five in flight), each with a
//! deadline; any error or timeout drops the connection (a late response can then never be taken
//! for the answer to a later request).
//!
//! Requests are encoded with gregor's codec at the version the caller picks. madsim's
//! `TcpStream` sends nothing until flushed, and delivers each flushed write as its own read.

use bytes::{Bytes, BytesMut};
use gregor::core::buggify::Buggify;
use gregor::protocol::frame::{encode_frame, FrameDecoder};
use gregor::protocol::generated::{RequestBody, ResponseBody};
use gregor::protocol::header::{decode_response, encode_request, peek_correlation_id};
// One timer registration per call (madsim's own `timeout` adds one at every poll).
use gregor::runtime::timer::timeout;
use madsim::net::TcpStream;
use madsim::runtime::Handle;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest response frame accepted.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Why a call failed. Every kind drops the connection.
#[derive(Debug)]
pub enum CallError {
    /// Connecting, writing or reading failed (refused, reset, closed).
    Io(io::Error),
    /// No answer before the deadline: the request may or may not have taken effect.
    Timeout,
    /// The answer could not be decoded, or answered another request.
    Protocol(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Io(err) => write!(f, "i/o error: {err}"),
            CallError::Timeout => f.write_str("timed out"),
            CallError::Protocol(why) => write!(f, "protocol error: {why}"),
        }
    }
}

impl From<io::Error> for CallError {
    fn from(err: io::Error) -> Self {
        CallError::Io(err)
    }
}

/// One open connection.
struct Connection {
    stream: TcpStream,
    buf: BytesMut,
    buggify: Buggify,
}

impl Connection {
    async fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let buggify = &self.buggify;
        // Buggify: send the request in small flushed pieces, so the broker reads frames (and
        // their size prefix) split across reads.
        if frame.len() > 1 && buggify.fire("client-split-request", 0.2) {
            let mut rest = frame;
            while rest.len() > 1 {
                let (piece, tail) = rest.split_at(1 + buggify.pick(rest.len() as u64 - 1) as usize);
                self.stream.write_all(piece).await?;
                self.stream.flush().await?;
                rest = tail;
            }
            self.stream.write_all(rest).await?;
            return self.stream.flush().await;
        }
        self.stream.write_all(frame).await?;
        self.stream.flush().await
    }

    /// Reads until one whole response frame is buffered.
    async fn read_frame(&mut self) -> Result<Bytes, CallError> {
        let decoder = FrameDecoder::new(MAX_RESPONSE_BYTES);
        loop {
            match decoder.decode(&mut self.buf) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(err) => return Err(CallError::Protocol(err.to_string())),
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(CallError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }
}

/// A client of one broker address that reconnects on demand.
pub struct KafkaClient {
    addr: SocketAddr,
    client_id: String,
    conn: Option<Connection>,
    next_correlation_id: i32,
    connect_timeout: Duration,
    buggify: Buggify,
    connections: u64,
}

impl KafkaClient {
    pub fn new(addr: SocketAddr, client_id: &str) -> KafkaClient {
        KafkaClient {
            addr,
            client_id: client_id.to_owned(),
            conn: None,
            next_correlation_id: 0,
            connect_timeout: Duration::from_millis(500),
            buggify: Buggify::new(Handle::current().seed())
                .fork("clients")
                .fork(client_id),
            connections: 0,
        }
    }

    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Drops the connection; the next call opens a new one.
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    async fn connection(&mut self) -> Result<&mut Connection, CallError> {
        if self.conn.is_none() {
            let stream = match timeout(self.connect_timeout, TcpStream::connect(self.addr)).await {
                Some(stream) => stream?,
                None => return Err(CallError::Timeout),
            };
            self.connections += 1;
            self.conn = Some(Connection {
                stream,
                buf: BytesMut::with_capacity(4096),
                buggify: self.buggify.fork_id(self.connections),
            });
        }
        self.conn
            .as_mut()
            .ok_or_else(|| CallError::Protocol("no connection".to_owned()))
    }

    fn encode(&mut self, version: i16, body: &RequestBody) -> Result<(i32, BytesMut), CallError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let payload = encode_request(correlation_id, Some(&self.client_id), version, body)
            .map_err(|err| CallError::Protocol(format!("cannot encode: {err}")))?;
        let mut frame = BytesMut::with_capacity(payload.len() + 4);
        encode_frame(&payload, &mut frame).map_err(|err| CallError::Protocol(err.to_string()))?;
        Ok((correlation_id, frame))
    }

    /// Sends `body` at `version` and waits at most `within` for its response.
    pub async fn call(
        &mut self,
        version: i16,
        body: RequestBody,
        within: Duration,
    ) -> Result<ResponseBody, CallError> {
        let result = timeout(within, self.call_inner(version, body)).await;
        let result = result.unwrap_or(Err(CallError::Timeout));
        if result.is_err() {
            self.disconnect();
        }
        result
    }

    async fn call_inner(
        &mut self,
        version: i16,
        body: RequestBody,
    ) -> Result<ResponseBody, CallError> {
        let api_key = body.api_key();
        let (correlation_id, frame) = self.encode(version, &body)?;
        // Buggify: give up on the request once it is sent (a client timeout): the broker may
        // still carry it out and answer into a closed connection; the caller resends or not.
        let abandon = self.buggify.fire("client-abandon-request", 0.03);
        let conn = self.connection().await?;
        conn.send(&frame).await?;
        if abandon {
            return Err(CallError::Timeout);
        }
        let response = conn.read_frame().await?;
        let got = peek_correlation_id(&response).map_err(|e| CallError::Protocol(e.to_string()))?;
        if got != correlation_id {
            return Err(CallError::Protocol(format!(
                "response to correlation id {got}, expected {correlation_id}"
            )));
        }
        let (_, body) = decode_response(api_key, version, response)
            .map_err(|err| CallError::Protocol(format!("cannot decode: {err}")))?;
        Ok(body)
    }

    /// Sends every request at once on one connection, then reads their answers in order (Kafka
    /// answers a connection's requests in the order they came). Returns one result per request:
    /// after the first failure the connection is dropped and every later request fails too (it
    /// may or may not have taken effect).
    pub async fn pipeline(
        &mut self,
        version: i16,
        bodies: Vec<RequestBody>,
        within: Duration,
    ) -> Vec<Result<ResponseBody, CallError>> {
        let count = bodies.len();
        let mut results = Vec::with_capacity(count);
        let outcome = timeout(within, self.pipeline_inner(version, bodies, &mut results)).await;
        let failure = match outcome {
            Some(Ok(())) => None,
            Some(Err(err)) => Some(err),
            None => Some(CallError::Timeout),
        };
        if let Some(err) = failure {
            self.disconnect();
            let why = err.to_string();
            results.push(Err(err));
            while results.len() < count {
                results.push(Err(CallError::Protocol(format!(
                    "an earlier request failed: {why}"
                ))));
            }
        }
        results
    }

    async fn pipeline_inner(
        &mut self,
        version: i16,
        bodies: Vec<RequestBody>,
        results: &mut Vec<Result<ResponseBody, CallError>>,
    ) -> Result<(), CallError> {
        let mut sent = Vec::with_capacity(bodies.len());
        for body in &bodies {
            let (correlation_id, frame) = self.encode(version, body)?;
            self.connection().await?.send(&frame).await?;
            sent.push((body.api_key(), correlation_id));
        }
        for (api_key, correlation_id) in sent {
            let response = self.connection().await?.read_frame().await?;
            let got =
                peek_correlation_id(&response).map_err(|e| CallError::Protocol(e.to_string()))?;
            if got != correlation_id {
                return Err(CallError::Protocol(format!(
                    "response to correlation id {got}, expected {correlation_id}"
                )));
            }
            let (_, body) = decode_response(api_key, version, response)
                .map_err(|err| CallError::Protocol(format!("cannot decode: {err}")))?;
            results.push(Ok(body));
        }
        Ok(())
    }

    /// Sends a request that gets no response (produce with acks=0).
    pub async fn send_only(
        &mut self,
        version: i16,
        body: RequestBody,
        within: Duration,
    ) -> Result<(), CallError> {
        let (_, frame) = self.encode(version, &body)?;
        let send = async {
            let conn = self.connection().await?;
            conn.send(&frame).await.map_err(CallError::Io)
        };
        let result = timeout(within, send)
            .await
            .unwrap_or(Err(CallError::Timeout));
        if result.is_err() {
            self.disconnect();
        }
        result
    }
}
