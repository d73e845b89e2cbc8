//! `SimDisk`: a simulated disk per node, as a madsim plugin, and [`SimStorage`], the
//! [`Storage`] handle a node's code uses to reach it.
//!
//! # Model
//! Each node has a tree of directories and files (the namespace rules are gregor's own
//! [`Tree`], shared with `MemoryStorage`). Each file has two layers:
//! - `current`: what reads see, every write applied;
//! - `durable`: what survives a crash, plus a list of pending changes (writes, truncations)
//!   made since the last successful `sync_data`.
//!
//! Each directory has its current entries and its *durable* entries, the state of its last
//! `sync_dir` (empty if never synced). Creating, renaming or removing an entry changes only the
//! current entries.
//!
//! When madsim kills a node it calls `reset_node`, which plays the crash:
//! - every handle is closed;
//! - each directory whose entries changed since its last sync either keeps all of those changes
//!   (as if the file system had flushed its journal; [`DiskOptions::crash_dir_keep_probability`])
//!   or goes back to its durable entries; files no longer named anywhere disappear;
//! - each pending change is, independently and in order, kept, dropped, or (writes only) torn:
//!   a random non-empty strict prefix is kept. A dropped write below a kept one leaves a hole
//!   (old bytes, or zeros past the old end), as page write-back has no order;
//! - reads then see exactly the durable layer.
//!
//! # Faults ([`DiskOptions`])
//! - A failed `sync_data` returns `EIO` and marks the file's pending changes *undetermined*: reads
//!   still see them (the page cache kept them), but a later successful sync does not make them
//!   durable; their fate is drawn (keep / drop / tear) when that sync or a crash resolves them.
//!   This is Linux's behaviour since 2018, and why the contract forbids "retry the sync and go on".
//! - A read may come back with one bit flipped (the stored bytes stay intact: a transient fault).
//! - A write may fail with `StorageFull` (ENOSPC), changing nothing; so does any write beyond
//!   [`DiskOptions::capacity_bytes`].
//! - Every operation takes a latency drawn from the options (`madsim::time::sleep`). Effects
//!   happen when the method is called and the result is released after the latency, so the order
//!   of calls is the order of effects (contract point 6), whatever the latencies.
//! - Except durability: `sync_data` covers the changes pending when it is called but makes them
//!   durable only when its latency is over, just before it returns `Ok` (the latest moment a real
//!   fsync may). A crash in between leaves them pending, to be resolved by the crash. So code that
//!   acts on data before its sync returns is caught. `sync_dir` takes effect when called.
//!
//! Randomness comes only from madsim's seeded RNG, so one seed gives one outcome.

use crate::trace::Trace;
use bytes::Bytes;
use gregor::storage::memory::{read_slice, truncate_vec, write_slice};
use gregor::storage::tree::{Ino, Tree};
use gregor::storage::{end_offset, parent, FileId, Storage, StorageFuture};
use madsim::rand::{GlobalRng, Rng};
use madsim::task::NodeId;
use madsim::time::TimeHandle;
use madsim::{plugin, Config};
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Fault and timing knobs, one per field.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskOptions {
    /// Chance that a read returns its bytes with one bit flipped (the stored data stays intact).
    pub read_bitflip_probability: f64,
    /// Chance that `sync_data` fails with EIO, leaving the file's pending changes undetermined.
    pub fsync_error_probability: f64,
    /// Chance that a write fails with ENOSPC (`StorageFull`) and changes nothing.
    pub enospc_probability: f64,
    /// Bytes a node may hold (sum of file lengths as reads see them); writes beyond get ENOSPC.
    pub capacity_bytes: u64,
    /// On a crash, chance that a pending write is torn: a random non-empty strict prefix survives.
    pub crash_torn_write_probability: f64,
    /// On a crash, chance that a pending change that was not torn survives whole.
    pub crash_write_keep_probability: f64,
    /// On a crash, chance that a directory's unsynced entry changes all survive.
    pub crash_dir_keep_probability: f64,
    /// Latency of reads, writes, truncations and entry operations, uniform in `[min, max]` ms.
    pub latency_ms_min: u64,
    pub latency_ms_max: u64,
    /// Latency of `sync_data` and `sync_dir`, uniform in `[min, max]` ms.
    pub sync_latency_ms_min: u64,
    pub sync_latency_ms_max: u64,
}

impl DiskOptions {
    /// No faults, small latencies. A crash still loses what was never synced: that is what a
    /// crash is, not a fault.
    pub fn faultless() -> DiskOptions {
        DiskOptions {
            read_bitflip_probability: 0.0,
            fsync_error_probability: 0.0,
            enospc_probability: 0.0,
            capacity_bytes: u64::MAX,
            crash_torn_write_probability: 0.0,
            crash_write_keep_probability: 0.5,
            crash_dir_keep_probability: 0.5,
            latency_ms_min: 0,
            latency_ms_max: 1,
            sync_latency_ms_min: 1,
            sync_latency_ms_max: 8,
        }
    }

    /// The `disk` fault kind: every fault on, at rates a short run will meet.
    pub fn with_faults() -> DiskOptions {
        DiskOptions {
            read_bitflip_probability: 0.01,
            fsync_error_probability: 0.02,
            enospc_probability: 0.01,
            crash_torn_write_probability: 0.3,
            ..DiskOptions::faultless()
        }
    }

    /// Turns every fault off (TigerBeetle's liveness mode): after this the system must make
    /// progress. Latency and crash semantics stay.
    pub fn liveness_mode(&mut self) {
        self.read_bitflip_probability = 0.0;
        self.fsync_error_probability = 0.0;
        self.enospc_probability = 0.0;
        self.capacity_bytes = u64::MAX;
        self.crash_torn_write_probability = 0.0;
    }
}

/// What the disk did, for summaries and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub crashes: u64,
    pub writes_kept: u64,
    pub writes_dropped: u64,
    pub writes_torn: u64,
    pub dirs_kept: u64,
    pub dirs_reverted: u64,
    pub fsync_errors: u64,
    pub bit_flips: u64,
    pub enospc: u64,
}

/// The simulated disks of every node. Register it with `Runtime::add_simulator::<SimDisk>()`
/// before creating nodes; reach it with `madsim::plugin::simulator::<SimDisk>()`.
pub struct SimDisk {
    rng: GlobalRng,
    state: Mutex<State>,
}

struct State {
    options: DiskOptions,
    nodes: BTreeMap<NodeId, NodeDisk>,
    trace: Option<Trace>,
    stats: DiskStats,
}

#[derive(Default)]
struct NodeDisk {
    tree: Tree<SimFile>,
    /// Bumped by every crash: a sync that started before it commits nothing.
    epoch: u64,
    /// Sequence number for the next pending change, across the node's files.
    next_change: u64,
    /// Entries of each directory as of its last `sync_dir`; a missing key means "empty".
    durable_dirs: BTreeMap<Ino, BTreeMap<String, Ino>>,
    /// The directory and name each open handle was opened by: if the file still has that name
    /// when the handle closes, the close needs no search for other references.
    opened_as: BTreeMap<FileId, (Ino, String)>,
}

#[derive(Debug, Default)]
struct SimFile {
    current: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
}

#[derive(Debug)]
struct Pending {
    seq: u64,
    change: Change,
    /// Set by a failed sync: a later successful sync no longer guarantees this change.
    undetermined: bool,
}

#[derive(Debug)]
enum Change {
    Write { pos: u64, data: Bytes },
    Truncate { len: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keep,
    Drop,
    Tear(usize),
}

/// What an operation needs besides the node's tree: knobs, randomness, counters, trace.
struct Ctx<'a> {
    node: NodeId,
    options: &'a DiskOptions,
    rng: GlobalRng,
    stats: &'a mut DiskStats,
    trace: Option<&'a Trace>,
}

impl Ctx<'_> {
    /// A draw that never panics on odd probabilities and costs no randomness at 0 or 1.
    fn chance(&mut self, probability: f64) -> bool {
        if probability <= 0.0 {
            false
        } else if probability >= 1.0 {
            true
        } else {
            self.rng.gen_bool(probability)
        }
    }

    fn event(&self, what: impl std::fmt::Display) {
        if let Some(trace) = self.trace {
            trace.event("disk", format_args!("node {}: {what}", self.node));
        }
    }

    fn draw_fate(&mut self, change: &Change) -> Fate {
        if let Change::Write { data, .. } = change {
            if data.len() > 1 && self.chance(self.options.crash_torn_write_probability) {
                return Fate::Tear(self.rng.gen_range(1..data.len()));
            }
        }
        if self.chance(self.options.crash_write_keep_probability) {
            Fate::Keep
        } else {
            Fate::Drop
        }
    }

    fn count(&mut self, fate: Fate) {
        match fate {
            Fate::Keep => self.stats.writes_kept += 1,
            Fate::Drop => self.stats.writes_dropped += 1,
            Fate::Tear(_) => self.stats.writes_torn += 1,
        }
    }
}

/// Applies a change to the durable layer as far as its fate allows.
fn apply(durable: &mut Vec<u8>, change: &Change, fate: Fate) {
    let result = match (change, fate) {
        (_, Fate::Drop) => Ok(()),
        (Change::Write { pos, data }, Fate::Keep) => write_slice(durable, *pos, data),
        (Change::Write { pos, data }, Fate::Tear(kept)) => {
            write_slice(durable, *pos, &data[..kept.min(data.len())])
        }
        (Change::Truncate { len }, _) => truncate_vec(durable, *len),
    };
    // The current layer accepted the same change, so the durable one must too.
    assert!(
        result.is_ok(),
        "durable layer refused a change the current layer took: {result:?}"
    );
}

/// What a `sync_data` that passed its fault draw will make durable when it completes.
#[derive(Debug, Clone, Copy)]
struct SyncTicket {
    ino: Ino,
    epoch: u64,
    /// Last pending change the sync covers (`None`: nothing was pending).
    upto: Option<u64>,
}

impl NodeDisk {
    fn push_change(&mut self, file: FileId, change: Change) -> io::Result<()> {
        let seq = self.next_change;
        self.next_change += 1;
        self.tree.file_mut(file)?.pending.push(Pending {
            seq,
            change,
            undetermined: false,
        });
        Ok(())
    }

    /// Completes a sync: the changes it covered become durable (undetermined ones by draw).
    fn commit(&mut self, ticket: SyncTicket, ctx: &mut Ctx<'_>) {
        let (Some(upto), true) = (ticket.upto, ticket.epoch == self.epoch) else {
            return;
        };
        let Some(file) = self.tree.file_at_mut(ticket.ino) else {
            return;
        };
        let covered = file
            .pending
            .iter()
            .take_while(|pending| pending.seq <= upto)
            .count();
        for pending in file.pending.drain(..covered) {
            let fate = if pending.undetermined {
                let fate = ctx.draw_fate(&pending.change);
                ctx.count(fate);
                fate
            } else {
                Fate::Keep
            };
            apply(&mut file.durable, &pending.change, fate);
        }
    }
    /// Whether `dir`'s durable entries still name `ino` as `name`: then it is not garbage, and a
    /// full collection after unlinking it would free nothing.
    fn durably_named_at(&self, dir: Ino, name: &str, ino: Ino) -> bool {
        self.durable_dirs
            .get(&dir)
            .and_then(|entries| entries.get(name))
            == Some(&ino)
    }

    /// Frees inodes named neither by current entries, nor by durable ones, nor by open handles.
    fn collect_garbage(&mut self) {
        let durable = &self.durable_dirs;
        let freed = self.tree.collect_garbage(|dir| {
            durable
                .get(&dir)
                .map(|entries| entries.values().copied().collect())
                .unwrap_or_default()
        });
        for ino in freed {
            self.durable_dirs.remove(&ino);
        }
    }

    /// Closes a handle. Every inode in the tree is live between operations (each operation
    /// that can orphan one collects garbage), so a close can free only the closed file's inode,
    /// and only if nothing else refers to it: the full collection runs only then.
    fn close(&mut self, file: FileId) -> io::Result<()> {
        let ino = self.tree.handle_ino(file)?;
        self.tree.close(file)?;
        if let Some((dir, name)) = self.opened_as.remove(&file) {
            let named = self
                .tree
                .entries(dir)
                .and_then(|entries| entries.get(&name));
            if named == Some(&ino) || self.durably_named_at(dir, &name, ino) {
                return Ok(());
            }
        }
        let durably_named = self
            .durable_dirs
            .values()
            .any(|entries| entries.values().any(|&named| named == ino));
        if !durably_named && !self.tree.is_referenced(ino) {
            self.collect_garbage();
        }
        Ok(())
    }

    fn used_bytes(&mut self) -> u64 {
        self.tree
            .files_mut()
            .map(|(_, file)| file.current.len() as u64)
            .sum()
    }

    /// Plays a crash: see the module docs.
    fn crash(&mut self, ctx: &mut Ctx<'_>) {
        self.epoch += 1;
        self.tree.close_all();
        self.opened_as.clear();
        for dir in self.tree.dir_inos() {
            let current = self.tree.entries(dir).cloned().unwrap_or_default();
            let durable = self.durable_dirs.get(&dir).cloned().unwrap_or_default();
            if current == durable {
                continue;
            }
            if ctx.chance(ctx.options.crash_dir_keep_probability) {
                ctx.stats.dirs_kept += 1;
                self.durable_dirs.insert(dir, current);
            } else {
                ctx.stats.dirs_reverted += 1;
                ctx.event(format_args!(
                    "crash: directory {dir} loses its unsynced entries"
                ));
                if let Some(entries) = self.tree.entries_mut(dir) {
                    *entries = durable;
                }
            }
        }
        for (ino, file) in self.tree.files_mut() {
            for pending in std::mem::take(&mut file.pending) {
                let fate = ctx.draw_fate(&pending.change);
                ctx.count(fate);
                if let (Fate::Tear(kept), Change::Write { pos, data }) = (fate, &pending.change) {
                    let len = data.len();
                    ctx.event(format_args!(
                        "crash: write to inode {ino} at {pos} torn, {kept} of {len} bytes kept"
                    ));
                }
                apply(&mut file.durable, &pending.change, fate);
            }
            file.current.clone_from(&file.durable);
        }
        self.collect_garbage();
    }
}

impl SimDisk {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `op` on a node's disk with the context it may need.
    fn with_node<T>(
        &self,
        node: NodeId,
        op: impl FnOnce(&mut NodeDisk, &mut Ctx<'_>) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut guard = self.state();
        let State {
            options,
            nodes,
            trace,
            stats,
        } = &mut *guard;
        let mut ctx = Ctx {
            node,
            options,
            rng: self.rng.clone(),
            stats,
            trace: trace.as_ref(),
        };
        op(nodes.entry(node).or_default(), &mut ctx)
    }

    /// Replaces the fault options.
    pub fn set_options(&self, options: DiskOptions) {
        self.state().options = options;
    }

    pub fn options(&self) -> DiskOptions {
        self.state().options.clone()
    }

    /// Turns every fault off from now on (see [`DiskOptions::liveness_mode`]).
    pub fn liveness_mode(&self) {
        self.state().options.liveness_mode();
    }

    /// Sends the disk's notable events (crash outcomes, injected faults) to `trace`.
    pub fn set_trace(&self, trace: Trace) {
        self.state().trace = Some(trace);
    }

    pub fn stats(&self) -> DiskStats {
        self.state().stats
    }

    /// Plays a crash of `node` now. `reset_node` calls this when madsim kills the node; tests may
    /// call it directly.
    pub fn crash(&self, node: NodeId) {
        let mut guard = self.state();
        let State {
            options,
            nodes,
            trace,
            stats,
        } = &mut *guard;
        let Some(disk) = nodes.get_mut(&node) else {
            return;
        };
        stats.crashes += 1;
        let mut ctx = Ctx {
            node,
            options,
            rng: self.rng.clone(),
            stats,
            trace: trace.as_ref(),
        };
        disk.crash(&mut ctx);
    }

    /// Draws an operation's latency.
    fn latency(&self, sync: bool) -> Duration {
        let state = self.state();
        let options = &state.options;
        let (min, max) = if sync {
            (options.sync_latency_ms_min, options.sync_latency_ms_max)
        } else {
            (options.latency_ms_min, options.latency_ms_max)
        };
        let ms = if max > min {
            self.rng.clone().gen_range(min..=max)
        } else {
            min
        };
        Duration::from_millis(ms)
    }
}

impl plugin::Simulator for SimDisk {
    fn new(rand: &GlobalRng, _time: &TimeHandle, _config: &Config) -> Self {
        let state = State {
            options: DiskOptions::faultless(),
            nodes: BTreeMap::new(),
            trace: None,
            stats: DiskStats::default(),
        };
        SimDisk {
            rng: rand.clone(),
            state: Mutex::new(state),
        }
    }

    fn create_node(&self, id: NodeId) {
        self.state().nodes.entry(id).or_default();
    }

    /// Called by `Handle::kill` while madsim holds its own locks: must not call back into madsim
    /// (`plugin::simulator` here deadlocks), so everything it needs is in `self`.
    fn reset_node(&self, id: NodeId) {
        self.crash(id);
    }
}

/// One node's view of the [`SimDisk`], implementing gregor's [`Storage`].
#[derive(Clone)]
pub struct SimStorage {
    node: NodeId,
    disk: Arc<SimDisk>,
}

impl SimStorage {
    pub fn new(node: NodeId, disk: Arc<SimDisk>) -> SimStorage {
        SimStorage { node, disk }
    }

    /// The storage of the node the calling task runs on.
    pub fn current() -> SimStorage {
        SimStorage::new(plugin::node(), plugin::simulator::<SimDisk>())
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Applies `op` now and releases its result after a drawn latency.
    fn run<'a, T: Send + 'a>(
        &self,
        sync: bool,
        op: impl FnOnce(&mut NodeDisk, &mut Ctx<'_>) -> io::Result<T>,
    ) -> StorageFuture<'a, T> {
        let result = self.disk.with_node(self.node, op);
        let latency = self.disk.latency(sync);
        Box::pin(async move {
            if !latency.is_zero() {
                madsim::time::sleep(latency).await;
            }
            result
        })
    }
}

/// The last component of a storage path.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn enospc(ctx: &mut Ctx<'_>, why: &str) -> io::Error {
    ctx.stats.enospc += 1;
    ctx.event(format_args!("write fails with ENOSPC ({why})"));
    io::Error::new(
        io::ErrorKind::StorageFull,
        format!("simulated ENOSPC: {why}"),
    )
}

impl Storage for SimStorage {
    fn create_dir_all<'a>(&'a self, dir: &'a str) -> StorageFuture<'a, ()> {
        self.run(false, |disk, _| disk.tree.create_dir_all(dir).map(drop))
    }

    fn open<'a>(&'a self, path: &'a str, create: bool) -> StorageFuture<'a, FileId> {
        self.run(false, |disk, _| {
            let (file, _) = disk.tree.open(path, create, SimFile::default)?;
            let dir = disk.tree.lookup_dir(parent(path))?;
            disk.opened_as
                .insert(file, (dir, file_name(path).to_owned()));
            Ok(file)
        })
    }

    fn close(&self, file: FileId) -> StorageFuture<'_, ()> {
        self.run(false, |disk, _| disk.close(file))
    }

    fn len(&self, file: FileId) -> StorageFuture<'_, u64> {
        self.run(false, |disk, _| {
            Ok(disk.tree.file(file)?.current.len() as u64)
        })
    }

    fn read_at(&self, file: FileId, pos: u64, len: usize) -> StorageFuture<'_, Bytes> {
        self.run(false, |disk, ctx| {
            let bytes = read_slice(&disk.tree.file(file)?.current, pos, len);
            if bytes.is_empty() || !ctx.chance(ctx.options.read_bitflip_probability) {
                return Ok(bytes);
            }
            let mut flipped = bytes.to_vec();
            let bit = ctx.rng.gen_range(0..flipped.len() * 8);
            flipped[bit / 8] ^= 1 << (bit % 8);
            ctx.stats.bit_flips += 1;
            ctx.event(format_args!(
                "read of {len} bytes at {pos}: bit {bit} flipped"
            ));
            Ok(Bytes::from(flipped))
        })
    }

    fn write_at(&self, file: FileId, pos: u64, data: Bytes) -> StorageFuture<'_, ()> {
        self.run(false, |disk, ctx| {
            let current_len = disk.tree.file(file)?.current.len() as u64;
            let growth = end_offset(pos, data.len())?.saturating_sub(current_len);
            if ctx.chance(ctx.options.enospc_probability) {
                return Err(enospc(ctx, "injected"));
            }
            // Summing every file's length per write is skipped when there is no limit to meet.
            let limited = ctx.options.capacity_bytes != u64::MAX;
            if limited && disk.used_bytes().saturating_add(growth) > ctx.options.capacity_bytes {
                return Err(enospc(ctx, "capacity reached"));
            }
            write_slice(&mut disk.tree.file_mut(file)?.current, pos, &data)?;
            disk.push_change(file, Change::Write { pos, data })
        })
    }

    fn sync_data(&self, file: FileId) -> StorageFuture<'_, ()> {
        let ticket = self.disk.with_node(self.node, |disk, ctx| {
            let ino = disk.tree.handle_ino(file)?;
            let epoch = disk.epoch;
            let sim_file = disk.tree.file_mut(file)?;
            if ctx.chance(ctx.options.fsync_error_probability) {
                for pending in &mut sim_file.pending {
                    pending.undetermined = true;
                }
                ctx.stats.fsync_errors += 1;
                let count = sim_file.pending.len();
                ctx.event(format_args!(
                    "fsync fails with EIO; {count} pending changes undetermined"
                ));
                return Err(io::Error::other("simulated fsync failure (EIO)"));
            }
            Ok(SyncTicket {
                ino,
                epoch,
                upto: sim_file.pending.last().map(|pending| pending.seq),
            })
        });
        let latency = self.disk.latency(true);
        let (disk, node) = (self.disk.clone(), self.node);
        Box::pin(async move {
            let ticket = ticket?;
            if !latency.is_zero() {
                madsim::time::sleep(latency).await;
            }
            disk.with_node(node, |disk, ctx| {
                disk.commit(ticket, ctx);
                Ok(())
            })
        })
    }

    fn truncate(&self, file: FileId, len: u64) -> StorageFuture<'_, ()> {
        self.run(false, |disk, _| {
            truncate_vec(&mut disk.tree.file_mut(file)?.current, len)?;
            disk.push_change(file, Change::Truncate { len })
        })
    }

    fn sync_dir<'a>(&'a self, dir: &'a str) -> StorageFuture<'a, ()> {
        self.run(true, |disk, _| {
            let ino = disk.tree.lookup_dir(dir)?;
            if disk.durable_dirs.get(&ino) == disk.tree.entries(ino) {
                return Ok(());
            }
            let entries = disk.tree.entries(ino).cloned().unwrap_or_default();
            let old = disk.durable_dirs.insert(ino, entries).unwrap_or_default();
            // Entries dropped from the durable state may have been the last names of their files
            // (if every old entry is still there, nothing lost a name).
            let new = disk.durable_dirs.get(&ino);
            let lost_a_name = old
                .iter()
                .any(|(name, named)| new.and_then(|new| new.get(name)) != Some(named));
            if lost_a_name {
                disk.collect_garbage();
            }
            Ok(())
        })
    }

    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> StorageFuture<'a, ()> {
        self.run(false, |disk, _| {
            // Only a replaced target loses its name; the moved inode keeps one.
            let replaced = disk.tree.lookup(to).ok();
            let (_, to_dir) = disk.tree.rename(from, to)?;
            if replaced.is_some_and(|ino| !disk.durably_named_at(to_dir, file_name(to), ino)) {
                disk.collect_garbage();
            }
            Ok(())
        })
    }

    fn remove<'a>(&'a self, path: &'a str) -> StorageFuture<'a, ()> {
        self.run(false, |disk, _| {
            let ino = disk.tree.lookup(path)?;
            let dir = disk.tree.remove(path)?;
            if !disk.durably_named_at(dir, file_name(path), ino) {
                disk.collect_garbage();
            }
            Ok(())
        })
    }

    fn remove_dir_all<'a>(&'a self, dir: &'a str) -> StorageFuture<'a, ()> {
        self.run(false, |disk, _| {
            disk.tree.remove_dir_all(dir)?;
            disk.collect_garbage();
            Ok(())
        })
    }

    fn list<'a>(&'a self, dir: &'a str) -> StorageFuture<'a, Vec<String>> {
        self.run(false, |disk, _| disk.tree.list(dir))
    }
}

#[cfg(test)]
mod tests;
