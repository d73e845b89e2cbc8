//! Metadata, topic administration, configs, producer ids and cluster description. Changes go
//! through the metadata log first; the response is released when the record is durable and
//! applied.

use super::metadata::{valid_topic_name, MetadataImage, MetadataRecord};
use super::producer_state::ProducerStates;
use super::{Broker, LogTarget, Output, PartitionState, ReplyTo, RequestContext, TopicPartition};
use crate::config::topic_log_config;
use crate::core::log::PartitionLog;
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
use crate::protocol::generated::describe_configs_request::DescribeConfigsRequest;
use crate::protocol::generated::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
};
use crate::protocol::generated::init_producer_id_request::InitProducerIdRequest;
use crate::protocol::generated::init_producer_id_response::InitProducerIdResponse;
use crate::protocol::generated::metadata_request::MetadataRequest;
use crate::protocol::generated::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use crate::protocol::generated::ResponseBody;
use std::collections::BTreeMap;

/// ConfigResource types (KIP-133).
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// DescribeConfigs config sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;
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
            } else if self.image.topics.contains_key(&topic.name) || self.pending_topic(&topic.name)
            {
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
            } else if let Err(e) = topic_log_config(&self.config.log, &configs) {
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
        self.commit_metadata(records, Some((ctx.reply, body)), now);
    }

    /// The metadata image with every change still waiting for its fsync applied: what a new
    /// change must be checked against (Kafka's controller checks against its uncommitted state).
    pub(super) fn latest_image(&self) -> std::borrow::Cow<'_, MetadataImage> {
        let mut pending = self
            .metadata_waits
            .iter()
            .flat_map(|w| &w.records)
            .peekable();
        if pending.peek().is_none() {
            return std::borrow::Cow::Borrowed(&self.image);
        }
        let mut image = self.image.clone();
        for record in pending {
            image.apply(record);
        }
        std::borrow::Cow::Owned(image)
    }

    fn pending_topic(&self, name: &str) -> bool {
        self.metadata_waits
            .iter()
            .flat_map(|w| &w.records)
            .any(|r| matches!(r, MetadataRecord::Topic { name: n, .. } if n == name))
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
            let found = match &name {
                Some(n) => self.image.topics.get(n).map(|t| (n.clone(), t.id)),
                None => self.image.topic_by_id(&id).map(|(n, t)| (n.clone(), t.id)),
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
        let body = ResponseBody::DeleteTopics(response);
        if records.is_empty() {
            self.respond(ctx.reply, body);
        } else {
            self.commit_metadata(records, Some((ctx.reply, body)), now);
        }
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

    pub(super) fn handle_describe_configs(
        &mut self,
        ctx: RequestContext,
        req: DescribeConfigsRequest,
    ) {
        let mut response = DescribeConfigsResponse::default();
        for resource in req.resources {
            let mut result = DescribeConfigsResult {
                resource_type: resource.resource_type,
                resource_name: resource.resource_name.clone(),
                ..Default::default()
            };
            let wanted = |key: &str| {
                resource
                    .configuration_keys
                    .as_ref()
                    .is_none_or(|k| k.iter().any(|w| w == key))
            };
            match resource.resource_type {
                RESOURCE_TOPIC => match self.image.topics.get(&resource.resource_name) {
                    None => result.error_code = ErrorCode::UnknownTopicOrPartition.code(),
                    Some(topic) => {
                        let log = self.log_config_for(&resource.resource_name);
                        for (key, _) in crate::config::TOPIC_CONFIG_KEYS {
                            if !wanted(key) {
                                continue;
                            }
                            let is_override = topic.configs.contains_key(*key);
                            result.configs.push(DescribeConfigsResourceResult {
                                name: key.to_string(),
                                value: log.get(key),
                                read_only: false,
                                // v0 only; later versions say it with config_source.
                                is_default: ctx.api_version == 0 && !is_override,
                                config_source: if is_override {
                                    SOURCE_TOPIC
                                } else {
                                    SOURCE_DEFAULT
                                },
                                is_sensitive: false,
                                ..Default::default()
                            });
                        }
                    }
                },
                RESOURCE_BROKER => {
                    for (_, broker_key) in crate::config::TOPIC_CONFIG_KEYS {
                        if wanted(broker_key) {
                            let topic_key = crate::config::TOPIC_CONFIG_KEYS
                                .iter()
                                .find(|(_, b)| b == broker_key)
                                .map(|(t, _)| *t)
                                .unwrap_or_default();
                            result.configs.push(DescribeConfigsResourceResult {
                                name: broker_key.to_string(),
                                value: self.config.log.get(topic_key),
                                read_only: true,
                                is_default: ctx.api_version == 0,
                                config_source: SOURCE_DEFAULT,
                                ..Default::default()
                            });
                        }
                    }
                }
                _ => result.error_code = ErrorCode::InvalidRequest.code(),
            }
            response.results.push(result);
        }
        self.respond(ctx.reply, ResponseBody::DescribeConfigs(response));
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
        let end = if records.is_empty() {
            // Nothing new to persist, but answer only after what came before is durable.
            self.metadata_log.log_end_offset()
        } else {
            match self.append_metadata(records.clone(), now) {
                Some(_) => self.metadata_log.log_end_offset(),
                None => {
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
                self.image.apply(record);
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
                for partition in 0..*partitions {
                    let tp = TopicPartition::new(name, partition);
                    if self.partitions.contains_key(&tp) {
                        continue;
                    }
                    let (log, op) = PartitionLog::create(config.clone(), now.wall_ms);
                    let state = PartitionState::new(log, ProducerStates::default());
                    self.partitions.insert(tp.clone(), state);
                    self.new_work(
                        LogTarget::Partition(tp),
                        0,
                        super::WorkKind::Metadata,
                        vec![op],
                    );
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
