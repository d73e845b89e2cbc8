//! The broker workload's clients, each on its own node: producers (acks -1, 1, 0), an idempotent
//! producer and a consumer. Each records what it saw in the shared history and the trace, and
//! runs until the supervisor's phase says stop, or, once faults are off, until it has shown it
//! can make progress again.

use super::{RestartRequest, PARTITIONS, TOPIC};
use crate::checker::broker::BrokerEvent;
use crate::history::History;
use crate::kafka_client::{CallError, KafkaClient};
use crate::kafka_records::{build_batch, decode_fetched, Reading, Writer};
use crate::trace::Trace;
use bytes::Bytes;
use gregor::protocol::error::ErrorCode;
use gregor::protocol::generated::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use gregor::protocol::generated::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use gregor::protocol::generated::fetch_response::FetchResponse;
use gregor::protocol::generated::init_producer_id_request::InitProducerIdRequest;
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

const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;
const CREATE_TOPICS_VERSION: i16 = 5;
const INIT_PRODUCER_ID_VERSION: i16 = 4;

/// How long a client waits for any answer before it gives up on the connection.
const CALL_TIMEOUT: Duration = Duration::from_millis(1000);
/// Successful produce round trips each producer needs once faults are off.
const LIVENESS_ACKS: u32 = 2;
/// Largest number of records in one produced batch.
const BATCH_RECORDS_MAX: usize = 4;
/// Chance that the idempotent producer sends an acknowledged batch once more.
const DUPLICATE_PROBABILITY: f64 = 0.1;

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
}

/// Counts for the run's summary: which paths the clients exercised.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientStats {
    pub idempotent_acked: u64,
    /// Acknowledged on a resend after a timeout or a lost connection.
    pub idempotent_acked_after_retry: u64,
    /// Deliberate duplicates answered with the original offset.
    pub duplicates_answered: u64,
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

    fn phase(&self) -> Phase {
        self.lock().phase
    }

    fn record(&self, event: BrokerEvent) {
        self.lock().history.record(event);
    }

    fn violation(&self, who: &str, what: String) {
        self.trace.event(who, format_args!("VIOLATION {what}"));
        self.lock().violations.push(format!("{who}: {what}"));
    }

    fn finish(&self, who: &str, producer: bool) {
        self.trace.event(who, "finished");
        let mut shared = self.lock();
        shared.finished.insert(who.to_owned());
        if producer {
            shared.producers_running = shared.producers_running.saturating_sub(1);
        }
    }

    /// An operator would restart a broker whose log went offline (KAFKA_STORAGE_ERROR).
    fn storage_error(&self, who: &str) {
        let _ = self.restarts.send(RestartRequest::StorageError(format!(
            "{who} saw KAFKA_STORAGE_ERROR"
        )));
    }

    async fn wait_for_topic(&self) {
        while !self.lock().topic_ready {
            sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Backoff after a failed request, drawn so clients do not move in lockstep.
async fn backoff() {
    let ms = thread_rng().gen_range(5..=50);
    sleep(Duration::from_millis(ms)).await;
}

/// Wall-clock milliseconds for record timestamps (madsim's simulated clock).
#[allow(clippy::disallowed_methods)]
fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn random_compression() -> Compression {
    match thread_rng().gen_range(0..8) {
        0 => Compression::Gzip,
        1 => Compression::Snappy,
        2 => Compression::Lz4,
        3 => Compression::Zstd,
        _ => Compression::None,
    }
}

fn error_name(code: i16) -> &'static str {
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

/// A produce request for one batch to one partition.
fn produce_request(acks: i16, partition: i32, batch: Bytes) -> RequestBody {
    RequestBody::Produce(ProduceRequest {
        acks,
        timeout_ms: 5000,
        topic_data: vec![TopicProduceData {
            name: TOPIC.to_owned(),
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
    let body = produce_request(acks, partition, batch);
    match client.call(PRODUCE_VERSION, body, CALL_TIMEOUT).await {
        Ok(ResponseBody::Produce(response)) => {
            let answer = response
                .responses
                .iter()
                .filter(|t| t.name == TOPIC)
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

/// A plain producer with a fixed `acks`. Every batch carries new values: a batch whose answer
/// is lost is not sent again (its fate stays unknown, which the checkers allow).
pub async fn producer(ctx: Ctx, who: String, acks: i16) {
    ctx.wait_for_topic().await;
    let mut client = KafkaClient::new(ctx.broker, &who);
    let mut rng = thread_rng();
    let mut counter = 0u64;
    let mut progress_after_faults = 0u32;
    loop {
        let phase = ctx.phase();
        if phase == Phase::Stop {
            return;
        }
        if phase == Phase::Liveness && progress_after_faults >= LIVENESS_ACKS {
            ctx.finish(&who, true);
            return;
        }
        let partition = rng.gen_range(0..PARTITIONS);
        let count = rng.gen_range(1..=BATCH_RECORDS_MAX);
        let values: Vec<String> = (0..count)
            .map(|_| {
                counter += 1;
                format!("{who}:{counter}")
            })
            .collect();
        let batch = match build_batch(&values, Writer::Plain, random_compression(), wall_ms()) {
            Ok(batch) => batch,
            Err(err) => {
                ctx.violation(&who, format!("cannot build a batch: {err}"));
                return;
            }
        };
        ctx.record(BrokerEvent::Sent {
            client: who.clone(),
            partition,
            values: values.clone(),
        });
        let first = &values[0];
        if acks == 0 {
            let body = produce_request(0, partition, batch);
            match client.send_only(PRODUCE_VERSION, body, CALL_TIMEOUT).await {
                Ok(()) => {
                    ctx.trace.event(
                        &who,
                        format_args!("sent {first} +{} to p{partition}", count - 1),
                    );
                    if phase == Phase::Liveness {
                        progress_after_faults += 1;
                    }
                }
                Err(err) => {
                    ctx.trace.event(&who, format_args!("send failed: {err}"));
                    backoff().await;
                }
            }
        } else {
            match produce(&mut client, acks, partition, batch).await {
                ProduceOutcome::Answered {
                    error_code: 0,
                    base_offset,
                } => {
                    ctx.trace.event(
                        &who,
                        format_args!("acked {first} +{} at p{partition}@{base_offset}", count - 1),
                    );
                    ctx.record(BrokerEvent::Acked {
                        client: who.clone(),
                        acks,
                        partition,
                        base_offset,
                        values,
                    });
                    if phase == Phase::Liveness {
                        progress_after_faults += 1;
                    }
                }
                ProduceOutcome::Answered { error_code, .. } => {
                    ctx.trace.event(
                        &who,
                        format_args!("{first} to p{partition}: {}", error_name(error_code)),
                    );
                    if error_code == ErrorCode::KafkaStorageError.code() {
                        ctx.storage_error(&who);
                    }
                    backoff().await;
                }
                ProduceOutcome::Failed(err) => {
                    ctx.trace
                        .event(&who, format_args!("{first} to p{partition}: {err}"));
                    backoff().await;
                }
            }
        }
        // Think time, so requests interleave in many ways.
        if rng.gen_bool(0.5) {
            sleep(Duration::from_millis(rng.gen_range(1..=10))).await;
        }
    }
}

/// A batch the idempotent producer keeps sending until it gets an answer.
struct InFlight {
    partition: i32,
    values: Vec<String>,
    batch: Bytes,
    base_sequence: i32,
    attempts: u32,
}

/// The idempotent producer (KIP-98): a producer id from InitProducerId, one sequence per
/// partition, one batch in flight, resent unchanged after a timeout or a lost connection. The
/// broker must append it once and answer every retry with the original offset.
pub async fn idempotent_producer(ctx: Ctx, who: String) {
    ctx.wait_for_topic().await;
    let mut client = KafkaClient::new(ctx.broker, &who);
    let mut rng = thread_rng();
    let mut counter = 0u64;
    let mut progress_after_faults = 0u32;
    let mut session: Option<(i64, i16)> = None;
    let mut sequences: BTreeMap<i32, i32> = BTreeMap::new();
    let mut in_flight: Option<InFlight> = None;
    loop {
        let phase = ctx.phase();
        if phase == Phase::Stop {
            return;
        }
        if phase == Phase::Liveness && progress_after_faults >= LIVENESS_ACKS && in_flight.is_none()
        {
            ctx.finish(&who, true);
            return;
        }
        let Some((producer_id, epoch)) = session else {
            session = init_producer_id(&ctx, &who, &mut client).await;
            sequences.clear();
            if session.is_none() {
                backoff().await;
            }
            continue;
        };
        let mut batch = match in_flight.take() {
            Some(batch) => batch,
            None => {
                let partition = rng.gen_range(0..PARTITIONS);
                let count = rng.gen_range(1..=BATCH_RECORDS_MAX);
                let values: Vec<String> = (0..count)
                    .map(|_| {
                        counter += 1;
                        format!("{who}:{counter}")
                    })
                    .collect();
                let base_sequence = sequences.get(&partition).copied().unwrap_or(0);
                let writer = Writer::Idempotent {
                    producer_id,
                    epoch,
                    base_sequence,
                };
                let bytes = match build_batch(&values, writer, random_compression(), wall_ms()) {
                    Ok(bytes) => bytes,
                    Err(err) => {
                        ctx.violation(&who, format!("cannot build a batch: {err}"));
                        return;
                    }
                };
                ctx.record(BrokerEvent::Sent {
                    client: who.clone(),
                    partition,
                    values: values.clone(),
                });
                InFlight {
                    partition,
                    values,
                    batch: bytes,
                    base_sequence,
                    attempts: 0,
                }
            }
        };
        batch.attempts += 1;
        let (partition, seq, attempt) = (batch.partition, batch.base_sequence, batch.attempts);
        let first = batch.values[0].clone();
        let label = format!("{first} (pid {producer_id} seq {seq} attempt {attempt})");
        match produce(&mut client, -1, partition, batch.batch.clone()).await {
            ProduceOutcome::Answered {
                error_code: 0,
                base_offset,
            } => {
                ctx.trace.event(
                    &who,
                    format_args!("acked {label} at p{partition}@{base_offset}"),
                );
                let count = i32::try_from(batch.values.len()).unwrap_or(i32::MAX);
                sequences.insert(partition, seq.wrapping_add(count));
                ctx.record(BrokerEvent::Acked {
                    client: who.clone(),
                    acks: -1,
                    partition,
                    base_offset,
                    values: batch.values,
                });
                {
                    let mut shared = ctx.lock();
                    shared.stats.idempotent_acked += 1;
                    if attempt > 1 {
                        shared.stats.idempotent_acked_after_retry += 1;
                    }
                }
                if phase == Phase::Liveness {
                    progress_after_faults += 1;
                }
                // Now and then the same batch again, as a duplicated request would arrive: the
                // broker must not append it and must answer with the original offset.
                if rng.gen_bool(DUPLICATE_PROBABILITY) {
                    resend_duplicate(&ctx, &who, &mut client, partition, batch.batch, base_offset)
                        .await;
                }
            }
            ProduceOutcome::Answered { error_code, .. } => {
                let name = error_name(error_code);
                ctx.trace
                    .event(&who, format_args!("{label} to p{partition}: {name}"));
                let fatal = [
                    ErrorCode::OutOfOrderSequenceNumber,
                    ErrorCode::UnknownProducerId,
                    ErrorCode::InvalidProducerEpoch,
                ]
                .iter()
                .any(|e| e.code() == error_code);
                if fatal {
                    // With one batch in flight and every acknowledged batch durable, the broker
                    // always knows the sequence that comes next: this is not the client's doing.
                    ctx.violation(
                        &who,
                        format!(
                            "{name} for {label} to p{partition}: the broker lost the producer's state"
                        ),
                    );
                    session = None;
                } else {
                    if error_code == ErrorCode::KafkaStorageError.code() {
                        ctx.storage_error(&who);
                    }
                    in_flight = Some(batch);
                    backoff().await;
                }
            }
            ProduceOutcome::Failed(err) => {
                ctx.trace.event(
                    &who,
                    format_args!("{label} to p{partition}: {err}, will resend"),
                );
                in_flight = Some(batch);
                backoff().await;
            }
        }
        if rng.gen_bool(0.5) {
            sleep(Duration::from_millis(rng.gen_range(1..=10))).await;
        }
    }
}

/// Sends an acknowledged idempotent batch again; the answer must be its original offset.
async fn resend_duplicate(
    ctx: &Ctx,
    who: &str,
    client: &mut KafkaClient,
    partition: i32,
    batch: Bytes,
    original: i64,
) {
    match produce(client, -1, partition, batch).await {
        ProduceOutcome::Answered {
            error_code: 0,
            base_offset,
        } if base_offset == original => {
            ctx.trace.event(
                who,
                format_args!("duplicate answered with its original offset p{partition}@{original}"),
            );
            ctx.lock().stats.duplicates_answered += 1;
        }
        ProduceOutcome::Answered {
            error_code: 0,
            base_offset,
        } => ctx.violation(
            who,
            format!(
                "a duplicate of the batch at p{partition}@{original} was answered with offset {base_offset}"
            ),
        ),
        ProduceOutcome::Answered { error_code, .. }
            if error_code == ErrorCode::KafkaStorageError.code() =>
        {
            ctx.trace.event(who, "duplicate: KAFKA_STORAGE_ERROR");
            ctx.storage_error(who);
        }
        ProduceOutcome::Answered { error_code, .. } => ctx.violation(
            who,
            format!(
                "a duplicate of the batch at p{partition}@{original} was refused with {}",
                error_name(error_code)
            ),
        ),
        ProduceOutcome::Failed(err) => {
            ctx.trace.event(who, format_args!("duplicate: {err}"));
        }
    }
}

async fn init_producer_id(ctx: &Ctx, who: &str, client: &mut KafkaClient) -> Option<(i64, i16)> {
    let body = RequestBody::InitProducerId(InitProducerIdRequest {
        transactional_id: None,
        transaction_timeout_ms: 60_000,
        producer_id: -1,
        producer_epoch: -1,
        ..Default::default()
    });
    match client
        .call(INIT_PRODUCER_ID_VERSION, body, CALL_TIMEOUT)
        .await
    {
        Ok(ResponseBody::InitProducerId(r)) if r.error_code == 0 => {
            ctx.trace.event(
                who,
                format_args!("producer id {} epoch {}", r.producer_id, r.producer_epoch),
            );
            Some((r.producer_id, r.producer_epoch))
        }
        Ok(ResponseBody::InitProducerId(r)) => {
            let name = error_name(r.error_code);
            ctx.trace.event(who, format_args!("InitProducerId: {name}"));
            None
        }
        Ok(other) => {
            ctx.trace.event(
                who,
                format_args!("InitProducerId: unexpected {:?}", other.api_key()),
            );
            None
        }
        Err(err) => {
            ctx.trace.event(who, format_args!("InitProducerId: {err}"));
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Consuming.

/// A fetch of every partition from the given offsets.
pub fn fetch_request(offsets: &BTreeMap<i32, i64>, max_wait_ms: i32) -> RequestBody {
    RequestBody::Fetch(FetchRequest {
        replica_id: -1,
        max_wait_ms,
        min_bytes: 1,
        max_bytes: 64 << 10,
        isolation_level: 0,
        session_id: 0,
        session_epoch: -1,
        topics: vec![FetchTopic {
            topic: TOPIC.to_owned(),
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
    let body = fetch_request(offsets, max_wait_ms);
    match client.call(FETCH_VERSION, body, CALL_TIMEOUT).await? {
        ResponseBody::Fetch(response) => Ok(response),
        other => Err(CallError::Protocol(format!(
            "unexpected {:?} response",
            other.api_key()
        ))),
    }
}

/// Reads every partition from offset 0, over and over, recording each record and high
/// watermark. Once every producer has finished, it stops when it has caught up everywhere.
pub async fn consumer(ctx: Ctx, who: String) {
    ctx.wait_for_topic().await;
    let mut client = KafkaClient::new(ctx.broker, &who);
    let mut offsets: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    loop {
        let (phase, producers_running) = {
            let shared = ctx.lock();
            (shared.phase, shared.producers_running)
        };
        if phase == Phase::Stop {
            return;
        }
        let draining = phase == Phase::Liveness && producers_running == 0;
        let response = match fetch(&mut client, &offsets, 100).await {
            Ok(response) => response,
            Err(err) => {
                ctx.trace.event(&who, format_args!("fetch: {err}"));
                backoff().await;
                continue;
            }
        };
        if response.error_code != 0 {
            let name = error_name(response.error_code);
            ctx.trace.event(&who, format_args!("fetch: {name}"));
            backoff().await;
            continue;
        }
        let mut caught_up = true;
        let mut retry_soon = false;
        for data in response
            .responses
            .iter()
            .filter(|t| t.topic == TOPIC)
            .flat_map(|t| &t.partitions)
        {
            let partition = data.partition_index;
            let Some(offset) = offsets.get_mut(&partition) else {
                continue;
            };
            if data.error_code != 0 {
                caught_up = false;
                retry_soon = true;
                let name = error_name(data.error_code);
                ctx.trace
                    .event(&who, format_args!("p{partition}@{offset}: {name}"));
                if data.error_code == ErrorCode::KafkaStorageError.code() {
                    ctx.storage_error(&who);
                }
                if data.error_code == ErrorCode::OffsetOutOfRange.code() && data.high_watermark >= 0
                {
                    // Our position is past the end: the high watermark went back. Record it
                    // (the checker reports it) and read on from there.
                    ctx.record(BrokerEvent::HighWatermark {
                        partition,
                        hw: data.high_watermark,
                    });
                    *offset = data.high_watermark;
                }
                continue;
            }
            ctx.record(BrokerEvent::HighWatermark {
                partition,
                hw: data.high_watermark,
            });
            let records = data.records.clone().unwrap_or_default();
            match decode_fetched(records, *offset, Reading::Strict) {
                Ok(read) => {
                    if let (Some((first, _)), Some((last, _))) = (read.first(), read.last()) {
                        ctx.trace.event(
                            &who,
                            format_args!(
                                "p{partition}: read {first}..={last} (hw {})",
                                data.high_watermark
                            ),
                        );
                        *offset = last + 1;
                    }
                    for (read_offset, value) in read {
                        ctx.record(BrokerEvent::Consumed {
                            partition,
                            offset: read_offset,
                            value,
                        });
                    }
                }
                Err(why) => {
                    retry_soon = true;
                    ctx.lock().stats.damaged_reads += 1;
                    ctx.trace.event(
                        &who,
                        format_args!("p{partition}@{offset}: damaged read ({why}), fetching again"),
                    );
                }
            }
            if *offset < data.high_watermark {
                caught_up = false;
            }
        }
        if draining && caught_up {
            ctx.finish(&who, false);
            return;
        }
        if retry_soon {
            backoff().await;
        }
    }
}
