//! `gregor bench produce|consume`: load generators over the Kafka protocol, built on
//! [`crate::client::Connection`]. They talk to the bootstrap broker only (one node leads every
//! partition), print a progress line every second on stderr and, at the end, records/s, MB/s
//! and request latency percentiles on stdout.
// The bench is a driver: it reads the clocks to time requests and stamp records.
#![allow(clippy::disallowed_methods)]

mod consume;
mod produce;
pub mod stats;

use crate::client::{ClientError, Connection};
use crate::protocol::error::ErrorCode;
use crate::protocol::generated::create_topics_request::CreatableTopic;
use crate::protocol::generated::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use crate::protocol::generated::metadata_request::MetadataRequestTopic;
use crate::protocol::generated::{
    CreateTopicsRequest, ListOffsetsRequest, MetadataRequest, ResponseBody,
};
use crate::protocol::primitives::Uuid;
use crate::protocol::records::compression::Compression;
use stats::{Progress, Report, MB};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Subcommand, Debug, Clone)]
pub enum BenchCommand {
    /// Send records as fast as the broker takes them.
    Produce(ProduceArgs),
    /// Read a topic from its start until every partition's end (as of the start).
    Consume(ConsumeArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Broker to connect to (HOST:PORT).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    #[arg(long, default_value = "gregor-bench")]
    pub topic: String,
    /// Partitions of the topic, created if missing (an existing topic keeps its own count).
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// TCP connections, each driven by its own tasks.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Stop after this many seconds even if records remain.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Records to send (with --duration: at most this many).
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Value bytes per record (no key).
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Target size of each batch before compression; one batch per Produce request.
    #[arg(long, default_value_t = 256 * 1024)]
    pub batch_bytes: usize,
    /// -1 (or all), 1, or 0.
    #[arg(long, default_value = "-1", allow_hyphen_values = true, value_parser = parse_acks)]
    pub acks: i16,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    pub compression: Compression,
    /// Produce requests in flight per connection (the pipelining window).
    #[arg(long, default_value_t = 5)]
    pub in_flight: usize,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Stop after this many records (default: every record up to the end offsets at start).
    #[arg(long)]
    pub records: Option<u64>,
    /// `max.partition.fetch.bytes` of each Fetch.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub partition_fetch_bytes: i32,
    /// `fetch.max.bytes` of each Fetch.
    #[arg(long, default_value_t = 50 * 1024 * 1024)]
    pub fetch_max_bytes: i32,
}

fn parse_acks(s: &str) -> Result<i16, String> {
    match s {
        "all" | "-1" => Ok(-1),
        "1" => Ok(1),
        "0" => Ok(0),
        _ => Err(format!("acks must be -1, all, 1 or 0, not '{s}'")),
    }
}

fn parse_compression(s: &str) -> Result<Compression, String> {
    Compression::from_name(s)
        .ok_or_else(|| format!("compression must be none, gzip, snappy, lz4 or zstd, not '{s}'"))
}

/// Runs a bench on its own runtime and returns its figures.
pub fn run(command: BenchCommand) -> Result<Report, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    runtime.block_on(async move {
        match command {
            BenchCommand::Produce(args) => produce::run(args).await,
            BenchCommand::Consume(args) => consume::run(args).await,
        }
    })
}

/// A bench failure as one line.
fn fail(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

async fn connect<T: Default + Send + 'static>(bootstrap: &str) -> Result<Connection<T>, String> {
    Connection::connect(bootstrap, Some("gregor-bench"))
        .await
        .map_err(|e| fail(&format!("cannot connect to {bootstrap}"), e))
}

/// What the bench needs to know about its topic.
#[derive(Debug, Clone)]
struct TopicInfo {
    name: String,
    id: Uuid,
    partitions: Vec<i32>,
}

/// The topic as Metadata describes it: `None` if it does not exist, `Err` while a partition
/// has no leader yet.
async fn describe_topic<T: Default + Send + 'static>(
    conn: &mut Connection<T>,
    topic: &str,
) -> Result<Option<TopicInfo>, String> {
    let request = MetadataRequest {
        topics: Some(vec![MetadataRequestTopic {
            name: Some(topic.to_owned()),
            ..Default::default()
        }]),
        allow_auto_topic_creation: false,
        ..Default::default()
    };
    let body = conn
        .call(request.into())
        .await
        .map_err(|e| fail("Metadata", e))?;
    let ResponseBody::Metadata(response) = body else {
        return Err(fail(
            "Metadata",
            ClientError::UnexpectedResponse("Metadata"),
        ));
    };
    let Some(t) = response
        .topics
        .iter()
        .find(|t| t.name.as_deref() == Some(topic))
    else {
        return Ok(None);
    };
    match ErrorCode::from_code_or_unknown(t.error_code) {
        ErrorCode::None => {}
        ErrorCode::UnknownTopicOrPartition => return Ok(None),
        e => return Err(fail("Metadata", e)),
    }
    let mut partitions = Vec::with_capacity(t.partitions.len());
    for p in &t.partitions {
        let e = ErrorCode::from_code_or_unknown(p.error_code);
        if !e.is_ok() || p.leader_id < 0 {
            return Err(format!(
                "partition {} has no leader yet ({e})",
                p.partition_index
            ));
        }
        partitions.push(p.partition_index);
    }
    partitions.sort_unstable();
    Ok(Some(TopicInfo {
        name: topic.to_owned(),
        id: t.topic_id,
        partitions,
    }))
}

/// Waits (up to 10 s) for the topic to have a leader for every partition, and for every leader
/// to answer ListOffsets (a new topic's leaders may be named before they take the role); creates
/// the topic first with `partitions` partitions if `create` and it does not exist.
async fn topic_info<T: Default + Send + 'static>(
    conn: &mut Connection<T>,
    topic: &str,
    partitions: i32,
    create: bool,
) -> Result<TopicInfo, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut created = false;
    loop {
        let last_error = match describe_topic(conn, topic).await {
            Ok(Some(info)) if !info.partitions.is_empty() => {
                match list_offsets(conn, &info, LATEST).await {
                    Ok(_) => return Ok(info),
                    Err(e @ OffsetsError::Partition { error, .. }) if error.is_retriable() => {
                        e.to_string()
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(Some(_)) => "no partitions".to_owned(),
            Ok(None) if create && !created => {
                create_topic(conn, topic, partitions).await?;
                created = true;
                continue;
            }
            Ok(None) => format!("topic {topic} does not exist"),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(last_error);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_topic<T: Default + Send + 'static>(
    conn: &mut Connection<T>,
    topic: &str,
    partitions: i32,
) -> Result<(), String> {
    let request = CreateTopicsRequest {
        topics: vec![CreatableTopic {
            name: topic.to_owned(),
            num_partitions: partitions,
            replication_factor: -1,
            ..Default::default()
        }],
        timeout_ms: 30_000,
        ..Default::default()
    };
    let body = conn
        .call(request.into())
        .await
        .map_err(|e| fail("CreateTopics", e))?;
    let ResponseBody::CreateTopics(response) = body else {
        return Err(fail(
            "CreateTopics",
            ClientError::UnexpectedResponse("CreateTopics"),
        ));
    };
    for t in response.topics {
        match ErrorCode::from_code_or_unknown(t.error_code) {
            ErrorCode::None | ErrorCode::TopicAlreadyExists => {}
            e => {
                let detail = t.error_message.unwrap_or_default();
                return Err(format!("cannot create topic {topic}: {e} {detail}"));
            }
        }
    }
    Ok(())
}

/// ListOffsets timestamps for the log start and the end.
const EARLIEST: i64 = -2;
const LATEST: i64 = -1;

#[derive(Debug)]
enum OffsetsError {
    Client(String),
    Partition {
        topic: String,
        partition: i32,
        error: ErrorCode,
    },
}

impl std::fmt::Display for OffsetsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OffsetsError::Client(e) => f.write_str(e),
            OffsetsError::Partition {
                topic,
                partition,
                error,
            } => write!(f, "ListOffsets {topic}-{partition}: {error}"),
        }
    }
}

/// Each partition's offset at `timestamp` (EARLIEST or LATEST).
async fn list_offsets<T: Default + Send + 'static>(
    conn: &mut Connection<T>,
    topic: &TopicInfo,
    timestamp: i64,
) -> Result<BTreeMap<i32, i64>, OffsetsError> {
    let request = ListOffsetsRequest {
        replica_id: -1,
        isolation_level: 0,
        topics: vec![ListOffsetsTopic {
            name: topic.name.clone(),
            partitions: topic
                .partitions
                .iter()
                .map(|&p| ListOffsetsPartition {
                    partition_index: p,
                    timestamp,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        timeout_ms: 30_000,
        ..Default::default()
    };
    let client = |e: ClientError| OffsetsError::Client(fail("ListOffsets", e));
    let body = conn.call(request.into()).await.map_err(client)?;
    let ResponseBody::ListOffsets(response) = body else {
        return Err(client(ClientError::UnexpectedResponse("ListOffsets")));
    };
    let mut offsets = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            let error = ErrorCode::from_code_or_unknown(p.error_code);
            if !error.is_ok() {
                return Err(OffsetsError::Partition {
                    topic: topic.name.clone(),
                    partition: p.partition_index,
                    error,
                });
            }
            offsets.insert(p.partition_index, p.offset);
        }
    }
    Ok(offsets)
}

/// Prints a progress line every second until dropped (the task is aborted).
struct ProgressLine {
    task: tokio::task::JoinHandle<()>,
    terminal: bool,
}

impl ProgressLine {
    fn start(verb: &'static str, progress: Arc<Progress>, quiet: bool) -> Option<ProgressLine> {
        if quiet {
            return None;
        }
        let terminal = std::io::stderr().is_terminal();
        let start = Instant::now();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last = (0u64, 0u64);
            loop {
                tick.tick().await;
                let now = progress.get();
                let line = format!(
                    "{verb} {} records, {:.1} MB in {:.0} s; last second: {} records/s, {:.1} MB/s",
                    now.0,
                    now.1 as f64 / MB,
                    start.elapsed().as_secs_f64(),
                    now.0.saturating_sub(last.0),
                    now.1.saturating_sub(last.1) as f64 / MB,
                );
                last = now;
                let mut err = std::io::stderr().lock();
                // On a terminal the line rewrites itself; in a log, one line per second.
                let _ = if terminal {
                    write!(err, "\r{line}\x1b[K")
                } else {
                    writeln!(err, "{line}")
                };
                let _ = err.flush();
            }
        });
        Some(ProgressLine { task, terminal })
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.task.abort();
        if self.terminal {
            eprintln!();
        }
    }
}
