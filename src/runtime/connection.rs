//! One client connection: frames in, decoded requests to the node loop, responses back out in
//! request order. Backpressure: at most `queued.max.requests` requests in flight per connection
//! (the reader stops reading until the writer catches up). Undecodable input closes only this
//! connection.

use super::node::Inbound;
use super::timer::Deadline;
use crate::core::broker::ReplyTo;
use crate::core::buggify::Buggify;
use crate::protocol::api_versions;
use crate::protocol::frame::FrameDecoder;
use crate::protocol::generated::{ApiKey, ResponseBody};
use crate::protocol::header;
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

/// What the node loop sends back for a request.
#[derive(Debug)]
pub enum Reply {
    Body(ResponseBody),
    /// Already encoded (without the size prefix).
    Encoded(Bytes),
    /// `acks=0`: nothing to write.
    Nothing,
    /// Close the connection once the responses before this one are written.
    Close,
}

/// Responses at least this large are written directly instead of being gathered.
const LARGE_RESPONSE: usize = 64 * 1024;

/// What a connection may have in flight: requests and request bytes (in KiB).
struct Budget {
    requests: Semaphore,
    kib: Semaphore,
}

fn budget_kib(bytes: usize) -> u32 {
    u32::try_from(bytes / 1024).unwrap_or(u32::MAX).max(1)
}

/// Api key, api version and correlation id from the first 8 bytes of a request.
fn peek_request(frame: &Bytes) -> Option<(i16, i16, i32)> {
    let head: &[u8; 8] = frame.get(..8)?.try_into().ok()?;
    let [k0, k1, v0, v1, c0, c1, c2, c3] = *head;
    Some((
        i16::from_be_bytes([k0, k1]),
        i16::from_be_bytes([v0, v1]),
        i32::from_be_bytes([c0, c1, c2, c3]),
    ))
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_frame: usize,
    pub max_in_flight: usize,
    /// Request bytes in flight per connection (`queued.max.request.bytes`).
    pub max_in_flight_bytes: usize,
    pub idle_timeout: Duration,
}

struct Expected {
    seq: u64,
    /// Byte-budget permits (KiB) this request holds until its response is written.
    cost_kib: u32,
    correlation_id: i32,
    api_key: i16,
    api_version: i16,
}

/// Serves one connection until the peer closes it, it sends garbage, it idles too long, or the
/// node loop goes away.
pub async fn serve<S>(
    stream: S,
    conn: u64,
    to_node: mpsc::UnboundedSender<Inbound>,
    limits: Limits,
    buggify: Buggify,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    let (reply_tx, reply_rx) = mpsc::unbounded_channel::<(u64, Reply)>();
    let (expect_tx, expect_rx) = mpsc::unbounded_channel::<Expected>();
    let permits = Arc::new(Budget {
        requests: Semaphore::new(limits.max_in_flight),
        kib: Semaphore::new(budget_kib(limits.max_in_flight_bytes) as usize),
    });
    if to_node
        .send(Inbound::Open {
            conn,
            replies: reply_tx.clone(),
        })
        .is_err()
    {
        return;
    }
    let write = write_loop(
        writer,
        reply_rx,
        expect_rx,
        permits.clone(),
        buggify.fork_id(1),
    );
    let read = read_loop(
        reader, conn, &to_node, reply_tx, expect_tx, permits, limits, buggify,
    );
    // `biased` keeps simulation runs reproducible (see the node loop); either end stops both.
    tokio::select! {
        biased;
        _ = write => {}
        _ = read => {}
    }
    let _ = to_node.send(Inbound::Closed { conn });
}

// The connection's plumbing, each piece passed once from `serve`.
#[allow(clippy::too_many_arguments)]
async fn read_loop<R: AsyncRead>(
    reader: R,
    conn: u64,
    to_node: &mpsc::UnboundedSender<Inbound>,
    replies: mpsc::UnboundedSender<(u64, Reply)>,
    expect: mpsc::UnboundedSender<Expected>,
    permits: Arc<Budget>,
    limits: Limits,
    buggify: Buggify,
) {
    tokio::pin!(reader);
    let decoder = FrameDecoder::new(limits.max_frame);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut seq = 0u64;
    // Pushed back at every read; registered with the timer only when it comes due.
    let mut idle_deadline = Deadline::after(limits.idle_timeout);
    loop {
        loop {
            let frame = match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(conn, error = %e, "bad frame; closing connection");
                    return;
                }
            };
            // Backpressure: stop reading until earlier responses are written.
            let cost_kib = (frame.len() / 1024 + 1)
                .min(budget_kib(limits.max_in_flight_bytes) as usize)
                as u32;
            // Try first: a request that fits the budget (nearly all) takes its permits without
            // building a waiting future.
            match permits.kib.try_acquire_many(cost_kib) {
                Ok(bytes) => bytes.forget(),
                Err(_) => match permits.kib.acquire_many(cost_kib).await {
                    Ok(bytes) => bytes.forget(),
                    Err(_) => return,
                },
            }
            match permits.requests.try_acquire() {
                Ok(permit) => permit.forget(),
                Err(_) => match permits.requests.acquire().await {
                    Ok(permit) => permit.forget(),
                    Err(_) => return,
                },
            }
            seq += 1;
            if !dispatch(frame, conn, seq, cost_kib, to_node, &replies, &expect) {
                return;
            }
        }
        // Buggify: a short idle timeout (an idle connection may be closed at any time; clients
        // reconnect).
        let idle = if buggify.fire("connection-idle-close", 0.05) {
            Duration::from_millis(1 + buggify.pick(200))
        } else {
            limits.idle_timeout
        };
        idle_deadline.set(Instant::now() + idle);
        // `biased` for reproducible simulation runs (see the node loop); `read_buf` is
        // cancel-safe.
        let read = tokio::select! {
            biased;
            read = reader.read_buf(&mut buf) => Some(read),
            () = &mut idle_deadline => None,
        };
        match read {
            Some(Ok(0)) | Some(Err(_)) => return,
            Some(Ok(_)) => {}
            None if permits.requests.available_permits() == limits.max_in_flight => {
                tracing::debug!(conn, "idle connection closed");
                return;
            }
            None => {}
        }
    }
}

/// Decodes one request and hands it to the node loop. `false` closes the connection.
fn dispatch(
    frame: Bytes,
    conn: u64,
    seq: u64,
    cost_kib: u32,
    to_node: &mpsc::UnboundedSender<Inbound>,
    replies: &mpsc::UnboundedSender<(u64, Reply)>,
    expect: &mpsc::UnboundedSender<Expected>,
) -> bool {
    let Some((api_key, api_version, correlation_id)) = peek_request(&frame) else {
        return false;
    };
    let expected = Expected {
        seq,
        cost_kib,
        correlation_id,
        api_key,
        api_version,
    };
    if !api_versions::is_supported(api_key, api_version) {
        let too_new_api_versions = api_key == ApiKey::ApiVersions.as_i16()
            && api_versions::supported(api_key).is_some_and(|(_, max)| api_version > max);
        if too_new_api_versions {
            // KIP-511: the client learns our range from a v0 answer it can always parse.
            return match api_versions::unsupported_api_versions_frame(correlation_id) {
                Ok(bytes) => {
                    expect.send(expected).is_ok()
                        && replies.send((seq, Reply::Encoded(bytes.freeze()))).is_ok()
                }
                Err(_) => false,
            };
        }
        // Kafka closes the connection on a request it cannot parse at that version.
        tracing::debug!(
            conn,
            api_key,
            api_version,
            "unsupported request version; closing"
        );
        return false;
    }
    match header::decode_request(frame) {
        Ok((_, body)) => {
            let reply = ReplyTo { conn, seq };
            expect.send(expected).is_ok()
                && to_node
                    .send(Inbound::Request {
                        reply,
                        api_key,
                        api_version,
                        body: Box::new(body),
                    })
                    .is_ok()
        }
        Err(e) => {
            tracing::debug!(conn, api_key, api_version, error = %e, "undecodable request; closing");
            false
        }
    }
}

async fn write_loop<W: AsyncWrite>(
    writer: W,
    mut replies: mpsc::UnboundedReceiver<(u64, Reply)>,
    mut expect: mpsc::UnboundedReceiver<Expected>,
    permits: Arc<Budget>,
    buggify: Buggify,
) {
    tokio::pin!(writer);
    let mut queue: VecDeque<Expected> = VecDeque::new();
    let mut arrived: BTreeMap<u64, Reply> = BTreeMap::new();
    let mut out = BytesMut::new();
    loop {
        // `biased` for reproducible simulations; a request's expectation is queued before the
        // request reaches the node, so it is always here before its reply.
        tokio::select! {
            biased;
            e = expect.recv() => match e {
                Some(e) => queue.push_back(e),
                None => return,
            },
            r = replies.recv() => match r {
                Some((seq, reply)) => { arrived.insert(seq, reply); }
                None => return,
            },
        }
        let mut wrote_direct = false;
        // Write every response that is next in request order.
        while let Some(next) = queue.front() {
            let Some(reply) = arrived.remove(&next.seq) else {
                break;
            };
            let Some(e) = queue.pop_front() else { break };
            permits.requests.add_permits(1);
            permits.kib.add_permits(e.cost_kib as usize);
            let bytes = match reply {
                Reply::Nothing => continue,
                Reply::Encoded(b) => b,
                Reply::Close => return,
                Reply::Body(body) => {
                    match header::encode_response(e.correlation_id, e.api_version, &body) {
                        Ok(b) => b.freeze(),
                        Err(err) => {
                            tracing::error!(api_key = e.api_key, api_version = e.api_version, error = %err, "cannot encode response");
                            return;
                        }
                    }
                }
            };
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            if bytes.len() < LARGE_RESPONSE {
                out.extend_from_slice(&bytes);
            } else {
                // Large responses (fetches) go straight to the socket, not through another copy.
                let head = std::mem::take(&mut out);
                if writer.write_all(&head).await.is_err() || writer.write_all(&bytes).await.is_err()
                {
                    return;
                }
                wrote_direct = true;
            }
        }
        if !out.is_empty() || wrote_direct {
            // Buggify: send the bytes in small flushed pieces, so the client reads responses
            // (and their 4-byte size prefix) split across reads.
            if out.len() > 1 && buggify.fire("connection-split-writes", 0.2) {
                let mut rest = std::mem::take(&mut out).freeze();
                while rest.len() > 1 {
                    let piece = rest.split_to(1 + buggify.pick(rest.len() as u64 - 1) as usize);
                    if writer.write_all(&piece).await.is_err() || writer.flush().await.is_err() {
                        return;
                    }
                }
                out.extend_from_slice(&rest);
            }
            // Flush too: madsim's TcpStream sends nothing until flushed.
            if writer.write_all(&out).await.is_err() || writer.flush().await.is_err() {
                return;
            }
            out.clear();
        }
    }
}
