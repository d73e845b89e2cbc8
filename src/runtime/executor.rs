//! One task per log that runs its storage work in order, so work on different partitions
//! overlaps while each log sees its writes, syncs and reads in the order the machine chose.

use super::log_io::LogFiles;
use crate::core::broker::WorkId;
use crate::core::buggify::Buggify;
use crate::core::log::{LogOp, ReadPlan};
use crate::storage::Storage;
use bytes::Bytes;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

pub enum Job {
    Work {
        work: WorkId,
        ops: Vec<LogOp>,
    },
    Read {
        plan: ReadPlan,
        reply: oneshot::Sender<io::Result<Bytes>>,
    },
    /// Close every file and delete the directory, then signal `removed`; the executor ends.
    Remove {
        removed: oneshot::Sender<()>,
    },
}

/// Completion of a `Job::Work`, sent back to the node loop.
pub struct Done {
    pub work: WorkId,
    pub ok: bool,
}

/// Starts the executor of one log. `after` is the removal of an earlier log in the same
/// directory (a topic deleted and created again): nothing runs until that directory is gone, or
/// the old executor would delete the new log's files.
pub fn spawn(
    files: LogFiles,
    done: mpsc::UnboundedSender<Done>,
    buggify: Buggify,
    after: Option<oneshot::Receiver<()>>,
) -> mpsc::UnboundedSender<Job> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        if let Some(removed) = after {
            let _ = removed.await;
        }
        run(files, rx, done, buggify).await;
    });
    tx
}

async fn run(
    mut files: LogFiles,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    done: mpsc::UnboundedSender<Done>,
    buggify: Buggify,
) {
    // After a failure nothing more is written: the log's tail is unknown until recovery.
    let mut failed = false;
    while let Some(job) = jobs.recv().await {
        // Buggify: a slow disk. This log's work finishes late, so completions of different logs
        // arrive in other orders and fetch reads race with the writes queued behind them.
        if buggify.fire("storage-slow", 0.1) {
            tokio::time::sleep(Duration::from_millis(1 + buggify.pick(30))).await;
        }
        match job {
            Job::Work { work, ops } => {
                let ok = !failed
                    && files
                        .execute(&ops)
                        .await
                        .map_err(|e| log_failure(&files, &e))
                        .is_ok();
                failed |= !ok;
                let _ = done.send(Done { work, ok });
            }
            Job::Read { plan, reply } => {
                let _ = reply.send(files.read(&plan).await);
            }
            Job::Remove { removed } => {
                files.close_all().await;
                remove_dir(files.storage(), files.dir()).await;
                let _ = removed.send(());
                return;
            }
        }
    }
    files.close_all().await;
}

fn log_failure(files: &LogFiles, e: &io::Error) {
    tracing::error!(dir = files.dir(), error = %e, "storage failed; log offline until restart");
}

async fn remove_dir(storage: &Arc<dyn Storage>, dir: &str) {
    if let Err(e) = storage.remove_dir_all(dir).await {
        tracing::warn!(dir, error = %e, "could not remove deleted topic's directory");
    }
    let _ = storage.sync_dir(crate::storage::parent(dir)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;

    /// A log created again in the directory of a removed one waits for the removal, so the old
    /// executor never deletes the new log's files.
    #[tokio::test]
    async fn a_new_log_waits_for_the_removal_of_the_old_one() {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let (removed_tx, removed_rx) = oneshot::channel();
        let files = LogFiles::new(storage.clone(), "t-0".into());
        let jobs = spawn(files, done_tx, Buggify::disabled(), Some(removed_rx));
        let create = vec![LogOp::CreateSegment { base_offset: 0 }];
        jobs.send(Job::Work {
            work: 1,
            ops: create,
        })
        .unwrap();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            done_rx.try_recv().is_err(),
            "ran before the removal finished"
        );
        removed_tx.send(()).unwrap();
        let done = done_rx.recv().await.unwrap();
        assert!(done.ok);
        assert!(!storage.list("t-0").await.unwrap().is_empty());
    }
}
