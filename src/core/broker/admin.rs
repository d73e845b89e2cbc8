//! Metadata, topic administration, producer ids and cluster description. Changes go
//! through the metadata log first; the response is released when the record is durable and
//! applied.

use super::metadata::{valid_topic_name, MetadataRecord};
use super::producer_state::ProducerStates;
use super::{Broker, LogTarget, Output, PartitionState, ReplyTo, RequestContext, TopicPartition};
use crate::config::topic_log_config;
use crate::core::log::{LogOp, PartitionLog};
use crate::core::time::Now;
use crate::protocol::error::ErrorCode;
use crate::protocol::generated::create_topics_request::CreateTopicsRequest;
use crate::protocol::generated::create_topics_response::{
    CreatableTopicResult, CreateTopicsResponse,
};
use crate::protocol::generated::delete_topics_request::DeleteTopicsRequest;
use crate::protocol::generated::delete_topics_response::{
    DeletableTopicResult, DeleteTopicsResponse,
};
use crate::protocol::generated::describe_cluster_request::DescribeClusterRequest;
use crate::protocol::generated::describe_cluster_response::{
    DescribeClusterBroker, DescribeClusterResponse,
};
use crate::protocol::generated::init_producer_id_request::InitProducerIdRequest;
use crate::protocol::generated::init_producer_id_response::InitProducerIdResponse;
use crate::protocol::generated::metadata_request::MetadataRequest;
use crate::protocol::generated::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use crate::protocol::generated::ResponseBody;
use std::collections::BTreeMap;

/// Producer ids are handed out in blocks so the metadata log is written once per block.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// A response held until a metadata record is durable.
#[derive(Debug)]
pub(super) struct PendingAdmin {
    /// The metadata log offset that must be durable.
    end: i64,
    reply: Option<ReplyTo>,
    body: Option<ResponseBody>,
    /// Applied to the image (and partitions created) once durable.
    records: Vec<MetadataRecord>,
}

impl Broker {
    pub(super) fn handle_metadata(&mut self, ctx: RequestContext, req: MetadataRequest, now: Now) {
        let mut response = MetadataResponse {
            cluster_id: Some(self.cluster_id.clone()),
            controller_id: self.config.node_id,
            ..Default::default()
        };
        // Clients connect to the first advertised listener.
        if let Some(l) = self.config.advertised_listeners.first() {
            response.brokers.push(MetadataResponseBroker {
                node_id: self.config.node_id,
                host: l.host.clone(),
                port: i32::from(l.port),
                rack: None,
                ..Default::default()
            });
        }
        let names: Vec<(Option<String>, crate::protocol::primitives::Uuid)> = match &req.topics {
            // v0 sends an empty array for "all topics"; v1+ sends null.
            None => self
                .image
                .topics
                .iter()
                .map(|(n, t)| (Some(n.clone()), t.id))
                .collect(),
            Some(t) if t.is_empty() && ctx.api_version == 0 => self
                .image
                .topics
                .iter()
                .map(|(n, t)| (Some(n.clone()), t.id))
                .collect(),
            Some(topics) => topics
                .iter()
                .map(|t| (t.name.clone(), t.topic_id))
                .collect(),
        };
        let auto_create = self.config.auto_create_topics_enable
            && (ctx.api_version < 4 || req.allow_auto_topic_creation);
        let mut to_create = Vec::new();
        for (name, id) in names {
            let pending = name
                .as_ref()
                .is_some_and(|n| self.planned.topics.contains_key(n));
            let name = name.or_else(|| self.image.topic_by_id(&id).map(|(n, _)| n.clone()));
            let mut out = MetadataResponseTopic {
                name: name.clone(),
                topic_id: id,
                ..Default::default()
            };
            match name
                .as_deref()
                .and_then(|n| self.image.topics.get(n).map(|t| (n, t)))
            {
                Some((n, topic)) => {
                    out.topic_id = topic.id;
                    for partition in 0..topic.partitions {
                        let tp = TopicPartition::new(n, partition);
                        let p = self.partitions.get(&tp);
                        let node = self.config.node_id;
                        out.partitions.push(MetadataResponsePartition {
                            error_code: if p.is_some_and(|p| p.offline) {
                                ErrorCode::KafkaStorageError.code()
                            } else {
                                0
                            },
                            partition_index: partition,
                            leader_id: node,
                            leader_epoch: p.map_or(0, |p| p.leader_epoch),
                            replica_nodes: vec![node],
                            isr_nodes: vec![node],
                            offline_replicas: vec![],
                            ..Default::default()
                        });
                    }
                }
                None => match name {
                    Some(_) if pending => out.error_code = ErrorCode::LeaderNotAvailable.code(),
                    Some(n) if auto_create && valid_topic_name(&n) => {
                        out.error_code = ErrorCode::LeaderNotAvailable.code();
                        to_create.push(n);
                    }
                    Some(n) if !valid_topic_name(&n) => {
                        out.error_code = ErrorCode::InvalidTopicException.code()
                    }
                    _ => out.error_code = ErrorCode::UnknownTopicOrPartition.code(),
                },
            }
            response.topics.push(out);
        }
        to_create.sort();
        to_create.dedup();
        if !to_create.is_empty() {
            let records = to_create
                .into_iter()
                .map(|name| {
                    let id = self.next_uuid();
                    MetadataRecord::Topic {
                        name,
                        id,
                        partitions: self.config.num_partitions,
                    }
                })
                .collect();
            self.commit_metadata(records, None, now);
        }
        self.respond(ctx.reply, ResponseBody::Metadata(response));
    }

    pub(super) fn handle_create_topics(
        &mut self,
        ctx: RequestContext,
        req: CreateTopicsRequest,
        now: Now,
    ) {
        let mut response = CreateTopicsResponse::default();
        let mut records = Vec::new();
        let mut seen = BTreeMap::new();
        for topic in &req.topics {
            *seen.entry(topic.name.clone()).or_insert(0) += 1;
        }
        for topic in req.topics {
            let mut result = CreatableTopicResult {
                name: topic.name.clone(),
                num_partitions: -1,
                replication_factor: -1,
                ..Default::default()
            };
            let partitions = if topic.num_partitions == -1 {
                self.config.num_partitions
            } else {
                topic.num_partitions
            };
            let configs: BTreeMap<String, String> = topic
                .configs
                .iter()
                .filter_map(|c| c.value.clone().map(|v| (c.name.clone(), v)))
                .collect();
            let error = if seen.get(&topic.name).copied().unwrap_or(0) > 1 {
                Some((
                    ErrorCode::InvalidRequest,
                    "duplicate topic in request".to_string(),
                ))
            } else if !valid_topic_name(&topic.name) {
                Some((
                    ErrorCode::InvalidTopicException,
                    format!("invalid topic name '{}'", topic.name),
                ))
            } else if self.planned.topics.contains_key(&topic.name) {
                Some((
                    ErrorCode::TopicAlreadyExists,
                    format!("topic '{}' already exists", topic.name),
                ))
            } else if partitions <= 0 {
                Some((
                    ErrorCode::InvalidPartitions,
                    "number of partitions must be positive".to_string(),
                ))
            } else if !matches!(topic.replication_factor, -1 | 1) {
                Some((
                    ErrorCode::InvalidReplicationFactor,
                    "replication factor must be 1 on a single node".to_string(),
                ))
            } else if !topic.assignments.is_empty() {
                Some((
                    ErrorCode::InvalidReplicaAssignment,
                    "manual assignment is not supported".to_string(),
                ))
            } else if let Err(e) = topic_log_config(
                &self
                    .planned
                    .broker_log_config(&self.config.log, self.config.node_id),
                &configs,
            ) {
                Some((ErrorCode::InvalidConfig, e.to_string()))
            } else {
                None
            };
            match error {
                Some((code, message)) => {
                    result.error_code = code.code();
                    result.error_message = Some(message);
                }
                None => {
                    let id = self.next_uuid();
                    result.topic_id = id;
                    result.num_partitions = partitions;
                    result.replication_factor = 1;
                    if !req.validate_only {
                        records.push(MetadataRecord::Topic {
                            name: topic.name.clone(),
                            id,
                            partitions,
                        });
                        for (key, value) in configs {
                            records.push(MetadataRecord::Config {
                                name: topic.name.clone(),
                                key,
                                value: Some(value),
                            });
                        }
                    }
                }
            }
            response.topics.push(result);
        }
        // Even with nothing to write, answer only once what came before is durable: a
        // TOPIC_ALREADY_EXISTS may rest on a create still waiting for its fsync, and that create
        // is lost if the fsync fails.
        let body = ResponseBody::CreateTopics(response);
        // Even with nothing to write, answer only once earlier metadata writes are durable:
        // TOPIC_ALREADY_EXISTS for a topic whose creation is still in flight would otherwise
        // tell a client about a topic that a crash can still undo.
        self.commit_metadata(records, Some((ctx.reply, body)), now);
    }

    pub(super) fn handle_delete_topics(
        &mut self,
        ctx: RequestContext,
        req: DeleteTopicsRequest,
        now: Now,
    ) {
        let mut response = DeleteTopicsResponse::default();
        let mut records = Vec::new();
        let mut wanted: Vec<(Option<String>, crate::protocol::primitives::Uuid)> = req
            .topic_names
            .iter()
            .map(|n| (Some(n.clone()), Default::default()))
            .collect();
        wanted.extend(req.topics.iter().map(|t| (t.name.clone(), t.topic_id)));
        for (name, id) in wanted {
            // A topic already being deleted is unknown here; one being created can be deleted.
            let found = match &name {
                Some(n) => self.planned.topics.get(n).map(|t| (n.clone(), t.id)),
                None => self
                    .planned
                    .topic_by_id(&id)
                    .map(|(n, t)| (n.clone(), t.id)),
            };
            let mut result = DeletableTopicResult {
                name: name.clone(),
                topic_id: id,
                ..Default::default()
            };
            match found {
                Some((n, topic_id)) => {
                    result.name = Some(n.clone());
                    result.topic_id = topic_id;
                    records.push(MetadataRecord::RemoveTopic { name: n });
                }
                None if name.is_none() => result.error_code = ErrorCode::UnknownTopicId.code(),
                None => result.error_code = ErrorCode::UnknownTopicOrPartition.code(),
            }
            response.responses.push(result);
        }
        // Decided against the planned image: answer once what it rests on is durable.
        self.commit_metadata(
            records,
            Some((ctx.reply, ResponseBody::DeleteTopics(response))),
            now,
        );
    }

    pub(super) fn handle_init_producer_id(
        &mut self,
        ctx: RequestContext,
        req: InitProducerIdRequest,
        now: Now,
    ) {
        let mut response = InitProducerIdResponse {
            producer_id: -1,
            producer_epoch: -1,
            ..Default::default()
        };
        if req.transactional_id.is_some() {
            // Transactions are not served yet.
            response.error_code = ErrorCode::TransactionalIdAuthorizationFailed.code();
            self.respond(ctx.reply, ResponseBody::InitProducerId(response));
            return;
        }
        if req.producer_id >= 0 && req.producer_epoch >= 0 {
            // KIP-360: an existing idempotent producer bumps its epoch and keeps its id.
            response.producer_id = req.producer_id;
            response.producer_epoch = req.producer_epoch.checked_add(1).unwrap_or(0);
            self.respond(ctx.reply, ResponseBody::InitProducerId(response));
            return;
        }
        let id = self.next_producer_id;
        self.next_producer_id += 1;
        response.producer_id = id;
        response.producer_epoch = 0;
        let body = ResponseBody::InitProducerId(response);
        let mut records = Vec::new();
        if id >= self.producer_block_end {
            // A new block: persist its end so a restart never hands out these ids again.
            self.producer_block_end = id + PRODUCER_ID_BLOCK;
            records.push(MetadataRecord::ProducerIds {
                next: self.producer_block_end,
            });
        }
        self.commit_metadata(records, Some((ctx.reply, body)), now);
    }

    pub(super) fn handle_describe_cluster(
        &mut self,
        ctx: RequestContext,
        _req: DescribeClusterRequest,
    ) {
        let mut response = DescribeClusterResponse {
            cluster_id: self.cluster_id.clone(),
            controller_id: self.config.node_id,
            ..Default::default()
        };
        if let Some(l) = self.config.advertised_listeners.first() {
            response.brokers.push(DescribeClusterBroker {
                broker_id: self.config.node_id,
                host: l.host.clone(),
                port: i32::from(l.port),
                rack: None,
                ..Default::default()
            });
        }
        self.respond(ctx.reply, ResponseBody::DescribeCluster(response));
    }

    /// Appends `records` to the metadata log; applies them and sends `reply` once durable.
    pub(super) fn commit_metadata(
        &mut self,
        records: Vec<MetadataRecord>,
        reply: Option<(ReplyTo, ResponseBody)>,
        now: Now,
    ) {
        let (reply, body) = match reply {
            Some((r, b)) => (Some(r), Some(b)),
            None => (None, None),
        };
        // Only records that apply to the planned image are written; a request naming one topic
        // twice plans a second change the first already made (a second delete), and that one is
        // dropped here.
        let records: Vec<MetadataRecord> = records
            .into_iter()
            .filter(|r| self.planned.apply(r).is_ok())
            .collect();
        let end = if records.is_empty() {
            // Nothing new to persist, but answer only after what came before is durable.
            self.metadata_log.log_end_offset()
        } else {
            match self.append_metadata(records.clone(), now) {
                Some(_) => self.metadata_log.log_end_offset(),
                None => {
                    self.replan();
                    if let Some(reply) = reply {
                        self.outputs.push_back(Output::Respond {
                            reply,
                            body: unknown_error(body),
                        });
                    }
                    return;
                }
            }
        };
        self.metadata_waits.push(PendingAdmin {
            end,
            reply,
            body,
            records,
        });
        self.metadata_done(self.metadata_log.synced_offset(), true, now);
    }

    /// Rebuilds the planned image from the durable one and the records still waiting.
    fn replan(&mut self) {
        let mut planned = self.image.clone();
        for record in self.metadata_waits.iter().flat_map(|w| &w.records) {
            let _ = planned.apply(record);
        }
        self.planned = planned;
    }

    /// A metadata sync finished: apply and answer everything it covers.
    pub(super) fn metadata_done(&mut self, synced: i64, ok: bool, now: Now) {
        if !ok {
            // The metadata log's unsynced tail is unknown: only a restart can recover it (Kafka
            // halts the process on a metadata log fault too). Nothing more is answered.
            self.fatal.get_or_insert_with(|| {
                "the metadata log failed to sync; the broker must restart and recover".to_owned()
            });
            return;
        }
        self.metadata_log.on_synced(synced);
        let durable = self.metadata_log.synced_offset();
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.metadata_waits)
            .into_iter()
            .partition(|w| w.end <= durable);
        self.metadata_waits = waiting;
        for done in ready {
            for record in &done.records {
                // Each record applied to the planned image, in this same order.
                if let Err(e) = self.image.apply(record) {
                    panic!("a planned metadata record does not apply to the image: {e}");
                }
                self.apply_to_partitions(record, now);
            }
            if let (Some(reply), Some(body)) = (done.reply, done.body) {
                self.outputs.push_back(Output::Respond { reply, body });
            }
        }
    }

    /// Creates or removes partition logs to match a metadata record.
    fn apply_to_partitions(&mut self, record: &MetadataRecord, now: Now) {
        match record {
            MetadataRecord::Topic {
                name, partitions, ..
            }
            | MetadataRecord::Partitions { name, partitions } => {
                let config = self.log_config_for(name);
                let topic_id = self.image.topics.get(name).map(|topic| topic.id);
                for partition in 0..*partitions {
                    let tp = TopicPartition::new(name, partition);
                    if self.partitions.contains_key(&tp) {
                        continue;
                    }
                    let (log, op) = PartitionLog::create(config.clone(), now.wall_ms);
                    let state = PartitionState::new(log, ProducerStates::default());
                    self.partitions.insert(tp.clone(), state);
                    // The owner first: a directory with a segment always says whose it is.
                    let ops = topic_id
                        .map(|topic_id| LogOp::WritePartitionMetadata { topic_id })
                        .into_iter()
                        .chain([op])
                        .collect();
                    self.new_work(LogTarget::Partition(tp), 0, super::WorkKind::Metadata, ops);
                }
            }
            MetadataRecord::Config { name, .. } => {
                let config = self.log_config_for(name);
                for (_, p) in self
                    .partitions
                    .range_mut(TopicPartition::new(name, 0)..)
                    .take_while(|(tp, _)| &tp.topic == name)
                {
                    p.log.set_config(config.clone());
                }
            }
            MetadataRecord::BrokerConfig { .. } => {
                // A new default for every topic that does not override it.
                let topics: Vec<String> = self.image.topics.keys().cloned().collect();
                for topic in topics {
                    let config = self.log_config_for(&topic);
                    for (_, p) in self
                        .partitions
                        .range_mut(TopicPartition::new(&topic, 0)..)
                        .take_while(|(tp, _)| tp.topic == topic)
                    {
                        p.log.set_config(config.clone());
                    }
                }
            }
            MetadataRecord::RemoveTopic { name } => {
                let gone: Vec<TopicPartition> = self
                    .partitions
                    .keys()
                    .filter(|tp| &tp.topic == name)
                    .cloned()
                    .collect();
                for tp in gone {
                    self.partitions.remove(&tp);
                    self.outputs.push_back(Output::RemoveLog {
                        target: LogTarget::Partition(tp),
                    });
                }
            }
            MetadataRecord::ProducerIds { .. } => {}
            MetadataRecord::LogStart {
                name,
                partition,
                offset,
            } => {
                let tp = TopicPartition::new(name, *partition);
                let Some(p) = self.partitions.get_mut(&tp) else {
                    return;
                };
                if p.log.advance_log_start(*offset).is_err() {
                    return;
                }
                // Segments wholly below the new start go now; retention would take them later.
                let below: Vec<i64> = p
                    .log
                    .segments()
                    .iter()
                    .filter(|s| s.next_offset <= *offset)
                    .map(|s| s.base_offset)
                    .collect();
                if let Some(&last) = below.last() {
                    let ops = p.log.delete_segments_through(last);
                    let end = p.log.log_end_offset();
                    self.new_work(
                        LogTarget::Partition(tp),
                        end,
                        super::WorkKind::Metadata,
                        ops,
                    );
                }
            }
        }
    }
}

fn unknown_error(body: Option<ResponseBody>) -> ResponseBody {
    // The metadata log refused the batch (it cannot: records are small); answer generically.
    body.unwrap_or(ResponseBody::DescribeCluster(DescribeClusterResponse {
        error_code: ErrorCode::UnknownServerError.code(),
        ..Default::default()
    }))
}
