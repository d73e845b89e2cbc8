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
    /// Close every file and delete the directory; the executor then ends.
    Remove,
}

/// Completion of a `Job::Work`, sent back to the node loop.
pub struct Done {
    pub work: WorkId,
    pub ok: bool,
}

pub fn spawn(
    files: LogFiles,
    done: mpsc::UnboundedSender<Done>,
    buggify: Buggify,
) -> mpsc::UnboundedSender<Job> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(files, rx, done, buggify));
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
            Job::Remove => {
                files.close_all().await;
                remove_dir(files.storage(), files.dir()).await;
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
