//! The pipelined idempotent producer: like a real Kafka producer with idempotence on, it keeps
//! up to five batches in flight on one connection (`max.in.flight.requests.per.connection=5`),
//! all to one partition with consecutive sequences. After a lost connection or an error it sends
//! every unacknowledged batch again, unchanged and in order. The broker must append each batch
//! once, in sequence order, and answer a resend of an appended batch with its original offset.
//!
//! OUT_OF_ORDER_SEQUENCE_NUMBER is legitimate for a batch behind one that was refused or lost in
//! the same round (its predecessor is missing), and is then resent; for a batch whose
//! predecessors are all acknowledged it means the broker forgot acknowledged state.

use super::clients::{
    backoff, error_name, new_batch, produce_outcome, produce_request, Ctx, Phase, ProduceOutcome,
    CALL_TIMEOUT, LIVENESS_ACKS, PRODUCE_VERSION,
};
use super::producers::init_producer_id;
use super::{PARTITIONS, TOPIC};
use crate::checker::broker::BrokerEvent;
use crate::kafka_client::KafkaClient;
use crate::kafka_records::Writer;
use bytes::Bytes;
use gregor::protocol::error::ErrorCode;
use madsim::rand::{thread_rng, Rng};
use madsim::time::sleep;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// Batches in flight at once, as Kafka's idempotent producer allows.
const IN_FLIGHT_MAX: usize = 5;

struct Unacked {
    values: Arc<[String]>,
    batch: Bytes,
    base_sequence: i32,
    sends: u32,
}

pub async fn pipelined_producer(ctx: Ctx, who: String) {
    ctx.wait_for_topic().await;
    let mut client = KafkaClient::new(ctx.broker, &who);
    let mut rng = thread_rng();
    let partition = rng.gen_range(0..PARTITIONS);
    let mut counter = 0u64;
    let mut progress_after_faults = 0u32;
    let mut session: Option<(i64, i16)> = None;
    let mut next_sequence = 0i32;
    // The offset of the last acknowledged batch of this producer id: sequences are appended in
    // order, so offsets must grow with them.
    let mut last_acked_offset = -1i64;
    let mut unacked: VecDeque<Unacked> = VecDeque::new();
    loop {
        let phase = ctx.phase();
        if phase == Phase::Stop {
            return;
        }
        if phase == Phase::Liveness && progress_after_faults >= LIVENESS_ACKS && unacked.is_empty()
        {
            ctx.finish(&who, true);
            return;
        }
        let Some((producer_id, epoch)) = session else {
            // A new producer id starts over at sequence 0; batches of the old id that were never
            // acknowledged stay unknown (the checkers allow either fate).
            session = init_producer_id(&ctx, &who, &mut client).await;
            unacked.clear();
            next_sequence = 0;
            last_acked_offset = -1;
            if session.is_none() {
                backoff().await;
            }
            continue;
        };
        // Top up the window with new batches.
        let window = IN_FLIGHT_MAX.min(unacked.len() + rng.gen_range(1..=IN_FLIGHT_MAX));
        while unacked.len() < window {
            let writer = Writer::Idempotent {
                producer_id,
                epoch,
                base_sequence: next_sequence,
            };
            let Some((values, batch)) = new_batch(&ctx, &who, &mut counter, partition, writer)
            else {
                return;
            };
            let count = values.len();
            unacked.push_back(Unacked {
                base_sequence: next_sequence,
                values,
                batch,
                sends: 0,
            });
            next_sequence = next_sequence.wrapping_add(i32::try_from(count).unwrap_or(1));
        }
        let requests = unacked
            .iter_mut()
            .map(|u| {
                u.sends += 1;
                produce_request(-1, partition, u.batch.clone())
            })
            .collect();
        let results = client
            .pipeline(PRODUCE_VERSION, requests, CALL_TIMEOUT)
            .await;
        // Answers come in sequence order; a batch is acknowledged only after every one before it.
        let mut all_before_acked = true;
        let mut kept = VecDeque::new();
        for (sent, result) in unacked.drain(..).zip(results) {
            let label = format!(
                "{} (pid {producer_id} seq {} send {})",
                sent.values[0], sent.base_sequence, sent.sends
            );
            match produce_outcome(result, TOPIC, partition) {
                ProduceOutcome::Answered {
                    error_code: 0,
                    base_offset,
                } if all_before_acked => {
                    if base_offset <= last_acked_offset {
                        ctx.violation(
                            &who,
                            format!(
                                "{label} acknowledged at p{partition}@{base_offset}, not after the batch before it (@{last_acked_offset})"
                            ),
                        );
                        return;
                    }
                    last_acked_offset = base_offset;
                    ctx.trace.event(
                        &who,
                        format_args!("acked {label} at p{partition}@{base_offset}"),
                    );
                    ctx.record(BrokerEvent::Acked {
                        client: who.clone(),
                        acks: -1,
                        partition,
                        base_offset,
                        values: sent.values,
                    });
                    ctx.lock().stats.pipelined_acked += 1;
                    if phase == Phase::Liveness {
                        progress_after_faults += 1;
                    }
                }
                ProduceOutcome::Answered { error_code: 0, .. } => {
                    ctx.violation(
                        &who,
                        format!(
                            "{label} to p{partition} was acknowledged although a batch before it was not"
                        ),
                    );
                    return;
                }
                ProduceOutcome::Answered { error_code, .. } => {
                    let name = error_name(error_code);
                    ctx.trace
                        .event(&who, format_args!("{label} to p{partition}: {name}"));
                    let state_lost = [
                        ErrorCode::UnknownProducerId,
                        ErrorCode::InvalidProducerEpoch,
                    ]
                    .iter()
                    .any(|e| e.code() == error_code)
                        || (error_code == ErrorCode::OutOfOrderSequenceNumber.code()
                            && all_before_acked);
                    if state_lost {
                        ctx.violation(
                            &who,
                            format!(
                                "{name} for {label} to p{partition}: every batch before it was acknowledged, so the broker lost the producer's state"
                            ),
                        );
                        return;
                    }
                    if error_code == ErrorCode::KafkaStorageError.code() {
                        ctx.storage_error(&who);
                    }
                    all_before_acked = false;
                    kept.push_back(sent);
                }
                ProduceOutcome::Failed(err) => {
                    ctx.trace.event(
                        &who,
                        format_args!("{label} to p{partition}: {err}, will resend"),
                    );
                    all_before_acked = false;
                    kept.push_back(sent);
                }
            }
        }
        unacked = kept;
        if !unacked.is_empty() {
            backoff().await;
        } else if rng.gen_bool(0.5) {
            sleep(Duration::from_millis(rng.gen_range(1..=10))).await;
        }
    }
}
