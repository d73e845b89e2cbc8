//! Broker configuration with Kafka's property names and meanings, read from a Kafka-style
//! properties file plus `key=value` overrides. Unknown keys produce warnings; a bad value fails
//! with one line naming the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value for {key}: '{value}' ({expected})")]
    InvalidValue {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("line {line}: expected key=value, got '{text}'")]
    Syntax { line: usize, text: String },
}

/// A listener such as `PLAINTEXT://127.0.0.1:9092`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl Listener {
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        format!("{host}:{}", self.port).parse().ok()
    }
}

/// Log settings that topics inherit and may override per topic (`retention.ms`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes` / `log.segment.bytes`
    pub segment_bytes: u64,
    /// `segment.ms` / `log.roll.ms`
    pub segment_ms: i64,
    /// `retention.ms` / `log.retention.ms`; -1 keeps forever.
    pub retention_ms: i64,
    /// `retention.bytes` / `log.retention.bytes`; -1 keeps forever.
    pub retention_bytes: i64,
    /// `max.message.bytes` / `message.max.bytes`: largest batch accepted.
    pub max_message_bytes: u32,
    /// `index.interval.bytes` / `log.index.interval.bytes`
    pub index_interval_bytes: u32,
    /// `flush.messages` / `log.flush.interval.messages`. `Some(1)` (gregor's default) fsyncs before
    /// acknowledging every write (group commit); `None` leaves flushing to the OS like Kafka.
    pub flush_messages: Option<u64>,
    /// `flush.ms` / `log.flush.interval.ms`
    pub flush_ms: Option<u64>,
    /// `message.timestamp.type`: CreateTime or LogAppendTime.
    pub log_append_time: bool,
    /// `cleanup.policy` (only `delete` is implemented; `compact` is accepted and stored).
    pub cleanup_policy: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3_600_000,
            retention_ms: 7 * 24 * 3_600_000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            index_interval_bytes: 4096,
            flush_messages: Some(1),
            flush_ms: None,
            log_append_time: false,
            cleanup_policy: "delete".into(),
        }
    }
}

/// Topic-level config keys and the broker keys that set their defaults.
pub const TOPIC_CONFIG_KEYS: &[(&str, &str)] = &[
    ("segment.bytes", "log.segment.bytes"),
    ("segment.ms", "log.roll.ms"),
    ("retention.ms", "log.retention.ms"),
    ("retention.bytes", "log.retention.bytes"),
    ("max.message.bytes", "message.max.bytes"),
    ("index.interval.bytes", "log.index.interval.bytes"),
    ("flush.messages", "log.flush.interval.messages"),
    ("flush.ms", "log.flush.interval.ms"),
    ("message.timestamp.type", "log.message.timestamp.type"),
    ("cleanup.policy", "log.cleanup.policy"),
];

/// The topic-level name of a broker-level log key (`log.retention.ms` → `retention.ms`).
pub fn topic_key_of(broker_key: &str) -> Option<&'static str> {
    TOPIC_CONFIG_KEYS
        .iter()
        .find(|(_, b)| *b == broker_key)
        .map(|(t, _)| *t)
}

/// The broker-level name of a topic-level log key (`retention.ms` → `log.retention.ms`).
pub fn broker_key_of(topic_key: &str) -> Option<&'static str> {
    TOPIC_CONFIG_KEYS
        .iter()
        .find(|(t, _)| *t == topic_key)
        .map(|(_, b)| *b)
}

impl LogConfig {
    /// Applies one topic-level (`retention.ms`) or broker-level (`log.retention.ms`) key.
    /// Returns Ok(false) when the key is not a log setting.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        let topic_key = TOPIC_CONFIG_KEYS
            .iter()
            .find(|(t, b)| *t == key || *b == key)
            .map(|(t, _)| *t);
        let Some(topic_key) = topic_key else {
            return Ok(false);
        };
        match topic_key {
            "segment.bytes" => self.segment_bytes = parse_min(key, value, 14)?,
            "segment.ms" => self.segment_ms = parse_min(key, value, 1)?,
            "retention.ms" => self.retention_ms = parse_min(key, value, -1)?,
            "retention.bytes" => self.retention_bytes = parse_min(key, value, -1)?,
            "max.message.bytes" => self.max_message_bytes = parse_min(key, value, 0)?,
            "index.interval.bytes" => self.index_interval_bytes = parse_min(key, value, 0)?,
            "flush.messages" => self.flush_messages = parse_flush(key, value)?,
            "flush.ms" => self.flush_ms = parse_flush(key, value)?,
            "message.timestamp.type" => {
                self.log_append_time = match value {
                    "CreateTime" => false,
                    "LogAppendTime" => true,
                    _ => return Err(invalid(key, value, "CreateTime or LogAppendTime")),
                }
            }
            "cleanup.policy" => match value {
                "delete" | "compact" | "compact,delete" | "delete,compact" => {
                    self.cleanup_policy = value.to_string()
                }
                _ => return Err(invalid(key, value, "delete or compact")),
            },
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The current value of a topic-level key, as DescribeConfigs shows it.
    pub fn get(&self, topic_key: &str) -> Option<String> {
        let flush = |v: Option<u64>| v.map_or(i64::MAX.to_string(), |n| n.to_string());
        Some(match topic_key {
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "flush.messages" => flush(self.flush_messages),
            "flush.ms" => flush(self.flush_ms),
            "message.timestamp.type" => if self.log_append_time {
                "LogAppendTime"
            } else {
                "CreateTime"
            }
            .to_string(),
            "cleanup.policy" => self.cleanup_policy.clone(),
            _ => return None,
        })
    }
}

/// `i64::MAX` (Kafka's "never") means no forced flush.
fn parse_flush(key: &str, value: &str) -> Result<Option<u64>, ConfigError> {
    let n: i64 = parse_min(key, value, 1)?;
    Ok(if n == i64::MAX { None } else { Some(n as u64) })
}

fn invalid(key: &str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.into(),
        value: value.into(),
        expected,
    }
}

fn parse_min<T: TryFrom<i64>>(key: &str, value: &str, min: i64) -> Result<T, ConfigError> {
    let expected = if min < 0 {
        "an integer, -1 for none"
    } else {
        "a non-negative integer"
    };
    let v: i64 = value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, expected))?;
    if v < min {
        return Err(invalid(key, value, "a larger integer"));
    }
    T::try_from(v).map_err(|_| invalid(key, value, "a smaller integer"))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, "true or false"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// `node.id`
    pub node_id: i32,
    /// `listeners`
    pub listeners: Vec<Listener>,
    /// `advertised.listeners` (defaults to `listeners`)
    pub advertised_listeners: Vec<Listener>,
    /// `log.dirs` (the first entry is used; `log.dir` is accepted too)
    pub log_dir: String,
    /// `num.partitions`
    pub num_partitions: i32,
    /// `auto.create.topics.enable`
    pub auto_create_topics_enable: bool,
    /// `socket.request.max.bytes`
    pub socket_request_max_bytes: usize,
    /// `connections.max.idle.ms`
    pub connections_max_idle_ms: u64,
    /// `queued.max.requests`: requests in flight per connection before we stop reading it.
    pub queued_max_requests: usize,
    /// `queued.max.request.bytes`: request bytes in flight per connection before we stop reading it.
    pub queued_max_request_bytes: usize,
    /// `log.retention.check.interval.ms`
    pub log_retention_check_interval_ms: u64,
    /// `producer.id.expiration.ms`: an idempotent producer idle this long is forgotten (checked
    /// at each retention check and segment roll).
    pub producer_id_expiration_ms: i64,
    /// Defaults for every topic's log.
    pub log: LogConfig,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let listener = Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092,
        };
        BrokerConfig {
            node_id: 1,
            listeners: vec![listener.clone()],
            advertised_listeners: vec![listener],
            log_dir: "./data".into(),
            num_partitions: 1,
            auto_create_topics_enable: true,
            socket_request_max_bytes: 104_857_600,
            connections_max_idle_ms: 600_000,
            queued_max_requests: 500,
            queued_max_request_bytes: 104_857_600,
            log_retention_check_interval_ms: 300_000,
            producer_id_expiration_ms: 86_400_000,
            log: LogConfig::default(),
        }
    }
}

/// Keys accepted without effect, so that a stock Kafka `server.properties` loads quietly.
const ACCEPTED_KEYS: &[&str] = &[
    "process.roles",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "controller.listener.names",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "num.network.threads",
    "num.io.threads",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "num.recovery.threads.per.data.dir",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "default.replication.factor",
    "min.insync.replicas",
    "group.initial.rebalance.delay.ms",
];

impl BrokerConfig {
    /// Parses a Kafka properties file's text, then applies `overrides` in order.
    /// Returns the config and one warning per unknown key.
    pub fn parse(
        properties: &str,
        overrides: &[(String, String)],
    ) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        let mut pairs = parse_properties(properties)?;
        pairs.extend(overrides.iter().cloned());
        let mut config = BrokerConfig::default();
        let mut advertised_set = false;
        let mut warnings = Vec::new();
        for (key, value) in &pairs {
            let v = value.as_str();
            match key.as_str() {
                "node.id" | "broker.id" => config.node_id = parse_min(key, v, 0)?,
                "listeners" => config.listeners = parse_listeners(key, v)?,
                "advertised.listeners" => {
                    config.advertised_listeners = parse_listeners(key, v)?;
                    advertised_set = true;
                }
                "log.dirs" | "log.dir" => {
                    config.log_dir = v.split(',').next().unwrap_or_default().trim().to_string();
                    if config.log_dir.is_empty() {
                        return Err(invalid(key, v, "a directory"));
                    }
                }
                "num.partitions" => config.num_partitions = parse_min(key, v, 1)?,
                "auto.create.topics.enable" => {
                    config.auto_create_topics_enable = parse_bool(key, v)?
                }
                "socket.request.max.bytes" => {
                    config.socket_request_max_bytes = parse_min(key, v, 1)?
                }
                "connections.max.idle.ms" => config.connections_max_idle_ms = parse_min(key, v, 1)?,
                "queued.max.requests" => config.queued_max_requests = parse_min(key, v, 1)?,
                "queued.max.request.bytes" => {
                    config.queued_max_request_bytes = parse_min(key, v, 1024)?
                }
                "log.retention.check.interval.ms" => {
                    config.log_retention_check_interval_ms = parse_min(key, v, 1)?
                }
                "producer.id.expiration.ms" => {
                    config.producer_id_expiration_ms = parse_min(key, v, 1)?
                }
                "log.retention.hours" => {
                    config.log.retention_ms =
                        parse_min::<i64>(key, v, -1)?.saturating_mul(3_600_000)
                }
                "log.retention.minutes" => {
                    config.log.retention_ms = parse_min::<i64>(key, v, -1)?.saturating_mul(60_000)
                }
                other if ACCEPTED_KEYS.contains(&other) => {}
                other => {
                    if !config.log.apply(other, v)? {
                        warnings.push(format!("unknown config key '{other}' ignored"));
                    }
                }
            }
        }
        if !advertised_set {
            config.advertised_listeners = config.listeners.clone();
        }
        Ok((config, warnings))
    }
}

/// Kafka properties syntax: `key=value` or `key: value`, `#` and `!` comments.
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some(split) = line.find(['=', ':']) else {
            return Err(ConfigError::Syntax {
                line: i + 1,
                text: line.to_string(),
            });
        };
        let (key, value) = (line[..split].trim(), line[split + 1..].trim());
        out.push((key.to_string(), value.to_string()));
    }
    Ok(out)
}

fn parse_listeners(key: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    let expected = "NAME://host:port[,NAME://host:port]";
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, rest) = item
            .split_once("://")
            .ok_or_else(|| invalid(key, value, expected))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| invalid(key, value, expected))?;
        let port = port.parse().map_err(|_| invalid(key, value, expected))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        out.push(Listener {
            name: name.to_string(),
            host,
            port,
        });
    }
    if out.is_empty() {
        return Err(invalid(key, value, expected));
    }
    Ok(out)
}

/// Topic-level overrides from CreateTopics or AlterConfigs, validated into a LogConfig.
pub fn topic_log_config(
    base: &LogConfig,
    overrides: &BTreeMap<String, String>,
) -> Result<LogConfig, ConfigError> {
    let mut log = base.clone();
    for (key, value) in overrides {
        let is_topic_key = TOPIC_CONFIG_KEYS.iter().any(|(t, _)| t == key);
        if !is_topic_key || !log.apply(key, value)? {
            return Err(invalid(key, value, "a known topic config"));
        }
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_embedded_single_node() {
        let (c, w) = BrokerConfig::parse("", &[]).unwrap();
        assert!(w.is_empty());
        assert_eq!(c.node_id, 1);
        assert_eq!(
            c.listeners[0].socket_addr(),
            Some("127.0.0.1:9092".parse().unwrap())
        );
        assert_eq!(c.log_dir, "./data");
        assert_eq!(c.log.flush_messages, Some(1));
    }

    #[test]
    fn properties_file_and_overrides() {
        let text =
            "# comment\nnode.id=3\nlisteners=PLAINTEXT://0.0.0.0:19092\nlog.dirs=/tmp/a,/tmp/b\n\
                    log.retention.hours=1\nnum.partitions: 6\nprocess.roles=broker,controller\n";
        let overrides = vec![(
            "advertised.listeners".to_string(),
            "PLAINTEXT://host:1".to_string(),
        )];
        let (c, w) = BrokerConfig::parse(text, &overrides).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.node_id, 3);
        assert_eq!(c.log_dir, "/tmp/a");
        assert_eq!(c.log.retention_ms, 3_600_000);
        assert_eq!(c.num_partitions, 6);
        assert_eq!(c.advertised_listeners[0].host, "host");
        assert_eq!(c.producer_id_expiration_ms, 86_400_000);
        let set = vec![("producer.id.expiration.ms".to_string(), "60000".to_string())];
        let (c, _) = BrokerConfig::parse("", &set).unwrap();
        assert_eq!(c.producer_id_expiration_ms, 60_000);
        assert!(BrokerConfig::parse("producer.id.expiration.ms=0", &[]).is_err());
    }

    #[test]
    fn bad_values_name_the_key_and_unknown_keys_warn() {
        let err = BrokerConfig::parse("log.retention.ms=soon", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value for log.retention.ms: 'soon' (an integer, -1 for none)"
        );
        let (_, w) = BrokerConfig::parse("no.such.key=1", &[]).unwrap();
        assert_eq!(
            w,
            vec!["unknown config key 'no.such.key' ignored".to_string()]
        );
        assert!(BrokerConfig::parse("listeners=localhost", &[]).is_err());
    }

    #[test]
    fn topic_overrides_validate() {
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "1000".to_string());
        o.insert(
            "message.timestamp.type".to_string(),
            "LogAppendTime".to_string(),
        );
        let log = topic_log_config(&LogConfig::default(), &o).unwrap();
        assert_eq!(log.retention_ms, 1000);
        assert!(log.log_append_time);
        o.insert("log.retention.ms".to_string(), "1".to_string());
        assert!(topic_log_config(&LogConfig::default(), &o).is_err());
    }
}
