//! The consumer: reads every partition from offset 0 for the whole run.

use super::clients::{backoff, error_name, fetch, Ctx, Phase};
use super::{PARTITIONS, TOPIC};
use crate::checker::broker::BrokerEvent;
use crate::kafka_client::KafkaClient;
use crate::kafka_records::{decode_fetched, Reading};
use gregor::protocol::error::ErrorCode;
use std::collections::BTreeMap;

/// Reads every partition from offset 0, over and over, recording each record and high
/// watermark. Once every producer has finished, it stops when it has caught up everywhere.
pub async fn consumer(ctx: Ctx, who: String) {
    ctx.wait_for_topic().await;
    let mut client = KafkaClient::new(ctx.broker, &who);
    let mut offsets: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    loop {
        let (phase, producers_running) = {
            let shared = ctx.lock();
            (shared.phase, shared.producers_running)
        };
        if phase == Phase::Stop {
            return;
        }
        let draining = phase == Phase::Liveness && producers_running == 0;
        let response = match fetch(&mut client, &offsets, 100).await {
            Ok(response) => response,
            Err(err) => {
                ctx.trace.event(&who, format_args!("fetch: {err}"));
                backoff().await;
                continue;
            }
        };
        if response.error_code != 0 {
            let name = error_name(response.error_code);
            ctx.trace.event(&who, format_args!("fetch: {name}"));
            backoff().await;
            continue;
        }
        let mut caught_up = true;
        let mut retry_soon = false;
        for data in response
            .responses
            .iter()
            .filter(|t| t.topic == TOPIC)
            .flat_map(|t| &t.partitions)
        {
            let partition = data.partition_index;
            let Some(offset) = offsets.get_mut(&partition) else {
                continue;
            };
            if data.error_code != 0 {
                caught_up = false;
                retry_soon = true;
                let name = error_name(data.error_code);
                ctx.trace
                    .event(&who, format_args!("p{partition}@{offset}: {name}"));
                if data.error_code == ErrorCode::KafkaStorageError.code() {
                    ctx.storage_error(&who);
                }
                if data.error_code == ErrorCode::OffsetOutOfRange.code() && data.high_watermark >= 0
                {
                    // Our position is past the end: the high watermark went back. Record it
                    // (the checker reports it) and read on from there.
                    ctx.record(BrokerEvent::HighWatermark {
                        partition,
                        hw: data.high_watermark,
                    });
                    *offset = data.high_watermark;
                }
                continue;
            }
            ctx.record(BrokerEvent::HighWatermark {
                partition,
                hw: data.high_watermark,
            });
            let records = data.records.clone().unwrap_or_default();
            match decode_fetched(records, *offset, Reading::Strict) {
                Ok(read) => {
                    if let (Some((first, _)), Some((last, _))) = (read.first(), read.last()) {
                        ctx.trace.event(
                            &who,
                            format_args!(
                                "p{partition}: read {first}..={last} (hw {})",
                                data.high_watermark
                            ),
                        );
                        *offset = last + 1;
                    }
                    for (read_offset, value) in read {
                        ctx.record(BrokerEvent::Consumed {
                            partition,
                            offset: read_offset,
                            value,
                        });
                    }
                }
                Err(why) => {
                    retry_soon = true;
                    ctx.lock().stats.damaged_reads += 1;
                    ctx.trace.event(
                        &who,
                        format_args!("p{partition}@{offset}: damaged read ({why}), fetching again"),
                    );
                }
            }
            if *offset < data.high_watermark {
                caught_up = false;
            }
        }
        if draining && caught_up {
            ctx.finish(&who, false);
            return;
        }
        if retry_soon {
            backoff().await;
        }
    }
}
