//! Changes to existing topics: CreatePartitions and DeleteRecords (config changes are in
//! `configs`). Like topic creation, each change is a metadata record that must be durable before
//! the response goes out.

use super::metadata::MetadataRecord;
use super::{Broker, RequestContext, TopicPartition};
use crate::core::time::Now;
use crate::protocol::error::ErrorCode;
use crate::protocol::generated::create_partitions_request::CreatePartitionsRequest;
use crate::protocol::generated::create_partitions_response::{
    CreatePartitionsResponse, CreatePartitionsTopicResult,
};
use crate::protocol::generated::delete_records_request::DeleteRecordsRequest;
use crate::protocol::generated::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsResponse, DeleteRecordsTopicResult,
};
use crate::protocol::generated::ResponseBody;
use std::collections::BTreeMap;

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
        let mut seen = BTreeMap::new();
        for topic in &req.topics {
            *seen.entry(topic.name.clone()).or_insert(0) += 1;
        }
        for topic in req.topics {
            let mut result = CreatePartitionsTopicResult {
                name: topic.name.clone(),
                ..Default::default()
            };
            let failure: Option<Failure> = match self.planned.topics.get(&topic.name) {
                _ if seen.get(&topic.name).copied().unwrap_or(0) > 1 => Some((
                    ErrorCode::InvalidRequest,
                    "duplicate topic in request".into(),
                )),
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

    /// Answers once the change and every metadata change before it are durable: the answer was
    /// decided against the planned image, which a crash can still undo until then.
    pub(super) fn finish_change(
        &mut self,
        ctx: RequestContext,
        records: Vec<MetadataRecord>,
        body: ResponseBody,
        now: Now,
    ) {
        self.commit_metadata(records, Some((ctx.reply, body)), now);
    }
}
