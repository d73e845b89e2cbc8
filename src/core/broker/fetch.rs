//! Fetch and ListOffsets. The machine resolves offsets to byte ranges; the driver reads them and
//! sends the bytes without decoding records. A fetch with nothing to return parks until data
//! arrives or `max_wait_ms` passes (Kafka's delayed fetch).

use super::{Broker, Output, ReplyTo, RequestContext, TopicPartition};
use crate::core::log::time_lookup::TimeLookup;
use crate::core::log::ReadPlan;
use crate::core::time::{Instant, Now};
use crate::protocol::error::ErrorCode;
use crate::protocol::generated::fetch_request::FetchRequest;
use crate::protocol::generated::fetch_response::{
    FetchResponse, FetchableTopicResponse, PartitionData,
};
use crate::protocol::generated::list_offsets_request::ListOffsetsRequest;
use crate::protocol::generated::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use crate::protocol::generated::ResponseBody;

/// Kafka's special ListOffsets timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// A fetch response waiting for its reads.
#[derive(Debug)]
pub struct FetchReply {
    pub reply: ReplyTo,
    pub response: FetchResponse,
    pub reads: Vec<FetchRead>,
}

/// One range to read into `response.responses[topic_index].partitions[partition_index].records`.
#[derive(Debug, Clone)]
pub struct FetchRead {
    pub topic_index: usize,
    pub partition_index: usize,
    pub tp: TopicPartition,
    pub plan: ReadPlan,
    /// Bytes the client may take from this partition (the first batch is sent whole anyway).
    pub max_bytes: usize,
    /// Never send data at or beyond the high watermark.
    pub high_watermark: i64,
}

/// A ListOffsets response waiting for the batches its timestamp searches name.
#[derive(Debug)]
pub struct ListOffsetsReply {
    pub reply: ReplyTo,
    pub response: ListOffsetsResponse,
    pub lookups: Vec<TimeRead>,
}

/// One timestamp search: read `lookup.plan`, find the record with
/// [`first_record_at`](crate::core::log::time_lookup::first_record_at), and answer
/// `response.topics[topic_index].partitions[partition_index]` with it.
#[derive(Debug, Clone)]
pub struct TimeRead {
    pub topic_index: usize,
    pub partition_index: usize,
    pub tp: TopicPartition,
    pub lookup: TimeLookup,
    /// Offsets at or beyond the high watermark are not answered; below the log start they are
    /// raised to it.
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

impl TimeRead {
    /// Fills the partition's answer from the record found, or with KAFKA_STORAGE_ERROR when the
    /// batch could not be read back intact.
    pub fn answer(&self, response: &mut ListOffsetsResponse, found: Option<(i64, i64)>) {
        let Some(answer) = response
            .topics
            .get_mut(self.topic_index)
            .and_then(|t| t.partitions.get_mut(self.partition_index))
        else {
            return;
        };
        match found {
            Some((offset, timestamp)) if offset < self.high_watermark => {
                answer.offset = offset.max(self.log_start_offset);
                answer.timestamp = timestamp;
            }
            Some(_) => {}
            None => answer.error_code = ErrorCode::KafkaStorageError.code(),
        }
    }
}

#[derive(Debug)]
pub struct ParkedFetch {
    pub deadline: Instant,
    ctx: RequestContext,
    request: FetchRequest,
}

impl Broker {
    pub(super) fn handle_fetch(&mut self, ctx: RequestContext, req: FetchRequest, now: Now) {
        let (reply, available) = self.build_fetch(ctx, &req);
        let wait = u64::try_from(req.max_wait_ms).unwrap_or(0);
        // Errors are answered at once, as is enough data; otherwise wait (Kafka's delayed fetch).
        let any_error = reply.response.error_code != 0
            || reply
                .response
                .responses
                .iter()
                .flat_map(|t| &t.partitions)
                .any(|p| p.error_code != 0);
        // Buggify (last, so it is reached only by fetches that would wait): answer before
        // min_bytes or max_wait_ms; clients must take an empty or short answer and fetch again.
        if available >= req.min_bytes.max(1) as u64
            || wait == 0
            || any_error
            || self.buggify.fire("fetch-answer-early", 0.5)
        {
            self.outputs.push_back(Output::Fetch(reply));
        } else {
            self.parked_fetches.push(ParkedFetch {
                deadline: now.mono.plus_ms(wait),
                ctx,
                request: req,
            });
        }
    }

    /// Builds the response and the reads; returns it with an estimate of the bytes available.
    fn build_fetch(&self, ctx: RequestContext, req: &FetchRequest) -> (FetchReply, u64) {
        let mut response = FetchResponse::default();
        let mut reads = Vec::new();
        let mut available = 0u64;
        if ctx.api_version >= 7 && req.session_id != 0 {
            // We keep no fetch sessions: the client falls back to full fetch requests.
            response.error_code = ErrorCode::FetchSessionIdNotFound.code();
            return (
                FetchReply {
                    reply: ctx.reply,
                    response,
                    reads,
                },
                0,
            );
        }
        let mut budget = u64::try_from(req.max_bytes).unwrap_or(0).max(1);
        for (ti, topic) in req.topics.iter().enumerate() {
            let name = if ctx.api_version >= 13 {
                self.image
                    .topic_by_id(&topic.topic_id)
                    .map(|(n, _)| n.clone())
            } else {
                Some(topic.topic.clone())
            };
            let mut out = FetchableTopicResponse {
                topic: topic.topic.clone(),
                topic_id: topic.topic_id,
                ..Default::default()
            };
            for (pi, part) in topic.partitions.iter().enumerate() {
                let mut data = PartitionData {
                    partition_index: part.partition,
                    high_watermark: -1,
                    last_stable_offset: -1,
                    log_start_offset: -1,
                    preferred_read_replica: -1,
                    ..Default::default()
                };
                let unknown = if ctx.api_version >= 13 {
                    ErrorCode::UnknownTopicId
                } else {
                    ErrorCode::UnknownTopicOrPartition
                };
                let tp = name
                    .as_deref()
                    .map(|n| TopicPartition::new(n, part.partition));
                match tp
                    .as_ref()
                    .and_then(|tp| self.partitions.get(tp).map(|p| (tp, p)))
                {
                    None => data.error_code = unknown.code(),
                    Some((_, p)) if p.offline => {
                        data.error_code = ErrorCode::KafkaStorageError.code()
                    }
                    Some((tp, p)) => {
                        let hw = p.high_watermark();
                        data.high_watermark = hw;
                        data.last_stable_offset = hw;
                        data.log_start_offset = p.log.log_start_offset();
                        if part.fetch_offset > hw || part.fetch_offset < p.log.log_start_offset() {
                            data.error_code = ErrorCode::OffsetOutOfRange.code();
                        } else if part.fetch_offset < hw && budget > 0 {
                            let mut max = u64::try_from(part.partition_max_bytes)
                                .unwrap_or(0)
                                .min(budget);
                            // Buggify: send only the first whole batch (a legal short answer: the
                            // client reads on from the next offset).
                            if self.buggify.fire("fetch-one-batch", 0.3) {
                                max = 1;
                            }
                            if let Ok(Some(plan)) = p.log.read(part.fetch_offset, max) {
                                let estimate = plan.len.min(max.max(1));
                                available += estimate;
                                budget = budget.saturating_sub(estimate);
                                reads.push(FetchRead {
                                    topic_index: ti,
                                    partition_index: pi,
                                    tp: tp.clone(),
                                    plan,
                                    max_bytes: max as usize,
                                    high_watermark: hw,
                                });
                            }
                        }
                    }
                }
                out.partitions.push(data);
            }
            response.responses.push(out);
        }
        (
            FetchReply {
                reply: ctx.reply,
                response,
                reads,
            },
            available,
        )
    }

    /// New data on `tp`: answer parked fetches that now have enough.
    pub(super) fn wake_fetches(&mut self, tp: &TopicPartition, _now: Now) {
        let mut i = 0;
        while i < self.parked_fetches.len() {
            let parked = &self.parked_fetches[i];
            let touches = parked.request.topics.iter().any(|t| {
                (t.topic == tp.topic
                    || self
                        .image
                        .topics
                        .get(&tp.topic)
                        .is_some_and(|x| x.id == t.topic_id))
                    && t.partitions.iter().any(|p| p.partition == tp.partition)
            });
            if touches {
                let (reply, available) = self.build_fetch(parked.ctx, &parked.request);
                if available >= parked.request.min_bytes.max(1) as u64 {
                    self.parked_fetches.remove(i);
                    self.outputs.push_back(Output::Fetch(reply));
                    continue;
                }
            }
            i += 1;
        }
    }

    pub(super) fn expire_fetches(&mut self, now: Now) {
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.parked_fetches)
            .into_iter()
            .partition(|f| f.deadline <= now.mono);
        self.parked_fetches = keep;
        for parked in due {
            let (reply, _) = self.build_fetch(parked.ctx, &parked.request);
            self.outputs.push_back(Output::Fetch(reply));
        }
    }

    pub(super) fn handle_list_offsets(&mut self, ctx: RequestContext, req: ListOffsetsRequest) {
        let mut response = ListOffsetsResponse::default();
        let mut lookups = Vec::new();
        for (topic_index, topic) in req.topics.into_iter().enumerate() {
            let mut out = ListOffsetsTopicResponse {
                name: topic.name.clone(),
                ..Default::default()
            };
            for (partition_index, part) in topic.partitions.into_iter().enumerate() {
                let tp = TopicPartition::new(&topic.name, part.partition_index);
                let mut answer = ListOffsetsPartitionResponse {
                    partition_index: part.partition_index,
                    timestamp: -1,
                    offset: -1,
                    leader_epoch: -1,
                    ..Default::default()
                };
                match self.topic_error(&tp.topic, tp.partition) {
                    Some(code) => answer.error_code = code.code(),
                    None => {
                        let p = &self.partitions[&tp];
                        answer.leader_epoch = p.leader_epoch;
                        let target = match part.timestamp {
                            LATEST => Err(p.high_watermark()),
                            EARLIEST => Err(p.log.log_start_offset()),
                            MAX_TIMESTAMP => Ok(p.log.max_timestamp()),
                            ts => Ok(Some(ts)),
                        };
                        match target {
                            Err(offset) => {
                                answer.offset = offset;
                                if ctx.api_version == 0 {
                                    answer.old_style_offsets = vec![offset];
                                }
                            }
                            // The answer waits for the read; no record that new: -1.
                            Ok(target) => {
                                if let Some(lookup) = target.and_then(|t| p.log.time_lookup(t)) {
                                    lookups.push(TimeRead {
                                        topic_index,
                                        partition_index,
                                        tp: tp.clone(),
                                        lookup,
                                        high_watermark: p.high_watermark(),
                                        log_start_offset: p.log.log_start_offset(),
                                    });
                                }
                            }
                        }
                    }
                }
                out.partitions.push(answer);
            }
            response.topics.push(out);
        }
        if lookups.is_empty() {
            self.respond(ctx.reply, ResponseBody::ListOffsets(response));
        } else {
            self.outputs
                .push_back(Output::ListOffsets(ListOffsetsReply {
                    reply: ctx.reply,
                    response,
                    lookups,
                }));
        }
    }
}
