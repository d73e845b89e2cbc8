//! `gregor bench produce`: one batch per Produce request, partitions in turn, a window of
//! requests in flight on each connection. The time of each request runs from just before its
//! bytes are written to its response being decoded.

use super::stats::{Latencies, Progress, Report};
use super::{connect, fail, topic_info, ProduceArgs, ProgressLine, TopicInfo};
use crate::client::{ClientError, Connection, RequestSender, ResponseReceiver};
use crate::protocol::error::ErrorCode;
use crate::protocol::generated::produce_request::{PartitionProduceData, TopicProduceData};
use crate::protocol::generated::{ProduceRequest, ResponseBody};
use crate::protocol::records::builder::BatchBuilder;
use crate::protocol::records::compression::Compression;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;

/// Bytes a record adds to a batch besides its value: length, attributes, deltas, key and value
/// lengths, header count (all varints, small here).
const RECORD_OVERHEAD: usize = 12;
/// Bytes of a batch header.
const BATCH_OVERHEAD: usize = 61;

/// The tag each Produce request carries to its response.
#[derive(Debug, Clone, Copy)]
struct Sent {
    at: Instant,
    records: u64,
}

impl Default for Sent {
    fn default() -> Self {
        Sent {
            at: Instant::now(),
            records: 0,
        }
    }
}

/// What every connection's workers share.
struct Shared {
    topic: TopicInfo,
    acks: i16,
    compression: Compression,
    payload: Bytes,
    records_per_batch: u64,
    remaining: AtomicU64,
    deadline: Option<Instant>,
    stop: AtomicBool,
    progress: Arc<Progress>,
}

impl Shared {
    /// Takes up to `records_per_batch` of the records left to send; 0 when done.
    fn claim(&self) -> u64 {
        if self.stop.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d) {
            return 0;
        }
        let mut left = self.remaining.load(Ordering::Relaxed);
        loop {
            let n = left.min(self.records_per_batch);
            if n == 0 {
                return 0;
            }
            match self.remaining.compare_exchange_weak(
                left,
                left - n,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return n,
                Err(now) => left = now,
            }
        }
    }

    fn record_bytes(&self, records: u64) -> u64 {
        records.saturating_mul(self.payload.len() as u64)
    }
}

pub(super) async fn run(args: ProduceArgs) -> Result<Report, String> {
    if args.common.connections == 0 || args.in_flight == 0 || args.batch_bytes == 0 {
        return Err("--connections, --in-flight and --batch-bytes must be at least 1".into());
    }
    let bootstrap = &args.common.bootstrap;
    let mut admin = connect::<()>(bootstrap).await?;
    let topic = topic_info(&mut admin, &args.common.topic, args.common.partitions, true).await?;
    drop(admin);
    let records_per_batch = (args.batch_bytes.saturating_sub(BATCH_OVERHEAD)
        / (args.record_size + RECORD_OVERHEAD))
        .max(1) as u64;
    let progress = Arc::new(Progress::default());
    let shared = Arc::new(Shared {
        topic,
        acks: args.acks,
        compression: args.compression,
        payload: payload(args.record_size),
        records_per_batch,
        remaining: AtomicU64::new(args.records),
        deadline: args
            .common
            .duration
            .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0))),
        stop: AtomicBool::new(false),
        progress: progress.clone(),
    });
    let mut conns = Vec::with_capacity(args.common.connections);
    for _ in 0..args.common.connections {
        conns.push(connect::<Sent>(bootstrap).await?);
    }
    let line = ProgressLine::start("produced", progress.clone(), args.common.quiet);
    let start = Instant::now();
    let workers: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| tokio::spawn(drive(conn, shared.clone(), i, args.in_flight)))
        .collect();
    let mut latencies = Latencies::default();
    let mut first_error = None;
    for worker in workers {
        match worker.await {
            Ok(Ok(l)) => latencies.merge(l),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(fail("worker", e));
            }
        }
    }
    let elapsed = start.elapsed();
    drop(line);
    if let Some(e) = first_error {
        return Err(e);
    }
    let (records, bytes) = progress.get();
    Ok(Report {
        verb: "produced",
        records,
        bytes,
        elapsed,
        latency: latencies.summary(),
    })
}

/// One connection: a task writes requests while this one reads the answers.
async fn drive(
    conn: Connection<Sent>,
    shared: Arc<Shared>,
    first_partition: usize,
    in_flight: usize,
) -> Result<Latencies, String> {
    let (tx, mut rx) = conn.split();
    let window = Arc::new(Semaphore::new(in_flight));
    let sender = tokio::spawn(send_loop(
        tx,
        shared.clone(),
        first_partition,
        window.clone(),
    ));
    let mut latencies = Latencies::default();
    let received = if shared.acks == 0 {
        Ok(())
    } else {
        receive_loop(&mut rx, &shared, &window, &mut latencies).await
    };
    if received.is_err() {
        // Stop the writer too: it may be waiting for a window slot that will not come back.
        shared.stop.store(true, Ordering::Relaxed);
        window.close();
    }
    let sent = sender.await.map_err(|e| fail("sender", e))?;
    received?;
    sent?;
    Ok(latencies)
}

async fn send_loop(
    mut tx: RequestSender<Sent>,
    shared: Arc<Shared>,
    first_partition: usize,
    window: Arc<Semaphore>,
) -> Result<(), String> {
    let partitions = &shared.topic.partitions;
    let mut next = first_partition;
    loop {
        if shared.acks != 0 {
            // The receiver gives the slot back when the answer arrives.
            match window.acquire().await {
                Ok(permit) => permit.forget(),
                Err(_) => return Ok(()),
            }
        }
        let records = shared.claim();
        if records == 0 {
            return Ok(());
        }
        let partition = partitions[next % partitions.len()];
        next = next.wrapping_add(1);
        let request = produce_request(&shared, partition, records)?;
        let sent = Sent {
            at: Instant::now(),
            records,
        };
        if let Err(e) = tx.send(request.into(), sent).await {
            shared.stop.store(true, Ordering::Relaxed);
            return Err(fail("Produce", e));
        }
        if shared.acks == 0 {
            shared.progress.add(records, shared.record_bytes(records));
        }
    }
}

async fn receive_loop(
    rx: &mut ResponseReceiver<Sent>,
    shared: &Shared,
    window: &Semaphore,
    latencies: &mut Latencies,
) -> Result<(), String> {
    loop {
        let response = match rx.recv().await {
            Ok(r) => r,
            Err(ClientError::NothingInFlight) => return Ok(()),
            Err(e) => return Err(fail("Produce", e)),
        };
        latencies.record(response.tag.at.elapsed());
        let ResponseBody::Produce(body) = response.body else {
            return Err(fail("Produce", ClientError::UnexpectedResponse("Produce")));
        };
        for t in &body.responses {
            for p in &t.partition_responses {
                let e = ErrorCode::from_code_or_unknown(p.error_code);
                if !e.is_ok() {
                    let detail = p.error_message.as_deref().unwrap_or("");
                    return Err(format!(
                        "Produce to {}-{} failed: {e} {detail}",
                        shared.topic.name, p.index
                    )
                    .trim_end()
                    .to_owned());
                }
            }
        }
        let records = response.tag.records;
        shared.progress.add(records, shared.record_bytes(records));
        window.add_permits(1);
    }
}

fn produce_request(
    shared: &Shared,
    partition: i32,
    records: u64,
) -> Result<ProduceRequest, String> {
    let timestamp = SystemTime::UNIX_EPOCH
        .elapsed()
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut builder = BatchBuilder::new(shared.compression);
    for _ in 0..records {
        builder
            .push(timestamp, None, Some(shared.payload.clone()), Vec::new())
            .map_err(|e| fail("building a batch", e))?;
    }
    let batch = builder.build().map_err(|e| fail("building a batch", e))?;
    Ok(ProduceRequest {
        transactional_id: None,
        acks: shared.acks,
        timeout_ms: 30_000,
        topic_data: vec![TopicProduceData {
            name: shared.topic.name.clone(),
            partition_data: vec![PartitionProduceData {
                index: partition,
                records: Some(batch),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// A record value of random capital letters, as Kafka's producer perf tool sends: some
/// redundancy for the compressors, not a run of zeros.
fn payload(size: usize) -> Bytes {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..size)
        .map(|_| {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b'A' + (state % 26) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}
