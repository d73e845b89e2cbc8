//! Carries out the partition log's storage work and reads it back at start-up. The decisions
//! (what to write, what is valid, where to cut) come from `core::log`; this module only moves
//! bytes through the `Storage` trait.

use crate::config::LogConfig;
use crate::core::buggify::Buggify;
use crate::core::log::recovery::{choose_snapshots, scan_segment, sealed_segment, ScannedSegment};
use crate::core::log::{FileKind, LogFile, LogOp, PartitionLog, ReadPlan};
use crate::storage::{FileId, Storage};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

mod owner;

/// Open file handles of one partition directory.
pub struct LogFiles {
    storage: Arc<dyn Storage>,
    dir: String,
    open: BTreeMap<LogFile, FileId>,
    /// The directory is known to exist durably.
    dir_ready: bool,
    buggify: Buggify,
}

impl LogFiles {
    pub fn new(storage: Arc<dyn Storage>, dir: String) -> LogFiles {
        LogFiles {
            storage,
            dir,
            open: BTreeMap::new(),
            dir_ready: false,
            buggify: Buggify::disabled(),
        }
    }

    /// Takes unusual but legal paths in simulation (see `core::buggify`).
    pub fn with_buggify(mut self, buggify: Buggify) -> LogFiles {
        self.buggify = buggify;
        self
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    fn path(&self, file: LogFile) -> String {
        let name = file.name();
        let mut path = String::with_capacity(self.dir.len() + 1 + name.len());
        path.push_str(&self.dir);
        path.push('/');
        path.push_str(&name);
        path
    }

    async fn handle(&mut self, file: LogFile, create: bool) -> io::Result<FileId> {
        if let Some(id) = self.open.get(&file) {
            return Ok(*id);
        }
        let id = self.storage.open(&self.path(file), create).await?;
        self.open.insert(file, id);
        Ok(id)
    }

    /// Executes ops in order. Stops at the first error: the caller must then treat the log's
    /// unsynced tail as lost and recover (storage contract rule 3).
    pub async fn execute(&mut self, ops: &[LogOp]) -> io::Result<()> {
        for op in ops {
            self.execute_one(op).await?;
        }
        Ok(())
    }

    async fn execute_one(&mut self, op: &LogOp) -> io::Result<()> {
        match op {
            LogOp::CreateSegment { base_offset } => {
                self.ensure_dir().await?;
                for kind in [FileKind::Log, FileKind::Index, FileKind::TimeIndex] {
                    self.handle(
                        LogFile {
                            base_offset: *base_offset,
                            kind,
                        },
                        true,
                    )
                    .await?;
                }
                self.storage.sync_dir(&self.dir).await
            }
            LogOp::WritePartitionMetadata { topic_id } => self.write_owner(*topic_id).await,
            LogOp::Write { file, pos, data } => {
                let id = self.handle(*file, true).await?;
                self.storage.write_at(id, *pos, data.clone()).await
            }
            LogOp::Truncate { file, len } => {
                let id = self.handle(*file, true).await?;
                self.storage.truncate(id, *len).await
            }
            LogOp::Sync { base_offset } => {
                for kind in [FileKind::Index, FileKind::TimeIndex, FileKind::Log] {
                    let id = self
                        .handle(
                            LogFile {
                                base_offset: *base_offset,
                                kind,
                            },
                            true,
                        )
                        .await?;
                    self.storage.sync_data(id).await?;
                }
                Ok(())
            }
            LogOp::SyncLog { base_offset } => {
                let log = LogFile {
                    base_offset: *base_offset,
                    kind: FileKind::Log,
                };
                let id = self.handle(log, true).await?;
                self.storage.sync_data(id).await
            }
            LogOp::DeleteSegment { base_offset } => {
                for kind in [FileKind::Log, FileKind::Index, FileKind::TimeIndex] {
                    let file = LogFile {
                        base_offset: *base_offset,
                        kind,
                    };
                    if let Some(id) = self.open.remove(&file) {
                        self.storage.close(id).await?;
                    }
                    self.remove_if_present(&self.path(file)).await?;
                }
                self.storage.sync_dir(&self.dir).await
            }
            LogOp::WriteSnapshot { offset, data } => {
                let path = self.snapshot_path(*offset);
                let tmp = format!("{path}{TMP_SUFFIX}");
                let id = self.storage.open(&tmp, true).await?;
                let written = async {
                    self.storage.truncate(id, 0).await?;
                    self.storage.write_at(id, 0, data.clone()).await?;
                    self.storage.sync_data(id).await
                }
                .await;
                let closed = self.storage.close(id).await;
                written.and(closed)?;
                self.storage.rename(&tmp, &path).await?;
                self.storage.sync_dir(&self.dir).await
            }
            LogOp::DeleteSnapshots { offsets } => {
                for offset in offsets {
                    self.remove_if_present(&self.snapshot_path(*offset)).await?;
                }
                self.storage.sync_dir(&self.dir).await
            }
        }
    }

    fn snapshot_path(&self, offset: i64) -> String {
        format!("{}/{}", self.dir, LogFile::snapshot_name(offset))
    }

    async fn remove_if_present(&self, path: &str) -> io::Result<()> {
        match self.storage.remove(path).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Reads a whole producer state snapshot file (`NotFound` when it is absent).
    pub async fn read_snapshot(&mut self, offset: i64) -> io::Result<Bytes> {
        self.read_file(&self.snapshot_path(offset)).await
    }

    /// Reads a whole small file that is not a segment file: opened, read, closed.
    async fn read_file(&self, path: &str) -> io::Result<Bytes> {
        let id = self.storage.open(path, false).await?;
        let data = async {
            let len = self.storage.len(id).await?;
            self.storage
                .read_at(id, 0, usize::try_from(len).unwrap_or(usize::MAX))
                .await
        }
        .await;
        let _ = self.storage.close(id).await;
        data
    }

    /// Creates the log's directory (a new partition) and makes its entry durable.
    async fn ensure_dir(&mut self) -> io::Result<()> {
        if !self.dir_ready {
            self.storage.create_dir_all(&self.dir).await?;
            self.storage
                .sync_dir(crate::storage::parent(&self.dir))
                .await?;
            self.dir_ready = true;
        }
        Ok(())
    }

    /// Reads the range a `PartitionLog::read` planned.
    pub async fn read(&mut self, plan: &ReadPlan) -> io::Result<Bytes> {
        let len = usize::try_from(plan.len).unwrap_or(usize::MAX);
        let id = self.handle(plan.file, false).await?;
        self.read_at(id, plan.position, len).await
    }

    /// Up to `len` bytes at `pos` (shorter only at end of file).
    async fn read_at(&self, id: FileId, pos: u64, len: usize) -> io::Result<Bytes> {
        // Buggify: read the range in several short reads and join them (each read sees the file
        // as it is then; one that comes back short is the end of the file).
        if len > 1 && self.buggify.fire("log-io-short-reads", 0.3) {
            return self.read_in_pieces(id, pos, len).await;
        }
        self.storage.read_at(id, pos, len).await
    }

    async fn read_in_pieces(&self, id: FileId, pos: u64, len: usize) -> io::Result<Bytes> {
        let mut out = bytes::BytesMut::new();
        while out.len() < len {
            let left = len - out.len();
            let piece = 1 + usize::try_from(self.buggify.pick(left as u64)).unwrap_or(0);
            let got = self
                .storage
                .read_at(id, pos.saturating_add(out.len() as u64), piece)
                .await?;
            out.extend_from_slice(&got);
            if got.len() < piece {
                break;
            }
        }
        Ok(out.freeze())
    }

    pub async fn close_all(&mut self) {
        for (_, id) in std::mem::take(&mut self.open) {
            let _ = self.storage.close(id).await;
        }
    }

    async fn read_whole(&mut self, file: LogFile) -> io::Result<Bytes> {
        let id = self.handle(file, true).await?;
        let len = self.storage.len(id).await?;
        self.read_at(id, 0, usize::try_from(len).unwrap_or(usize::MAX))
            .await
    }

    /// Reads a whole segment's `.log` file.
    pub async fn read_segment(&mut self, base_offset: i64, size: u64) -> io::Result<Bytes> {
        let file = LogFile {
            base_offset,
            kind: FileKind::Log,
        };
        let id = self.handle(file, false).await?;
        self.read_at(id, 0, usize::try_from(size).unwrap_or(usize::MAX))
            .await
    }

    /// Reads a whole index file until two reads agree (at most [`INDEX_READS`] reads). An index
    /// carries no checksum, and a sealed segment's index is kept in memory once read: a transient
    /// read error (a flipped bit in a position) would misplace every fetch in that stretch of the
    /// log until the next restart.
    async fn read_index(&mut self, file: LogFile) -> io::Result<Bytes> {
        let mut last = self.read_whole(file).await?;
        for _ in 1..INDEX_READS {
            let again = self.read_whole(file).await?;
            if again == last {
                break;
            }
            last = again;
        }
        Ok(last)
    }

    /// Reads and scans a segment's `.log` file. When the scan would cut a tail, the file is read
    /// and scanned again (up to [`RESCANS`] times) and the longest valid prefix wins: a torn or
    /// corrupt tail is cut at the same place on every read, while a transient read error (a
    /// flipped bit on the way from the disk) is not, and cutting there would destroy durable,
    /// acknowledged records for good.
    async fn scan_log_file(
        &mut self,
        file: LogFile,
        index_interval_bytes: u32,
        now_ms: i64,
    ) -> io::Result<(Bytes, ScannedSegment)> {
        let mut data = self.read_whole(file).await?;
        let mut scanned = scan_segment(file.base_offset, &data, index_interval_bytes, now_ms);
        for _ in 0..RESCANS {
            if scanned.truncated_bytes == 0 {
                break;
            }
            let again = self.read_whole(file).await?;
            let rescanned = scan_segment(file.base_offset, &again, index_interval_bytes, now_ms);
            if rescanned.valid_len > scanned.valid_len {
                (data, scanned) = (again, rescanned);
            }
        }
        Ok((data, scanned))
    }

    /// Opens the partition log in this directory, creating it if absent. Sealed segments are
    /// loaded from their indexes (scanned if those are damaged); the last segment is always
    /// scanned, its torn or corrupt tail cut, and its indexes rewritten.
    pub async fn open_log(&mut self, config: LogConfig, now_ms: i64) -> io::Result<Opened> {
        let names = match self.storage.list(&self.dir).await {
            Ok(names) => names,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.ensure_dir().await?;
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        self.dir_ready = true;
        let bases: Vec<i64> = names
            .iter()
            .filter_map(|n| LogFile::parse_log_name(n))
            .collect();
        if bases.is_empty() {
            let (mut log, op) = PartitionLog::create(config, now_ms);
            self.execute_one(&op).await?;
            let snapshots = self.sort_out_snapshots(&names, &log).await?;
            log.set_snapshots(snapshots);
            return Ok(Opened {
                log,
                truncated_bytes: 0,
                tail: Bytes::new(),
                snapshots: Vec::new(),
            });
        }
        let mut segments = Vec::with_capacity(bases.len());
        let mut truncated = 0;
        let mut tail = Bytes::new();
        for (i, &base) in bases.iter().enumerate() {
            let log_file = LogFile {
                base_offset: base,
                kind: FileKind::Log,
            };
            let next_base = bases.get(i + 1).copied();
            if let Some(next_base) = next_base {
                let id = self.handle(log_file, false).await?;
                let size = self.storage.len(id).await?;
                let oi = self
                    .read_index(LogFile {
                        base_offset: base,
                        kind: FileKind::Index,
                    })
                    .await?;
                let ti = self
                    .read_index(LogFile {
                        base_offset: base,
                        kind: FileKind::TimeIndex,
                    })
                    .await?;
                // Buggify: distrust good indexes and scan the sealed segment, as after damage.
                let rescan = self.buggify.fire("recovery-scan-sealed", 0.2);
                if let Some(seg) = sealed_segment(base, next_base, size, &oi, &ti, now_ms) {
                    if !rescan {
                        segments.push(seg);
                        continue;
                    }
                }
            }
            let (data, scanned) = self
                .scan_log_file(log_file, config.index_interval_bytes, now_ms)
                .await?;
            truncated += scanned.truncated_bytes;
            let ops = rewrite_segment_files(&scanned.segment, scanned.valid_len);
            self.execute(&ops).await?;
            tail = data.slice(..scanned.valid_len as usize);
            segments.push(scanned.segment);
        }
        let start = segments.first().map_or(0, |s| s.base_offset);
        let mut log = PartitionLog::from_segments(config, segments, start, now_ms);
        let snapshots = self.sort_out_snapshots(&names, &log).await?;
        log.set_snapshots(snapshots.iter().copied());
        Ok(Opened {
            log,
            truncated_bytes: truncated,
            tail,
            snapshots,
        })
    }

    /// Removes leftover temporary snapshot files and the snapshots the recovered log makes
    /// stale (durably: a snapshot beyond a cut tail must not survive to describe offsets new
    /// batches will take). Returns the candidates, newest first.
    async fn sort_out_snapshots(
        &mut self,
        names: &[String],
        log: &PartitionLog,
    ) -> io::Result<Vec<i64>> {
        let offsets: Vec<i64> = names
            .iter()
            .filter_map(|n| LogFile::parse_snapshot_name(n))
            .collect();
        let first = log.segments().first().map_or(0, |s| s.base_offset);
        let choice = choose_snapshots(&offsets, first, log.log_end_offset());
        let mut removed = false;
        for name in names.iter().filter(|n| n.ends_with(TMP_SUFFIX)) {
            self.remove_if_present(&format!("{}/{name}", self.dir))
                .await?;
            removed = true;
        }
        if !choice.stale.is_empty() {
            tracing::info!(dir = %self.dir, stale = ?choice.stale, "removing stale producer snapshots");
            let op = LogOp::DeleteSnapshots {
                offsets: choice.stale,
            };
            self.execute_one(&op).await?;
        } else if removed {
            self.storage.sync_dir(&self.dir).await?;
        }
        Ok(choice.candidates)
    }
}

/// Suffix of a snapshot being written; renamed into place once synced.
const TMP_SUFFIX: &str = ".tmp";
/// Extra reads of a segment whose scan would cut a tail, before the cut is believed.
const RESCANS: usize = 3;
/// Most reads of an index file while waiting for two that agree.
const INDEX_READS: usize = 5;

/// A recovered log, how much of a torn tail was cut, the valid bytes of its last segment and the
/// producer snapshots within it, newest first (to rebuild producer state from).
pub struct Opened {
    pub log: PartitionLog,
    pub truncated_bytes: u64,
    pub tail: Bytes,
    pub snapshots: Vec<i64>,
}

/// Ops that make a scanned segment's files match its image: cut the log's tail, rewrite both
/// indexes, and sync.
fn rewrite_segment_files(seg: &crate::core::log::Segment, valid_len: u64) -> Vec<LogOp> {
    let file = |kind| LogFile {
        base_offset: seg.base_offset,
        kind,
    };
    let offsets: Vec<u8> = seg.index.offsets.iter().flat_map(|e| e.encode()).collect();
    let times: Vec<u8> = seg.index.times.iter().flat_map(|e| e.encode()).collect();
    vec![
        LogOp::Truncate {
            file: file(FileKind::Log),
            len: valid_len,
        },
        LogOp::Truncate {
            file: file(FileKind::Index),
            len: 0,
        },
        LogOp::Write {
            file: file(FileKind::Index),
            pos: 0,
            data: offsets.into(),
        },
        LogOp::Truncate {
            file: file(FileKind::TimeIndex),
            len: 0,
        },
        LogOp::Write {
            file: file(FileKind::TimeIndex),
            pos: 0,
            data: times.into(),
        },
        LogOp::Sync {
            base_offset: seg.base_offset,
        },
    ]
}

#[cfg(test)]
pub(crate) mod tests;
