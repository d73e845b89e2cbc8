//! The [`Storage`] contract as executable checks, run against every implementation: the Linux
//! files, the in-memory storage, and the simulator's disk (with its faults turned off).
//!
//! Call [`run_all`] with a directory name that does not exist yet; every check works below it.
//! A broken rule panics with the check's name.

use super::{FileId, Storage, StorageFuture};
use bytes::Bytes;
use std::future::poll_fn;
use std::io::{self, ErrorKind};
use std::task::Poll;

/// Runs every check, each in its own directory below `dir`.
pub async fn run_all(s: &dyn Storage, dir: &str) {
    expect(s.create_dir_all(dir).await, "create the contract directory");
    write_read_len(s, &sub(s, dir, "write_read_len").await).await;
    truncate(s, &sub(s, dir, "truncate").await).await;
    rename(s, &sub(s, dir, "rename").await).await;
    remove(s, &sub(s, dir, "remove").await).await;
    list(s, &sub(s, dir, "list").await).await;
    not_found(s, &sub(s, dir, "not_found").await).await;
    create_dir_all(s, &sub(s, dir, "create_dir_all").await).await;
    invalid_paths(s).await;
    call_order(s, &sub(s, dir, "call_order").await).await;
    many_at_once(s, &sub(s, dir, "many_at_once").await).await;
}

async fn sub(s: &dyn Storage, dir: &str, name: &str) -> String {
    let path = format!("{dir}/{name}");
    expect(s.create_dir_all(&path).await, "create a check directory");
    path
}

#[track_caller]
fn expect<T>(result: io::Result<T>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!(
            "storage contract: {what}: unexpected error {err} ({:?})",
            err.kind()
        ),
    }
}

#[track_caller]
fn expect_err<T: std::fmt::Debug>(result: io::Result<T>, kind: ErrorKind, what: &str) {
    match result {
        Err(err) => assert_eq!(err.kind(), kind, "storage contract: {what}: {err}"),
        Ok(value) => panic!("storage contract: {what}: expected {kind:?}, got Ok({value:?})"),
    }
}

async fn read_all(s: &dyn Storage, file: FileId) -> Vec<u8> {
    let len = expect(s.len(file).await, "len");
    let bytes = expect(
        s.read_at(file, 0, len as usize).await,
        "read the whole file",
    );
    assert_eq!(
        bytes.len() as u64,
        len,
        "storage contract: len and read disagree"
    );
    bytes.to_vec()
}

async fn create_with(s: &dyn Storage, path: &str, data: &'static [u8]) -> FileId {
    let file = expect(s.open(path, true).await, "create a file");
    expect(s.write_at(file, 0, Bytes::from_static(data)).await, "write");
    file
}

async fn write_read_len(s: &dyn Storage, dir: &str) {
    let path = format!("{dir}/f");
    let file = expect(s.open(&path, true).await, "create");
    assert_eq!(expect(s.len(file).await, "len of a new file"), 0);
    expect(
        s.write_at(file, 0, Bytes::from_static(b"hello")).await,
        "write at 0",
    );
    assert_eq!(expect(s.len(file).await, "len after a write"), 5);
    assert_eq!(&expect(s.read_at(file, 0, 5).await, "read")[..], b"hello");
    assert_eq!(
        &expect(s.read_at(file, 1, 3).await, "read inside")[..],
        b"ell"
    );
    // A write past the end zero-fills the gap.
    expect(
        s.write_at(file, 8, Bytes::from_static(b"xy")).await,
        "write past the end",
    );
    assert_eq!(read_all(s, file).await, b"hello\0\0\0xy");
    // Short reads happen only at end of file.
    assert_eq!(
        &expect(s.read_at(file, 7, 100).await, "read across EOF")[..],
        b"\0xy"
    );
    assert!(expect(s.read_at(file, 10, 4).await, "read at EOF").is_empty());
    assert!(expect(s.read_at(file, 1000, 4).await, "read past EOF").is_empty());
    assert!(expect(s.read_at(file, 0, usize::MAX).await, "huge read").len() == 10);
    // Overwrite in place; an empty write changes nothing.
    expect(
        s.write_at(file, 1, Bytes::from_static(b"EL")).await,
        "overwrite",
    );
    expect(s.write_at(file, 3, Bytes::new()).await, "empty write");
    assert_eq!(read_all(s, file).await, b"hELlo\0\0\0xy");
    expect(s.sync_data(file).await, "sync_data");
    expect(s.close(file).await, "close");
    // Reopening sees the same bytes.
    let file = expect(s.open(&path, false).await, "reopen");
    assert_eq!(read_all(s, file).await, b"hELlo\0\0\0xy");
    expect(s.close(file).await, "close again");
}

async fn truncate(s: &dyn Storage, dir: &str) {
    let file = create_with(s, &format!("{dir}/f"), b"0123456789").await;
    expect(s.truncate(file, 4).await, "shrink");
    assert_eq!(read_all(s, file).await, b"0123");
    expect(s.truncate(file, 6).await, "extend");
    assert_eq!(read_all(s, file).await, b"0123\0\0");
    expect(s.truncate(file, 0).await, "empty");
    assert_eq!(expect(s.len(file).await, "len after truncate"), 0);
    expect(s.sync_data(file).await, "sync after truncate");
    expect(s.close(file).await, "close");
}

async fn rename(s: &dyn Storage, dir: &str) {
    let (a, b, c) = (format!("{dir}/a"), format!("{dir}/b"), format!("{dir}/c"));
    let file = create_with(s, &a, b"first").await;
    expect(s.rename(&a, &b).await, "rename to a new name");
    expect_err(
        s.open(&a, false).await,
        ErrorKind::NotFound,
        "open the old name",
    );
    // The handle follows the file, not the name.
    expect(
        s.write_at(file, 5, Bytes::from_static(b"!")).await,
        "write through the old handle",
    );
    let renamed = expect(s.open(&b, false).await, "open the new name");
    assert_eq!(read_all(s, renamed).await, b"first!");
    // Renaming onto an existing file replaces it.
    let other = create_with(s, &c, b"second").await;
    expect(s.rename(&c, &b).await, "rename over an existing file");
    let replaced = expect(s.open(&b, false).await, "open the replaced name");
    assert_eq!(read_all(s, replaced).await, b"second");
    assert_eq!(
        expect(s.list(dir).await, "list after renames"),
        vec!["b".to_owned()]
    );
    expect_err(
        s.rename(&a, &c).await,
        ErrorKind::NotFound,
        "rename a missing file",
    );
    // Directories rename too.
    expect(
        s.create_dir_all(&format!("{dir}/d1/inner")).await,
        "create a directory",
    );
    expect(
        s.rename(&format!("{dir}/d1"), &format!("{dir}/d2")).await,
        "rename a directory",
    );
    assert_eq!(
        expect(s.list(&format!("{dir}/d2")).await, "list it"),
        vec!["inner".to_owned()]
    );
    for f in [file, renamed, other, replaced] {
        expect(s.close(f).await, "close");
    }
    expect(s.sync_dir(dir).await, "sync_dir after renames");
}

async fn remove(s: &dyn Storage, dir: &str) {
    let path = format!("{dir}/f");
    let file = create_with(s, &path, b"data").await;
    expect(s.remove(&path).await, "remove an open file");
    expect_err(
        s.open(&path, false).await,
        ErrorKind::NotFound,
        "open a removed file",
    );
    // An open handle keeps the data until it is closed.
    assert_eq!(read_all(s, file).await, b"data");
    expect(s.close(file).await, "close a removed file");
    expect_err(
        s.remove(&path).await,
        ErrorKind::NotFound,
        "remove a missing file",
    );
    let sub = format!("{dir}/sub");
    expect(
        s.create_dir_all(&format!("{sub}/deeper")).await,
        "create dirs",
    );
    let inner = create_with(s, &format!("{sub}/deeper/f"), b"x").await;
    expect(s.close(inner).await, "close");
    expect_err(
        s.remove(&sub).await,
        ErrorKind::DirectoryNotEmpty,
        "remove a non-empty dir",
    );
    expect(
        s.remove(&format!("{sub}/deeper/f")).await,
        "remove a file in it",
    );
    expect(
        s.remove(&format!("{sub}/deeper")).await,
        "remove an empty dir",
    );
    expect(
        s.create_dir_all(&format!("{sub}/x/y")).await,
        "create dirs again",
    );
    expect(s.remove_dir_all(&sub).await, "remove_dir_all");
    expect_err(
        s.list(&sub).await,
        ErrorKind::NotFound,
        "list a removed dir",
    );
    assert!(expect(s.list(dir).await, "list the parent").is_empty());
    expect(s.sync_dir(dir).await, "sync_dir after removals");
}

async fn list(s: &dyn Storage, dir: &str) {
    for name in ["b", "a", "c10", "c9"] {
        let file = expect(s.open(&format!("{dir}/{name}"), true).await, "create");
        expect(s.close(file).await, "close");
    }
    expect(s.create_dir_all(&format!("{dir}/d")).await, "create a dir");
    let names = expect(s.list(dir).await, "list");
    assert_eq!(
        names,
        ["a", "b", "c10", "c9", "d"],
        "storage contract: list is sorted by name"
    );
    expect_err(
        s.list(&format!("{dir}/a")).await,
        ErrorKind::NotADirectory,
        "list a file",
    );
    expect_err(
        s.list(&format!("{dir}/none")).await,
        ErrorKind::NotFound,
        "list a missing dir",
    );
    assert!(expect(s.list("").await, "list the root")
        .iter()
        .any(|n| !n.is_empty()));
}

async fn not_found(s: &dyn Storage, dir: &str) {
    expect_err(
        s.open(&format!("{dir}/none"), false).await,
        ErrorKind::NotFound,
        "open missing",
    );
    let in_missing_dir = format!("{dir}/no/f");
    expect_err(
        s.open(&in_missing_dir, true).await,
        ErrorKind::NotFound,
        "create in a missing dir",
    );
    expect_err(
        s.sync_dir(&format!("{dir}/no")).await,
        ErrorKind::NotFound,
        "sync a missing dir",
    );
    expect_err(
        s.open(dir, true).await,
        ErrorKind::IsADirectory,
        "open a directory",
    );
    let file = expect(s.open(&format!("{dir}/f"), true).await, "create");
    expect(s.close(file).await, "close");
    expect_err(
        s.len(file).await,
        ErrorKind::InvalidInput,
        "len of a closed handle",
    );
    expect_err(
        s.read_at(file, 0, 1).await,
        ErrorKind::InvalidInput,
        "read a closed handle",
    );
    let write = s.write_at(file, 0, Bytes::from_static(b"x")).await;
    expect_err(write, ErrorKind::InvalidInput, "write a closed handle");
    expect_err(s.close(file).await, ErrorKind::InvalidInput, "close twice");
    let never = FileId(u64::MAX);
    expect_err(
        s.sync_data(never).await,
        ErrorKind::InvalidInput,
        "sync a handle never opened",
    );
    let below_file = format!("{dir}/f/g");
    expect_err(
        s.open(&below_file, true).await,
        ErrorKind::NotADirectory,
        "create below a file",
    );
}

async fn create_dir_all(s: &dyn Storage, dir: &str) {
    let deep = format!("{dir}/a/b/c");
    expect(s.create_dir_all(&deep).await, "create nested dirs");
    expect(s.create_dir_all(&deep).await, "create them again");
    for path in [
        deep.as_str(),
        &format!("{dir}/a/b"),
        &format!("{dir}/a"),
        dir,
        "",
    ] {
        expect(s.sync_dir(path).await, "sync_dir of each level");
    }
    let file = expect(
        s.open(&format!("{deep}/f"), true).await,
        "create a file in it",
    );
    expect(s.close(file).await, "close");
    assert_eq!(
        expect(s.list(&format!("{dir}/a")).await, "list"),
        vec!["b".to_owned()]
    );
}

async fn invalid_paths(s: &dyn Storage) {
    for path in ["/abs", "a/../b", "..", "a//b", "a/", "./a", "a/."] {
        expect_err(
            s.open(path, true).await,
            ErrorKind::InvalidInput,
            "open a bad path",
        );
        expect_err(
            s.create_dir_all(path).await,
            ErrorKind::InvalidInput,
            "mkdir a bad path",
        );
        expect_err(
            s.list(path).await,
            ErrorKind::InvalidInput,
            "list a bad path",
        );
        expect_err(
            s.rename("x", path).await,
            ErrorKind::InvalidInput,
            "rename to a bad path",
        );
        expect_err(
            s.remove(path).await,
            ErrorKind::InvalidInput,
            "remove a bad path",
        );
    }
    expect_err(
        s.remove("").await,
        ErrorKind::InvalidInput,
        "remove the root",
    );
}

/// Contract point 6: effects follow the order of calls, even before anything is awaited.
async fn call_order(s: &dyn Storage, dir: &str) {
    let file = expect(s.open(&format!("{dir}/f"), true).await, "create");
    let first = s.write_at(file, 0, Bytes::from_static(b"aaaa"));
    let second = s.write_at(file, 0, Bytes::from_static(b"bb"));
    let sync = s.sync_data(file);
    let read = s.read_at(file, 0, 10);
    let cut = s.truncate(file, 3);
    let len = s.len(file);
    expect(first.await, "first write");
    expect(second.await, "second write");
    expect(sync.await, "sync");
    assert_eq!(
        &expect(read.await, "read")[..],
        b"bbaa",
        "storage contract: read saw call order"
    );
    expect(cut.await, "truncate");
    assert_eq!(
        expect(len.await, "len"),
        3,
        "storage contract: len after truncate, in call order"
    );
    // Entry operations are ordered among themselves too.
    let (a, b) = (format!("{dir}/a"), format!("{dir}/b"));
    let create = s.open(&a, true);
    let rename = s.rename(&a, &b);
    let open = s.open(&b, false);
    let created = expect(create.await, "create a");
    expect(rename.await, "rename a to b");
    let opened = expect(open.await, "open b");
    for f in [file, created, opened] {
        expect(s.close(f).await, "close");
    }
}

/// Polls every future together and returns their results in order.
async fn join_all<'a, T>(futures: Vec<StorageFuture<'a, T>>) -> Vec<io::Result<T>> {
    let mut slots: Vec<Option<StorageFuture<'a, T>>> = futures.into_iter().map(Some).collect();
    let mut results: Vec<Option<io::Result<T>>> = slots.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (slot, result) in slots.iter_mut().zip(results.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *result = Some(value);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

async fn many_at_once(s: &dyn Storage, dir: &str) {
    const FILES: usize = 8;
    const WRITES: usize = 32;
    let paths: Vec<String> = (0..FILES).map(|i| format!("{dir}/f{i}")).collect();
    let opens = paths.iter().map(|path| s.open(path, true)).collect();
    let files: Vec<FileId> = join_all(opens)
        .await
        .into_iter()
        .map(|r| expect(r, "concurrent open"))
        .collect();
    // Every file gets WRITES 4-byte records, all issued before any is awaited, interleaved
    // across files, with syncs and reads mixed in.
    let mut ops: Vec<StorageFuture<'_, ()>> = Vec::new();
    for w in 0..WRITES {
        for (i, file) in files.iter().enumerate() {
            let record = Bytes::from(vec![i as u8, w as u8, 0xAB, 0xCD]);
            ops.push(s.write_at(*file, (w * 4) as u64, record));
            if w % 8 == 7 {
                ops.push(s.sync_data(*file));
                let read = s.read_at(*file, 0, (w + 1) * 4);
                ops.push(Box::pin(async move {
                    assert_eq!(
                        read.await?.len(),
                        (w + 1) * 4,
                        "storage contract: read after writes"
                    );
                    Ok(())
                }));
            }
        }
    }
    for result in join_all(ops).await {
        expect(result, "concurrent operation");
    }
    for (i, file) in files.iter().enumerate() {
        let data = read_all(s, *file).await;
        assert_eq!(data.len(), WRITES * 4);
        for (w, record) in data.chunks(4).enumerate() {
            assert_eq!(
                record,
                [i as u8, w as u8, 0xAB, 0xCD],
                "storage contract: file {i} record {w}"
            );
        }
    }
    let closes = files.iter().map(|file| s.close(*file)).collect();
    for result in join_all(closes).await {
        expect(result, "concurrent close");
    }
    let names = expect(s.list(dir).await, "list");
    assert_eq!(names.len(), FILES);
}
