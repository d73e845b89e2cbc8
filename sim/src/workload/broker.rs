//! The `broker` workload: the real gregor broker (`gregor::runtime::serve`, the code `gregor
//! serve` runs) on a simulated node with a [`SimStorage`], under crashes, disk faults and network
//! faults, driven over the Kafka protocol by clients on their own nodes.
//!
//! - The *broker* node runs `serve`; its disk survives kill and restart through the `SimDisk`
//!   plugin. If `serve` ends (recovery failed on a disk fault), it asks the supervisor for a
//!   restart, as a process manager would give.
//! - *Clients* ([`clients`]): one creates the topic, then consumes every partition; producers
//!   with acks -1 (two), 1 and 0; an idempotent producer that resends an unanswered batch
//!   unchanged. A client that sees KAFKA_STORAGE_ERROR (a log went offline after a disk
//!   fault) asks for a restart, as an operator would.
//! - An *admin* client ([`admin`]) creates, grows and deletes topics of its own while faults run.
//! - The *supervisor* (this module) kills and restarts the broker at times drawn from the seed;
//!   [`schedule`] clogs the network (both ways, one way, the broker in or out only), pauses the
//!   broker, slows the network down and steps the broker's wall clock. Then faults turn off
//!   (liveness phase) and the supervisor waits for every client to show progress. At the end it crashes and restarts the broker once more, checks that a
//!   produce and fetch round trip works, and reads every partition from offset 0 to the high
//!   watermark for the checkers ([`crate::checker::broker`]).

mod admin;
mod clients;
mod consumer;
mod final_read;
mod pipelined;
mod producers;
mod schedule;

use crate::checker::broker::{self as check, BrokerEvent, FinalLog};
use crate::disk::{SimDisk, SimStorage};
use crate::faults::{self, Kill};
use crate::runner::Verdict;
use crate::spec::Spec;
use crate::trace::{capture_logs, sim_now, Trace};
use clients::{AdminStats, ClientStats, Ctx, Phase, Shared};
use gregor::config::{BrokerConfig, Listener, LogConfig};
use gregor::runtime::clock::ClockSkew;
use gregor::runtime::ServeOptions;
use gregor::storage::Storage;
use madsim::rand::{thread_rng, Rng};
use madsim::runtime::Handle;
use madsim::task::NodeId;
use madsim::time::sleep;
use schedule::{FaultCounts, Schedule};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// The topic every client uses, and its partitions.
pub const TOPIC: &str = "events";
pub const PARTITIONS: i32 = 3;

const BROKER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const BROKER_PORT: u16 = 9092;
/// Faults happen during this first part of the run.
const SAFETY_WINDOW: Duration = Duration::from_millis(2000);
/// After the safety window, every client must finish within this time.
const LIVENESS_BUDGET: Duration = Duration::from_secs(20);
/// The final round trip (after the last restart) must succeed within this time.
const PROBE_BUDGET: Duration = Duration::from_secs(10);
/// Most scheduled kills per run (at least one when crashes are on).
const KILLS_MAX: u32 = 4;
/// Factors applied to the disk's fault rates, one drawn per seed.
const DISK_FAULT_SCALES: [f64; 3] = [0.1, 0.3, 1.0];
/// Restart requests this soon after a restart are taken to be about the old incarnation.
const RESTART_DEBOUNCE: Duration = Duration::from_millis(200);
/// How often the supervisor looks at its schedule.
const TICK: Duration = Duration::from_millis(5);

/// Clients: (name, role).
const CLIENTS: &[(&str, Role)] = &[
    ("consumer", Role::Consumer),
    ("acks-all-1", Role::Producer(-1)),
    ("acks-all-2", Role::Producer(-1)),
    ("acks-one", Role::Producer(1)),
    ("acks-zero", Role::Producer(0)),
    ("idempotent", Role::Idempotent),
    ("pipelined", Role::Pipelined),
    ("admin", Role::Admin),
];

#[derive(Debug, Clone, Copy)]
enum Role {
    /// Creates the topic, then consumes.
    Consumer,
    Producer(i16),
    Idempotent,
    /// Idempotent, five batches in flight on one connection.
    Pipelined,
    /// Creates, grows and deletes topics of its own.
    Admin,
}

/// The broker's settings: small segments so logs roll often, a sparse index entry every few
/// batches, no retention (the checkers want every record back).
fn broker_config() -> BrokerConfig {
    let listener = Listener {
        name: "PLAINTEXT".to_owned(),
        host: BROKER_IP.to_string(),
        port: BROKER_PORT,
    };
    BrokerConfig {
        node_id: 1,
        listeners: vec![listener.clone()],
        advertised_listeners: vec![listener],
        log_dir: "data".to_owned(),
        auto_create_topics_enable: false,
        log: LogConfig {
            segment_bytes: 2048,
            index_interval_bytes: 256,
            retention_ms: -1,
            ..LogConfig::default()
        },
        ..BrokerConfig::default()
    }
}

#[derive(Clone)]
struct BrokerNode {
    config: BrokerConfig,
    seed: u64,
    trace: Trace,
    restarts: mpsc::UnboundedSender<RestartRequest>,
    incarnation: Arc<AtomicU64>,
    /// The broker's wall clock offset; it lives across restarts, as a machine's clock does.
    wall_clock: ClockSkew,
}

/// Why the broker should be restarted.
#[derive(Debug)]
pub enum RestartRequest {
    /// The broker process ended (`serve` returned): restart it.
    Exited(String),
    /// A client saw a log offline (KAFKA_STORAGE_ERROR): restart unless that is about an
    /// incarnation that is already gone.
    StorageError(String),
}

/// One incarnation of the broker process.
async fn broker_main(node: BrokerNode) {
    let incarnation = node.incarnation.fetch_add(1, Ordering::Relaxed) + 1;
    node.trace
        .event("broker", format_args!("incarnation {incarnation} starting"));
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::current());
    let trace = node.trace.clone();
    let on_ready = move |addrs: Vec<SocketAddr>| {
        trace.event(
            "broker",
            format_args!("incarnation {incarnation} ready on {addrs:?}"),
        );
    };
    let options = ServeOptions {
        wall_clock: node.wall_clock.clone(),
    };
    let result = gregor::runtime::serve_with(
        node.config,
        storage,
        node.seed,
        options,
        on_ready,
        std::future::pending(),
    )
    .await;
    let reason = match result {
        Ok(()) => "serve returned".to_owned(),
        Err(err) => format!("serve failed: {err}"),
    };
    node.trace.event("broker", format_args!("{reason}"));
    let _ = node.restarts.send(RestartRequest::Exited(reason));
    std::future::pending::<()>().await;
}

/// The supervisor's bookkeeping of kills and restarts.
struct Supervisor {
    handle: Handle,
    broker: NodeId,
    trace: Trace,
    /// When the broker, now down, comes back.
    restart_at: Option<Duration>,
    last_restart: Duration,
    kills: u32,
    requested: u32,
    /// When the broker was killed (ms since the start): unknown admin calls settle there.
    killed_at_ms: Vec<u64>,
}

impl Supervisor {
    /// Kills the broker now; it comes back after `down_for` (always kill before restart: restart
    /// alone neither crashes the disk nor frees the port).
    fn kill(&mut self, down_for: Duration, why: &str) {
        self.trace.event(
            "supervisor",
            format_args!("kill broker ({why}), down for {} ms", down_for.as_millis()),
        );
        self.handle.kill(self.broker);
        self.killed_at_ms.push(ms(sim_now()));
        self.restart_at = Some(sim_now() + down_for);
    }

    fn restart_if_due(&mut self, now: Duration) {
        if self.restart_at.is_some_and(|at| at <= now) {
            self.trace.event("supervisor", "restart broker");
            self.handle.restart(self.broker);
            self.restart_at = None;
            self.last_restart = now;
        }
    }
}

fn ms(at: Duration) -> u64 {
    u64::try_from(at.as_millis()).unwrap_or(u64::MAX)
}

pub async fn run(spec: Spec, trace: Trace) -> Verdict {
    let _logs = capture_logs(&trace, "broker");
    let handle = Handle::current();
    let disk = madsim::plugin::simulator::<SimDisk>();
    let mut rng = thread_rng();
    let mut disk_options = faults::disk_options(spec.faults);
    if spec.faults.disk {
        // Swarm testing: each seed draws how often the disk fails, so some runs see a fault every
        // few requests and others long stretches of normal work between faults.
        let scale = DISK_FAULT_SCALES[rng.gen_range(0..DISK_FAULT_SCALES.len())];
        trace.event("supervisor", format_args!("disk fault rates x{scale}"));
        disk_options.fsync_error_probability *= scale;
        disk_options.enospc_probability *= scale;
        disk_options.read_bitflip_probability *= scale;
    }
    disk.set_options(disk_options);
    let (restarts_tx, mut restarts_rx) = mpsc::unbounded_channel();

    let broker_node = BrokerNode {
        config: broker_config(),
        seed: spec.seed,
        trace: trace.clone(),
        restarts: restarts_tx.clone(),
        incarnation: Arc::new(AtomicU64::new(0)),
        wall_clock: ClockSkew::default(),
    };
    let wall_clock = broker_node.wall_clock.clone();
    let broker = handle
        .create_node()
        .name("broker")
        .ip(IpAddr::V4(BROKER_IP))
        .init(move || broker_main(broker_node.clone()))
        .build()
        .id();
    let broker_addr = SocketAddr::new(IpAddr::V4(BROKER_IP), BROKER_PORT);

    let producers = CLIENTS
        .iter()
        .filter(|(_, role)| matches!(role, Role::Producer(_) | Role::Idempotent))
        .count();
    let shared = Arc::new(Mutex::new(Shared::new(producers)));
    let ctx = Ctx {
        broker: broker_addr,
        trace: trace.clone(),
        shared: shared.clone(),
        restarts: restarts_tx,
    };
    let mut client_nodes: Vec<NodeId> = Vec::new();
    for (i, &(name, role)) in CLIENTS.iter().enumerate() {
        let ip = Ipv4Addr::new(10, 0, 0, 10 + u8::try_from(i).unwrap_or(0));
        let node = handle.create_node().name(name).ip(IpAddr::V4(ip)).build();
        client_nodes.push(node.id());
        let (ctx, who) = (ctx.clone(), name.to_owned());
        match role {
            Role::Consumer => node.spawn(async move {
                clients::create_topic(&ctx, &who).await;
                consumer::consumer(ctx, who).await;
            }),
            Role::Producer(acks) => node.spawn(producers::producer(ctx, who, acks)),
            Role::Idempotent => node.spawn(producers::idempotent_producer(ctx, who)),
            Role::Pipelined => node.spawn(pipelined::pipelined_producer(ctx, who)),
            Role::Admin => node.spawn(admin::admin(ctx, who)),
        };
    }

    // The fault schedule.
    let mut kills: VecDeque<Kill> = if spec.faults.crash {
        faults::draw_kills(&mut rng, SAFETY_WINDOW, KILLS_MAX).into()
    } else {
        VecDeque::new()
    };
    let mut schedule = Schedule::draw(
        &mut rng,
        SAFETY_WINDOW,
        spec.faults.net,
        spec.faults.pause,
        spec.faults.clock,
        schedule::clog_targets(broker, &client_nodes),
        broker,
        wall_clock,
        trace.clone(),
    );

    let mut supervisor = Supervisor {
        handle: handle.clone(),
        broker,
        trace: trace.clone(),
        restart_at: None,
        last_restart: Duration::ZERO,
        kills: 0,
        requested: 0,
        killed_at_ms: Vec::new(),
    };
    let mut violations = Vec::new();
    let mut phase = Phase::Safety;
    loop {
        let now = sim_now();
        if phase == Phase::Safety && now >= SAFETY_WINDOW {
            phase = Phase::Liveness;
            disk.liveness_mode();
            schedule.stop();
            kills.clear();
            shared
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .phase = Phase::Liveness;
            trace.event("supervisor", "liveness mode: faults off");
        }
        if phase == Phase::Safety {
            schedule.step(now, supervisor.restart_at.is_some());
        }
        supervisor.restart_if_due(now);
        if supervisor.restart_at.is_none() && kills.front().is_some_and(|kill| kill.at <= now) {
            if let Some(kill) = kills.pop_front() {
                supervisor.kills += 1;
                schedule.broker_killed();
                supervisor.kill(kill.down_for, "scheduled");
            }
        }
        while let Ok(request) = restarts_rx.try_recv() {
            let settled = now.saturating_sub(supervisor.last_restart) >= RESTART_DEBOUNCE;
            let (reason, wanted) = match request {
                RestartRequest::Exited(reason) => (reason, true),
                RestartRequest::StorageError(reason) => (reason, settled),
            };
            if supervisor.restart_at.is_none() && wanted {
                supervisor.requested += 1;
                schedule.broker_killed();
                let down_for = Duration::from_millis(rng.gen_range(1..=50));
                supervisor.kill(down_for, &format!("requested: {reason}"));
            }
        }
        let finished = shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .finished
            .len();
        if phase == Phase::Liveness && finished == CLIENTS.len() {
            break;
        }
        if now >= SAFETY_WINDOW + LIVENESS_BUDGET {
            let shared = shared
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let missing: Vec<&str> = CLIENTS
                .iter()
                .map(|(name, _)| *name)
                .filter(|name| !shared.finished.contains(*name))
                .collect();
            violations.push(format!(
                "liveness: {missing:?} made no progress within {} s after faults stopped",
                LIVENESS_BUDGET.as_secs()
            ));
            break;
        }
        sleep(TICK).await;
    }
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .phase = Phase::Stop;

    // The last crash: what the disk keeps now is what the checkers judge.
    supervisor.restart_at = None;
    trace.event("supervisor", "final crash and restart");
    schedule.broker_killed();
    handle.kill(broker);
    supervisor.killed_at_ms.push(ms(sim_now()));
    handle.restart(broker);
    let checker = handle
        .create_node()
        .name("checker")
        .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 99)))
        .build();
    let final_ctx = ctx.clone();
    let final_state = checker
        .spawn(async move {
            let main = final_read::final_read(&final_ctx).await;
            let admin = final_read::final_admin_read(&final_ctx).await;
            (main, admin)
        })
        .await;
    let ((log, final_violations), (admin_topics, admin_violations)) = match final_state {
        Ok(result) => result,
        Err(_) => (
            (
                FinalLog::new(),
                vec!["the final read task failed".to_owned()],
            ),
            (Default::default(), Vec::new()),
        ),
    };
    violations.extend(final_violations);
    violations.extend(admin_violations);

    let (events, client_violations) = {
        let mut shared = shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let events: Vec<BrokerEvent> = shared.history.take_events();
        (events, shared.violations.clone())
    };
    violations.extend(client_violations);
    violations.extend(check::check(&events, &log));
    let (admin_history, admin_stats) = {
        let shared = shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (shared.admin.clone(), shared.admin_stats)
    };
    violations.extend(crate::checker::admin::check(
        &admin_history,
        &supervisor.killed_at_ms,
        &admin_topics,
    ));

    let stats = shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .stats;
    let summary = summarize(
        &events,
        &log,
        &supervisor,
        &disk,
        stats,
        (schedule.counts, admin_stats),
    );
    trace.event("checker", &summary);
    Verdict {
        violations,
        summary,
    }
}

fn summarize(
    events: &[BrokerEvent],
    log: &FinalLog,
    supervisor: &Supervisor,
    disk: &SimDisk,
    clients: ClientStats,
    (faults, admin): (FaultCounts, AdminStats),
) -> String {
    let (mut acked_all, mut acked_one, mut consumed) = (0usize, 0usize, 0usize);
    for event in events {
        match event {
            BrokerEvent::Acked {
                acks: -1, values, ..
            } => acked_all += values.len(),
            BrokerEvent::Acked { values, .. } => acked_one += values.len(),
            BrokerEvent::Consumed { .. } => consumed += 1,
            _ => {}
        }
    }
    let kept: usize = log.values().map(|p| p.records.len()).sum();
    let stats = disk.stats();
    format!(
        "acked {acked_all} (acks=-1) + {acked_one} (acks=1), consumed {consumed}, final log {kept}, \
         idempotent batches {} ({} after a resend, {} duplicates answered), {} pipelined, \
         {} damaged reads, kills {} scheduled + {} requested, clogs {} ({} one-way), pauses {}, latency spikes {}, \
         clock jumps {} forward + {} back, admin: {} created, {} grown, {} deleted, {} refused, \
         {} unknown, {} records; disk: {} torn, {} dropped, {} fsync errors, {} bit flips, {} ENOSPC",
        clients.idempotent_acked,
        clients.idempotent_acked_after_retry,
        clients.duplicates_answered,
        clients.pipelined_acked,
        clients.damaged_reads,
        supervisor.kills,
        supervisor.requested,
        faults.clogs,
        faults.one_way_clogs,
        faults.pauses,
        faults.latency_spikes,
        faults.clock_jumps_forward,
        faults.clock_jumps_back,
        admin.created,
        admin.grown,
        admin.deleted,
        admin.refused,
        admin.unknown,
        admin.records,
        stats.writes_torn,
        stats.writes_dropped,
        stats.fsync_errors,
        stats.bit_flips,
        stats.enospc
    )
}
