//! Produce: validate each batch, check idempotent sequences, assign offsets, plan the writes,
//! and hold the response until the acks level's condition holds.

use super::producer_state::SequenceCheck;
use super::{Broker, LogTarget, Output, ReplyTo, RequestContext, TopicPartition, WorkKind};
use crate::core::time::Now;
use crate::protocol::error::ErrorCode;
use crate::protocol::generated::produce_request::ProduceRequest;
use crate::protocol::generated::produce_response::{
    PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use crate::protocol::generated::ResponseBody;
use crate::protocol::records::batch::{Batch, BatchHeader, RecordBatches};
use bytes::{Bytes, BytesMut};

/// What must be true of one partition before the response may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Wait {
    tp: TopicPartition,
    /// Offsets below this must be written (acks=1) or durable (acks=all).
    end: i64,
    durable: bool,
    /// Where this partition's answer sits in the response.
    topic_index: usize,
    partition_index: usize,
}

#[derive(Debug)]
pub(super) struct PendingProduce {
    reply: ReplyTo,
    response: ProduceResponse,
    waits: Vec<Wait>,
}

impl Broker {
    pub(super) fn handle_produce(&mut self, ctx: RequestContext, req: ProduceRequest, now: Now) {
        let acks = req.acks;
        let mut response = ProduceResponse::default();
        let mut waits = Vec::new();
        let acks_valid = matches!(acks, -1..=1);
        for (ti, topic) in req.topic_data.into_iter().enumerate() {
            let mut out = TopicProduceResponse {
                name: topic.name.clone(),
                ..Default::default()
            };
            for (pi, part) in topic.partition_data.into_iter().enumerate() {
                let tp = TopicPartition::new(&topic.name, part.index);
                let mut answer = PartitionProduceResponse {
                    index: part.index,
                    base_offset: -1,
                    log_append_time_ms: -1,
                    log_start_offset: -1,
                    ..Default::default()
                };
                let result = if !acks_valid {
                    Err(ErrorCode::InvalidRequiredAcks)
                } else if req.transactional_id.is_some() {
                    Err(ErrorCode::TransactionalIdAuthorizationFailed)
                } else {
                    self.append_records(&tp, part.records.unwrap_or_default(), now)
                };
                match result {
                    Ok(done) => {
                        answer.base_offset = done.base_offset;
                        answer.log_append_time_ms = done.log_append_time;
                        answer.log_start_offset = done.log_start_offset;
                        if let Some(end) = done.wait_end {
                            let durable = acks == -1 && done.flushes;
                            waits.push(Wait {
                                tp,
                                end,
                                durable,
                                topic_index: ti,
                                partition_index: pi,
                            });
                        }
                    }
                    Err(code) => answer.error_code = code.code(),
                }
                out.partition_responses.push(answer);
            }
            response.responses.push(out);
        }
        if acks == 0 {
            // Kafka sends nothing for acks=0, whatever happened.
            self.outputs
                .push_back(Output::NoResponse { reply: ctx.reply });
            return;
        }
        self.produce_waits.push(PendingProduce {
            reply: ctx.reply,
            response,
            waits,
        });
        self.release_produce_waits(now);
    }

    /// Validates and appends every batch in `records` to one partition.
    fn append_records(
        &mut self,
        tp: &TopicPartition,
        records: Bytes,
        now: Now,
    ) -> Result<Appended, ErrorCode> {
        if let Some(code) = self.topic_error(&tp.topic, tp.partition) {
            return Err(code);
        }
        let batches: Vec<Batch> = RecordBatches::new(records)
            .collect::<Result<_, _>>()
            .map_err(|e| e.error_code())?;
        // Produce v3+ carries exactly one batch per partition (Kafka refuses anything else with
        // INVALID_RECORD). It also means a request appends all of its records or none.
        if batches.len() != 1 {
            return Err(ErrorCode::InvalidRecord);
        }
        let expiration_ms = self.config.producer_id_expiration_ms;
        let p = self
            .partitions
            .get_mut(tp)
            .ok_or(ErrorCode::UnknownTopicOrPartition)?;
        // Validate before anything is appended.
        let mut headers = Vec::with_capacity(batches.len());
        for b in &batches {
            if b.size() > p.log.config().max_message_bytes as usize {
                return Err(ErrorCode::MessageTooLarge);
            }
            b.validate_for_produce().map_err(|e| e.error_code())?;
            headers.push(*b.header());
        }
        let mut first_offset = None;
        let mut wait_end = None;
        let mut ops = Vec::new();
        for (b, header) in batches.into_iter().zip(headers) {
            if let Some(dup) = check_sequence(&p.producers, &header)? {
                first_offset.get_or_insert(dup);
                continue;
            }
            let batch = BytesMut::from(b.as_bytes().as_ref());
            let appended = p
                .append_batch(batch, &header, now.wall_ms, expiration_ms)
                .map_err(|e| e.code())?;
            first_offset.get_or_insert(appended.base_offset);
            wait_end = Some(appended.last_offset + 1);
            ops.extend(appended.ops);
            // Buggify: roll the segment before segment.bytes (many small segments: reads across
            // segment ends, sealed-segment indexes, recovery and producer state over many files).
            if self.buggify.fire("log-roll-early", 0.1) {
                ops.extend(p.log.roll_early(now.wall_ms));
            }
        }
        let log_append_time = if p.log.config().log_append_time {
            now.wall_ms
        } else {
            -1
        };
        let log_start_offset = p.log.log_start_offset();
        let flushes = p.log.config().flush_messages.is_some();
        let flush_now = p.log.flush_due(now.wall_ms);
        // Only duplicates: answer once everything appended so far is as safe as a new write.
        let wait_end = Some(wait_end.unwrap_or_else(|| p.log.log_end_offset()));
        if !ops.is_empty() {
            let end = p.log.log_end_offset();
            self.new_work(LogTarget::Partition(tp.clone()), end, WorkKind::Write, ops);
        }
        // Buggify: leave the group-commit sync to the flush timer (acks=all answers wait for
        // `handle_timeout`, and one later sync covers several requests).
        if flush_now && !self.buggify.fire("flush-deferred", 0.2) {
            self.start_sync(tp, now);
        }
        Ok(Appended {
            base_offset: first_offset.unwrap_or(-1),
            log_append_time,
            log_start_offset,
            wait_end,
            flushes,
        })
    }

    /// Sends every held produce response whose partitions all reached their condition.
    pub(super) fn release_produce_waits(&mut self, _now: Now) {
        let mut i = 0;
        while i < self.produce_waits.len() {
            let pending = &mut self.produce_waits[i];
            let partitions = &self.partitions;
            pending.waits.retain(|w| {
                let Some(p) = partitions.get(&w.tp) else {
                    return false;
                };
                if p.offline {
                    if let Some(answer) = pending
                        .response
                        .responses
                        .get_mut(w.topic_index)
                        .and_then(|t| t.partition_responses.get_mut(w.partition_index))
                    {
                        answer.error_code = ErrorCode::KafkaStorageError.code();
                        answer.base_offset = -1;
                    }
                    return false;
                }
                let reached = if w.durable {
                    p.log.synced_offset().min(p.written_end)
                } else {
                    p.written_end
                };
                reached < w.end
            });
            if pending.waits.is_empty() {
                let done = self.produce_waits.remove(i);
                self.outputs.push_back(Output::Respond {
                    reply: done.reply,
                    body: ResponseBody::Produce(done.response),
                });
            } else {
                i += 1;
            }
        }
    }
}

struct Appended {
    base_offset: i64,
    log_append_time: i64,
    log_start_offset: i64,
    /// Offsets below this must be written/durable before answering.
    wait_end: Option<i64>,
    /// The topic syncs before acknowledging acks=all (`flush.messages` set).
    flushes: bool,
}

/// `Ok(Some(offset))` for a duplicate of an already appended batch, `Ok(None)` to append.
fn check_sequence(
    producers: &super::ProducerStates,
    header: &BatchHeader,
) -> Result<Option<i64>, ErrorCode> {
    if header.producer_id < 0 {
        return Ok(None);
    }
    match producers.check(
        header.producer_id,
        header.producer_epoch,
        header.base_sequence,
        header.last_offset_delta,
    ) {
        SequenceCheck::Accept => Ok(None),
        SequenceCheck::Duplicate { base_offset } => Ok(Some(base_offset)),
        SequenceCheck::Reject(code) => Err(code),
    }
}
