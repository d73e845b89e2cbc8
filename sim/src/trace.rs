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

/// Sends `tracing` output (the broker's own log lines, INFO and above) into a [`Trace`] as
/// events by `who`, while the returned guard lives. It applies to this thread, which runs the
/// whole simulation.
pub fn capture_logs(trace: &Trace, who: &'static str) -> tracing::subscriber::DefaultGuard {
    let writer = LogWriter {
        trace: trace.clone(),
        who,
    };
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .without_time()
        .with_ansi(false)
        .with_target(false)
        .with_writer(writer)
        .finish();
    tracing::subscriber::set_default(subscriber)
}

/// A `MakeWriter` whose writers each buffer one formatted line and emit it when dropped.
#[derive(Clone)]
struct LogWriter {
    trace: Trace,
    who: &'static str,
}

struct LogLine {
    trace: Trace,
    who: &'static str,
    buf: Vec<u8>,
}

impl std::io::Write for LogLine {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let line = String::from_utf8_lossy(&self.buf);
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        // "LEVEL node{..}:task{..}: message": madsim's spans say nothing the trace does not.
        let (level, rest) = line.split_once(' ').unwrap_or(("", line));
        let rest = rest.trim_start();
        let message = match rest.strip_prefix("node{") {
            Some(spans) => spans.split_once("}: ").map_or(rest, |(_, message)| message),
            None => rest,
        };
        self.trace
            .event(self.who, format_args!("{level} {message}"));
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine {
            trace: self.trace.clone(),
            who: self.who,
            buf: Vec::new(),
        }
    }
}
