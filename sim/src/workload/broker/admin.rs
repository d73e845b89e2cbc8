//! The admin client: while faults run, it creates topics of its own (names drawn from the seed,
//! 1 to 4 partitions, some with LogAppendTime and an hourly `segment.ms` so wall-clock jumps
//! matter), adds partitions, deletes and re-creates them, writes a few `acks=all` records into
//! them, and looks at them with Metadata. Everything it does goes to the admin history
//! ([`crate::checker::admin`]); a call without an answer is recorded as unknown.

use super::clients::{backoff, error_name, produce_to, wall_ms, Ctx, Phase, ProduceOutcome};
use super::TOPIC;
use crate::checker::admin::{AdminCall, AdminOp, AdminOutcome, AdminRecord, TopicSeen};
use crate::kafka_client::{CallError, KafkaClient};
use crate::kafka_records::{build_batch, Writer};
use crate::trace::sim_now;
use gregor::protocol::error::ErrorCode;
use gregor::protocol::generated::create_partitions_request::{
    CreatePartitionsRequest, CreatePartitionsTopic,
};
use gregor::protocol::generated::create_topics_request::{
    CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
};
use gregor::protocol::generated::delete_topics_request::{DeleteTopicState, DeleteTopicsRequest};
use gregor::protocol::generated::metadata_request::MetadataRequest;
use gregor::protocol::generated::{RequestBody, ResponseBody};
use gregor::protocol::records::Compression;
use madsim::rand::{thread_rng, Rng};
use madsim::time::sleep;
use std::collections::BTreeMap;
use std::time::Duration;

const CREATE_TOPICS_VERSION: i16 = 7;
const DELETE_TOPICS_VERSION: i16 = 6;
const CREATE_PARTITIONS_VERSION: i16 = 3;
const METADATA_VERSION: i16 = 12;
/// Admin calls wait longer than produce: a metadata change waits for an fsync.
const ADMIN_TIMEOUT: Duration = Duration::from_millis(1500);
/// How many topic names the admin client plays with (few, so names are re-created).
const NAMES: usize = 4;
/// Most partitions a topic is grown to.
const PARTITIONS_MAX: i32 = 6;
/// Successful calls the admin client needs once faults are off.
const LIVENESS_CALLS: u32 = 3;

fn now_ms() -> u64 {
    u64::try_from(sim_now().as_millis()).unwrap_or(u64::MAX)
}

/// Topic names for this run, drawn from the seed.
fn draw_names(rng: &mut impl Rng) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    while names.len() < NAMES {
        let name = format!("adm-{}", rng.gen_range(0..1000));
        if !names.contains(&name) && name != TOPIC {
            names.push(name);
        }
    }
    names
}

/// What a call's answer says: done, refused (with the error name), never sent (the connection
/// was refused: the broker is down), or unknown.
enum Answer<T> {
    Done(T),
    Refused(i16),
    NotSent(CallError),
    Unknown(CallError),
}

pub async fn admin(ctx: Ctx, who: String) {
    let mut rng = thread_rng();
    let names = draw_names(&mut rng);
    ctx.trace.event(&who, format_args!("topic names {names:?}"));
    let mut client = KafkaClient::new(ctx.broker, &who);
    // Partition counts as last acknowledged (a guide for the next call, not a truth).
    let mut believed: BTreeMap<String, i32> = BTreeMap::new();
    let mut counter = 0u64;
    let mut progress_after_faults = 0u32;
    loop {
        let phase = ctx.phase();
        if phase == Phase::Stop {
            return;
        }
        if phase == Phase::Liveness && progress_after_faults >= LIVENESS_CALLS {
            ctx.finish(&who, false);
            return;
        }
        let name = names[rng.gen_range(0..names.len())].clone();
        let known = believed.get(&name).copied();
        let succeeded = match rng.gen_range(0..10) {
            0..=2 => create(&ctx, &who, &mut client, &name, &mut believed).await,
            3..=4 => {
                let count = known.unwrap_or(1) + rng.gen_range(1..=2);
                grow(
                    &ctx,
                    &who,
                    &mut client,
                    &name,
                    count.min(PARTITIONS_MAX),
                    &mut believed,
                )
                .await
            }
            5 => {
                let done = delete(&ctx, &who, &mut client, &name, &mut believed).await;
                // Delete then re-create at once, as an operator resetting a topic does: the new
                // topic must not meet the old one's files.
                if done && !believed.contains_key(&name) && rng.gen_bool(0.5) {
                    create(&ctx, &who, &mut client, &name, &mut believed).await;
                    let partition = rng.gen_range(0..believed.get(&name).copied().unwrap_or(1));
                    produce(&ctx, &who, &mut client, &name, partition, &mut counter).await;
                }
                done
            }
            6..=8 => {
                let partition = rng.gen_range(0..known.unwrap_or(1));
                produce(&ctx, &who, &mut client, &name, partition, &mut counter).await
            }
            _ => observe(&ctx, &who, &mut client, &names).await,
        };
        if succeeded && phase == Phase::Liveness {
            progress_after_faults += 1;
        }
        if rng.gen_bool(0.3) {
            observe(&ctx, &who, &mut client, &names).await;
        }
        sleep(Duration::from_millis(rng.gen_range(5..=40))).await;
    }
}

/// Sends one admin call and classifies its answer with `decide` (error code of the topic).
async fn call<T>(
    client: &mut KafkaClient,
    version: i16,
    body: RequestBody,
    decide: impl FnOnce(ResponseBody) -> Option<(i16, T)>,
) -> Answer<T> {
    match client.call(version, body, ADMIN_TIMEOUT).await {
        Ok(response) => match decide(response) {
            Some((0, value)) => Answer::Done(value),
            Some((code, _)) => Answer::Refused(code),
            None => {
                client.disconnect();
                Answer::Unknown(CallError::Protocol("no answer for the topic".to_owned()))
            }
        },
        Err(CallError::Io(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
            Answer::NotSent(CallError::Io(err))
        }
        Err(err) => Answer::Unknown(err),
    }
}

/// Records a call's outcome in the history and the trace; returns whether it was acknowledged.
fn record<T>(
    ctx: &Ctx,
    who: &str,
    topic: &str,
    op: AdminOp,
    issued_ms: u64,
    answer: &Answer<T>,
    id: Option<[u8; 16]>,
) -> bool {
    let outcome = match answer {
        Answer::Done(_) => AdminOutcome::Acked { id },
        Answer::Refused(_) | Answer::NotSent(_) => AdminOutcome::Refused,
        Answer::Unknown(_) => AdminOutcome::Unknown {
            gave_up_ms: now_ms(),
        },
    };
    let what = match answer {
        Answer::Done(_) => "ok".to_owned(),
        Answer::Refused(code) => error_name(*code).to_owned(),
        Answer::NotSent(err) => format!("not sent ({err})"),
        Answer::Unknown(err) => format!("unknown ({err})"),
    };
    ctx.trace.event(who, format_args!("{op:?} {topic}: {what}"));
    let mut shared = ctx.lock();
    match (answer, op) {
        (Answer::Done(_), AdminOp::Create { .. }) => shared.admin_stats.created += 1,
        (Answer::Done(_), AdminOp::AddPartitions { .. }) => shared.admin_stats.grown += 1,
        (Answer::Done(_), AdminOp::Delete) => shared.admin_stats.deleted += 1,
        (Answer::Refused(_) | Answer::NotSent(_), _) => shared.admin_stats.refused += 1,
        (Answer::Unknown(_), _) => shared.admin_stats.unknown += 1,
    }
    shared.admin.calls.push(AdminCall {
        topic: topic.to_owned(),
        op,
        issued_ms,
        outcome,
    });
    matches!(answer, Answer::Done(_) | Answer::Refused(_))
}

async fn create(
    ctx: &Ctx,
    who: &str,
    client: &mut KafkaClient,
    name: &str,
    believed: &mut BTreeMap<String, i32>,
) -> bool {
    let mut rng = thread_rng();
    let partitions = rng.gen_range(1..=4);
    let mut configs = Vec::new();
    if rng.gen_bool(0.5) {
        configs.push(config("message.timestamp.type", "LogAppendTime"));
    }
    if rng.gen_bool(0.5) {
        configs.push(config("segment.ms", "3600000"));
    }
    if rng.gen_bool(0.5) {
        configs.push(config("segment.bytes", "1024"));
    }
    let body = RequestBody::CreateTopics(CreateTopicsRequest {
        topics: vec![CreatableTopic {
            name: name.to_owned(),
            num_partitions: partitions,
            replication_factor: 1,
            configs,
            ..Default::default()
        }],
        timeout_ms: 5000,
        ..Default::default()
    });
    let issued = now_ms();
    let answer = call(client, CREATE_TOPICS_VERSION, body, |r| match r {
        ResponseBody::CreateTopics(r) => r
            .topics
            .into_iter()
            .find(|t| t.name == name)
            .map(|t| (t.error_code, t.topic_id.0)),
        _ => None,
    })
    .await;
    let id = match &answer {
        Answer::Done(id) => Some(*id),
        _ => None,
    };
    let op = AdminOp::Create { partitions };
    match &answer {
        Answer::Done(_) => {
            believed.insert(name.to_owned(), partitions);
        }
        Answer::Refused(code) if *code == ErrorCode::TopicAlreadyExists.code() => {
            believed.entry(name.to_owned()).or_insert(1);
        }
        _ => {}
    }
    record(ctx, who, name, op, issued, &answer, id)
}

fn config(name: &str, value: &str) -> CreatableTopicConfig {
    CreatableTopicConfig {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..Default::default()
    }
}

async fn grow(
    ctx: &Ctx,
    who: &str,
    client: &mut KafkaClient,
    name: &str,
    count: i32,
    believed: &mut BTreeMap<String, i32>,
) -> bool {
    let body = RequestBody::CreatePartitions(CreatePartitionsRequest {
        topics: vec![CreatePartitionsTopic {
            name: name.to_owned(),
            count,
            assignments: None,
            ..Default::default()
        }],
        timeout_ms: 5000,
        validate_only: false,
        ..Default::default()
    });
    let issued = now_ms();
    let answer = call(client, CREATE_PARTITIONS_VERSION, body, |r| match r {
        ResponseBody::CreatePartitions(r) => r
            .results
            .into_iter()
            .find(|t| t.name == name)
            .map(|t| (t.error_code, ())),
        _ => None,
    })
    .await;
    if matches!(answer, Answer::Done(())) {
        believed.insert(name.to_owned(), count);
    }
    record(
        ctx,
        who,
        name,
        AdminOp::AddPartitions { count },
        issued,
        &answer,
        None,
    )
}

async fn delete(
    ctx: &Ctx,
    who: &str,
    client: &mut KafkaClient,
    name: &str,
    believed: &mut BTreeMap<String, i32>,
) -> bool {
    let body = RequestBody::DeleteTopics(DeleteTopicsRequest {
        topics: vec![DeleteTopicState {
            name: Some(name.to_owned()),
            ..Default::default()
        }],
        timeout_ms: 5000,
        ..Default::default()
    });
    let issued = now_ms();
    let answer = call(client, DELETE_TOPICS_VERSION, body, |r| match r {
        ResponseBody::DeleteTopics(r) => r
            .responses
            .into_iter()
            .find(|t| t.name.as_deref() == Some(name))
            .map(|t| (t.error_code, ())),
        _ => None,
    })
    .await;
    if matches!(
        answer,
        Answer::Done(()) | Answer::Refused(3) // UNKNOWN_TOPIC_OR_PARTITION
    ) {
        believed.remove(name);
    }
    record(ctx, who, name, AdminOp::Delete, issued, &answer, None)
}

/// A few `acks=all` records into one partition of an admin topic.
async fn produce(
    ctx: &Ctx,
    who: &str,
    client: &mut KafkaClient,
    name: &str,
    partition: i32,
    counter: &mut u64,
) -> bool {
    let count = thread_rng().gen_range(1..=3);
    let values: Vec<String> = (0..count)
        .map(|_| {
            *counter += 1;
            format!("{who}:{counter}")
        })
        .collect();
    let Ok(batch) = build_batch(&values, Writer::Plain, Compression::None, wall_ms()) else {
        return false;
    };
    match produce_to(client, name, -1, partition, batch).await {
        ProduceOutcome::Answered {
            error_code: 0,
            base_offset,
        } => {
            ctx.trace.event(
                who,
                format_args!(
                    "acked {} +{} at {name}-{partition}@{base_offset}",
                    values[0],
                    count - 1
                ),
            );
            let acked_ms = now_ms();
            let mut shared = ctx.lock();
            shared.admin_stats.records += count;
            for (offset, value) in (base_offset..).zip(values) {
                shared.admin.records.push(AdminRecord {
                    topic: name.to_owned(),
                    partition,
                    offset,
                    value,
                    acked_ms,
                });
            }
            true
        }
        ProduceOutcome::Answered { error_code, .. } => {
            ctx.trace.event(
                who,
                format_args!("produce to {name}-{partition}: {}", error_name(error_code)),
            );
            if error_code == ErrorCode::KafkaStorageError.code() {
                ctx.storage_error(who);
            }
            true
        }
        ProduceOutcome::Failed(err) => {
            ctx.trace
                .event(who, format_args!("produce to {name}-{partition}: {err}"));
            backoff().await;
            false
        }
    }
}

/// Asks for every topic and records how the admin topics look.
async fn observe(ctx: &Ctx, who: &str, client: &mut KafkaClient, names: &[String]) -> bool {
    match topics(client).await {
        Ok(found) => {
            let at_ms = now_ms();
            let mut shared = ctx.lock();
            for (topic, (id, partitions)) in found {
                if names.contains(&topic) {
                    shared.admin.seen.push(TopicSeen {
                        topic,
                        at_ms,
                        id,
                        partitions,
                    });
                }
            }
            true
        }
        Err(err) => {
            ctx.trace.event(who, format_args!("metadata: {err}"));
            false
        }
    }
}

/// Every topic the broker lists: name to (id, partition count).
pub(super) async fn topics(
    client: &mut KafkaClient,
) -> Result<BTreeMap<String, ([u8; 16], i32)>, CallError> {
    let body = RequestBody::Metadata(MetadataRequest {
        topics: None,
        allow_auto_topic_creation: false,
        ..Default::default()
    });
    match client.call(METADATA_VERSION, body, ADMIN_TIMEOUT).await? {
        ResponseBody::Metadata(response) => Ok(response
            .topics
            .into_iter()
            .filter(|t| t.error_code == 0)
            .filter_map(|t| {
                let partitions = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
                t.name.map(|name| (name, (t.topic_id.0, partitions)))
            })
            .collect()),
        other => Err(CallError::Protocol(format!(
            "unexpected {:?} response",
            other.api_key()
        ))),
    }
}
