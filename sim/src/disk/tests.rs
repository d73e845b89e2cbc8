//! SimDisk under a real madsim runtime (one fresh runtime and thread per case, as the runner).

use super::*;
use crate::runner::in_fresh_runtime;
use madsim::runtime::Handle;

/// Options with every random choice pinned, so each test states the fate it expects.
fn pinned(keep_writes: bool, keep_dirs: bool) -> DiskOptions {
    DiskOptions {
        crash_write_keep_probability: if keep_writes { 1.0 } else { 0.0 },
        crash_dir_keep_probability: if keep_dirs { 1.0 } else { 0.0 },
        ..DiskOptions::faultless()
    }
}

/// A node to crash, its storage (driven from the supervisor task), and the disk.
fn node(options: DiskOptions) -> (NodeId, SimStorage, Arc<SimDisk>) {
    let disk = plugin::simulator::<SimDisk>();
    disk.set_options(options);
    let id = Handle::current()
        .create_node()
        .name("disk-test")
        .build()
        .id();
    (id, SimStorage::new(id, disk.clone()), disk)
}

fn kill(id: NodeId) {
    Handle::current().kill(id);
}

async fn contents(storage: &SimStorage, path: &str) -> io::Result<Vec<u8>> {
    let file = storage.open(path, false).await?;
    let len = storage.len(file).await?;
    let data = storage.read_at(file, 0, len as usize).await?;
    storage.close(file).await?;
    Ok(data.to_vec())
}

/// Creates `path` with `data`, with the directory entry made durable.
async fn durable_file(storage: &SimStorage, path: &str, data: &'static [u8]) -> FileId {
    let file = storage.open(path, true).await.unwrap();
    storage
        .write_at(file, 0, Bytes::from_static(data))
        .await
        .unwrap();
    storage.sync_data(file).await.unwrap();
    storage.sync_dir("").await.unwrap();
    file
}

#[test]
fn unsynced_writes_are_lost_and_synced_ones_survive() {
    in_fresh_runtime(1, || async {
        let (id, storage, disk) = node(pinned(false, false));
        let file = durable_file(&storage, "f", b"durable").await;
        storage
            .write_at(file, 7, Bytes::from_static(b"+pending"))
            .await
            .unwrap();
        assert_eq!(contents(&storage, "f").await.unwrap(), b"durable+pending");
        kill(id);
        assert_eq!(contents(&storage, "f").await.unwrap(), b"durable");
        assert_eq!(disk.stats().writes_dropped, 1);
        // The old handle died with the process.
        let err = storage.len(file).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    })
    .unwrap();
}

#[test]
fn kept_writes_survive_a_crash_without_sync() {
    in_fresh_runtime(2, || async {
        let (id, storage, _) = node(pinned(true, false));
        let file = durable_file(&storage, "f", b"a").await;
        storage
            .write_at(file, 1, Bytes::from_static(b"b"))
            .await
            .unwrap();
        kill(id);
        assert_eq!(contents(&storage, "f").await.unwrap(), b"ab");
    })
    .unwrap();
}

#[test]
fn a_created_file_needs_its_directory_synced() {
    in_fresh_runtime(3, || async {
        let (id, storage, disk) = node(pinned(true, false));
        storage.create_dir_all("d").await.unwrap();
        storage.sync_dir("").await.unwrap();
        let file = storage.open("d/f", true).await.unwrap();
        storage
            .write_at(file, 0, Bytes::from_static(b"data"))
            .await
            .unwrap();
        storage.sync_data(file).await.unwrap();
        kill(id);
        // Data synced, entry not: the file is gone.
        let err = contents(&storage, "d/f").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert_eq!(disk.stats().dirs_reverted, 1);

        let file = storage.open("d/f", true).await.unwrap();
        storage
            .write_at(file, 0, Bytes::from_static(b"data"))
            .await
            .unwrap();
        storage.sync_data(file).await.unwrap();
        storage.sync_dir("d").await.unwrap();
        kill(id);
        assert_eq!(contents(&storage, "d/f").await.unwrap(), b"data");
    })
    .unwrap();
}

#[test]
fn renames_and_removals_need_a_directory_sync_too() {
    in_fresh_runtime(4, || async {
        let (id, storage, _) = node(pinned(true, false));
        let file = durable_file(&storage, "a", b"x").await;
        storage.close(file).await.unwrap();
        storage.rename("a", "b").await.unwrap();
        kill(id);
        assert_eq!(storage.list("").await.unwrap(), ["a"]);

        storage.remove("a").await.unwrap();
        kill(id);
        assert_eq!(
            contents(&storage, "a").await.unwrap(),
            b"x",
            "removal undone by the crash"
        );

        storage.rename("a", "b").await.unwrap();
        storage.sync_dir("").await.unwrap();
        kill(id);
        assert_eq!(storage.list("").await.unwrap(), ["b"]);
        assert_eq!(contents(&storage, "b").await.unwrap(), b"x");
    })
    .unwrap();
}

#[test]
fn a_directory_may_keep_its_unsynced_changes() {
    in_fresh_runtime(5, || async {
        let (id, storage, disk) = node(pinned(true, true));
        let file = storage.open("f", true).await.unwrap();
        storage
            .write_at(file, 0, Bytes::from_static(b"z"))
            .await
            .unwrap();
        kill(id);
        assert_eq!(contents(&storage, "f").await.unwrap(), b"z");
        assert_eq!(disk.stats().dirs_kept, 1);
    })
    .unwrap();
}

#[test]
fn torn_writes_keep_a_strict_prefix() {
    for seed in 10..30 {
        let (data, kept) = in_fresh_runtime(seed, || async {
            let options = DiskOptions {
                crash_torn_write_probability: 1.0,
                ..pinned(false, false)
            };
            let (id, storage, disk) = node(options);
            let file = durable_file(&storage, "f", b"").await;
            let data: Vec<u8> = (0..100).collect();
            storage
                .write_at(file, 0, Bytes::from(data.clone()))
                .await
                .unwrap();
            kill(id);
            assert_eq!(disk.stats().writes_torn, 1);
            (data, contents(&storage, "f").await.unwrap())
        })
        .unwrap();
        assert!(
            !kept.is_empty() && kept.len() < data.len(),
            "seed {seed}: kept {}",
            kept.len()
        );
        assert_eq!(kept[..], data[..kept.len()], "seed {seed}: not a prefix");
    }
}

#[test]
fn after_a_failed_fsync_a_later_sync_does_not_save_the_data() {
    in_fresh_runtime(6, || async {
        let options = DiskOptions {
            fsync_error_probability: 1.0,
            ..pinned(false, false)
        };
        let (id, storage, disk) = node(pinned(false, false));
        let file = durable_file(&storage, "f", b"").await;
        disk.set_options(options);
        storage
            .write_at(file, 0, Bytes::from_static(b"lost"))
            .await
            .unwrap();
        assert!(storage.sync_data(file).await.is_err());
        // Reads still see the data (page cache)...
        assert_eq!(contents(&storage, "f").await.unwrap(), b"lost");
        // ...a retried sync "succeeds"...
        disk.set_options(pinned(false, false));
        storage.sync_data(file).await.unwrap();
        // ...but the data was never written: with drops pinned, the crash shows it.
        kill(id);
        assert_eq!(contents(&storage, "f").await.unwrap(), b"");
        assert_eq!(disk.stats().fsync_errors, 1);
    })
    .unwrap();
}

#[test]
fn a_sync_is_durable_only_once_it_returns() {
    in_fresh_runtime(12, || async {
        let options = DiskOptions {
            sync_latency_ms_min: 5,
            sync_latency_ms_max: 5,
            ..pinned(false, false)
        };
        let (id, storage, _) = node(options);
        let file = durable_file(&storage, "f", b"").await;
        storage
            .write_at(file, 0, Bytes::from_static(b"in flight"))
            .await
            .unwrap();
        let sync = storage.sync_data(file);
        kill(id); // before the sync's latency is over
        sync.await.unwrap(); // a stale completion must not resurrect anything
        assert_eq!(contents(&storage, "f").await.unwrap(), b"");

        let file = storage.open("f", false).await.unwrap();
        storage
            .write_at(file, 0, Bytes::from_static(b"synced"))
            .await
            .unwrap();
        storage.sync_data(file).await.unwrap();
        kill(id);
        assert_eq!(contents(&storage, "f").await.unwrap(), b"synced");
    })
    .unwrap();
}

#[test]
fn enospc_and_capacity_refuse_writes_without_changing_anything() {
    in_fresh_runtime(7, || async {
        let options = DiskOptions {
            capacity_bytes: 10,
            ..pinned(true, true)
        };
        let (_, storage, disk) = node(options);
        let file = storage.open("f", true).await.unwrap();
        storage
            .write_at(file, 0, Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        let err = storage
            .write_at(file, 10, Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        // Overwriting in place needs no space.
        storage
            .write_at(file, 0, Bytes::from_static(b"ab"))
            .await
            .unwrap();
        disk.set_options(DiskOptions {
            enospc_probability: 1.0,
            ..pinned(true, true)
        });
        let err = storage
            .write_at(file, 0, Bytes::from_static(b"q"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(contents(&storage, "f").await.unwrap(), b"ab23456789");
        assert_eq!(disk.stats().enospc, 2);
    })
    .unwrap();
}

#[test]
fn a_removed_file_holds_its_space_until_its_last_handle_closes() {
    in_fresh_runtime(9, || async {
        let options = DiskOptions {
            capacity_bytes: 10,
            ..pinned(true, true)
        };
        let (_, storage, _) = node(options);
        let eight = Bytes::from_static(b"01234567");
        let old = storage.open("old", true).await.unwrap();
        let again = storage.open("old", false).await.unwrap();
        storage.write_at(old, 0, eight.clone()).await.unwrap();
        storage.sync_dir("").await.unwrap();
        storage.remove("old").await.unwrap();
        let new = storage.open("new", true).await.unwrap();
        let full = |result: io::Result<()>| {
            matches!(result, Err(err) if err.kind() == io::ErrorKind::StorageFull)
        };
        // Still named by the durable directory, then still open through a second handle.
        storage.close(old).await.unwrap();
        assert!(full(storage.write_at(new, 0, eight.clone()).await));
        storage.sync_dir("").await.unwrap();
        assert!(full(storage.write_at(new, 0, eight.clone()).await));
        storage.close(again).await.unwrap();
        storage.write_at(new, 0, eight).await.unwrap();
    })
    .unwrap();
}

#[test]
fn bit_flips_change_one_bit_of_the_read_only() {
    in_fresh_runtime(8, || async {
        let (_, storage, disk) = node(DiskOptions::faultless());
        let file = storage.open("f", true).await.unwrap();
        let data = Bytes::from_static(b"some bytes to corrupt");
        storage.write_at(file, 0, data.clone()).await.unwrap();
        disk.set_options(DiskOptions {
            read_bitflip_probability: 1.0,
            ..DiskOptions::faultless()
        });
        let read = storage.read_at(file, 0, data.len()).await.unwrap();
        let flipped: u32 = read
            .iter()
            .zip(data.iter())
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        assert_eq!(flipped, 1);
        disk.liveness_mode();
        assert_eq!(
            storage.read_at(file, 0, data.len()).await.unwrap(),
            data,
            "stored bytes intact"
        );
    })
    .unwrap();
}

#[test]
fn latency_delays_results_but_not_effects() {
    in_fresh_runtime(9, || async {
        let options = DiskOptions {
            latency_ms_min: 50,
            latency_ms_max: 50,
            ..DiskOptions::faultless()
        };
        let (_, storage, _) = node(options);
        let start = crate::trace::sim_now();
        let file = storage.open("f", true).await.unwrap();
        assert!(crate::trace::sim_now() - start >= Duration::from_millis(50));
        let write = storage.write_at(file, 0, Bytes::from_static(b"w"));
        let read = storage.read_at(file, 0, 1);
        write.await.unwrap();
        assert_eq!(&read.await.unwrap()[..], b"w");
    })
    .unwrap();
}

/// A run with every random choice live; returns what the disk kept and what it logged.
fn random_crashes(seed: u64) -> (Vec<Vec<u8>>, DiskStats, Vec<String>) {
    in_fresh_runtime(seed, || async {
        let trace = Trace::new(false);
        let (id, storage, disk) = node(DiskOptions::with_faults());
        disk.set_trace(trace.clone());
        let mut files = Vec::new();
        for i in 0..4 {
            let path = format!("f{i}");
            let file = storage.open(&path, true).await.unwrap();
            for w in 0..8u8 {
                let _ = storage
                    .write_at(file, u64::from(w) * 16, Bytes::from(vec![w; 16]))
                    .await;
                if w % 3 == 0 {
                    let _ = storage.sync_data(file).await;
                }
            }
            files.push(path);
        }
        let _ = storage.sync_dir("").await;
        kill(id);
        let mut kept = Vec::new();
        for path in &files {
            kept.push(contents(&storage, path).await.unwrap_or_default());
        }
        (kept, disk.stats(), trace.lines())
    })
    .unwrap()
}

#[test]
fn same_seed_same_outcome() {
    for seed in [1, 7, 42] {
        assert_eq!(random_crashes(seed), random_crashes(seed), "seed {seed}");
    }
    let outcomes: Vec<_> = (100..110).map(random_crashes).collect();
    assert!(
        outcomes.windows(2).any(|pair| pair[0] != pair[1]),
        "seeds should differ"
    );
}

#[test]
fn sim_storage_meets_the_contract() {
    in_fresh_runtime(11, || async {
        let (id, storage, _) = node(DiskOptions::faultless());
        gregor::storage::contract::run_all(&storage, "contract").await;
        // And again after a crash, on whatever survived.
        kill(id);
        gregor::storage::contract::run_all(&storage, "after-crash").await;
    })
    .unwrap();
}
