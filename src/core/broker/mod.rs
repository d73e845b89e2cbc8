//! The broker state machine: decoded requests in, responses and storage work out.
//!
//! # Contract
//! - Inputs: [`Broker::handle_request`] for each decoded request (with a [`ReplyTo`] token the
//!   driver uses to route the response), [`Broker::handle_storage_done`] when storage work
//!   finishes, [`Broker::handle_timeout`] when [`Broker::next_deadline`] passes. Every input
//!   carries [`Now`].
//! - Outputs: after every input the driver drains [`Broker::poll_output`] and carries each
//!   [`Output`] out. Storage work for one target must run in the order it was emitted; work for
//!   different targets may run concurrently.
//! - Responses that depend on durability are held here and released by the storage completion
//!   that makes them true (`acks=1`: the write finished; `acks=all`: a sync covering the batch
//!   finished, or the write when the topic leaves flushing to the OS). Exactly one response (or
//!   `NoResponse` for `acks=0`) is emitted per request, in any order: the driver restores the
//!   per-connection order.
//! - A failed storage operation takes that partition offline (KAFKA_STORAGE_ERROR) until the log
//!   is recovered by a restart: the unsynced tail is unknown, so it is never retried. A failed
//!   metadata log operation is fatal ([`Broker::fatal_error`]): the driver must stop the broker,
//!   and a restart recovers it.

pub mod admin;
pub mod alter;
mod configs;
pub mod fetch;
pub mod metadata;
pub mod produce;
pub mod producer_snapshot;
pub mod producer_state;

use crate::config::{BrokerConfig, LogConfig};
use crate::core::buggify::Buggify;
use crate::core::log::partition::Appended;
use crate::core::log::{LogError, LogOp, PartitionLog};
use crate::core::time::{Instant, Now};
use crate::protocol::api_versions;
use crate::protocol::error::ErrorCode;
use crate::protocol::generated::{RequestBody, ResponseBody};
use crate::protocol::primitives::Uuid;
use crate::protocol::records::batch::BatchHeader;
use bytes::BytesMut;
use metadata::{MetadataImage, MetadataRecord};
use producer_state::ProducerStates;
use std::collections::{BTreeMap, VecDeque};

/// The driver's token for where a response goes (connection and position in its queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplyTo {
    pub conn: u64,
    pub seq: u64,
}

/// What a request needs beyond its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestContext {
    pub reply: ReplyTo,
    pub api_key: i16,
    pub api_version: i16,
}

/// A topic partition, as the broker and its storage name it (`orders-3`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.to_string(),
            partition,
        }
    }

    /// Kafka's directory name for a partition's log.
    pub fn dir(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

/// Which log a piece of storage work belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogTarget {
    Partition(TopicPartition),
    /// The metadata log (`__cluster_metadata-0`).
    Metadata,
}

impl LogTarget {
    pub fn dir(&self) -> String {
        match self {
            LogTarget::Partition(tp) => tp.dir(),
            LogTarget::Metadata => METADATA_DIR.to_string(),
        }
    }
}

pub const METADATA_DIR: &str = "__cluster_metadata-0";

pub type WorkId = u64;

#[derive(Debug)]
pub enum Output {
    Respond {
        reply: ReplyTo,
        body: ResponseBody,
    },
    /// `acks=0`: free the request's slot without writing anything.
    NoResponse {
        reply: ReplyTo,
    },
    /// Close the connection after the responses before this request.
    Close {
        reply: ReplyTo,
    },
    /// Run `ops` on `target`'s log in order, then call `handle_storage_done(work, ok)`.
    Storage {
        work: WorkId,
        target: LogTarget,
        ops: Vec<LogOp>,
    },
    /// Read each planned range, put the bytes into the response, send it.
    Fetch(fetch::FetchReply),
    /// Read each batch a timestamp search names, find the record in it, send the response.
    ListOffsets(fetch::ListOffsetsReply),
    /// The topic is gone: close and remove the partition's directory (no completion needed).
    RemoveLog {
        target: LogTarget,
    },
}

/// One partition's state on this broker.
#[derive(Debug)]
pub struct PartitionState {
    pub log: PartitionLog,
    pub producers: ProducerStates,
    pub leader_epoch: i32,
    /// End offset of the writes that finished.
    pub written_end: i64,
    /// End offset of the writes a sync in flight will cover.
    pub sync_in_flight: Option<i64>,
    /// A flush was asked for while a sync was in flight: issue another when it finishes.
    pub sync_wanted: bool,
    /// Storage failed: refuse reads and writes until recovery.
    pub offline: bool,
}

impl PartitionState {
    pub fn new(log: PartitionLog, producers: ProducerStates) -> PartitionState {
        let end = log.log_end_offset();
        PartitionState {
            log,
            producers,
            leader_epoch: 0,
            written_end: end,
            sync_in_flight: None,
            sync_wanted: false,
            offline: false,
        }
    }

    /// Appends one validated batch (`header` is its header) and records its producer. When the
    /// append rolls to a new segment, the producer state as of that segment's base (before this
    /// batch) is written as a snapshot right after the roll, once producers idle for
    /// `producer_id_expiration_ms` are forgotten: the roll synced everything below that base, so
    /// the snapshot never describes records a crash could take back.
    pub fn append_batch(
        &mut self,
        batch: BytesMut,
        header: &BatchHeader,
        now_ms: i64,
        producer_id_expiration_ms: i64,
    ) -> Result<Appended, LogError> {
        let mut appended = self.log.append(batch, self.leader_epoch, now_ms)?;
        if let Some(base) = appended.rolled_to {
            self.producers.expire(now_ms, producer_id_expiration_ms);
            let data = producer_snapshot::encode(base, &self.producers);
            let at = appended
                .ops
                .iter()
                .position(|op| matches!(op, LogOp::CreateSegment { .. }))
                .map_or(0, |i| i + 1);
            let snapshot_ops = self.log.write_snapshot(base, data);
            appended.ops.splice(at..at, snapshot_ops);
        }
        if header.producer_id >= 0 {
            self.producers.record(
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
                appended.base_offset,
                appended.last_offset,
                now_ms,
            );
        }
        Ok(appended)
    }

    /// What consumers may read: only what will survive a crash when the topic flushes before
    /// acknowledging, otherwise everything written.
    pub fn high_watermark(&self) -> i64 {
        if self.log.config().flush_messages.is_some() {
            self.log.synced_offset().min(self.written_end)
        } else {
            self.written_end
        }
    }
}

#[derive(Debug)]
struct Work {
    target: LogTarget,
    /// Log end offset once this work is done (writes), or the offset a sync makes durable.
    end: i64,
    kind: WorkKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkKind {
    Write,
    Sync,
    Metadata,
}

pub struct Broker {
    config: BrokerConfig,
    cluster_id: String,
    /// The image once every record appended to the metadata log is durable. Admin requests are
    /// validated against it, so that two requests in flight cannot plan conflicting changes
    /// (two different partition counts, a second creation of one topic).
    planned: MetadataImage,
    /// The image of what is durable: what clients are told and what a restart rebuilds.
    image: MetadataImage,
    partitions: BTreeMap<TopicPartition, PartitionState>,
    metadata_log: PartitionLog,
    work: BTreeMap<WorkId, Work>,
    next_work: WorkId,
    produce_waits: Vec<produce::PendingProduce>,
    metadata_waits: Vec<admin::PendingAdmin>,
    parked_fetches: Vec<fetch::ParkedFetch>,
    outputs: VecDeque<Output>,
    /// Deterministic source for topic ids, from the driver's seed and the metadata log's end.
    rng_state: u64,
    /// Next producer id to hand out, and the end of the block persisted in the metadata log.
    next_producer_id: i64,
    producer_block_end: i64,
    /// Set when the broker cannot go on (its metadata log failed): the driver must stop it.
    fatal: Option<String>,
    /// Rare-but-legal paths in simulation (nothing outside it), from the driver's seed.
    buggify: Buggify,
}

/// The topic id source's start. The seed alone would repeat the same ids after every restart,
/// and a topic deleted and re-created under its name would get its old id back. Every durable
/// metadata change moves the log's end, so each incarnation that can hand out a durable id
/// starts elsewhere (SplitMix64 finaliser: nearby inputs land far apart).
fn id_seed(seed: u64, metadata_end: i64) -> u64 {
    let mut z = seed ^ (metadata_end as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) | 1
}

impl Broker {
    /// A broker over recovered state: the metadata image replayed from `metadata_log`, and one
    /// recovered partition log per partition of every topic in it.
    pub fn new(
        config: BrokerConfig,
        cluster_id: String,
        image: MetadataImage,
        metadata_log: PartitionLog,
        partitions: BTreeMap<TopicPartition, PartitionState>,
        seed: u64,
    ) -> Broker {
        let metadata_end = metadata_log.log_end_offset();
        Broker {
            config,
            cluster_id,
            partitions,
            metadata_log,
            work: BTreeMap::new(),
            next_work: 1,
            produce_waits: Vec::new(),
            metadata_waits: Vec::new(),
            parked_fetches: Vec::new(),
            outputs: VecDeque::new(),
            rng_state: id_seed(seed, metadata_end),
            // Ids of the last persisted block may have been handed out before a restart: skip it.
            next_producer_id: image.next_producer_id,
            producer_block_end: image.next_producer_id,
            planned: image.clone(),
            image,
            fatal: None,
            buggify: Buggify::new(seed),
        }
    }

    /// The broker's buggify source, for the driver to fork its own streams from.
    pub fn buggify(&self) -> &Buggify {
        &self.buggify
    }

    /// Why the broker must stop, once something it cannot recover from in place happened.
    pub fn fatal_error(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    pub fn partition(&self, tp: &TopicPartition) -> Option<&PartitionState> {
        self.partitions.get(tp)
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest time a parked fetch expires or a timed flush is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.parked_fetches.iter().map(|f| f.deadline).min()
    }

    pub fn handle_request(&mut self, ctx: RequestContext, body: RequestBody, now: Now) {
        if !api_versions::is_supported(ctx.api_key, ctx.api_version) {
            // The driver filters these; a machine fed one directly closes the connection too.
            self.outputs.push_back(Output::Close { reply: ctx.reply });
            return;
        }
        match body {
            RequestBody::ApiVersions(_) => {
                let body = ResponseBody::ApiVersions(api_versions::api_versions_response());
                self.respond(ctx.reply, body);
            }
            RequestBody::Metadata(req) => self.handle_metadata(ctx, req, now),
            RequestBody::Produce(req) => self.handle_produce(ctx, req, now),
            RequestBody::Fetch(req) => self.handle_fetch(ctx, req, now),
            RequestBody::ListOffsets(req) => self.handle_list_offsets(ctx, req),
            RequestBody::CreateTopics(req) => self.handle_create_topics(ctx, req, now),
            RequestBody::DeleteTopics(req) => self.handle_delete_topics(ctx, req, now),
            RequestBody::InitProducerId(req) => self.handle_init_producer_id(ctx, req, now),
            RequestBody::DescribeCluster(req) => self.handle_describe_cluster(ctx, req),
            RequestBody::DescribeConfigs(req) => self.handle_describe_configs(ctx, req),
            RequestBody::CreatePartitions(req) => self.handle_create_partitions(ctx, req, now),
            RequestBody::DeleteRecords(req) => self.handle_delete_records(ctx, req, now),
            RequestBody::AlterConfigs(req) => self.handle_alter_configs(ctx, req, now),
            RequestBody::IncrementalAlterConfigs(req) => {
                self.handle_incremental_alter_configs(ctx, req, now)
            }
            _ => {
                // Not in the ApiVersions table, so no client should send it: close, as Kafka does.
                self.outputs.push_back(Output::Close { reply: ctx.reply });
            }
        }
    }

    fn respond(&mut self, reply: ReplyTo, body: ResponseBody) {
        self.outputs.push_back(Output::Respond { reply, body });
    }

    fn new_work(&mut self, target: LogTarget, end: i64, kind: WorkKind, ops: Vec<LogOp>) -> WorkId {
        let id = self.next_work;
        self.next_work += 1;
        self.work.insert(
            id,
            Work {
                target: target.clone(),
                end,
                kind,
            },
        );
        self.outputs.push_back(Output::Storage {
            work: id,
            target,
            ops,
        });
        id
    }

    /// Storage work finished (`ok = false`: it failed, and the log is offline until recovery).
    pub fn handle_storage_done(&mut self, work: WorkId, ok: bool, now: Now) {
        let Some(done) = self.work.remove(&work) else {
            return;
        };
        match (&done.target, done.kind) {
            (LogTarget::Metadata, _) => self.metadata_done(done.end, ok, now),
            (LogTarget::Partition(tp), kind) => {
                let tp = tp.clone();
                let Some(p) = self.partitions.get_mut(&tp) else {
                    return;
                };
                if !ok {
                    p.offline = true;
                } else if kind == WorkKind::Write {
                    p.written_end = p.written_end.max(done.end);
                } else {
                    p.log.on_synced(done.end);
                    p.sync_in_flight = None;
                }
                if ok && p.sync_wanted && p.sync_in_flight.is_none() {
                    p.sync_wanted = false;
                    self.start_sync(&tp, now);
                }
                self.release_produce_waits(now);
                self.wake_fetches(&tp, now);
            }
        }
    }

    /// Issues a sync for a partition unless one is already in flight (then one follows it:
    /// group commit).
    fn start_sync(&mut self, tp: &TopicPartition, now: Now) {
        let Some(p) = self.partitions.get_mut(tp) else {
            return;
        };
        if p.sync_in_flight.is_some() {
            p.sync_wanted = true;
            return;
        }
        let (op, upto) = p.log.flush(now.wall_ms);
        p.sync_in_flight = Some(upto);
        self.new_work(
            LogTarget::Partition(tp.clone()),
            upto,
            WorkKind::Sync,
            vec![op],
        );
    }

    pub fn handle_timeout(&mut self, now: Now) {
        self.expire_fetches(now);
        let due: Vec<TopicPartition> = self
            .partitions
            .iter()
            .filter(|(_, p)| !p.offline && p.log.flush_due(now.wall_ms))
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in due {
            self.start_sync(&tp, now);
        }
    }

    /// Shutdown: syncs every partition with unsynced data, so a clean stop loses nothing even
    /// where `acks=1` or page-cache flushing answered before the sync.
    pub fn flush_all(&mut self, now: Now) {
        let dirty: Vec<TopicPartition> = self
            .partitions
            .iter()
            .filter(|(_, p)| !p.offline && p.log.synced_offset() < p.log.log_end_offset())
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in dirty {
            self.start_sync(&tp, now);
        }
    }

    /// Retention: deletes expired segments of every partition, and forgets producers idle for
    /// `producer.id.expiration.ms` (call every `log.retention.check.interval.ms`).
    pub fn enforce_retention(&mut self, now: Now) {
        let tps: Vec<TopicPartition> = self.partitions.keys().cloned().collect();
        for tp in tps {
            let Some(p) = self.partitions.get_mut(&tp) else {
                continue;
            };
            p.producers
                .expire(now.wall_ms, self.config.producer_id_expiration_ms);
            let Some(&last) = p.log.expired_segments(now.wall_ms).last() else {
                continue;
            };
            let ops = p.log.delete_segments_through(last);
            let end = p.log.log_end_offset();
            self.new_work(LogTarget::Partition(tp), end, WorkKind::Metadata, ops);
        }
    }

    fn log_config_for(&self, topic: &str) -> LogConfig {
        self.image
            .topic_log_config(&self.config.log, self.config.node_id, topic)
    }

    /// A deterministic 128-bit id (xorshift over the seed); never the nil UUID.
    fn next_uuid(&mut self) -> Uuid {
        let mut out = [0u8; 16];
        for chunk in out.chunks_mut(8) {
            let mut x = self.rng_state;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.rng_state = x;
            chunk.copy_from_slice(&x.to_be_bytes());
        }
        Uuid(out)
    }

    fn topic_error(&self, topic: &str, partition: i32) -> Option<ErrorCode> {
        let tp = TopicPartition::new(topic, partition);
        match self.partitions.get(&tp) {
            None => Some(ErrorCode::UnknownTopicOrPartition),
            Some(p) if p.offline => Some(ErrorCode::KafkaStorageError),
            Some(_) => None,
        }
    }

    /// Appends metadata records; `then` is applied once they are durable.
    fn append_metadata(&mut self, records: Vec<MetadataRecord>, now: Now) -> Option<WorkId> {
        let batch = metadata::encode_batch(&records, now.wall_ms);
        match self.metadata_log.append(batch, 0, now.wall_ms) {
            Ok(appended) => {
                let mut ops = appended.ops;
                // Buggify: roll the metadata log (64 MiB segments otherwise never roll in a
                // test): start-up then replays the image from several segments.
                if self.buggify.fire("metadata-roll-early", 0.3) {
                    ops.extend(self.metadata_log.roll_early(now.wall_ms));
                }
                let (sync, upto) = self.metadata_log.flush(now.wall_ms);
                ops.push(sync);
                Some(self.new_work(LogTarget::Metadata, upto, WorkKind::Metadata, ops))
            }
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests;
