//! The node loop: the one task that owns the broker machine. It feeds the machine requests,
//! storage completions and timeouts, and carries out what the machine asks for.

use super::clock::Clock;
use super::connection::Reply;
use super::executor::{self, Done, Job};
use super::log_io::LogFiles;
use super::timer::Deadline;
use crate::core::broker::fetch::{FetchReply, ListOffsetsReply};
use crate::core::broker::{Broker, LogTarget, Output, ReplyTo, RequestContext, TopicPartition};
use crate::core::log::recovery::{chained_prefix, trim_to_offset};
use crate::core::log::time_lookup::first_record_at;
use crate::core::log::ReadPlan;
use crate::protocol::generated::{RequestBody, ResponseBody};
use crate::storage::Storage;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Messages from connections to the node loop.
pub enum Inbound {
    Open {
        conn: u64,
        replies: mpsc::UnboundedSender<(u64, Reply)>,
    },
    Request {
        reply: ReplyTo,
        api_key: i16,
        api_version: i16,
        body: Box<RequestBody>,
    },
    Closed {
        conn: u64,
    },
}

pub struct Node {
    broker: Broker,
    storage: Arc<dyn Storage>,
    clock: Clock,
    conns: BTreeMap<u64, mpsc::UnboundedSender<(u64, Reply)>>,
    executors: BTreeMap<LogTarget, mpsc::UnboundedSender<Job>>,
    /// Logs being removed (a deleted topic): a new log in the same place waits for this.
    removing: BTreeMap<LogTarget, oneshot::Receiver<()>>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    retention_interval: Duration,
}

impl Node {
    pub fn new(broker: Broker, storage: Arc<dyn Storage>, clock: Clock) -> Node {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let retention_interval =
            Duration::from_millis(broker.config().log_retention_check_interval_ms);
        Node {
            broker,
            storage,
            clock,
            conns: BTreeMap::new(),
            executors: BTreeMap::new(),
            removing: BTreeMap::new(),
            done_tx,
            done_rx,
            retention_interval,
        }
    }

    /// Runs until `shutdown` resolves, then lets in-flight storage work finish. Returns `Err`
    /// at once when the broker hits a fatal error (the process must exit and be restarted).
    pub async fn run(
        mut self,
        mut inbound: mpsc::UnboundedReceiver<Inbound>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), String> {
        tokio::pin!(shutdown);
        // One timer for everything time-driven (the machine's deadline, the flush check, the
        // retention check), a [`Deadline`] so that the loop's many wake-ups and the deadline's
        // moves do not each register a timer.
        let mut ticks = Ticks::starting(self.clock.tokio_now(), self.retention_interval);
        let mut timer = Deadline::at(ticks.earliest());
        loop {
            let deadline = self.broker.next_deadline().map(|d| self.clock.instant(d));
            let wake_at = deadline.map_or(ticks.earliest(), |at| at.min(ticks.earliest()));
            timer.set(wake_at);
            // `biased`: tokio's random branch order draws from a process-wide counter that the
            // simulator cannot seed, so it would make runs irreproducible. The fixed order cannot
            // starve anything: completions and timers are bounded by the work already issued;
            // new requests come last.
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                Some(done) = self.done_rx.recv() => {
                    self.broker.handle_storage_done(done.work, done.ok, self.clock.now());
                }
                () = &mut timer => {
                    let now = self.clock.tokio_now();
                    let due = ticks.take_due(now);
                    if due.flush || deadline.is_some_and(|at| at <= now) {
                        self.broker.handle_timeout(self.clock.now());
                    }
                    if due.retention {
                        self.broker.enforce_retention(self.clock.now());
                    }
                }
                msg = inbound.recv() => match msg {
                    Some(msg) => self.on_inbound(msg),
                    None => break,
                },
            }
            self.drain();
            if let Some(why) = self.broker.fatal_error() {
                return Err(why.to_owned());
            }
        }
        self.finish().await;
        Ok(())
    }

    fn on_inbound(&mut self, msg: Inbound) {
        match msg {
            Inbound::Open { conn, replies } => {
                self.conns.insert(conn, replies);
            }
            Inbound::Closed { conn } => {
                self.conns.remove(&conn);
            }
            Inbound::Request {
                reply,
                api_key,
                api_version,
                body,
            } => {
                let ctx = RequestContext {
                    reply,
                    api_key,
                    api_version,
                };
                self.broker.handle_request(ctx, *body, self.clock.now());
            }
        }
    }

    fn drain(&mut self) {
        while let Some(out) = self.broker.poll_output() {
            match out {
                Output::Respond { reply, body } => self.send(reply, Reply::Body(body)),
                Output::NoResponse { reply } => self.send(reply, Reply::Nothing),
                Output::Close { reply } => self.send(reply, Reply::Close),
                Output::Storage { work, target, ops } => {
                    let _ = self.executor(&target).send(Job::Work { work, ops });
                }
                Output::Fetch(fetch) => self.start_fetch(fetch),
                Output::ListOffsets(list) => self.start_time_lookups(list),
                Output::RemoveLog { target } => {
                    let (removed, wait) = oneshot::channel();
                    let _ = self.executor(&target).send(Job::Remove { removed });
                    self.executors.remove(&target);
                    self.removing.insert(target, wait);
                }
            }
        }
    }

    fn send(&self, reply: ReplyTo, body: Reply) {
        if let Some(conn) = self.conns.get(&reply.conn) {
            let _ = conn.send((reply.seq, body));
        }
    }

    fn executor(&mut self, target: &LogTarget) -> &mpsc::UnboundedSender<Job> {
        let storage = &self.storage;
        let done = &self.done_tx;
        let buggify = self.broker.buggify();
        let removing = &mut self.removing;
        self.executors.entry(target.clone()).or_insert_with(|| {
            let dir = target.dir();
            let files =
                LogFiles::new(storage.clone(), dir.clone()).with_buggify(buggify.fork(&dir));
            let after = removing.remove(target);
            executor::spawn(files, done.clone(), buggify.fork_id(1).fork(&dir), after)
        })
    }

    /// Queues one read per `(partition, plan, tag)` on that log's executor, in order; the tags
    /// come back with the pending answers.
    fn start_reads<T>(
        &mut self,
        reads: impl IntoIterator<Item = (TopicPartition, ReadPlan, T)>,
    ) -> Vec<(T, oneshot::Receiver<io::Result<Bytes>>)> {
        reads
            .into_iter()
            .map(|(tp, plan, tag)| {
                let (reply, answer) = oneshot::channel();
                let _ = self
                    .executor(&LogTarget::Partition(tp))
                    .send(Job::Read { plan, reply });
                (tag, answer)
            })
            .collect()
    }

    /// Reads every planned range on its log's executor, fills the response, sends it; the node
    /// loop does not wait for the reads.
    fn start_fetch(&mut self, fetch: FetchReply) {
        let FetchReply {
            reply,
            mut response,
            reads,
        } = fetch;
        let pending = self.start_reads(reads.into_iter().map(|r| (r.tp.clone(), r.plan, r)));
        let Some(conn) = self.conns.get(&reply.conn).cloned() else {
            return;
        };
        tokio::spawn(async move {
            for (read, rx) in pending {
                let Ok(Ok(bytes)) = rx.await else { continue };
                let plan = read.plan;
                let records = trim_to_offset(
                    bytes,
                    plan.first_base,
                    plan.offset,
                    read.max_bytes,
                    read.high_watermark,
                );
                if let Some(p) = response
                    .responses
                    .get_mut(read.topic_index)
                    .and_then(|t| t.partitions.get_mut(read.partition_index))
                {
                    p.records = Some(records);
                }
            }
            let _ = conn.send((reply.seq, Reply::Body(ResponseBody::Fetch(response))));
        });
    }

    /// Reads the batch each timestamp search names, finds the record, sends the response.
    fn start_time_lookups(&mut self, list: ListOffsetsReply) {
        let ListOffsetsReply {
            reply,
            mut response,
            lookups,
        } = list;
        let pending = self.start_reads(
            lookups
                .into_iter()
                .map(|l| (l.tp.clone(), l.lookup.plan, l)),
        );
        let Some(conn) = self.conns.get(&reply.conn).cloned() else {
            return;
        };
        tokio::spawn(async move {
            for (read, rx) in pending {
                let found = match rx.await {
                    Ok(Ok(bytes)) => {
                        let bytes = chained_prefix(bytes, read.lookup.plan.first_base);
                        first_record_at(bytes, read.lookup.target, read.lookup.batch_last_offset)
                    }
                    _ => None,
                };
                read.answer(&mut response, found);
            }
            let body = ResponseBody::ListOffsets(response);
            let _ = conn.send((reply.seq, Reply::Body(body)));
        });
    }

    /// Graceful end: stop taking requests, let storage work already queued finish.
    async fn finish(mut self) {
        self.broker.flush_all(self.clock.now());
        self.drain();
        // Drop our own completion sender so the channel closes once every executor is done.
        self.done_tx = mpsc::unbounded_channel().0;
        self.executors.clear();
        // Executors end when their queues close; wait for the completions still coming.
        while let Ok(Some(done)) =
            tokio::time::timeout(Duration::from_secs(5), self.done_rx.recv()).await
        {
            self.broker
                .handle_storage_done(done.work, done.ok, self.clock.now());
            self.drain();
            self.executors.clear();
        }
    }
}

/// How often the node loop asks the machine whether a `flush.ms` flush is due (cheap when none
/// is).
const FLUSH_CHECK: Duration = Duration::from_millis(100);

/// The node loop's periodic checks; both first run as the loop starts.
struct Ticks {
    flush: tokio::time::Instant,
    retention: tokio::time::Instant,
    retention_interval: Duration,
}

/// Which periodic checks [`Ticks::take_due`] found due.
struct DueTicks {
    flush: bool,
    retention: bool,
}

impl Ticks {
    fn starting(now: tokio::time::Instant, retention_interval: Duration) -> Ticks {
        Ticks {
            flush: now,
            retention: now,
            retention_interval,
        }
    }

    fn earliest(&self) -> tokio::time::Instant {
        self.flush.min(self.retention)
    }

    /// The checks due at `now`, each moved to its next time. Missed checks are not made up
    /// for: one check at `now` covers them.
    fn take_due(&mut self, now: tokio::time::Instant) -> DueTicks {
        let due = DueTicks {
            flush: self.flush <= now,
            retention: self.retention <= now,
        };
        if due.flush {
            self.flush = now + FLUSH_CHECK;
        }
        if due.retention {
            self.retention = now + self.retention_interval;
        }
        due
    }
}
