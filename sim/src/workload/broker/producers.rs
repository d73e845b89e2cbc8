//! The producers: plain ones with a fixed `acks`, and the idempotent one.

use super::clients::{
    backoff, error_name, new_batch, produce, produce_request, Ctx, Phase, ProduceOutcome,
    CALL_TIMEOUT, DUPLICATE_PROBABILITY, INIT_PRODUCER_ID_VERSION, LIVENESS_ACKS, PRODUCE_VERSION,
};
use super::PARTITIONS;
use crate::checker::broker::BrokerEvent;
use crate::kafka_client::KafkaClient;
use crate::kafka_records::Writer;
use bytes::Bytes;
use gregor::protocol::error::ErrorCode;
use gregor::protocol::generated::init_producer_id_request::InitProducerIdRequest;
use gregor::protocol::generated::{RequestBody, ResponseBody};
use madsim::rand::{thread_rng, Rng};
use madsim::time::sleep;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

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
        let Some((values, batch)) = new_batch(&ctx, &who, &mut counter, partition, Writer::Plain)
        else {
            return;
        };
        let count = values.len();
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
        // Think time, so requests interleave in many ways. An acks=0 producer always waits (as
        // `linger.ms` would have it): with no answer to wait for and no socket buffer to fill
        // in the simulated network, it would otherwise send most of all batches in a run.
        if acks == 0 || rng.gen_bool(0.5) {
            sleep(Duration::from_millis(rng.gen_range(1..=10))).await;
        }
    }
}

/// A batch the idempotent producer keeps sending until it gets an answer.
struct InFlight {
    partition: i32,
    values: Arc<[String]>,
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
                let base_sequence = sequences.get(&partition).copied().unwrap_or(0);
                let writer = Writer::Idempotent {
                    producer_id,
                    epoch,
                    base_sequence,
                };
                let Some((values, bytes)) = new_batch(&ctx, &who, &mut counter, partition, writer)
                else {
                    return;
                };
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

pub(super) async fn init_producer_id(
    ctx: &Ctx,
    who: &str,
    client: &mut KafkaClient,
) -> Option<(i64, i16)> {
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
