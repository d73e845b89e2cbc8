//! Recovery through `LogFiles` over a storage whose reads may come back damaged once: a transient
//! read error must never cost durable records or leave a wrong index in memory.

use super::*;
use crate::core::log::Segment;
use crate::protocol::records::builder::BatchBuilder;
use crate::protocol::records::compression::Compression;
use crate::storage::memory::MemoryStorage;
use crate::storage::StorageFuture;
use bytes::BytesMut;
use std::sync::Mutex;

/// `MemoryStorage` whose next reads of chosen files flip one bit of the returned bytes (the
/// stored bytes stay intact, as with a faulty cable or controller).
#[derive(Default)]
pub(crate) struct FlakyReads {
    inner: MemoryStorage,
    paths: Mutex<BTreeMap<FileId, String>>,
    /// Path -> (reads still to damage, byte to flip).
    flips: Mutex<BTreeMap<String, (usize, usize)>>,
}

impl FlakyReads {
    pub(crate) fn damage_next_reads(&self, path: &str, reads: usize, byte: usize) {
        self.flips
            .lock()
            .unwrap()
            .insert(path.to_owned(), (reads, byte));
    }

    pub(crate) fn damages_left(&self, path: &str) -> usize {
        self.flips.lock().unwrap().get(path).map_or(0, |f| f.0)
    }
}

impl Storage for FlakyReads {
    fn create_dir_all<'a>(&'a self, dir: &'a str) -> StorageFuture<'a, ()> {
        self.inner.create_dir_all(dir)
    }
    fn open<'a>(&'a self, path: &'a str, create: bool) -> StorageFuture<'a, FileId> {
        Box::pin(async move {
            let id = self.inner.open(path, create).await?;
            self.paths.lock().unwrap().insert(id, path.to_owned());
            Ok(id)
        })
    }
    fn close(&self, file: FileId) -> StorageFuture<'_, ()> {
        self.inner.close(file)
    }
    fn len(&self, file: FileId) -> StorageFuture<'_, u64> {
        self.inner.len(file)
    }
    fn read_at(&self, file: FileId, pos: u64, len: usize) -> StorageFuture<'_, Bytes> {
        Box::pin(async move {
            let data = self.inner.read_at(file, pos, len).await?;
            let path = self.paths.lock().unwrap().get(&file).cloned();
            let mut flips = self.flips.lock().unwrap();
            match path.and_then(|p| flips.get_mut(&p)) {
                Some((left, byte)) if *left > 0 && *byte < data.len() => {
                    *left -= 1;
                    let mut damaged = data.to_vec();
                    damaged[*byte] ^= 0x08;
                    Ok(Bytes::from(damaged))
                }
                _ => Ok(data),
            }
        })
    }
    fn write_at(&self, file: FileId, pos: u64, data: Bytes) -> StorageFuture<'_, ()> {
        self.inner.write_at(file, pos, data)
    }
    fn sync_data(&self, file: FileId) -> StorageFuture<'_, ()> {
        self.inner.sync_data(file)
    }
    fn truncate(&self, file: FileId, len: u64) -> StorageFuture<'_, ()> {
        self.inner.truncate(file, len)
    }
    fn sync_dir<'a>(&'a self, dir: &'a str) -> StorageFuture<'a, ()> {
        self.inner.sync_dir(dir)
    }
    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> StorageFuture<'a, ()> {
        self.inner.rename(from, to)
    }
    fn remove<'a>(&'a self, path: &'a str) -> StorageFuture<'a, ()> {
        self.inner.remove(path)
    }
    fn remove_dir_all<'a>(&'a self, dir: &'a str) -> StorageFuture<'a, ()> {
        self.inner.remove_dir_all(dir)
    }
    fn list<'a>(&'a self, dir: &'a str) -> StorageFuture<'a, Vec<String>> {
        self.inner.list(dir)
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1000,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

fn batch(i: usize) -> BytesMut {
    let mut b = BatchBuilder::new(Compression::None);
    for r in 0..3 {
        b.push(
            1000,
            None,
            Some(Bytes::from(format!("record-{i}-{r}"))),
            vec![],
        )
        .unwrap();
    }
    BytesMut::from(b.build().unwrap().as_ref())
}

/// A log of two or more segments written and synced through `LogFiles`; returns its segments.
async fn write_log(storage: &Arc<FlakyReads>) -> Vec<Segment> {
    let mut files = LogFiles::new(storage.clone(), "t-0".to_owned());
    let mut log = files.open_log(config(), 0).await.unwrap().log;
    for i in 0..30 {
        let appended = log.append(batch(i), 0, 0).unwrap();
        files.execute(&appended.ops).await.unwrap();
        let (sync, _) = log.flush(0);
        files.execute(&[sync]).await.unwrap();
    }
    files.close_all().await;
    assert!(log.segments().len() > 2, "the test needs sealed segments");
    log.segments().to_vec()
}

async fn reopen(storage: &Arc<FlakyReads>) -> Opened {
    let mut files = LogFiles::new(storage.clone(), "t-0".to_owned());
    let opened = files.open_log(config(), 0).await.unwrap();
    files.close_all().await;
    opened
}

fn file_path(seg: &Segment, kind: FileKind) -> String {
    format!("t-0/{}", seg.file(kind).name())
}

#[tokio::test]
async fn a_damaged_read_of_the_last_segment_cuts_nothing() {
    let storage = Arc::new(FlakyReads::default());
    let written = write_log(&storage).await;
    let last = written.last().unwrap();
    let path = file_path(last, FileKind::Log);
    storage.damage_next_reads(&path, 1, (last.size / 2) as usize);
    let opened = reopen(&storage).await;
    assert_eq!(storage.damages_left(&path), 0, "the damaged read happened");
    assert_eq!(opened.truncated_bytes, 0);
    assert_eq!(opened.log.log_end_offset(), last.next_offset);
    // The file was not cut either: a second recovery sees the same log.
    assert_eq!(
        reopen(&storage).await.log.log_end_offset(),
        last.next_offset
    );
}

#[tokio::test]
async fn a_damaged_read_of_a_sealed_index_is_not_believed() {
    let storage = Arc::new(FlakyReads::default());
    let written = write_log(&storage).await;
    let sealed = &written[0];
    assert!(sealed.index.offsets.len() > 1);
    // The second entry's position, low byte: still increasing and inside the segment, so the
    // index would parse and every fetch in that stretch would start in the middle of a batch.
    let path = file_path(sealed, FileKind::Index);
    storage.damage_next_reads(&path, 1, 15);
    let opened = reopen(&storage).await;
    assert_eq!(storage.damages_left(&path), 0, "the damaged read happened");
    assert_eq!(opened.log.segments()[0].index, sealed.index);
}

#[tokio::test]
async fn a_tail_that_stays_bad_is_cut() {
    let storage = Arc::new(FlakyReads::default());
    let written = write_log(&storage).await;
    let last = written.last().unwrap();
    let path = file_path(last, FileKind::Log);
    // Damaged on every read: it is on the disk, not on the way.
    storage.damage_next_reads(&path, usize::MAX, (last.size - 1) as usize);
    let opened = reopen(&storage).await;
    assert!(opened.truncated_bytes > 0);
    assert!(opened.log.log_end_offset() < last.next_offset);
}

/// A directory whose `partition.metadata` names another topic id (an earlier topic of the same
/// name whose removal a crash undid) is removed before recovery; its own topic keeps its log.
#[tokio::test]
async fn a_directory_of_an_earlier_topic_with_the_name_is_removed() {
    use crate::protocol::primitives::Uuid;
    let storage = Arc::new(FlakyReads::default());
    let (old, new) = (Uuid([1; 16]), Uuid([2; 16]));
    LogFiles::new(storage.clone(), "t-0".to_owned())
        .write_owner(old)
        .await
        .unwrap();
    let segments = write_log(&storage).await;

    // The owner finds its log as it was.
    let mut files = LogFiles::new(storage.clone(), "t-0".to_owned());
    files.claim(old).await.unwrap();
    let kept = files.open_log(config(), 0).await.unwrap();
    files.close_all().await;
    assert_eq!(kept.log.segments().len(), segments.len());
    assert!(kept.log.log_end_offset() > 0);

    // The new topic of the same name starts empty and owns the directory from now on.
    let mut files = LogFiles::new(storage.clone(), "t-0".to_owned());
    files.claim(new).await.unwrap();
    let fresh = files.open_log(config(), 0).await.unwrap();
    files.close_all().await;
    assert_eq!(fresh.log.log_end_offset(), 0);
    let names = storage.list("t-0").await.unwrap();
    assert!(
        names.contains(&"partition.metadata".to_owned()),
        "{names:?}"
    );
    let mut files = LogFiles::new(storage.clone(), "t-0".to_owned());
    assert_eq!(
        files.read_owner().await.unwrap(),
        owner::Owner::Topic(new.to_base64url())
    );
}
