//! The network, pause and clock faults of the broker workload, applied by the supervisor as their
//! time comes: clogs (both ways, one way, a whole node in or out), broker pauses, latency spikes
//! and wall-clock jumps. Kills stay with the supervisor, which owns restarts. Every fault is
//! written to the trace and counted for the run's summary.

use crate::faults::{self, ClockJump, Clog, LatencySpike, Pause};
use crate::trace::Trace;
use gregor::runtime::clock::ClockSkew;
use madsim::net::NetSim;
use madsim::rand::Rng;
use madsim::runtime::Handle;
use madsim::task::NodeId;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// Most network clogs per run.
const CLOGS_MAX: u32 = 5;
/// Most broker pauses per run.
const PAUSES_MAX: u32 = 3;
/// Most latency spikes per run.
const SPIKES_MAX: u32 = 3;
/// Most wall-clock jumps per run.
const CLOCK_JUMPS_MAX: u32 = 4;
/// Highest packet loss rate drawn (madsim's TCP resends lost packets after a backoff).
const PACKET_LOSS_MAX: f64 = 0.05;

/// What the supervisor cuts off during a clog.
#[derive(Debug, Clone, Copy)]
pub(super) enum ClogTarget {
    /// Everything to and from the broker (the broker isolated).
    Broker(NodeId),
    /// Only packets into the broker.
    BrokerIn(NodeId),
    /// Only packets out of the broker.
    BrokerOut(NodeId),
    /// Both directions between a client and the broker.
    Link(NodeId, NodeId),
    /// One direction only, from the first node to the second.
    OneWay(NodeId, NodeId),
}

impl ClogTarget {
    fn one_way(self) -> bool {
        matches!(
            self,
            ClogTarget::BrokerIn(_) | ClogTarget::BrokerOut(_) | ClogTarget::OneWay(..)
        )
    }

    fn set(self, net: &NetSim, on: bool) {
        match (self, on) {
            (ClogTarget::Broker(node), true) => net.clog_node(node),
            (ClogTarget::Broker(node), false) => net.unclog_node(node),
            (ClogTarget::BrokerIn(node), true) => net.clog_node_in(node),
            (ClogTarget::BrokerIn(node), false) => net.unclog_node_in(node),
            (ClogTarget::BrokerOut(node), true) => net.clog_node_out(node),
            (ClogTarget::BrokerOut(node), false) => net.unclog_node_out(node),
            (ClogTarget::Link(a, b), true) => {
                net.clog_link(a, b);
                net.clog_link(b, a);
            }
            (ClogTarget::Link(a, b), false) => {
                net.unclog_link(a, b);
                net.unclog_link(b, a);
            }
            (ClogTarget::OneWay(a, b), true) => net.clog_link(a, b),
            (ClogTarget::OneWay(a, b), false) => net.unclog_link(a, b),
        }
    }
}

/// The clog targets of a broker and its clients: the broker whole, in only and out only, and
/// for each client its link both ways and each way alone.
pub(super) fn clog_targets(broker: NodeId, clients: &[NodeId]) -> Vec<ClogTarget> {
    let mut targets = vec![
        ClogTarget::Broker(broker),
        ClogTarget::BrokerIn(broker),
        ClogTarget::BrokerOut(broker),
    ];
    for &client in clients {
        targets.push(ClogTarget::Link(client, broker));
        targets.push(ClogTarget::OneWay(client, broker));
        targets.push(ClogTarget::OneWay(broker, client));
    }
    targets
}

/// How many faults of each kind the run injected.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FaultCounts {
    pub clogs: u32,
    pub one_way_clogs: u32,
    pub pauses: u32,
    pub latency_spikes: u32,
    pub clock_jumps_forward: u32,
    pub clock_jumps_back: u32,
}

/// The drawn schedule and what is in force now.
pub(super) struct Schedule {
    net: Arc<NetSim>,
    handle: Handle,
    broker: NodeId,
    wall_clock: ClockSkew,
    trace: Trace,
    targets: Vec<ClogTarget>,
    clogs: VecDeque<Clog>,
    unclogs: Vec<(Duration, usize)>,
    pauses: VecDeque<Pause>,
    resume_at: Option<Duration>,
    spikes: VecDeque<LatencySpike>,
    spike_ends: Option<Duration>,
    normal_latency: Range<Duration>,
    jumps: VecDeque<ClockJump>,
    pub counts: FaultCounts,
}

impl Schedule {
    /// Draws the schedule from `rng`. `net` turns on clogs, packet loss and latency spikes;
    /// `pause` broker pauses; `clock` wall-clock jumps.
    #[allow(clippy::too_many_arguments)]
    pub fn draw(
        rng: &mut impl Rng,
        window: Duration,
        net_on: bool,
        pause_on: bool,
        clock_on: bool,
        targets: Vec<ClogTarget>,
        broker: NodeId,
        wall_clock: ClockSkew,
        trace: Trace,
    ) -> Schedule {
        let net = NetSim::current();
        let mut clogs = VecDeque::new();
        let mut spikes = VecDeque::new();
        if net_on {
            clogs = faults::draw_clogs(rng, window, CLOGS_MAX, targets.len()).into();
            spikes = faults::draw_latency_spikes(rng, window, SPIKES_MAX).into();
            let loss = rng.gen_range(0.0..PACKET_LOSS_MAX);
            trace.event("supervisor", format_args!("packet loss {loss:.3}"));
            net.update_config(|config| config.packet_loss_rate = loss);
        }
        let pauses = if pause_on {
            faults::draw_pauses(rng, window, PAUSES_MAX).into()
        } else {
            VecDeque::new()
        };
        let jumps = if clock_on {
            faults::draw_clock_jumps(rng, window, CLOCK_JUMPS_MAX).into()
        } else {
            VecDeque::new()
        };
        let mut normal_latency = Duration::ZERO..Duration::ZERO;
        net.update_config(|config| normal_latency = config.send_latency.clone());
        Schedule {
            net,
            handle: Handle::current(),
            broker,
            wall_clock,
            trace,
            targets,
            clogs,
            unclogs: Vec::new(),
            pauses,
            resume_at: None,
            spikes,
            spike_ends: None,
            normal_latency,
            jumps,
            counts: FaultCounts::default(),
        }
    }

    /// Applies every fault due at `now`. A pause that comes while the broker is down is skipped.
    pub fn step(&mut self, now: Duration, broker_down: bool) {
        self.step_clogs(now);
        self.step_pauses(now, broker_down);
        self.step_spikes(now);
        while self.jumps.front().is_some_and(|jump| jump.at <= now) {
            if let Some(jump) = self.jumps.pop_front() {
                let offset = self.wall_clock.jump(jump.by_ms);
                if jump.by_ms > 0 {
                    self.counts.clock_jumps_forward += 1;
                } else {
                    self.counts.clock_jumps_back += 1;
                }
                self.trace.event(
                    "supervisor",
                    format_args!(
                        "broker wall clock jumps {:+} ms (offset now {offset} ms)",
                        jump.by_ms
                    ),
                );
            }
        }
    }

    fn step_clogs(&mut self, now: Duration) {
        while self.clogs.front().is_some_and(|clog| clog.at <= now) {
            let Some(clog) = self.clogs.pop_front() else {
                break;
            };
            if let Some(&target) = self.targets.get(clog.target) {
                self.trace.event(
                    "supervisor",
                    format_args!("clog {target:?} for {} ms", clog.lasts.as_millis()),
                );
                target.set(&self.net, true);
                self.counts.clogs += 1;
                if target.one_way() {
                    self.counts.one_way_clogs += 1;
                }
                self.unclogs.push((now + clog.lasts, clog.target));
            }
        }
        let (net, trace, targets) = (&self.net, &self.trace, &self.targets);
        self.unclogs.retain(|&(at, index)| {
            let due = at <= now;
            if let (true, Some(&target)) = (due, targets.get(index)) {
                trace.event("supervisor", format_args!("unclog {target:?}"));
                target.set(net, false);
            }
            !due
        });
    }

    fn step_pauses(&mut self, now: Duration, broker_down: bool) {
        if self.resume_at.is_some_and(|at| at <= now) {
            self.resume();
        }
        while self.pauses.front().is_some_and(|pause| pause.at <= now) {
            let Some(pause) = self.pauses.pop_front() else {
                break;
            };
            if broker_down || self.resume_at.is_some() {
                continue;
            }
            self.trace.event(
                "supervisor",
                format_args!("pause broker for {} ms", pause.lasts.as_millis()),
            );
            self.handle.pause(self.broker);
            self.counts.pauses += 1;
            self.resume_at = Some(now + pause.lasts);
        }
    }

    fn resume(&mut self) {
        self.trace.event("supervisor", "resume broker");
        self.handle.resume(self.broker);
        self.resume_at = None;
    }

    /// A kill ends a pause: the restarted process is not paused.
    pub fn broker_killed(&mut self) {
        if self.resume_at.take().is_some() {
            self.trace.event("supervisor", "pause ends with the kill");
            self.handle.resume(self.broker);
        }
    }

    fn step_spikes(&mut self, now: Duration) {
        if self.spike_ends.is_some_and(|at| at <= now) {
            self.trace.event("supervisor", "latency back to normal");
            let normal = self.normal_latency.clone();
            self.net
                .update_config(|config| config.send_latency = normal);
            self.spike_ends = None;
        }
        while self.spikes.front().is_some_and(|spike| spike.at <= now) {
            let Some(spike) = self.spikes.pop_front() else {
                break;
            };
            let (low, high) = spike.latency_ms;
            self.trace.event(
                "supervisor",
                format_args!(
                    "latency spike {low}..{high} ms for {} ms",
                    spike.lasts.as_millis()
                ),
            );
            let latency = Duration::from_millis(low)..Duration::from_millis(high);
            self.net
                .update_config(|config| config.send_latency = latency);
            self.counts.latency_spikes += 1;
            let end = now + spike.lasts;
            self.spike_ends = Some(self.spike_ends.map_or(end, |old| old.max(end)));
        }
    }

    /// Liveness: every fault off now and none to come. The wall clock keeps its offset (a clock
    /// that was stepped stays where it is).
    pub fn stop(&mut self) {
        for target in &self.targets {
            target.set(&self.net, false);
        }
        self.clogs.clear();
        self.unclogs.clear();
        self.pauses.clear();
        if self.resume_at.is_some() {
            self.resume();
        }
        self.spikes.clear();
        self.spike_ends = None;
        self.jumps.clear();
        let normal = self.normal_latency.clone();
        self.net.update_config(|config| {
            config.packet_loss_rate = 0.0;
            config.send_latency = normal;
        });
    }
}
