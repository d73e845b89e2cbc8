//! The end of a run: after the last restart, a produce and fetch round trip, then every
//! partition read from offset 0 to its high watermark for the checkers.

use super::admin;
use super::clients::{self, Ctx, ProduceOutcome};
use super::{PARTITIONS, PROBE_BUDGET, TOPIC};
use crate::checker::admin::FinalTopic;
use crate::checker::broker::{BrokerEvent, FinalLog, FinalPartition};
use crate::kafka_client::KafkaClient;
use crate::kafka_records::{build_batch, decode_fetched, Reading, Writer};
use crate::trace::sim_now;
use gregor::protocol::error::ErrorCode;
use gregor::protocol::records::Compression;
use madsim::time::sleep;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// After the last restart: a produce and fetch round trip must work within [`PROBE_BUDGET`];
/// then every partition is read from offset 0 to its high watermark.
pub(super) async fn final_read(ctx: &Ctx) -> (FinalLog, Vec<String>) {
    let who = "checker";
    let mut violations = Vec::new();
    let mut client = KafkaClient::new(ctx.broker, who);
    if let Err(why) = probe(ctx, &mut client).await {
        violations.push(format!("liveness: {why}"));
        return (FinalLog::new(), violations);
    }
    let mut log = FinalLog::new();
    for partition in 0..PARTITIONS {
        match read_partition(ctx, &mut client, partition).await {
            Ok(p) => {
                ctx.trace.event(
                    who,
                    format_args!(
                        "p{partition}: {} records, high watermark {}",
                        p.records.len(),
                        p.high_watermark
                    ),
                );
                log.insert(partition, p);
            }
            Err(why) => violations.push(format!("final read of p{partition}: {why}")),
        }
    }
    (log, violations)
}

/// Produces one record with acks=-1 and reads it back.
async fn probe(ctx: &Ctx, client: &mut KafkaClient) -> Result<(), String> {
    let who = "checker";
    let deadline = sim_now() + PROBE_BUDGET;
    let mut attempt = 0u32;
    let (offset, values) = loop {
        if sim_now() >= deadline {
            return Err(format!(
                "no produce succeeded within {} s of the final restart",
                PROBE_BUDGET.as_secs()
            ));
        }
        // A new value per attempt: an attempt that timed out may still have been appended, and
        // a plain producer's resend of the same value would be a duplicate.
        attempt += 1;
        let values: Arc<[String]> = Arc::new([format!("checker:probe-{attempt}")]);
        ctx.lock().history.record(BrokerEvent::Sent {
            client: who.to_owned(),
            partition: 0,
            values: Arc::clone(&values),
        });
        let batch = build_batch(&values, Writer::Plain, Compression::None, 0)
            .map_err(|err| format!("cannot build the probe: {err}"))?;
        match clients::produce(client, -1, 0, batch).await {
            ProduceOutcome::Answered {
                error_code: 0,
                base_offset,
            } => break (base_offset, values),
            ProduceOutcome::Answered { error_code, .. } => {
                let name = ErrorCode::from_code(error_code).map_or("?", ErrorCode::name);
                ctx.trace.event(who, format_args!("probe: {name}"));
            }
            ProduceOutcome::Failed(err) => ctx.trace.event(who, format_args!("probe: {err}")),
        }
        sleep(Duration::from_millis(20)).await;
    };
    ctx.trace
        .event(who, format_args!("probe acked at p0@{offset}"));
    ctx.lock().history.record(BrokerEvent::Acked {
        client: who.to_owned(),
        acks: -1,
        partition: 0,
        base_offset: offset,
        values: Arc::clone(&values),
    });
    let offsets = BTreeMap::from([(0, offset)]);
    loop {
        if sim_now() >= deadline {
            return Err(format!(
                "the probe record was not readable within {} s of the final restart",
                PROBE_BUDGET.as_secs()
            ));
        }
        if let Ok(response) = clients::fetch(client, &offsets, 100).await {
            let records = response
                .responses
                .first()
                .and_then(|t| t.partitions.first())
                .and_then(|p| p.records.clone())
                .unwrap_or_default();
            if let Ok(read) = decode_fetched(records, offset, Reading::Strict) {
                if read.first().is_some_and(|(_, value)| value == &values[0]) {
                    ctx.trace.event(who, "probe read back");
                    return Ok(());
                }
            }
        }
        sleep(Duration::from_millis(20)).await;
    }
}

/// Reads a partition from offset 0 to its high watermark, offsets as stored.
async fn read_partition(
    ctx: &Ctx,
    client: &mut KafkaClient,
    partition: i32,
) -> Result<FinalPartition, String> {
    read_topic_partition(ctx, client, TOPIC, partition).await
}

/// Reads a partition of `topic` from offset 0 to its high watermark, offsets as stored.
pub(super) async fn read_topic_partition(
    ctx: &Ctx,
    client: &mut KafkaClient,
    topic: &str,
    partition: i32,
) -> Result<FinalPartition, String> {
    let mut out = FinalPartition::default();
    let mut next = 0i64;
    let mut empty_reads = 0u32;
    loop {
        let offsets = BTreeMap::from([(partition, next)]);
        let response = match clients::fetch_from(client, topic, &offsets, 0).await {
            Ok(response) => response,
            Err(err) => {
                empty_reads += 1;
                if empty_reads > 20 {
                    return Err(format!("fetch keeps failing: {err}"));
                }
                sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Some(data) = response
            .responses
            .first()
            .and_then(|t| t.partitions.first())
        else {
            return Err("empty fetch response".to_owned());
        };
        if data.error_code != 0 {
            let name = ErrorCode::from_code(data.error_code).map_or("?", ErrorCode::name);
            return Err(format!("fetch at offset {next}: {name}"));
        }
        out.high_watermark = data.high_watermark;
        if next >= data.high_watermark {
            return Ok(out);
        }
        let records = data.records.clone().unwrap_or_default();
        let read = decode_fetched(records, next, Reading::AsStored)
            .map_err(|why| format!("damaged data at offset {next} with faults off: {why}"))?;
        match read.last() {
            Some(&(last, _)) if last >= next => {
                next = last + 1;
                empty_reads = 0;
                out.records.extend(read);
            }
            _ => {
                empty_reads += 1;
                if empty_reads > 20 {
                    return Err(format!(
                        "no records at offset {next} below the high watermark {}",
                        data.high_watermark
                    ));
                }
                ctx.trace.event(
                    "checker",
                    format_args!("{topic}-{partition}@{next}: nothing read"),
                );
            }
        }
    }
}

/// After the main topic: every other topic (the admin client's) as the broker lists it, with
/// every record of every partition.
pub(super) async fn final_admin_read(ctx: &Ctx) -> (BTreeMap<String, FinalTopic>, Vec<String>) {
    let who = "checker";
    let mut client = KafkaClient::new(ctx.broker, who);
    let mut listed = None;
    for _ in 0..20 {
        match admin::topics(&mut client).await {
            Ok(found) => {
                listed = Some(found);
                break;
            }
            Err(err) => ctx.trace.event(who, format_args!("metadata: {err}")),
        }
        sleep(Duration::from_millis(20)).await;
    }
    let Some(listed) = listed else {
        return (
            BTreeMap::new(),
            vec!["final read: Metadata keeps failing".to_owned()],
        );
    };
    let mut finals = BTreeMap::new();
    let mut violations = Vec::new();
    for (topic, (id, partitions)) in listed {
        if topic == TOPIC {
            continue;
        }
        let mut final_topic = FinalTopic {
            id,
            partitions,
            records: BTreeMap::new(),
        };
        for partition in 0..partitions {
            match read_topic_partition(ctx, &mut client, &topic, partition).await {
                Ok(p) => {
                    final_topic.records.insert(partition, p.records);
                }
                Err(why) => violations.push(format!("final read of {topic}-{partition}: {why}")),
            }
        }
        let count: usize = final_topic.records.values().map(Vec::len).sum();
        ctx.trace.event(
            who,
            format_args!("{topic}: {partitions} partitions, {count} records"),
        );
        finals.insert(topic, final_topic);
    }
    (finals, violations)
}
