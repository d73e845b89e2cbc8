//! Changes to existing topics: CreatePartitions, DeleteRecords, AlterConfigs and
//! IncrementalAlterConfigs. Like topic creation, each change is a metadata record that must be
//! durable before the response goes out.

use super::metadata::MetadataRecord;
use super::{Broker, RequestContext, TopicPartition};
use crate::config::{topic_log_config, TOPIC_CONFIG_KEYS};
use crate::core::time::Now;
use crate::protocol::error::ErrorCode;
use crate::protocol::generated::alter_configs_request::AlterConfigsRequest;
use crate::protocol::generated::alter_configs_response::{
    AlterConfigsResourceResponse, AlterConfigsResponse,
};
use crate::protocol::generated::create_partitions_request::CreatePartitionsRequest;
use crate::protocol::generated::create_partitions_response::{
    CreatePartitionsResponse, CreatePartitionsTopicResult,
};
use crate::protocol::generated::delete_records_request::DeleteRecordsRequest;
use crate::protocol::generated::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsResponse, DeleteRecordsTopicResult,
};
use crate::protocol::generated::incremental_alter_configs_request::IncrementalAlterConfigsRequest;
use crate::protocol::generated::incremental_alter_configs_response::{
    AlterConfigsResourceResponse as IncrementalResult, IncrementalAlterConfigsResponse,
};
use crate::protocol::generated::ResponseBody;
use std::collections::BTreeMap;

const RESOURCE_TOPIC: i8 = 2;
/// IncrementalAlterConfigs operations (KIP-339).
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

type Failure = (ErrorCode, String);

impl Broker {
    pub(super) fn handle_create_partitions(
        &mut self,
        ctx: RequestContext,
        req: CreatePartitionsRequest,
        now: Now,
    ) {
        let mut response = CreatePartitionsResponse::default();
        let mut records = Vec::new();
        // Checked against the image as it will be once pending changes apply: a count below a
        // pending one would shrink the topic, and a pending delete leaves nothing to grow.
        let latest = self.latest_image();
        for topic in req.topics {
            let mut result = CreatePartitionsTopicResult {
                name: topic.name.clone(),
                ..Default::default()
            };
            let failure: Option<Failure> = match latest.topics.get(&topic.name) {
                None => Some((
                    ErrorCode::UnknownTopicOrPartition,
                    format!("no topic '{}'", topic.name),
                )),
                Some(t) if topic.count <= t.partitions => Some((
                    ErrorCode::InvalidPartitions,
                    format!(
                        "topic has {} partitions; the new count must be larger",
                        t.partitions
                    ),
                )),
                Some(_) if topic.assignments.is_some() => Some((
                    ErrorCode::InvalidReplicaAssignment,
                    "manual assignment is not supported".into(),
                )),
                Some(_) => None,
            };
            match failure {
                Some((code, message)) => {
                    result.error_code = code.code();
                    result.error_message = Some(message);
                }
                None if req.validate_only => {}
                None => records.push(MetadataRecord::Partitions {
                    name: topic.name,
                    partitions: topic.count,
                }),
            }
            response.results.push(result);
        }
        self.finish_change(ctx, records, ResponseBody::CreatePartitions(response), now);
    }

    pub(super) fn handle_delete_records(
        &mut self,
        ctx: RequestContext,
        req: DeleteRecordsRequest,
        now: Now,
    ) {
        let mut response = DeleteRecordsResponse::default();
        let mut records = Vec::new();
        for topic in req.topics {
            let mut out = DeleteRecordsTopicResult {
                name: topic.name.clone(),
                ..Default::default()
            };
            for part in topic.partitions {
                let tp = TopicPartition::new(&topic.name, part.partition_index);
                let mut answer = DeleteRecordsPartitionResult {
                    partition_index: part.partition_index,
                    low_watermark: -1,
                    ..Default::default()
                };
                match self.partitions.get(&tp) {
                    None => answer.error_code = ErrorCode::UnknownTopicOrPartition.code(),
                    Some(p) if p.offline => answer.error_code = ErrorCode::KafkaStorageError.code(),
                    Some(p) => {
                        let hw = p.high_watermark();
                        // -1 means "up to the high watermark".
                        let offset = if part.offset == -1 { hw } else { part.offset };
                        if offset < 0 || offset > hw {
                            answer.error_code = ErrorCode::OffsetOutOfRange.code();
                        } else {
                            answer.low_watermark = offset.max(p.log.log_start_offset());
                            records.push(MetadataRecord::LogStart {
                                name: topic.name.clone(),
                                partition: part.partition_index,
                                offset: answer.low_watermark,
                            });
                        }
                    }
                }
                out.partitions.push(answer);
            }
            response.topics.push(out);
        }
        self.finish_change(ctx, records, ResponseBody::DeleteRecords(response), now);
    }

    pub(super) fn handle_alter_configs(
        &mut self,
        ctx: RequestContext,
        req: AlterConfigsRequest,
        now: Now,
    ) {
        let mut response = AlterConfigsResponse::default();
        let mut records = Vec::new();
        for resource in req.resources {
            // AlterConfigs replaces the whole set of overrides.
            let wanted: BTreeMap<String, Option<String>> = resource
                .configs
                .into_iter()
                .map(|c| (c.name, c.value))
                .collect();
            let outcome =
                self.plan_config_change(resource.resource_type, &resource.resource_name, |_| {
                    Ok(wanted
                        .iter()
                        .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                        .collect())
                });
            let mut result = AlterConfigsResourceResponse {
                resource_type: resource.resource_type,
                resource_name: resource.resource_name.clone(),
                ..Default::default()
            };
            apply_outcome(
                outcome,
                req.validate_only,
                &mut records,
                &mut result.error_code,
                &mut result.error_message,
            );
            response.responses.push(result);
        }
        self.finish_change(ctx, records, ResponseBody::AlterConfigs(response), now);
    }

    pub(super) fn handle_incremental_alter_configs(
        &mut self,
        ctx: RequestContext,
        req: IncrementalAlterConfigsRequest,
        now: Now,
    ) {
        let mut response = IncrementalAlterConfigsResponse::default();
        let mut records = Vec::new();
        for resource in req.resources {
            let outcome = self.plan_config_change(
                resource.resource_type,
                &resource.resource_name,
                |current| {
                    let mut next = current.clone();
                    for c in &resource.configs {
                        let value = c.value.clone().unwrap_or_default();
                        match c.config_operation {
                            OP_SET => {
                                next.insert(c.name.clone(), value);
                            }
                            OP_DELETE => {
                                next.remove(&c.name);
                            }
                            OP_APPEND | OP_SUBTRACT if c.name == "cleanup.policy" => {
                                let mut items: Vec<String> = next
                                    .get(&c.name)
                                    .map(|v| v.split(',').map(str::to_string).collect())
                                    .unwrap_or_else(|| vec!["delete".to_string()]);
                                items.retain(|i| *i != value);
                                if c.config_operation == OP_APPEND {
                                    items.push(value);
                                }
                                next.insert(c.name.clone(), items.join(","));
                            }
                            OP_APPEND | OP_SUBTRACT => {
                                return Err((
                                    ErrorCode::InvalidConfig,
                                    format!("{} is not a list config", c.name),
                                ));
                            }
                            _ => {
                                return Err((
                                    ErrorCode::InvalidRequest,
                                    "unknown config operation".into(),
                                ))
                            }
                        }
                    }
                    Ok(next)
                },
            );
            let mut result = IncrementalResult {
                resource_type: resource.resource_type,
                resource_name: resource.resource_name.clone(),
                ..Default::default()
            };
            apply_outcome(
                outcome,
                req.validate_only,
                &mut records,
                &mut result.error_code,
                &mut result.error_message,
            );
            response.responses.push(result);
        }
        self.finish_change(
            ctx,
            records,
            ResponseBody::IncrementalAlterConfigs(response),
            now,
        );
    }

    /// Validates a change of a topic's overrides: `change` maps the current overrides to the new
    /// ones. Returns the records that make it so.
    fn plan_config_change(
        &self,
        resource_type: i8,
        name: &str,
        change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Failure>,
    ) -> Result<Vec<MetadataRecord>, Failure> {
        if resource_type != RESOURCE_TOPIC {
            return Err((
                ErrorCode::InvalidRequest,
                "only topic configs can be altered".into(),
            ));
        }
        let topic = self.image.topics.get(name).ok_or_else(|| {
            (
                ErrorCode::UnknownTopicOrPartition,
                format!("no topic '{name}'"),
            )
        })?;
        let next = change(&topic.configs)?;
        for key in next.keys() {
            if !TOPIC_CONFIG_KEYS.iter().any(|(t, _)| t == key) {
                return Err((
                    ErrorCode::InvalidConfig,
                    format!("unknown topic config '{key}'"),
                ));
            }
        }
        topic_log_config(&self.config.log, &next)
            .map_err(|e| (ErrorCode::InvalidConfig, e.to_string()))?;
        let mut records = Vec::new();
        for (key, value) in &next {
            if topic.configs.get(key) != Some(value) {
                records.push(MetadataRecord::Config {
                    name: name.into(),
                    key: key.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        for key in topic.configs.keys().filter(|k| !next.contains_key(*k)) {
            records.push(MetadataRecord::Config {
                name: name.into(),
                key: key.clone(),
                value: None,
            });
        }
        Ok(records)
    }

    /// Answers now when nothing changes, or once the change is durable.
    fn finish_change(
        &mut self,
        ctx: RequestContext,
        records: Vec<MetadataRecord>,
        body: ResponseBody,
        now: Now,
    ) {
        if records.is_empty() {
            self.respond(ctx.reply, body);
        } else {
            self.commit_metadata(records, Some((ctx.reply, body)), now);
        }
    }
}

fn apply_outcome(
    outcome: Result<Vec<MetadataRecord>, Failure>,
    validate_only: bool,
    records: &mut Vec<MetadataRecord>,
    error_code: &mut i16,
    error_message: &mut Option<String>,
) {
    match outcome {
        Ok(planned) if !validate_only => records.extend(planned),
        Ok(_) => {}
        Err((code, message)) => {
            *error_code = code.code();
            *error_message = Some(message);
        }
    }
}
