//! What the broker workload's clients share: the run's phase and history, the context each client
//! gets, and the requests they all send. The clients themselves, each on its own node, are in
//! [`super::producers`] (acks -1, 1, 0, and an idempotent producer) and [`super::consumer`]. Each
//! records what it saw in the shared history and the trace, and runs until the supervisor's phase
//! says stop or, once faults are off, until it has shown it can make progress again.

use super::{RestartRequest, PARTITIONS, TOPIC};
use crate::checker::admin::AdminHistory;
use crate::checker::broker::BrokerEvent;
use crate::history::History;
use crate::kafka_client::{CallError, KafkaClient};
use crate::kafka_records::{build_batch, Writer};
use crate::trace::Trace;
use bytes::Bytes;
use gregor::protocol::error::ErrorCode;
use gregor::protocol::generated::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use gregor::protocol::generated::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use gregor::protocol::generated::fetch_response::FetchResponse;
use gregor::protocol::generated::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use gregor::protocol::generated::{RequestBody, ResponseBody};
use gregor::protocol::records::Compression;
use madsim::rand::{thread_rng, Rng};
use madsim::time::sleep;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

pub(super) const PRODUCE_VERSION: i16 = 9;
pub(super) const FETCH_VERSION: i16 = 12;
pub(super) const CREATE_TOPICS_VERSION: i16 = 5;
pub(super) const INIT_PRODUCER_ID_VERSION: i16 = 4;

/// How long a client waits for any answer before it gives up on the connection.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_millis(1000);
/// Successful produce round trips each producer needs once faults are off.
pub(super) const LIVENESS_ACKS: u32 = 2;
/// Largest number of records in one produced batch.
pub(super) const BATCH_RECORDS_MAX: usize = 4;
/// Chance that the idempotent producer sends an acknowledged batch once more.
pub(super) const DUPLICATE_PROBABILITY: f64 = 0.1;

/// Where the run is; clients read it between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Faults may happen.
    Safety,
    /// Faults are off: clients must make progress and finish.
    Liveness,
    /// The supervisor gave up waiting: stop now.
    Stop,
}

/// State shared by the clients and the supervisor.
pub struct Shared {
    pub history: History<BrokerEvent>,
    /// Problems clients can see for themselves.
    pub violations: Vec<String>,
    pub phase: Phase,
    pub topic_ready: bool,
    /// Clients that finished their liveness work.
    pub finished: BTreeSet<String>,
    /// Producers that have not finished yet (the consumer drains after they all have).
    pub producers_running: usize,
    pub stats: ClientStats,
    /// What the admin client did and saw.
    pub admin: AdminHistory,
    pub admin_stats: AdminStats,
}

/// The admin client's counts for the run's summary.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdminStats {
    pub created: u32,
    pub grown: u32,
    pub deleted: u32,
    pub refused: u32,
    pub unknown: u32,
    pub records: u32,
}

/// Counts for the run's summary: which paths the clients exercised.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientStats {
    pub idempotent_acked: u64,
    /// Acknowledged on a resend after a timeout or a lost connection.
    pub idempotent_acked_after_retry: u64,
    /// Deliberate duplicates answered with the original offset.
    pub duplicates_answered: u64,
    /// Batches the pipelined producer (five in flight) got acknowledged.
    pub pipelined_acked: u64,
    /// Fetched bytes refused as damaged (bit flips) and fetched again.
    pub damaged_reads: u64,
}

impl Shared {
    pub fn new(producers: usize) -> Shared {
        Shared {
            history: History::default(),
            violations: Vec::new(),
            phase: Phase::Safety,
            topic_ready: false,
            finished: BTreeSet::new(),
            producers_running: producers,
            stats: ClientStats::default(),
            admin: AdminHistory::default(),
            admin_stats: AdminStats::default(),
        }
    }
}

/// What every client needs: where the broker is, the shared state, the trace, and the
/// supervisor's ear for "the broker needs a restart" (a partition went offline).
#[derive(Clone)]
pub struct Ctx {
    pub broker: SocketAddr,
    pub trace: Trace,
    pub shared: Arc<Mutex<Shared>>,
    pub restarts: mpsc::UnboundedSender<RestartRequest>,
}

impl Ctx {
    pub fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn phase(&self) -> Phase {
        self.lock().phase
    }

    pub(super) fn record(&self, event: BrokerEvent) {
        self.lock().history.record(event);
    }

    pub(super) fn violation(&self, who: &str, what: String) {
        self.trace.event(who, format_args!("VIOLATION {what}"));
        self.lock().violations.push(format!("{who}: {what}"));
    }

    pub(super) fn finish(&self, who: &str, producer: bool) {
        self.trace.event(who, "finished");
        let mut shared = self.lock();
        shared.finished.insert(who.to_owned());
        if producer {
            shared.producers_running = shared.producers_running.saturating_sub(1);
        }
    }

    /// An operator would restart a broker whose log went offline (KAFKA_STORAGE_ERROR).
    pub(super) fn storage_error(&self, who: &str) {
        let _ = self.restarts.send(RestartRequest::StorageError(format!(
            "{who} saw KAFKA_STORAGE_ERROR"
        )));
    }

    pub(super) async fn wait_for_topic(&self) {
        while !self.lock().topic_ready {
            sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Backoff after a failed request, drawn so clients do not move in lockstep.
pub(super) async fn backoff() {
    let ms = thread_rng().gen_range(5..=50);
    sleep(Duration::from_millis(ms)).await;
}

/// Wall-clock milliseconds for record timestamps (madsim's simulated clock).
#[allow(clippy::disallowed_methods)]
pub(super) fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A codec for a new batch: each of the four one time in thirty-two. The broker stores
/// compressed batches as they come (it reads only their headers), so they add little to what a
/// run checks of the broker, while compressing and decompressing them costs the clients more
/// than everything else a batch costs: it was a sixth of a run's CPU time when half of all
/// batches were compressed. The codecs themselves have their own tests and fuzz targets.
pub(super) fn random_compression() -> Compression {
    match thread_rng().gen_range(0..32) {
        0 => Compression::Gzip,
        1 => Compression::Snappy,
        2 => Compression::Lz4,
        3 => Compression::Zstd,
        _ => Compression::None,
    }
}

pub(super) fn error_name(code: i16) -> &'static str {
    ErrorCode::from_code(code).map_or("UNKNOWN_ERROR_CODE", ErrorCode::name)
}

// ---------------------------------------------------------------------------------------------
// Topic set-up.

/// Creates the topic, retrying until it exists.
pub async fn create_topic(ctx: &Ctx, who: &str) {
    let mut client = KafkaClient::new(ctx.broker, who);
    loop {
        let request = CreateTopicsRequest {
            topics: vec![CreatableTopic {
                name: TOPIC.to_owned(),
                num_partitions: PARTITIONS,
                replication_factor: 1,
                ..Default::default()
            }],
            timeout_ms: 5000,
            ..Default::default()
        };
        let body = RequestBody::CreateTopics(request);
        match client.call(CREATE_TOPICS_VERSION, body, CALL_TIMEOUT).await {
            Ok(ResponseBody::CreateTopics(response)) => {
                let code = response.topics.first().map_or(-1, |t| t.error_code);
                if code == 0 || code == ErrorCode::TopicAlreadyExists.code() {
                    ctx.trace
                        .event(who, format_args!("topic ready ({})", error_name(code)));
                    ctx.lock().topic_ready = true;
                    return;
                }
                ctx.trace
                    .event(who, format_args!("create topic: {}", error_name(code)));
            }
            Ok(other) => ctx.trace.event(
                who,
                format_args!("create topic: unexpected {:?}", other.api_key()),
            ),
            Err(err) => ctx.trace.event(who, format_args!("create topic: {err}")),
        }
        backoff().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Producing.

/// A batch of 1..=`BATCH_RECORDS_MAX` new values (`who:N`, unique in the run) for `partition`,
/// written by `writer` with a codec drawn from the seed, and recorded as sent. `None`, after
/// reporting a violation, if it cannot be built.
pub(super) fn new_batch(
    ctx: &Ctx,
    who: &str,
    counter: &mut u64,
    partition: i32,
    writer: Writer,
) -> Option<(Arc<[String]>, Bytes)> {
    let count = thread_rng().gen_range(1..=BATCH_RECORDS_MAX);
    let values: Arc<[String]> = (0..count)
        .map(|_| {
            *counter += 1;
            format!("{who}:{counter}")
        })
        .collect();
    match build_batch(&values, writer, random_compression(), wall_ms()) {
        Ok(batch) => {
            ctx.record(BrokerEvent::Sent {
                client: who.to_owned(),
                partition,
                values: Arc::clone(&values),
            });
            Some((values, batch))
        }
        Err(err) => {
            ctx.violation(who, format!("cannot build a batch: {err}"));
            None
        }
    }
}

/// A produce request for one batch to one partition of [`TOPIC`].
pub(super) fn produce_request(acks: i16, partition: i32, batch: Bytes) -> RequestBody {
    produce_request_to(TOPIC, acks, partition, batch)
}

/// A produce request for one batch to one partition of `topic`.
pub(super) fn produce_request_to(
    topic: &str,
    acks: i16,
    partition: i32,
    batch: Bytes,
) -> RequestBody {
    RequestBody::Produce(ProduceRequest {
        acks,
        timeout_ms: 5000,
        topic_data: vec![TopicProduceData {
            name: topic.to_owned(),
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

/// The broker's answer for one partition: its error code and base offset.
pub(super) enum ProduceOutcome {
    Answered { error_code: i16, base_offset: i64 },
    Failed(CallError),
}

pub(super) async fn produce(
    client: &mut KafkaClient,
    acks: i16,
    partition: i32,
    batch: Bytes,
) -> ProduceOutcome {
    produce_to(client, TOPIC, acks, partition, batch).await
}

pub(super) async fn produce_to(
    client: &mut KafkaClient,
    topic: &str,
    acks: i16,
    partition: i32,
    batch: Bytes,
) -> ProduceOutcome {
    let body = produce_request_to(topic, acks, partition, batch);
    let result = client.call(PRODUCE_VERSION, body, CALL_TIMEOUT).await;
    produce_outcome(result, topic, partition)
}

/// What a produce call's result says about `partition` of `topic`.
pub(super) fn produce_outcome(
    result: Result<ResponseBody, CallError>,
    topic: &str,
    partition: i32,
) -> ProduceOutcome {
    match result {
        Ok(ResponseBody::Produce(response)) => {
            let answer = response
                .responses
                .iter()
                .filter(|t| t.name == topic)
                .flat_map(|t| &t.partition_responses)
                .find(|p| p.index == partition);
            match answer {
                Some(p) => ProduceOutcome::Answered {
                    error_code: p.error_code,
                    base_offset: p.base_offset,
                },
                None => ProduceOutcome::Failed(CallError::Protocol(
                    "no answer for the partition".to_owned(),
                )),
            }
        }
        Ok(other) => ProduceOutcome::Failed(CallError::Protocol(format!(
            "unexpected {:?} response",
            other.api_key()
        ))),
        Err(err) => ProduceOutcome::Failed(err),
    }
}

// ---------------------------------------------------------------------------------------------
// Consuming.

/// A fetch of the given partitions of `topic` from the given offsets.
pub fn fetch_request_for(
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
    max_wait_ms: i32,
) -> RequestBody {
    RequestBody::Fetch(FetchRequest {
        replica_id: -1,
        max_wait_ms,
        min_bytes: 1,
        max_bytes: 64 << 10,
        isolation_level: 0,
        session_id: 0,
        session_epoch: -1,
        topics: vec![FetchTopic {
            topic: topic.to_owned(),
            partitions: offsets
                .iter()
                .map(|(&partition, &fetch_offset)| FetchPartition {
                    partition,
                    current_leader_epoch: -1,
                    fetch_offset,
                    last_fetched_epoch: -1,
                    log_start_offset: -1,
                    partition_max_bytes: 16 << 10,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    })
}

pub async fn fetch(
    client: &mut KafkaClient,
    offsets: &BTreeMap<i32, i64>,
    max_wait_ms: i32,
) -> Result<FetchResponse, CallError> {
    fetch_from(client, TOPIC, offsets, max_wait_ms).await
}

pub async fn fetch_from(
    client: &mut KafkaClient,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
    max_wait_ms: i32,
) -> Result<FetchResponse, CallError> {
    let body = fetch_request_for(topic, offsets, max_wait_ms);
    match client.call(FETCH_VERSION, body, CALL_TIMEOUT).await? {
        ResponseBody::Fetch(response) => Ok(response),
        other => Err(CallError::Protocol(format!(
            "unexpected {:?} response",
            other.api_key()
        ))),
    }
}
