//! The one interface to disk. Everything gregor persists goes through [`Storage`]; the Linux
//! implementation (`file::FileStorage`) is the only code that names `std::fs`, and the
//! simulator swaps in a disk that loses, tears and corrupts writes.
//!
//! # Contract
//! Paths are relative to the storage root and use `/` as separator (`"topic-0/00000000000000000000.log"`).
//! 1. Bytes written with [`Storage::write_at`] are durable only after [`Storage::sync_data`] on that
//!    file returns `Ok`. Until then a crash may drop them, keep them, or keep a prefix (a torn write).
//! 2. A created, renamed or removed directory entry is durable only after [`Storage::sync_dir`] of its
//!    parent directory returns `Ok`.
//! 3. After a failed `sync_data` the file's unsynced contents are unknown. The caller must not retry
//!    the sync and carry on: it must treat everything after its last durable point as lost and recover
//!    from there (the PostgreSQL fsync lesson of 2018).
//! 4. `read_at` may return fewer bytes than asked only at end of file. Reads may return corrupt bytes
//!    (bit flips); every on-disk format carries checksums for that reason.
//! 5. Implementations never block the async runtime: blocking calls run on an I/O thread.
//! 6. An operation takes its place when the method is called, not when its future is first polled:
//!    operations on one file (and directory-entry operations among themselves) are applied in the
//!    order the methods were called, even when the caller issues several before awaiting any.
//!    Operations on different files may complete in any order. Dropping a future does not cancel an
//!    operation that was already issued.
//! 7. Paths are checked by [`path_components`]: no leading `/`, no empty, `.` or `..` component
//!    (`io::ErrorKind::InvalidInput`). `""` names the root directory.
//! 8. A [`FileId`] that was closed or never opened gives `io::ErrorKind::InvalidInput`. A handle stays
//!    valid when its file is renamed or removed (the data lives until the handle is closed).

pub mod file;
pub mod memory;
pub mod tree;

#[cfg(any(test, feature = "storage-contract"))]
pub mod contract;

pub use file::FileStorage;
pub use memory::MemoryStorage;

use bytes::Bytes;
use std::future::Future;
use std::io;
use std::pin::Pin;

/// A boxed future, so that `Storage` stays object safe (`Arc<dyn Storage>`).
pub type StorageFuture<'a, T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send + 'a>>;

/// An open file. Handles are cheap to copy and stay valid until [`Storage::close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u64);

pub trait Storage: Send + Sync + 'static {
    /// Creates a directory and its parents (entries durable after `sync_dir` of each parent).
    fn create_dir_all<'a>(&'a self, dir: &'a str) -> StorageFuture<'a, ()>;
    /// Opens a file for reading and writing, creating it when `create` is set.
    fn open<'a>(&'a self, path: &'a str, create: bool) -> StorageFuture<'a, FileId>;
    /// Releases a handle. Unsynced data stays pending (closing does not make it durable).
    fn close(&self, file: FileId) -> StorageFuture<'_, ()>;
    /// Current length of the file as seen by reads (including unsynced writes).
    fn len(&self, file: FileId) -> StorageFuture<'_, u64>;
    /// Reads up to `len` bytes at `pos`; shorter only at end of file.
    fn read_at(&self, file: FileId, pos: u64, len: usize) -> StorageFuture<'_, Bytes>;
    /// Writes all of `data` at `pos`, extending the file when needed.
    fn write_at(&self, file: FileId, pos: u64, data: Bytes) -> StorageFuture<'_, ()>;
    /// Makes every write to this file so far durable (fdatasync).
    fn sync_data(&self, file: FileId) -> StorageFuture<'_, ()>;
    /// Cuts the file to `len` bytes (durable after `sync_data`).
    fn truncate(&self, file: FileId, len: u64) -> StorageFuture<'_, ()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir<'a>(&'a self, dir: &'a str) -> StorageFuture<'a, ()>;
    /// Atomically renames a file or directory, replacing an existing file at `to` (durable after
    /// `sync_dir` of both parents).
    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> StorageFuture<'a, ()>;
    /// Removes a file or an empty directory (durable after `sync_dir` of the parent).
    fn remove<'a>(&'a self, path: &'a str) -> StorageFuture<'a, ()>;
    /// Removes a directory and everything below it (durable after `sync_dir` of the parent).
    fn remove_dir_all<'a>(&'a self, dir: &'a str) -> StorageFuture<'a, ()>;
    /// Names (not paths) of the entries in a directory, sorted. A missing directory is `NotFound`.
    fn list<'a>(&'a self, dir: &'a str) -> StorageFuture<'a, Vec<String>>;
}

/// Parent directory of a storage path (`""` for the root).
pub fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

/// Checks a storage path and splits it into its components (`""` is the root, no components).
pub fn path_components(path: &str) -> io::Result<Vec<&str>> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts {
        if part.is_empty() || *part == "." || *part == ".." || part.contains('\0') {
            return Err(invalid_path(path));
        }
    }
    Ok(parts)
}

fn invalid_path(path: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "invalid storage path {path:?}: use relative '/'-separated names without '.' or '..'"
        ),
    )
}

/// The error every implementation returns for a handle that is not open.
pub fn unknown_file(file: FileId) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("file handle {} is not open", file.0),
    )
}

/// `pos + len` as a file offset, or `InvalidInput` when it overflows.
pub fn end_offset(pos: u64, len: usize) -> io::Result<u64> {
    u64::try_from(len)
        .ok()
        .and_then(|len| pos.checked_add(len))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "file offset overflows u64"))
}
