//! The run's trace: timestamped events written by the workload, the supervisor and the disk.
//! Two runs of one seed must produce the same trace, line for line (the determinism check).

use madsim::time::TimeHandle;
use std::fmt::Display;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A cheap, cloneable handle to the run's event list.
#[derive(Clone, Default)]
pub struct Trace {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    lines: Vec<String>,
    echo: bool,
}

/// Simulated time since the runtime started (zero outside a runtime).
pub fn sim_now() -> Duration {
    TimeHandle::try_current()
        .map(|time| time.elapsed())
        .unwrap_or_default()
}

impl Trace {
    /// A trace that also prints each event as it happens when `echo` is set.
    pub fn new(echo: bool) -> Trace {
        Trace {
            inner: Arc::new(Mutex::new(Inner {
                lines: Vec::new(),
                echo,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records one event by `who` at the current simulated time.
    pub fn event(&self, who: &str, what: impl Display) {
        let at = sim_now();
        let line = format!("{:>11.3}ms {who:<10} {what}", at.as_secs_f64() * 1000.0);
        let mut inner = self.lock();
        if inner.echo {
            println!("{line}");
        }
        inner.lines.push(line);
    }

    /// Every event so far.
    pub fn lines(&self) -> Vec<String> {
        self.lock().lines.clone()
    }
}
