//! Configs: DescribeConfigs, AlterConfigs and IncrementalAlterConfigs, for topics and brokers.
//!
//! A log setting resolves in Kafka's order: a topic override, then this broker's dynamic config,
//! then the cluster-wide dynamic default (`--entity-default`), then `server.properties`, then the
//! built-in default. Dynamic broker configs are the broker-level log keys (`log.retention.ms`);
//! they live in the metadata log like topic overrides, so they survive restarts and apply to
//! every topic without an override of its own.

use super::metadata::{ConfigSource, MetadataRecord};
use super::{Broker, RequestContext};
use crate::config::{broker_key_of, topic_key_of, LogConfig, TOPIC_CONFIG_KEYS};
use crate::core::time::Now;
use crate::protocol::error::ErrorCode;
use crate::protocol::generated::alter_configs_request::AlterConfigsRequest;
use crate::protocol::generated::alter_configs_response::{
    AlterConfigsResourceResponse, AlterConfigsResponse,
};
use crate::protocol::generated::describe_configs_request::DescribeConfigsRequest;
use crate::protocol::generated::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
    DescribeConfigsSynonym,
};
use crate::protocol::generated::incremental_alter_configs_request::{
    AlterableConfig, IncrementalAlterConfigsRequest,
};
use crate::protocol::generated::incremental_alter_configs_response::{
    AlterConfigsResourceResponse as IncrementalResult, IncrementalAlterConfigsResponse,
};
use crate::protocol::generated::ResponseBody;
use std::collections::BTreeMap;

/// ConfigResource types (KIP-133).
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// IncrementalAlterConfigs operations (KIP-339).
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;
/// DescribeConfigs config types (KIP-569).
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_LIST: i8 = 7;

type Failure = (ErrorCode, String);

/// The type DescribeConfigs reports for a topic-level log key.
fn log_key_type(topic_key: &str) -> i8 {
    match topic_key {
        "segment.bytes" | "max.message.bytes" | "index.interval.bytes" => TYPE_INT,
        "message.timestamp.type" => TYPE_STRING,
        "cleanup.policy" => TYPE_LIST,
        _ => TYPE_LONG,
    }
}

/// What one resource of a DescribeConfigs request asks for.
struct Describe<'a> {
    keys: Option<&'a [String]>,
    synonyms: bool,
    api_version: i16,
}

impl Describe<'_> {
    fn wants(&self, key: &str) -> bool {
        self.keys.is_none_or(|k| k.iter().any(|w| w == key))
    }

    /// One entry: its value is the strongest source's; synonyms list every source.
    fn entry(
        &self,
        name: &str,
        sources: Vec<(ConfigSource, String, Option<String>)>,
        read_only: bool,
        config_type: i8,
    ) -> DescribeConfigsResourceResult {
        let (source, value) = sources
            .first()
            .map_or((ConfigSource::Default, None), |(s, _, v)| (*s, v.clone()));
        let synonyms = if self.synonyms {
            sources
                .into_iter()
                .map(|(source, name, value)| DescribeConfigsSynonym {
                    name,
                    value,
                    source: source as i8,
                    ..Default::default()
                })
                .collect()
        } else {
            Vec::new()
        };
        DescribeConfigsResourceResult {
            name: name.to_owned(),
            value,
            read_only,
            // v0 only; later versions say it with config_source.
            is_default: self.api_version == 0 && source == ConfigSource::Default,
            config_source: source as i8,
            is_sensitive: false,
            synonyms,
            config_type,
            ..Default::default()
        }
    }
}

impl Broker {
    pub(super) fn handle_describe_configs(
        &mut self,
        ctx: RequestContext,
        req: DescribeConfigsRequest,
    ) {
        let mut response = DescribeConfigsResponse::default();
        for resource in req.resources {
            let describe = Describe {
                keys: resource.configuration_keys.as_deref(),
                synonyms: req.include_synonyms,
                api_version: ctx.api_version,
            };
            let mut result = DescribeConfigsResult {
                resource_type: resource.resource_type,
                resource_name: resource.resource_name.clone(),
                ..Default::default()
            };
            let configs = match resource.resource_type {
                RESOURCE_TOPIC => self.describe_topic(&resource.resource_name, &describe),
                RESOURCE_BROKER => self.describe_broker(&resource.resource_name, &describe),
                _ => Err((
                    ErrorCode::InvalidRequest,
                    "only topic and broker configs can be described".into(),
                )),
            };
            match configs {
                Ok(configs) => result.configs = configs,
                Err((code, message)) => {
                    result.error_code = code.code();
                    result.error_message = Some(message);
                }
            }
            response.results.push(result);
        }
        self.respond(ctx.reply, ResponseBody::DescribeConfigs(response));
    }

    /// The sources of broker key `broker_key` on this node, as (source, synonym name, value).
    fn broker_sources(&self, broker_key: &str) -> Vec<(ConfigSource, String, Option<String>)> {
        self.image
            .broker_key_sources(&self.config.log, self.config.node_id, broker_key)
            .into_iter()
            .map(|(source, value)| (source, broker_key.to_owned(), value))
            .collect()
    }

    fn describe_topic(
        &self,
        name: &str,
        describe: &Describe,
    ) -> Result<Vec<DescribeConfigsResourceResult>, Failure> {
        let topic = self.image.topics.get(name).ok_or_else(|| {
            (
                ErrorCode::UnknownTopicOrPartition,
                format!("no topic '{name}'"),
            )
        })?;
        let mut out = Vec::new();
        for (topic_key, broker_key) in TOPIC_CONFIG_KEYS {
            if !describe.wants(topic_key) {
                continue;
            }
            let mut sources = Vec::new();
            if let Some(v) = topic.configs.get(*topic_key) {
                sources.push((ConfigSource::Topic, topic_key.to_string(), Some(v.clone())));
            }
            sources.extend(self.broker_sources(broker_key));
            out.push(describe.entry(topic_key, sources, false, log_key_type(topic_key)));
        }
        Ok(out)
    }

    fn describe_broker(
        &self,
        name: &str,
        describe: &Describe,
    ) -> Result<Vec<DescribeConfigsResourceResult>, Failure> {
        self.check_broker_resource(name)?;
        let mut out = Vec::new();
        for (topic_key, broker_key) in TOPIC_CONFIG_KEYS {
            if describe.wants(broker_key) {
                let sources = self.broker_sources(broker_key);
                out.push(describe.entry(broker_key, sources, false, log_key_type(topic_key)));
            }
        }
        for (key, value, config_type) in static_entries(&self.config) {
            if describe.wants(key) {
                let sources = vec![(ConfigSource::StaticBroker, key.to_owned(), Some(value))];
                out.push(describe.entry(key, sources, true, config_type));
            }
        }
        Ok(out)
    }

    /// A broker resource names this node or, when empty, the cluster-wide default.
    fn check_broker_resource(&self, name: &str) -> Result<(), Failure> {
        if name.is_empty() || name == self.config.node_id.to_string() {
            Ok(())
        } else {
            Err((
                ErrorCode::InvalidRequest,
                format!("broker {name} is not this broker ({})", self.config.node_id),
            ))
        }
    }

    pub(super) fn handle_alter_configs(
        &mut self,
        ctx: RequestContext,
        req: AlterConfigsRequest,
        now: Now,
    ) {
        let mut response = AlterConfigsResponse::default();
        let mut records = Vec::new();
        for resource in req.resources {
            // AlterConfigs replaces the whole set of overrides.
            let wanted: BTreeMap<String, String> = resource
                .configs
                .into_iter()
                .filter_map(|c| c.value.map(|v| (c.name, v)))
                .collect();
            let outcome =
                self.plan_config_change(resource.resource_type, &resource.resource_name, |_| {
                    Ok(wanted)
                });
            let (error_code, error_message) =
                take_outcome(outcome, req.validate_only, &mut records);
            response.responses.push(AlterConfigsResourceResponse {
                resource_type: resource.resource_type,
                resource_name: resource.resource_name,
                error_code,
                error_message,
                ..Default::default()
            });
        }
        self.finish_change(ctx, records, ResponseBody::AlterConfigs(response), now);
    }

    pub(super) fn handle_incremental_alter_configs(
        &mut self,
        ctx: RequestContext,
        req: IncrementalAlterConfigsRequest,
        now: Now,
    ) {
        let mut response = IncrementalAlterConfigsResponse::default();
        let mut records = Vec::new();
        for resource in req.resources {
            let outcome = self.plan_config_change(
                resource.resource_type,
                &resource.resource_name,
                |current| incremental_change(current, &resource.configs),
            );
            let (error_code, error_message) =
                take_outcome(outcome, req.validate_only, &mut records);
            response.responses.push(IncrementalResult {
                resource_type: resource.resource_type,
                resource_name: resource.resource_name,
                error_code,
                error_message,
                ..Default::default()
            });
        }
        self.finish_change(
            ctx,
            records,
            ResponseBody::IncrementalAlterConfigs(response),
            now,
        );
    }

    /// Validates a change of a resource's configs against the planned image: `change` maps the
    /// current set to the new one. Returns the records that make it so.
    fn plan_config_change(
        &self,
        resource_type: i8,
        name: &str,
        change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Failure>,
    ) -> Result<Vec<MetadataRecord>, Failure> {
        let empty = BTreeMap::new();
        let current = match resource_type {
            RESOURCE_TOPIC => {
                &self
                    .planned
                    .topics
                    .get(name)
                    .ok_or_else(|| {
                        (
                            ErrorCode::UnknownTopicOrPartition,
                            format!("no topic '{name}'"),
                        )
                    })?
                    .configs
            }
            RESOURCE_BROKER => {
                self.check_broker_resource(name)?;
                self.planned.broker_configs.get(name).unwrap_or(&empty)
            }
            _ => {
                return Err((
                    ErrorCode::InvalidRequest,
                    "only topic and broker configs can be altered".into(),
                ))
            }
        };
        let next = change(current)?;
        if resource_type == RESOURCE_TOPIC {
            validate_keys(&next, |key| broker_key_of(key).is_some(), "topic config")?;
            let base = self
                .planned
                .broker_log_config(&self.config.log, self.config.node_id);
            crate::config::topic_log_config(&base, &next)
                .map_err(|e| (ErrorCode::InvalidConfig, e.to_string()))?;
        } else {
            validate_keys(
                &next,
                |key| topic_key_of(key).is_some(),
                "dynamic broker config (the log.* defaults can change at run time)",
            )?;
            let mut log = LogConfig::default();
            for (key, value) in &next {
                log.apply(key, value)
                    .map_err(|e| (ErrorCode::InvalidConfig, e.to_string()))?;
            }
        }
        let record = |key: &str, value: Option<String>| match resource_type {
            RESOURCE_TOPIC => MetadataRecord::Config {
                name: name.into(),
                key: key.into(),
                value,
            },
            _ => MetadataRecord::BrokerConfig {
                broker: name.into(),
                key: key.into(),
                value,
            },
        };
        let mut records = Vec::new();
        for (key, value) in &next {
            if current.get(key) != Some(value) {
                records.push(record(key, Some(value.clone())));
            }
        }
        for key in current.keys().filter(|k| !next.contains_key(*k)) {
            records.push(record(key, None));
        }
        Ok(records)
    }
}

fn validate_keys(
    configs: &BTreeMap<String, String>,
    known: impl Fn(&str) -> bool,
    what: &str,
) -> Result<(), Failure> {
    match configs.keys().find(|key| !known(key)) {
        Some(key) => Err((
            ErrorCode::InvalidConfig,
            format!("'{key}' is not a known {what}"),
        )),
        None => Ok(()),
    }
}

/// Applies IncrementalAlterConfigs operations to a resource's current configs.
fn incremental_change(
    current: &BTreeMap<String, String>,
    ops: &[AlterableConfig],
) -> Result<BTreeMap<String, String>, Failure> {
    let mut next = current.clone();
    for c in ops {
        let value = c.value.clone().unwrap_or_default();
        match c.config_operation {
            OP_SET => {
                next.insert(c.name.clone(), value);
            }
            OP_DELETE => {
                next.remove(&c.name);
            }
            OP_APPEND | OP_SUBTRACT if c.name.ends_with("cleanup.policy") => {
                let mut items: Vec<String> = next
                    .get(&c.name)
                    .map(|v| v.split(',').map(str::to_string).collect())
                    .unwrap_or_else(|| vec!["delete".to_string()]);
                items.retain(|i| *i != value);
                if c.config_operation == OP_APPEND {
                    items.push(value);
                }
                next.insert(c.name.clone(), items.join(","));
            }
            OP_APPEND | OP_SUBTRACT => {
                return Err((
                    ErrorCode::InvalidConfig,
                    format!("{} is not a list config", c.name),
                ));
            }
            _ => return Err((ErrorCode::InvalidRequest, "unknown config operation".into())),
        }
    }
    Ok(next)
}

/// Takes a planned change into `records` (unless only validating) and returns the resource's
/// error code and message.
fn take_outcome(
    outcome: Result<Vec<MetadataRecord>, Failure>,
    validate_only: bool,
    records: &mut Vec<MetadataRecord>,
) -> (i16, Option<String>) {
    match outcome {
        Ok(planned) => {
            if !validate_only {
                records.extend(planned);
            }
            (0, None)
        }
        Err((code, message)) => (code.code(), Some(message)),
    }
}

/// Static broker settings DescribeConfigs shows (read-only: they change with a restart).
fn static_entries(c: &crate::config::BrokerConfig) -> Vec<(&'static str, String, i8)> {
    let listeners = |ls: &[crate::config::Listener]| {
        ls.iter()
            .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        ("node.id", c.node_id.to_string(), TYPE_INT),
        ("broker.id", c.node_id.to_string(), TYPE_INT),
        ("listeners", listeners(&c.listeners), TYPE_STRING),
        (
            "advertised.listeners",
            listeners(&c.advertised_listeners),
            TYPE_STRING,
        ),
        ("log.dirs", c.log_dir.clone(), TYPE_STRING),
        ("num.partitions", c.num_partitions.to_string(), TYPE_INT),
        (
            "auto.create.topics.enable",
            c.auto_create_topics_enable.to_string(),
            TYPE_BOOLEAN,
        ),
        ("default.replication.factor", "1".to_owned(), TYPE_INT),
        (
            "socket.request.max.bytes",
            c.socket_request_max_bytes.to_string(),
            TYPE_INT,
        ),
        (
            "connections.max.idle.ms",
            c.connections_max_idle_ms.to_string(),
            TYPE_LONG,
        ),
        (
            "queued.max.requests",
            c.queued_max_requests.to_string(),
            TYPE_INT,
        ),
        (
            "queued.max.request.bytes",
            c.queued_max_request_bytes.to_string(),
            TYPE_LONG,
        ),
        (
            "producer.id.expiration.ms",
            c.producer_id_expiration_ms.to_string(),
            TYPE_INT,
        ),
        (
            "log.retention.check.interval.ms",
            c.log_retention_check_interval_ms.to_string(),
            TYPE_LONG,
        ),
    ]
}
