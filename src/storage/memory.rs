//! A fault-free, in-memory [`Storage`] for unit tests of the log and the broker. Every write is
//! durable at once and nothing is ever lost; use the simulator's disk to test crash recovery.

use super::tree::Tree;
use super::{end_offset, FileId, Storage, StorageFuture};
use bytes::Bytes;
use std::future::ready;
use std::io;
use std::sync::{Mutex, MutexGuard};

/// Largest file the in-memory implementations accept, so a wild offset cannot exhaust memory.
pub const MAX_FILE_BYTES: u64 = 1 << 32;

/// In-memory storage. Operations take effect when called, so the order of calls is the order of
/// effects (contract point 6).
#[derive(Debug, Default)]
pub struct MemoryStorage {
    tree: Mutex<Tree<Vec<u8>>>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    fn tree(&self) -> MutexGuard<'_, Tree<Vec<u8>>> {
        // A panic while holding the lock cannot leave the tree half-changed in a way later calls
        // would misread (every change is a single insert/remove), so poisoning is ignored.
        self.tree
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn done<'a, T: Send + 'a>(result: io::Result<T>) -> StorageFuture<'a, T> {
        Box::pin(ready(result))
    }
}

/// Reads up to `len` bytes at `pos` from `data` (short at end of file).
pub fn read_slice(data: &[u8], pos: u64, len: usize) -> Bytes {
    let start = usize::try_from(pos).unwrap_or(usize::MAX).min(data.len());
    let end = start.saturating_add(len).min(data.len());
    Bytes::copy_from_slice(&data[start..end])
}

/// Writes `bytes` at `pos` into `data`, zero-filling any gap; refuses files over [`MAX_FILE_BYTES`].
pub fn write_slice(data: &mut Vec<u8>, pos: u64, bytes: &[u8]) -> io::Result<()> {
    let end = end_offset(pos, bytes.len())?;
    if end > MAX_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            "in-memory file limit reached",
        ));
    }
    // Both fit in usize: they are at most MAX_FILE_BYTES.
    let (start, end) = (pos as usize, end as usize);
    if data.len() < end {
        data.resize(end, 0);
    }
    data[start..end].copy_from_slice(bytes);
    Ok(())
}

/// Cuts or zero-extends `data` to `len` bytes.
pub fn truncate_vec(data: &mut Vec<u8>, len: u64) -> io::Result<()> {
    if len > MAX_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            "in-memory file limit reached",
        ));
    }
    data.resize(len as usize, 0);
    Ok(())
}

impl Storage for MemoryStorage {
    fn create_dir_all<'a>(&'a self, dir: &'a str) -> StorageFuture<'a, ()> {
        Self::done(self.tree().create_dir_all(dir).map(|_| ()))
    }

    fn open<'a>(&'a self, path: &'a str, create: bool) -> StorageFuture<'a, FileId> {
        Self::done(
            self.tree()
                .open(path, create, Vec::new)
                .map(|(file, _)| file),
        )
    }

    fn close(&self, file: FileId) -> StorageFuture<'_, ()> {
        let mut tree = self.tree();
        let result = tree.close(file);
        tree.collect_garbage(|_| Vec::new());
        Self::done(result)
    }

    fn len(&self, file: FileId) -> StorageFuture<'_, u64> {
        Self::done(self.tree().file(file).map(|data| data.len() as u64))
    }

    fn read_at(&self, file: FileId, pos: u64, len: usize) -> StorageFuture<'_, Bytes> {
        Self::done(
            self.tree()
                .file(file)
                .map(|data| read_slice(data, pos, len)),
        )
    }

    fn write_at(&self, file: FileId, pos: u64, data: Bytes) -> StorageFuture<'_, ()> {
        Self::done(
            self.tree()
                .file_mut(file)
                .and_then(|file| write_slice(file, pos, &data)),
        )
    }

    fn sync_data(&self, file: FileId) -> StorageFuture<'_, ()> {
        Self::done(self.tree().file(file).map(|_| ()))
    }

    fn truncate(&self, file: FileId, len: u64) -> StorageFuture<'_, ()> {
        Self::done(
            self.tree()
                .file_mut(file)
                .and_then(|data| truncate_vec(data, len)),
        )
    }

    fn sync_dir<'a>(&'a self, dir: &'a str) -> StorageFuture<'a, ()> {
        Self::done(self.tree().lookup_dir(dir).map(|_| ()))
    }

    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> StorageFuture<'a, ()> {
        let mut tree = self.tree();
        let result = tree.rename(from, to).map(|_| ());
        tree.collect_garbage(|_| Vec::new());
        Self::done(result)
    }

    fn remove<'a>(&'a self, path: &'a str) -> StorageFuture<'a, ()> {
        let mut tree = self.tree();
        let result = tree.remove(path).map(|_| ());
        tree.collect_garbage(|_| Vec::new());
        Self::done(result)
    }

    fn remove_dir_all<'a>(&'a self, dir: &'a str) -> StorageFuture<'a, ()> {
        let mut tree = self.tree();
        let result = tree.remove_dir_all(dir).map(|_| ());
        tree.collect_garbage(|_| Vec::new());
        Self::done(result)
    }

    fn list<'a>(&'a self, dir: &'a str) -> StorageFuture<'a, Vec<String>> {
        Self::done(self.tree().list(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_storage_meets_the_contract() {
        super::super::contract::run_all(&MemoryStorage::new(), "contract").await;
    }

    #[test]
    fn wild_offsets_are_refused_not_allocated() {
        let mut data = Vec::new();
        let err = write_slice(&mut data, u64::MAX - 1, b"abc").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = write_slice(&mut data, MAX_FILE_BYTES, b"a").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        assert!(data.is_empty());
        assert_eq!(read_slice(b"abc", u64::MAX, usize::MAX), Bytes::new());
    }
}
