//! The run's trace: timestamped events written by the workload, the supervisor and the disk.
//! Two runs of one seed must produce the same trace, line for line (the determinism check).
//!
//! A sweep reads no trace unless it checks determinism, so it runs seeds with [`Trace::off`]:
//! events are neither formatted nor kept, and the broker's log lines are not captured. What is
//! traced never steers the simulation, so the run is the same one; a failure's replay command
//! shows its trace.

use madsim::time::TimeHandle;
use std::fmt::Display;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A cheap, cloneable handle to the run's event list (`None`: the trace is off).
#[derive(Clone, Default)]
pub struct Trace {
    inner: Option<Arc<Mutex<Inner>>>,
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
            inner: Some(Arc::new(Mutex::new(Inner {
                lines: Vec::new(),
                echo,
            }))),
        }
    }

    /// A trace that records nothing, for runs whose trace nobody reads.
    pub fn off() -> Trace {
        Trace { inner: None }
    }

    /// Whether events are recorded.
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    fn lock(&self) -> Option<MutexGuard<'_, Inner>> {
        let inner = self.inner.as_ref()?;
        Some(
            inner
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Records one event by `who` at the current simulated time.
    pub fn event(&self, who: &str, what: impl Display) {
        if !self.is_on() {
            return;
        }
        let at = sim_now();
        let line = format!("{:>11.3}ms {who:<10} {what}", at.as_secs_f64() * 1000.0);
        let Some(mut inner) = self.lock() else {
            return;
        };
        if inner.echo {
            println!("{line}");
        }
        inner.lines.push(line);
    }

    /// Every event so far.
    pub fn lines(&self) -> Vec<String> {
        self.lock()
            .map(|inner| inner.lines.clone())
            .unwrap_or_default()
    }
}

/// Sends `tracing` output (the broker's own log lines, INFO and above) into a [`Trace`] as
/// events by `who`, while the returned guard lives. It applies to this thread, which runs the
/// whole simulation. A trace that is off captures nothing (and installs no subscriber, whose
/// span bookkeeping would cost more than the lines).
pub fn capture_logs(trace: &Trace, who: &'static str) -> Option<tracing::subscriber::DefaultGuard> {
    if !trace.is_on() {
        return None;
    }
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
    Some(tracing::subscriber::set_default(subscriber))
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
