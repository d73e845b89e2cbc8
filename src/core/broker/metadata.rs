//! The metadata image: topics, their ids, partition counts and config overrides, rebuilt by
//! replaying the metadata log. Every change is a [`MetadataRecord`] appended to that log first
//! and applied to the image only once durable, so the image is always what a restart rebuilds.
//! (The controller quorum later replicates this same log.)

use crate::config::LogConfig;
use crate::protocol::primitives::{self as p, DecodeResult, Uuid};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    /// A topic exists with this id and partition count.
    Topic {
        name: String,
        id: Uuid,
        partitions: i32,
    },
    /// The topic's partition count grew (CreatePartitions).
    Partitions { name: String, partitions: i32 },
    /// A topic-level config override was set (`None` removes it).
    Config {
        name: String,
        key: String,
        value: Option<String>,
    },
    /// The topic is gone.
    RemoveTopic { name: String },
    /// Producer ids below `next` are taken (InitProducerId allocates from blocks).
    ProducerIds { next: i64 },
    /// DeleteRecords moved a partition's log start offset.
    LogStart {
        name: String,
        partition: i32,
        offset: i64,
    },
    /// A dynamic broker config was set (`None` removes it): `broker` is a node id, or empty for
    /// the cluster-wide default (`kafka-configs --entity-default`). Keys are broker names
    /// (`log.retention.ms`).
    BrokerConfig {
        broker: String,
        key: String,
        value: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub id: Uuid,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
    /// Log start offsets set by DeleteRecords, per partition.
    pub log_starts: BTreeMap<i32, i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    pub topics: BTreeMap<String, TopicImage>,
    pub next_producer_id: i64,
    /// Dynamic broker configs by resource name (a node id, or "" for the cluster default).
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
}

/// Where a config value comes from, lowest precedence last (Kafka's ConfigSource).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConfigSource {
    Topic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
}

impl MetadataImage {
    /// Applies one record. A record that contradicts the image (a partition count that shrinks,
    /// a change to a topic that does not exist, a duplicate topic id) cannot come from this
    /// broker; it is refused with the reason, so a damaged log that passed its CRC stops start-up
    /// with an error instead of a wrong image or a panic.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), String> {
        match record {
            MetadataRecord::Topic {
                name,
                id,
                partitions,
            } => {
                if *partitions < 1 {
                    return Err(format!("topic {name:?} with {partitions} partitions"));
                }
                if self.topics.contains_key(name) {
                    return Err(format!("topic {name:?} created twice"));
                }
                if self.topic_by_id(id).is_some() {
                    return Err(format!("topic {name:?} reuses the id of another topic"));
                }
                let topic = TopicImage {
                    id: *id,
                    partitions: *partitions,
                    configs: BTreeMap::new(),
                    log_starts: BTreeMap::new(),
                };
                self.topics.insert(name.clone(), topic);
            }
            MetadataRecord::Partitions { name, partitions } => {
                let t = self.existing(name)?;
                if *partitions < t.partitions {
                    return Err(format!(
                        "topic {name:?} shrinks from {} to {partitions} partitions",
                        t.partitions
                    ));
                }
                t.partitions = *partitions;
            }
            MetadataRecord::Config { name, key, value } => {
                let t = self.existing(name)?;
                match value {
                    Some(v) => t.configs.insert(key.clone(), v.clone()),
                    None => t.configs.remove(key),
                };
            }
            MetadataRecord::RemoveTopic { name } => {
                self.existing(name)?;
                self.topics.remove(name);
            }
            MetadataRecord::ProducerIds { next } => {
                self.next_producer_id = self.next_producer_id.max(*next);
            }
            MetadataRecord::BrokerConfig { broker, key, value } => {
                let configs = self.broker_configs.entry(broker.clone()).or_default();
                match value {
                    Some(v) => configs.insert(key.clone(), v.clone()),
                    None => configs.remove(key),
                };
                if configs.is_empty() {
                    self.broker_configs.remove(broker);
                }
            }
            MetadataRecord::LogStart {
                name,
                partition,
                offset,
            } => {
                let t = self.existing(name)?;
                if !(0..t.partitions).contains(partition) || *offset < 0 {
                    return Err(format!(
                        "log start {offset} for partition {partition} of topic {name:?}"
                    ));
                }
                let start = t.log_starts.entry(*partition).or_insert(0);
                *start = (*start).max(*offset);
            }
        }
        Ok(())
    }

    /// The log settings topics start from on node `node_id`: the static config, then the dynamic
    /// cluster default, then this broker's dynamic configs. A stored value that no longer parses
    /// is skipped (it was validated when it was set).
    pub fn broker_log_config(&self, static_log: &LogConfig, node_id: i32) -> LogConfig {
        let mut log = static_log.clone();
        for layer in ["".to_owned(), node_id.to_string()] {
            for (key, value) in self.broker_configs.get(&layer).into_iter().flatten() {
                let _ = log.apply(key, value);
            }
        }
        log
    }

    /// The settings of `topic`'s logs: the broker's, then the topic's overrides.
    pub fn topic_log_config(&self, static_log: &LogConfig, node_id: i32, topic: &str) -> LogConfig {
        let base = self.broker_log_config(static_log, node_id);
        let overrides = self.topics.get(topic).map(|t| &t.configs);
        match overrides {
            Some(o) => crate::config::topic_log_config(&base, o).unwrap_or(base),
            None => base,
        }
    }

    /// Every source that sets broker key `broker_key` on node `node_id`, strongest first, with
    /// its value; the default is always last.
    pub fn broker_key_sources(
        &self,
        static_log: &LogConfig,
        node_id: i32,
        broker_key: &str,
    ) -> Vec<(ConfigSource, Option<String>)> {
        let mut out = Vec::new();
        let topic_key = crate::config::topic_key_of(broker_key);
        for (layer, source) in [
            (node_id.to_string(), ConfigSource::DynamicBroker),
            (String::new(), ConfigSource::DynamicDefaultBroker),
        ] {
            if let Some(v) = self
                .broker_configs
                .get(&layer)
                .and_then(|c| c.get(broker_key))
            {
                out.push((source, Some(v.clone())));
            }
        }
        let default = LogConfig::default();
        let (set, dflt) = match topic_key {
            Some(k) => (static_log.get(k), default.get(k)),
            None => (None, None),
        };
        if set != dflt {
            out.push((ConfigSource::StaticBroker, set));
        }
        out.push((ConfigSource::Default, dflt));
        out
    }

    fn existing(&mut self, name: &str) -> Result<&mut TopicImage, String> {
        self.topics
            .get_mut(name)
            .ok_or_else(|| format!("a change to topic {name:?}, which does not exist"))
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<(&String, &TopicImage)> {
        self.topics.iter().find(|(_, t)| t.id == *id)
    }
}

const TOPIC: u8 = 1;
const PARTITIONS: u8 = 2;
const CONFIG: u8 = 3;
const REMOVE_TOPIC: u8 = 4;
const PRODUCER_IDS: u8 = 5;
const LOG_START: u8 = 6;
const BROKER_CONFIG: u8 = 7;

impl MetadataRecord {
    /// Encodes as a record value: a type byte, then the fields in compact forms.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        // Strings here are names and configs we validated; their lengths fit a u32 varint.
        let put_str = |b: &mut BytesMut, s: &str| {
            let _ = p::put_string(b, s, true);
        };
        match self {
            MetadataRecord::Topic {
                name,
                id,
                partitions,
            } => {
                b.put_u8(TOPIC);
                put_str(&mut b, name);
                p::put_uuid(&mut b, id);
                b.put_i32(*partitions);
            }
            MetadataRecord::Partitions { name, partitions } => {
                b.put_u8(PARTITIONS);
                put_str(&mut b, name);
                b.put_i32(*partitions);
            }
            MetadataRecord::Config { name, key, value } => {
                b.put_u8(CONFIG);
                put_str(&mut b, name);
                put_str(&mut b, key);
                let _ = p::put_nullable_string(&mut b, value.as_deref(), true);
            }
            MetadataRecord::RemoveTopic { name } => {
                b.put_u8(REMOVE_TOPIC);
                put_str(&mut b, name);
            }
            MetadataRecord::ProducerIds { next } => {
                b.put_u8(PRODUCER_IDS);
                b.put_i64(*next);
            }
            MetadataRecord::LogStart {
                name,
                partition,
                offset,
            } => {
                b.put_u8(LOG_START);
                put_str(&mut b, name);
                b.put_i32(*partition);
                b.put_i64(*offset);
            }
            MetadataRecord::BrokerConfig { broker, key, value } => {
                b.put_u8(BROKER_CONFIG);
                put_str(&mut b, broker);
                put_str(&mut b, key);
                let _ = p::put_nullable_string(&mut b, value.as_deref(), true);
            }
        }
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> DecodeResult<MetadataRecord> {
        let b = &mut b;
        Ok(match p::read_i8(b)? as u8 {
            TOPIC => MetadataRecord::Topic {
                name: p::read_string(b, true)?,
                id: p::read_uuid(b)?,
                partitions: p::read_i32(b)?,
            },
            PARTITIONS => MetadataRecord::Partitions {
                name: p::read_string(b, true)?,
                partitions: p::read_i32(b)?,
            },
            CONFIG => MetadataRecord::Config {
                name: p::read_string(b, true)?,
                key: p::read_string(b, true)?,
                value: p::read_nullable_string(b, true)?,
            },
            REMOVE_TOPIC => MetadataRecord::RemoveTopic {
                name: p::read_string(b, true)?,
            },
            PRODUCER_IDS => MetadataRecord::ProducerIds {
                next: p::read_i64(b)?,
            },
            LOG_START => MetadataRecord::LogStart {
                name: p::read_string(b, true)?,
                partition: p::read_i32(b)?,
                offset: p::read_i64(b)?,
            },
            BROKER_CONFIG => MetadataRecord::BrokerConfig {
                broker: p::read_string(b, true)?,
                key: p::read_string(b, true)?,
                value: p::read_nullable_string(b, true)?,
            },
            _ => return Err(p::DecodeError::Invalid("metadata record type")),
        })
    }
}

/// Kafka's topic name rules: 1–249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// One metadata-log batch holding `records` (uncompressed, record values only).
pub fn encode_batch(records: &[MetadataRecord], now_ms: i64) -> bytes::BytesMut {
    use crate::protocol::records::{builder::BatchBuilder, compression::Compression};
    let mut builder = BatchBuilder::new(Compression::None);
    for record in records {
        // Pushing a value-only record with one timestamp cannot fail.
        let _ = builder.push(now_ms, None, Some(record.encode()), Vec::new());
    }
    builder
        .build()
        .map(|b| BytesMut::from(b.as_ref()))
        .unwrap_or_default()
}

/// The metadata log's `max.message.bytes`: no batch, and no batch's records once decompressed,
/// is larger.
pub const MAX_BATCH_BYTES: usize = 128 << 20;

/// Every metadata record in a stretch of the metadata log.
///
/// The bytes come back from disk: each batch's CRC is checked (sealed segments are not scanned
/// on open), and records are decoded under [`MAX_BATCH_BYTES`], so a damaged batch is an error,
/// never an allocation of whatever size its payload claims.
pub fn decode_batches(data: &Bytes) -> Result<Vec<MetadataRecord>, String> {
    use crate::protocol::records::batch::RecordBatches;
    let mut out = Vec::new();
    for batch in RecordBatches::new(data.clone()) {
        let batch = batch.map_err(|e| e.to_string())?;
        // validate() checks the CRC: a damaged read is an error, never replayed.
        batch.validate().map_err(|e| e.to_string())?;
        for record in batch.records(MAX_BATCH_BYTES).map_err(|e| e.to_string())? {
            let value = record.map_err(|e| e.to_string())?.value.unwrap_or_default();
            out.push(MetadataRecord::decode(value).map_err(|e| e.to_string())?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_replay() {
        let records = vec![
            MetadataRecord::Topic {
                name: "t".into(),
                id: Uuid([7; 16]),
                partitions: 3,
            },
            MetadataRecord::Config {
                name: "t".into(),
                key: "retention.ms".into(),
                value: Some("5".into()),
            },
            MetadataRecord::Partitions {
                name: "t".into(),
                partitions: 4,
            },
            MetadataRecord::LogStart {
                name: "t".into(),
                partition: 2,
                offset: 17,
            },
            MetadataRecord::ProducerIds { next: 1000 },
            MetadataRecord::BrokerConfig {
                broker: String::new(),
                key: "log.retention.ms".into(),
                value: Some("60000".into()),
            },
        ];
        let mut image = MetadataImage::default();
        for r in &records {
            let back = MetadataRecord::decode(r.encode()).unwrap();
            assert_eq!(&back, r);
            image.apply(&back).unwrap();
        }
        assert_eq!(image.topics["t"].partitions, 4);
        assert_eq!(image.topics["t"].configs["retention.ms"], "5");
        assert_eq!(image.next_producer_id, 1000);
        assert_eq!(image.topics["t"].log_starts[&2], 17);
        image
            .apply(&MetadataRecord::RemoveTopic { name: "t".into() })
            .unwrap();
        assert!(image.topics.is_empty());
    }

    #[test]
    fn records_that_contradict_the_image_are_refused() {
        let topic = |name: &str, id: u8, partitions| MetadataRecord::Topic {
            name: name.into(),
            id: Uuid([id; 16]),
            partitions,
        };
        let mut image = MetadataImage::default();
        image.apply(&topic("t", 1, 3)).unwrap();
        let before = image.clone();
        let refused = [
            topic("t", 2, 3),
            topic("u", 1, 3),
            topic("v", 3, 0),
            MetadataRecord::Partitions {
                name: "t".into(),
                partitions: 2,
            },
            MetadataRecord::Partitions {
                name: "x".into(),
                partitions: 9,
            },
            MetadataRecord::RemoveTopic { name: "x".into() },
            MetadataRecord::LogStart {
                name: "t".into(),
                partition: 3,
                offset: 1,
            },
        ];
        for record in &refused {
            assert!(image.apply(record).is_err(), "{record:?}");
            assert_eq!(image, before, "{record:?} changed the image");
        }
    }

    #[test]
    fn a_damaged_batch_is_never_replayed() {
        let record = MetadataRecord::Topic {
            name: "events".into(),
            id: Uuid([7; 16]),
            partitions: 3,
        };
        let batch = encode_batch(std::slice::from_ref(&record), 0);
        let data = Bytes::from(batch.to_vec());
        assert_eq!(decode_batches(&data).unwrap(), vec![record]);
        // One flipped bit in the topic name, as a faulty read returns it.
        let at = batch.windows(6).position(|w| w == b"events").unwrap() + 3;
        let mut damaged = batch.to_vec();
        damaged[at] ^= 0x10;
        assert!(decode_batches(&Bytes::from(damaged)).is_err());
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(valid_topic_name("orders.v1_x-2"));
        assert!(!valid_topic_name(""));
        assert!(!valid_topic_name(".."));
        assert!(!valid_topic_name("a/b"));
        assert!(!valid_topic_name(&"x".repeat(250)));
    }
}
