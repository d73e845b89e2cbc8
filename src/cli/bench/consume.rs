//! `gregor bench consume`: reads every partition from its log start, one Fetch at a time per
//! connection (the next offsets depend on the answer, as in a real consumer), partitions
//! spread over the connections. Each batch's CRC is checked and its records decoded; the bytes
//! counted are keys plus values, as Kafka's consumer perf tool counts them.

use super::stats::{Latencies, Progress, Report};
use super::{
    connect, fail, list_offsets, topic_info, ConsumeArgs, ProgressLine, TopicInfo, EARLIEST, LATEST,
};
use crate::client::{ClientError, Connection};
use crate::protocol::error::ErrorCode;
use crate::protocol::generated::fetch_request::{FetchPartition, FetchTopic};
use crate::protocol::generated::{ApiKey, FetchRequest, ResponseBody};
use crate::protocol::records::batch::RecordBatches;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fetch waits at most this long for data that is not there yet.
const MAX_WAIT_MS: i32 = 500;
/// Cap on a decompressed batch (as the broker's own limit).
const MAX_DECOMPRESSED: usize = 64 << 20;

/// Where one partition is and where it stops.
#[derive(Debug, Clone, Copy)]
struct Position {
    next: i64,
    end: i64,
}

struct Shared {
    topic: TopicInfo,
    fetch_version: i16,
    target: Option<u64>,
    deadline: Option<Instant>,
    partition_fetch_bytes: i32,
    fetch_max_bytes: i32,
    progress: Arc<Progress>,
}

impl Shared {
    fn done(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
            || self.target.is_some_and(|t| self.progress.get().0 >= t)
    }
}

pub(super) async fn run(args: ConsumeArgs) -> Result<Report, String> {
    if args.common.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    let bootstrap = &args.common.bootstrap;
    let mut admin = connect::<()>(bootstrap).await?;
    let topic = topic_info(
        &mut admin,
        &args.common.topic,
        args.common.partitions,
        false,
    )
    .await?;
    let starts = list_offsets(&mut admin, &topic, EARLIEST)
        .await
        .map_err(|e| e.to_string())?;
    let ends = match args.records {
        Some(_) => BTreeMap::new(),
        None => list_offsets(&mut admin, &topic, LATEST)
            .await
            .map_err(|e| e.to_string())?,
    };
    // Fetch v13 and later name topics by id; without one, stay below.
    let cap = if topic.id.is_nil() { 12 } else { i16::MAX };
    let fetch_version = admin
        .versions()
        .pick(ApiKey::Fetch, cap)
        .ok_or_else(|| fail("Fetch", ClientError::UnsupportedApi("Fetch")))?;
    drop(admin);
    let connections = args.common.connections;
    let mut assigned: Vec<BTreeMap<i32, Position>> = vec![BTreeMap::new(); connections];
    for (i, &p) in topic.partitions.iter().enumerate() {
        let next = starts.get(&p).copied().unwrap_or(0);
        let end = ends.get(&p).copied().unwrap_or(i64::MAX);
        if next < end {
            if let Some(slot) = assigned.get_mut(i % connections) {
                slot.insert(p, Position { next, end });
            }
        }
    }
    let progress = Arc::new(Progress::default());
    let shared = Arc::new(Shared {
        topic,
        fetch_version,
        target: args.records,
        deadline: args
            .common
            .duration
            .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0))),
        partition_fetch_bytes: args.partition_fetch_bytes,
        fetch_max_bytes: args.fetch_max_bytes,
        progress: progress.clone(),
    });
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(connect::<()>(bootstrap).await?);
    }
    let line = ProgressLine::start("consumed", progress.clone(), args.common.quiet);
    let start = Instant::now();
    let workers: Vec<_> = conns
        .into_iter()
        .zip(assigned)
        .map(|(conn, positions)| tokio::spawn(fetch_loop(conn, shared.clone(), positions)))
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
        verb: "consumed",
        records,
        bytes,
        elapsed,
        latency: latencies.summary(),
    })
}

async fn fetch_loop(
    mut conn: Connection,
    shared: Arc<Shared>,
    mut positions: BTreeMap<i32, Position>,
) -> Result<Latencies, String> {
    let mut latencies = Latencies::default();
    while !positions.is_empty() && !shared.done() {
        let request = FetchRequest {
            max_wait_ms: MAX_WAIT_MS,
            min_bytes: 1,
            max_bytes: shared.fetch_max_bytes,
            topics: vec![FetchTopic {
                topic: shared.topic.name.clone(),
                topic_id: shared.topic.id,
                partitions: positions
                    .iter()
                    .map(|(&partition, pos)| FetchPartition {
                        partition,
                        fetch_offset: pos.next,
                        partition_max_bytes: shared.partition_fetch_bytes,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let sent = Instant::now();
        conn.send_at(&request.into(), shared.fetch_version, ())
            .await
            .map_err(|e| fail("Fetch", e))?;
        let response = conn.recv().await.map_err(|e| fail("Fetch", e))?;
        latencies.record(sent.elapsed());
        let ResponseBody::Fetch(body) = response.body else {
            return Err(fail("Fetch", ClientError::UnexpectedResponse("Fetch")));
        };
        let e = ErrorCode::from_code_or_unknown(body.error_code);
        if !e.is_ok() {
            return Err(format!("Fetch failed: {e}"));
        }
        for t in body.responses {
            for p in t.partitions {
                let e = ErrorCode::from_code_or_unknown(p.error_code);
                if !e.is_ok() {
                    return Err(format!(
                        "Fetch {}-{}: {e}",
                        shared.topic.name, p.partition_index
                    ));
                }
                let Some(pos) = positions.get_mut(&p.partition_index) else {
                    continue;
                };
                let (records, bytes) =
                    consume_records(pos, p.records.unwrap_or_default(), &shared.topic.name)?;
                shared.progress.add(records, bytes);
                if pos.next >= pos.end {
                    positions.remove(&p.partition_index);
                }
            }
        }
    }
    Ok(latencies)
}

/// Checks and counts the records of one partition's fetched data at or after `pos.next`, and
/// moves `pos.next` past the last whole batch. Returns (records, key + value bytes).
fn consume_records(pos: &mut Position, data: Bytes, topic: &str) -> Result<(u64, u64), String> {
    let had_data = !data.is_empty();
    let before = pos.next;
    let (mut records, mut bytes) = (0u64, 0u64);
    for batch in RecordBatches::allowing_partial_tail(data) {
        let batch = batch.map_err(|e| fail(&format!("fetched data of {topic}"), e))?;
        batch
            .verify_crc()
            .map_err(|e| fail(&format!("fetched batch of {topic}"), e))?;
        let header = *batch.header();
        if !header.is_control() {
            let decoded = batch
                .records(MAX_DECOMPRESSED)
                .map_err(|e| fail(&format!("fetched batch of {topic}"), e))?;
            for record in decoded {
                let record = record.map_err(|e| fail(&format!("fetched record of {topic}"), e))?;
                let offset = header
                    .base_offset
                    .saturating_add(i64::from(record.offset_delta));
                if offset < pos.next {
                    continue;
                }
                records += 1;
                let len = |b: &Option<Bytes>| b.as_ref().map_or(0, |b| b.len() as u64);
                bytes += len(&record.key) + len(&record.value);
            }
        }
        pos.next = pos.next.max(header.next_offset());
    }
    if had_data && pos.next == before {
        return Err(format!(
            "{topic}: a batch at offset {before} is larger than --partition-fetch-bytes"
        ));
    }
    Ok((records, bytes))
}
