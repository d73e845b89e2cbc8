//! The Linux [`Storage`]: plain files under a root directory. This is the only module in gregor
//! that names `std::fs`.
//!
//! Blocking calls run on a small pool of dedicated I/O threads fed by a queue; each operation's
//! result comes back through a `tokio::sync::oneshot`, so the async runtime never blocks (and
//! `spawn_blocking`, which madsim forbids, is not needed).
//!
//! # Ordering
//! Every operation is queued when its method is called, on a *lane*: one lane per open file and
//! one for directory entries. Within a lane, operations that change state (write, truncate, close;
//! create, rename, remove) run alone and in call order; operations that only observe or flush
//! (read, len, fdatasync; list, sync_dir, open without create) may run side by side, but never
//! overtake an earlier state change. So a long fdatasync does not hold up reads, nor work on other
//! files, while a read issued after a write always sees it.
// The one module that names std::fs: the Linux implementation of the Storage trait.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use super::{end_offset, path_components, unknown_file, FileId, Storage, StorageFuture};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use tokio::sync::oneshot;

/// Number of I/O threads per [`FileStorage`]: enough that an fsync does not stall reads.
pub const IO_THREADS: usize = 4;

/// Files under a root directory, served by [`IO_THREADS`] I/O threads that exit on drop.
pub struct FileStorage {
    shared: Arc<Shared>,
    workers: Vec<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for FileStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStorage")
            .field("root", &self.shared.root)
            .finish()
    }
}

struct Shared {
    root: PathBuf,
    files: Mutex<BTreeMap<FileId, Arc<File>>>,
    next_file: AtomicU64,
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// Operations that must stay ordered share a lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Lane {
    Names,
    File(FileId),
}

/// Whether an operation changes what later operations on its lane see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Shared,
    Exclusive,
}

struct Job {
    lane: Lane,
    access: Access,
    work: Box<dyn FnOnce(&Shared) + Send>,
}

#[derive(Debug, Default)]
struct LaneState {
    shared: usize,
    exclusive: bool,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Job>,
    running: BTreeMap<Lane, LaneState>,
    closing: bool,
}

impl Queue {
    /// Takes the first job that may start now, marking its lane busy.
    fn take_runnable(&mut self) -> Option<Job> {
        let mut blocked = BTreeSet::new();
        let mut found = None;
        for (i, job) in self.waiting.iter().enumerate() {
            if blocked.contains(&job.lane) {
                continue;
            }
            let state = self.running.get(&job.lane);
            let runnable = match job.access {
                Access::Exclusive => state.is_none(),
                Access::Shared => state.is_none_or(|state| !state.exclusive),
            };
            if runnable {
                found = Some(i);
                break;
            }
            // Later jobs of this lane must not overtake this one.
            blocked.insert(job.lane);
        }
        let job = self.waiting.remove(found?)?;
        let state = self.running.entry(job.lane).or_default();
        match job.access {
            Access::Exclusive => state.exclusive = true,
            Access::Shared => state.shared += 1,
        }
        Some(job)
    }

    fn finish(&mut self, lane: Lane, access: Access) {
        let Some(state) = self.running.get_mut(&lane) else {
            unreachable!("finished a job on a lane that was not running");
        };
        match access {
            Access::Exclusive => state.exclusive = false,
            Access::Shared => state.shared -= 1,
        }
        if !state.exclusive && state.shared == 0 {
            self.running.remove(&lane);
        }
    }
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Jobs run outside the lock and cannot poison it; recover anyway rather than panic.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn files(&self) -> MutexGuard<'_, BTreeMap<FileId, Arc<File>>> {
        self.files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn file(&self, id: FileId) -> io::Result<Arc<File>> {
        self.files()
            .get(&id)
            .cloned()
            .ok_or_else(|| unknown_file(id))
    }
}

fn worker(shared: Arc<Shared>) {
    loop {
        let job = {
            let mut queue = shared.queue();
            loop {
                if let Some(job) = queue.take_runnable() {
                    break job;
                }
                if queue.closing && queue.waiting.is_empty() {
                    return;
                }
                queue = shared
                    .wake
                    .wait(queue)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        };
        let (lane, access) = (job.lane, job.access);
        // A panicking job drops its reply sender, so its caller sees an error; the lane must
        // still be released or every later job on it would wait forever.
        let _ = catch_unwind(AssertUnwindSafe(|| (job.work)(&shared)));
        shared.queue().finish(lane, access);
        shared.wake.notify_all();
    }
}

impl FileStorage {
    /// Opens storage rooted at `root`, creating the directory if needed, and starts its I/O
    /// threads.
    pub fn open(root: PathBuf) -> io::Result<FileStorage> {
        fs::create_dir_all(&root)?;
        if !fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "storage root is not a directory",
            ));
        }
        let shared = Arc::new(Shared {
            root,
            files: Mutex::new(BTreeMap::new()),
            next_file: AtomicU64::new(1),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let mut storage = FileStorage {
            shared,
            workers: Vec::with_capacity(IO_THREADS),
        };
        for i in 0..IO_THREADS {
            let shared = storage.shared.clone();
            let worker = thread::Builder::new()
                .name(format!("gregor-io-{i}"))
                .spawn(move || worker(shared))?;
            storage.workers.push(worker);
        }
        Ok(storage)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    fn path(&self, path: &str) -> io::Result<PathBuf> {
        let parts = path_components(path)?;
        Ok(parts
            .iter()
            .fold(self.shared.root.clone(), |dir, part| dir.join(part)))
    }

    /// A path that must not be the root (the root cannot be renamed or removed).
    fn entry_path(&self, path: &str) -> io::Result<PathBuf> {
        if path_components(path)?.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the storage root is not an entry",
            ));
        }
        self.path(path)
    }

    /// Queues `op` on `lane`; the returned future resolves with its result.
    fn submit<T: Send + 'static>(
        &self,
        lane: Lane,
        access: Access,
        op: impl FnOnce(&Shared) -> io::Result<T> + Send + 'static,
    ) -> StorageFuture<'static, T> {
        let (reply, result) = oneshot::channel();
        let work = Box::new(move |shared: &Shared| {
            // The caller may have dropped its future; the operation still happened.
            let _ = reply.send(op(shared));
        });
        self.shared
            .queue()
            .waiting
            .push_back(Job { lane, access, work });
        self.shared.wake.notify_one();
        Box::pin(async move {
            result
                .await
                .unwrap_or_else(|_| Err(io::Error::other("storage I/O job failed")))
        })
    }

    /// Queues a directory-entry operation on a checked path.
    fn submit_names<T: Send + 'static>(
        &self,
        access: Access,
        path: io::Result<PathBuf>,
        op: impl FnOnce(&Shared, PathBuf) -> io::Result<T> + Send + 'static,
    ) -> StorageFuture<'static, T> {
        match path {
            Ok(path) => self.submit(Lane::Names, access, move |shared| op(shared, path)),
            Err(err) => Box::pin(std::future::ready(Err(err))),
        }
    }

    /// Queues an operation on an open file.
    fn submit_file<T: Send + 'static>(
        &self,
        id: FileId,
        access: Access,
        op: impl FnOnce(&File) -> io::Result<T> + Send + 'static,
    ) -> StorageFuture<'static, T> {
        self.submit(Lane::File(id), access, move |shared| op(&*shared.file(id)?))
    }
}

impl Drop for FileStorage {
    fn drop(&mut self) {
        self.shared.queue().closing = true;
        self.shared.wake.notify_all();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// Reads up to `len` bytes at `pos`, stopping early only at end of file.
fn read_at(file: &File, pos: u64, len: usize) -> io::Result<Bytes> {
    let available = file.metadata()?.len().saturating_sub(pos);
    // Never allocate more than the file holds, whatever `len` says.
    let want = usize::try_from(available).map_or(len, |available| available.min(len));
    let mut buf = vec![0; want];
    let mut filled = 0;
    while filled < want {
        let n = file.read_at(&mut buf[filled..], end_offset(pos, filled)?)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(Bytes::from(buf))
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = File::open(path)?;
    if !dir.metadata()?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "sync_dir of a file",
        ));
    }
    dir.sync_all()
}

fn list(path: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(path)? {
        let name = entry?.file_name().into_string().map_err(|name| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("non-UTF-8 file name {name:?}"),
            )
        })?;
        names.push(name);
    }
    names.sort();
    Ok(names)
}

fn remove(path: &Path) -> io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() {
        fs::remove_dir(path)
    } else {
        fs::remove_file(path)
    }
}

impl Storage for FileStorage {
    fn create_dir_all<'a>(&'a self, dir: &'a str) -> StorageFuture<'a, ()> {
        self.submit_names(Access::Exclusive, self.path(dir), |_, path| {
            fs::create_dir_all(path)
        })
    }

    fn open<'a>(&'a self, path: &'a str, create: bool) -> StorageFuture<'a, FileId> {
        let access = if create {
            Access::Exclusive
        } else {
            Access::Shared
        };
        self.submit_names(access, self.entry_path(path), move |shared, path| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(create)
                .open(path)?;
            let id = FileId(shared.next_file.fetch_add(1, Ordering::Relaxed));
            shared.files().insert(id, Arc::new(file));
            Ok(id)
        })
    }

    fn close(&self, file: FileId) -> StorageFuture<'_, ()> {
        self.submit(Lane::File(file), Access::Exclusive, move |shared| {
            shared
                .files()
                .remove(&file)
                .map(drop)
                .ok_or_else(|| unknown_file(file))
        })
    }

    fn len(&self, file: FileId) -> StorageFuture<'_, u64> {
        self.submit_file(file, Access::Shared, |file| Ok(file.metadata()?.len()))
    }

    fn read_at(&self, file: FileId, pos: u64, len: usize) -> StorageFuture<'_, Bytes> {
        self.submit_file(file, Access::Shared, move |file| read_at(file, pos, len))
    }

    fn write_at(&self, file: FileId, pos: u64, data: Bytes) -> StorageFuture<'_, ()> {
        if let Err(err) = end_offset(pos, data.len()) {
            return Box::pin(std::future::ready(Err(err)));
        }
        self.submit_file(file, Access::Exclusive, move |file| {
            file.write_all_at(&data, pos)
        })
    }

    fn sync_data(&self, file: FileId) -> StorageFuture<'_, ()> {
        self.submit_file(file, Access::Shared, File::sync_data)
    }

    fn truncate(&self, file: FileId, len: u64) -> StorageFuture<'_, ()> {
        self.submit_file(file, Access::Exclusive, move |file| file.set_len(len))
    }

    fn sync_dir<'a>(&'a self, dir: &'a str) -> StorageFuture<'a, ()> {
        self.submit_names(Access::Shared, self.path(dir), |_, path| sync_dir(&path))
    }

    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> StorageFuture<'a, ()> {
        let paths = self
            .entry_path(from)
            .and_then(|from| Ok((from, self.entry_path(to)?)));
        match paths {
            Ok((from, to)) => self.submit(Lane::Names, Access::Exclusive, move |_| {
                fs::rename(from, to)
            }),
            Err(err) => Box::pin(std::future::ready(Err(err))),
        }
    }

    fn remove<'a>(&'a self, path: &'a str) -> StorageFuture<'a, ()> {
        self.submit_names(Access::Exclusive, self.entry_path(path), |_, path| {
            remove(&path)
        })
    }

    fn remove_dir_all<'a>(&'a self, dir: &'a str) -> StorageFuture<'a, ()> {
        self.submit_names(Access::Exclusive, self.entry_path(dir), |_, path| {
            fs::remove_dir_all(path)
        })
    }

    fn list<'a>(&'a self, dir: &'a str) -> StorageFuture<'a, Vec<String>> {
        self.submit_names(Access::Shared, self.path(dir), |_, path| list(&path))
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;

    fn temp_root(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("gregor-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        root
    }

    #[tokio::test]
    async fn file_storage_meets_the_contract() {
        let root = temp_root("file-storage-contract");
        let storage = FileStorage::open(root.clone()).unwrap();
        super::super::contract::run_all(&storage, "contract").await;
        drop(storage);
        fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test]
    async fn a_handle_survives_dropping_its_storage_future() {
        let root = temp_root("file-storage-drop");
        let storage = FileStorage::open(root.clone()).unwrap();
        let file = storage.open("a", true).await.unwrap();
        // Issued, never awaited: the write still happens before the read queued after it.
        drop(storage.write_at(file, 0, Bytes::from_static(b"kept")));
        assert_eq!(&storage.read_at(file, 0, 10).await.unwrap()[..], b"kept");
        drop(storage);
        assert_eq!(fs::read(root.join("a")).unwrap(), b"kept");
        fs::remove_dir_all(root).unwrap();
    }

    fn job(lane: Lane, access: Access) -> Job {
        Job {
            lane,
            access,
            work: Box::new(|_| {}),
        }
    }

    fn next(queue: &mut Queue) -> Option<(Lane, Access)> {
        queue.take_runnable().map(|job| (job.lane, job.access))
    }

    #[test]
    fn reads_and_syncs_share_a_lane_but_writes_wait() {
        let a = Lane::File(FileId(1));
        let b = Lane::File(FileId(2));
        let mut queue = Queue::default();
        for (lane, access) in [
            (a, Access::Shared),    // fdatasync
            (a, Access::Shared),    // read
            (a, Access::Exclusive), // write: waits for both
            (a, Access::Shared),    // read after the write: must not overtake it
            (b, Access::Exclusive), // another file: free to go
        ] {
            queue.waiting.push_back(job(lane, access));
        }
        assert_eq!(next(&mut queue), Some((a, Access::Shared)));
        assert_eq!(next(&mut queue), Some((a, Access::Shared)));
        assert_eq!(next(&mut queue), Some((b, Access::Exclusive)));
        assert_eq!(next(&mut queue), None);
        queue.finish(a, Access::Shared);
        assert_eq!(next(&mut queue), None, "one reader still runs");
        queue.finish(a, Access::Shared);
        assert_eq!(next(&mut queue), Some((a, Access::Exclusive)));
        assert_eq!(next(&mut queue), None, "the read waits for the write");
        queue.finish(a, Access::Exclusive);
        assert_eq!(next(&mut queue), Some((a, Access::Shared)));
        queue.finish(a, Access::Shared);
        queue.finish(b, Access::Exclusive);
        assert!(queue.running.is_empty());
    }
}
