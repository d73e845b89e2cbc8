//! Start-up and the listener: recover state from storage, build the broker machine, accept
//! connections, run the node loop until shutdown. `gregor serve` and every simulated node run
//! this same code; only the `Storage` differs.

use super::clock::{Clock, ClockSkew};
use super::connection::{self, Limits};
use super::log_io::{LogFiles, Opened};
use super::node::{Inbound, Node};
use super::producer_recovery;
use crate::config::{BrokerConfig, LogConfig};
use crate::core::broker::metadata::{self, MetadataImage};
use crate::core::broker::{Broker, PartitionState, TopicPartition, METADATA_DIR};
use crate::core::buggify::Buggify;
use crate::storage::Storage;
use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: io::Error },
    #[error("storage: {0}")]
    Storage(#[from] io::Error),
    #[error("corrupt metadata log: {0}")]
    Metadata(String),
    #[error("fatal: {0}")]
    Fatal(String),
}

/// What `serve` can be given beyond the config; `Default` is what `gregor serve` runs with.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Offset of the broker's wall clock, which the holder of a clone may step at run time (the
    /// simulator's clock jumps).
    pub wall_clock: ClockSkew,
}

/// Runs a broker until `shutdown` resolves. `seed` feeds the broker's deterministic id source.
/// `on_ready` is called with the bound addresses once the broker accepts connections.
pub async fn serve(
    config: BrokerConfig,
    storage: Arc<dyn Storage>,
    seed: u64,
    on_ready: impl FnOnce(Vec<SocketAddr>),
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let options = ServeOptions::default();
    serve_with(config, storage, seed, options, on_ready, shutdown).await
}

/// [`serve`] with [`ServeOptions`].
pub async fn serve_with(
    mut config: BrokerConfig,
    storage: Arc<dyn Storage>,
    seed: u64,
    options: ServeOptions,
    on_ready: impl FnOnce(Vec<SocketAddr>),
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let clock = Clock::with_skew(options.wall_clock);
    let (inbound_tx, inbound_rx) = mpsc::unbounded_channel();
    let limits = Limits {
        max_frame: config.socket_request_max_bytes,
        max_in_flight: config.queued_max_requests,
        max_in_flight_bytes: config.queued_max_request_bytes,
        idle_timeout: Duration::from_millis(config.connections_max_idle_ms),
    };
    let mut bound = Vec::new();
    let mut listeners = Vec::new();
    for l in &config.listeners {
        let addr = l
            .socket_addr()
            .map_or_else(|| format!("{}:{}", l.host, l.port), |a| a.to_string());
        let listener = tokio::net::TcpListener::bind(addr.as_str())
            .await
            .map_err(|source| ServeError::Bind {
                addr: addr.clone(),
                source,
            })?;
        bound.push(listener.local_addr()?);
        listeners.push(listener);
    }
    // A listener on port 0 got an ephemeral port: advertise the port actually bound.
    for (l, addr) in config.listeners.iter_mut().zip(&bound) {
        if l.port == 0 {
            for a in config
                .advertised_listeners
                .iter_mut()
                .filter(|a| a.name == l.name && a.port == 0)
            {
                a.port = addr.port();
            }
            l.port = addr.port();
        }
    }
    let broker = recover(&config, storage.clone(), seed, &clock).await?;
    tracing::info!(node_id = config.node_id, listeners = ?bound, dir = %config.log_dir, "gregor is ready");
    on_ready(bound);
    let mut accept_tasks = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        accept_tasks.push(tokio::spawn(accept_loop(
            listener,
            i as u64,
            inbound_tx.clone(),
            limits,
            Buggify::new(seed).fork("connections"),
        )));
    }
    drop(inbound_tx);
    let result = Node::new(broker, storage, clock)
        .run(inbound_rx, shutdown)
        .await;
    for task in accept_tasks {
        task.abort();
    }
    match result {
        Ok(()) => {
            tracing::info!("gregor stopped");
            Ok(())
        }
        Err(why) => {
            tracing::error!(%why, "gregor stopped on a fatal error");
            Err(ServeError::Fatal(why))
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    listener_index: u64,
    to_node: mpsc::UnboundedSender<Inbound>,
    limits: Limits,
    buggify: Buggify,
) {
    // Connection ids are unique across listeners: the listener index sits in the top bits.
    let mut next = listener_index << 48;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                next += 1;
                let _ = stream.set_nodelay(true);
                tracing::debug!(%peer, conn = next, "connection accepted");
                let buggify = buggify.fork_id(next);
                tokio::spawn(connection::serve(
                    stream,
                    next,
                    to_node.clone(),
                    limits,
                    buggify,
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// The metadata log's own settings: always synced before anything is acknowledged.
fn metadata_log_config() -> LogConfig {
    LogConfig {
        max_message_bytes: metadata::MAX_BATCH_BYTES as u32,
        segment_bytes: 64 << 20,
        retention_ms: -1,
        retention_bytes: -1,
        flush_messages: Some(1),
        ..LogConfig::default()
    }
}

/// Rebuilds the broker from storage: cluster id, the metadata image (replayed from the metadata
/// log), and every partition log (recovered, with its idempotent producer state).
async fn recover(
    config: &BrokerConfig,
    storage: Arc<dyn Storage>,
    seed: u64,
    clock: &Clock,
) -> Result<Broker, ServeError> {
    let now = clock.now();
    let cluster_id = super::meta::load_or_create(&*storage, config.node_id, seed).await?;
    let buggify = Buggify::new(seed).fork("recovery");
    let mut meta_files = LogFiles::new(storage.clone(), METADATA_DIR.to_string())
        .with_buggify(buggify.fork(METADATA_DIR));
    let Opened {
        log: metadata_log, ..
    } = meta_files
        .open_log(metadata_log_config(), now.wall_ms)
        .await?;
    let mut image = MetadataImage::default();
    for seg in metadata_log.segments() {
        for record in read_metadata_segment(&mut meta_files, seg).await? {
            image.apply(&record).map_err(ServeError::Metadata)?;
        }
    }
    meta_files.close_all().await;

    let mut partitions = BTreeMap::new();
    for (name, topic) in &image.topics {
        let log_config = image.topic_log_config(&config.log, config.node_id, name);
        for partition in 0..topic.partitions {
            let tp = TopicPartition::new(name, partition);
            let mut files =
                LogFiles::new(storage.clone(), tp.dir()).with_buggify(buggify.fork(&tp.dir()));
            // A directory left by an earlier topic of this name is removed, not recovered.
            files.claim(topic.id).await?;
            let opened = files.open_log(log_config.clone(), now.wall_ms).await?;
            let expiration = config.producer_id_expiration_ms;
            let recovered = producer_recovery::load(&mut files, &opened, now.wall_ms, expiration);
            let recovered = recovered.await;
            files.close_all().await;
            if opened.truncated_bytes > 0 {
                tracing::warn!(partition = %tp.dir(), bytes = opened.truncated_bytes, "cut a torn or corrupt log tail");
            }
            let producers = recovered?.producers;
            let mut log = opened.log;
            if let Some(&start) = topic.log_starts.get(&partition) {
                // DeleteRecords: the start offset lives in the metadata log.
                let _ = log.advance_log_start(start.min(log.log_end_offset()));
            }
            partitions.insert(tp, PartitionState::new(log, producers));
        }
    }
    remove_orphans(&*storage, &partitions).await;
    tracing::info!(
        topics = image.topics.len(),
        partitions = partitions.len(),
        "recovered"
    );
    Ok(Broker::new(
        config.clone(),
        cluster_id,
        image,
        metadata_log,
        partitions,
        seed,
    ))
}

/// Reads of a metadata log segment that does not decode before start-up gives up.
const METADATA_READS: usize = 4;

/// The records of one metadata log segment. Recovery already cut a corrupt tail, so a segment
/// that fails to decode (bad CRC) was damaged on the way from the disk: read it again. Replaying a
/// damaged record could name a topic that does not exist, and the real topic's logs would then be
/// removed as orphans.
async fn read_metadata_segment(
    files: &mut LogFiles,
    seg: &crate::core::log::Segment,
) -> Result<Vec<metadata::MetadataRecord>, ServeError> {
    let mut error = String::new();
    for _ in 0..METADATA_READS {
        let data = files.read_segment(seg.base_offset, seg.size).await?;
        match metadata::decode_batches(&data) {
            Ok(records) => return Ok(records),
            Err(e) => error = e,
        }
    }
    Err(ServeError::Metadata(error))
}

/// Removes partition directories of topics that no longer exist (a delete interrupted by a crash).
async fn remove_orphans(
    storage: &dyn Storage,
    partitions: &BTreeMap<TopicPartition, PartitionState>,
) {
    let Ok(entries) = storage.list("").await else {
        return;
    };
    let live: std::collections::BTreeSet<String> =
        partitions.keys().map(TopicPartition::dir).collect();
    for entry in entries {
        let looks_like_partition = entry.rsplit_once('-').is_some_and(|(topic, n)| {
            !topic.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        });
        if looks_like_partition && entry != METADATA_DIR && !live.contains(&entry) {
            tracing::info!(dir = %entry, "removing the log of a deleted topic");
            let _ = storage.remove_dir_all(&entry).await;
        }
    }
    let _ = storage.sync_dir("").await;
}
