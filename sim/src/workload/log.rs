//! The `log` workload: the harness's proof of life until the broker exists.
//!
//! - A *server* node appends numbered records to one file through [`SimStorage`], fsyncs, and
//!   only then acknowledges (cumulatively: `ack N` means 1..=N are durable). On start it recovers
//!   the file, dropping a torn or corrupt tail. Any storage failure other than ENOSPC makes it ask
//!   the supervisor to crash and restart it (after a failed fsync, never retry and go on).
//! - A *client* node sends records 1..=[`RECORDS`] with a window, records what was acknowledged
//!   in a [`History`], resends on timeouts and reconnects after crashes.
//! - The *supervisor* kills and restarts the server at times drawn from the seed, then switches
//!   to liveness mode (no faults) and waits for the client to finish. At the end it crashes the
//!   server once more and reads what the disk really kept.
//! - The checker: the recovered log is exactly 1..=n and holds every acknowledged record; the
//!   client finished.

use crate::checker;
use crate::disk::{SimDisk, SimStorage};
use crate::faults::{self, Kill};
use crate::history::History;
use crate::runner::Verdict;
use crate::spec::{Bug, Spec};
use crate::trace::{sim_now, Trace};
use bytes::BytesMut;
use gregor::storage::{FileId, Storage};
use madsim::net::{TcpListener, TcpStream};
use madsim::rand::{thread_rng, Rng};
use madsim::runtime::Handle;
use madsim::time::{sleep, timeout, TimeHandle};
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Records the client must get acknowledged.
pub const RECORDS: u64 = 200;
/// Records the client may have in flight.
const WINDOW: u64 = 8;
/// How long the client waits for an ack before resending its window.
const ACK_TIMEOUT: Duration = Duration::from_millis(300);
/// Faults happen during this first part of the run.
const SAFETY_WINDOW: Duration = Duration::from_millis(1000);
/// After the safety window, the client must finish within this time.
const LIVENESS_BUDGET: Duration = Duration::from_secs(60);
/// Most kills per run (at least one when crashes are on).
const KILLS_MAX: u32 = 3;
/// Rereads of a frame that fails its checksum, to tell a transient bit flip from a torn tail.
const READ_RETRIES: usize = 8;

const SERVER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const SERVER_ADDR: &str = "10.0.0.1:9000";
const LOG_DIR: &str = "log";
const LOG_PATH: &str = "log/records";

/// What the client saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogEvent {
    Sent(u64),
    Acked(u64),
}

// ---------------------------------------------------------------------------------------------
// On-disk format: fixed 12-byte frames, crc32c (LE) of the sequence number, then the number (LE).

const FRAME_BYTES: usize = 12;

fn encode_frame(seq: u64) -> [u8; FRAME_BYTES] {
    let mut frame = [0u8; FRAME_BYTES];
    frame[4..].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32c::crc32c(&frame[4..]);
    frame[..4].copy_from_slice(&crc.to_le_bytes());
    frame
}

fn decode_frame(frame: &[u8]) -> Option<u64> {
    let crc: [u8; 4] = frame.get(..4)?.try_into().ok()?;
    let seq: [u8; 8] = frame.get(4..FRAME_BYTES)?.try_into().ok()?;
    (crc32c::crc32c(&seq) == u32::from_le_bytes(crc)).then(|| u64::from_le_bytes(seq))
}

/// The valid records at the start of the file and the length they cover. A frame that fails its
/// checksum is reread a few times (reads may flip bits); if it stays bad, the log ends there.
async fn read_records(storage: &dyn Storage, file: FileId) -> io::Result<(Vec<u64>, u64)> {
    let len = storage.len(file).await?;
    let data = storage
        .read_at(file, 0, usize::try_from(len).unwrap_or(usize::MAX))
        .await?;
    let mut records = Vec::new();
    for (i, frame) in data.chunks_exact(FRAME_BYTES).enumerate() {
        let mut seq = decode_frame(frame);
        let pos = (i * FRAME_BYTES) as u64;
        for _ in 0..READ_RETRIES {
            if seq.is_some() {
                break;
            }
            seq = decode_frame(&storage.read_at(file, pos, FRAME_BYTES).await?);
        }
        match seq {
            Some(seq) => records.push(seq),
            None => break,
        }
    }
    let valid = (records.len() * FRAME_BYTES) as u64;
    Ok((records, valid))
}

// ---------------------------------------------------------------------------------------------
// Server.

#[derive(Clone)]
struct ServerCtx {
    trace: Trace,
    crash_requests: mpsc::UnboundedSender<String>,
    bug: Option<Bug>,
}

struct LogFile {
    storage: SimStorage,
    file: FileId,
    len: u64,
    /// Highest record in the file, durable once the latest sync returned.
    last: u64,
}

impl LogFile {
    /// Creates or recovers the log: directory and file made durable, torn tail cut off.
    async fn open(storage: SimStorage, ctx: &ServerCtx) -> io::Result<LogFile> {
        let sync_dirs = ctx.bug != Some(Bug::NoDirSync);
        storage.create_dir_all(LOG_DIR).await?;
        if sync_dirs {
            storage.sync_dir("").await?;
        }
        let file = storage.open(LOG_PATH, true).await?;
        if sync_dirs {
            storage.sync_dir(LOG_DIR).await?;
        }
        let file_len = storage.len(file).await?;
        let (records, valid) = read_records(&storage, file).await?;
        if valid < file_len {
            storage.truncate(file, valid).await?;
            storage.sync_data(file).await?;
        }
        let last = records.last().copied().unwrap_or(0);
        let cut = file_len - valid;
        ctx.trace.event(
            "server",
            format_args!("recovered {} records, cut {cut} bytes", records.len()),
        );
        Ok(LogFile {
            storage,
            file,
            len: valid,
            last,
        })
    }

    /// Appends the batch's next records in order (duplicates and records past a gap are ignored).
    /// Returns the new last record, or `None` when nothing was written (nothing new, or ENOSPC).
    async fn write(&mut self, batch: &[u64], trace: &Trace) -> Result<Option<u64>, String> {
        let mut frames = Vec::new();
        let mut next = self.last + 1;
        for &seq in batch {
            if seq == next {
                frames.extend_from_slice(&encode_frame(seq));
                next += 1;
            }
        }
        if frames.is_empty() {
            return Ok(None);
        }
        let bytes = frames.len() as u64;
        match self
            .storage
            .write_at(self.file, self.len, frames.into())
            .await
        {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::StorageFull => {
                trace.event("server", "disk full: batch dropped, client will resend");
                return Ok(None);
            }
            Err(err) => return Err(format!("write failed: {err}")),
        }
        self.len += bytes;
        self.last = next - 1;
        let first = self.last + 1 - bytes / FRAME_BYTES as u64;
        trace.event("server", format_args!("appended {first}..={}", self.last));
        Ok(Some(self.last))
    }

    async fn sync(&mut self) -> Result<(), String> {
        self.storage
            .sync_data(self.file)
            .await
            .map_err(|err| format!("fsync failed: {err}"))
    }
}

/// Writes and flushes: madsim's TcpStream sends nothing until flushed.
async fn send_line(stream: &mut TcpStream, text: String) -> io::Result<()> {
    stream.write_all(text.as_bytes()).await?;
    stream.flush().await
}

fn parse_record(line: &[u8]) -> Option<u64> {
    std::str::from_utf8(line)
        .ok()?
        .trim()
        .strip_prefix("rec ")?
        .parse()
        .ok()
}

/// Serves one connection until it closes. `Err` means the server must crash.
async fn serve(log: &mut LogFile, mut stream: TcpStream, ctx: &ServerCtx) -> Result<(), String> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return Ok(()),
            Ok(_) => {}
        }
        // Group commit: every line of one read is one batch, one fsync. (madsim delivers one
        // message per read, at least 1 ms apart, so the client sends its window as one message.)
        let mut batch = Vec::new();
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            batch.extend(parse_record(&buf.split_to(end + 1)));
        }
        if buf.len() > 64 {
            return Ok(()); // not our protocol: drop the connection
        }
        if batch.is_empty() {
            continue;
        }
        let ack = match log.write(&batch, &ctx.trace).await? {
            None => log.last,
            Some(last) if ctx.bug == Some(Bug::AckBeforeSync) => {
                let _ = send_line(&mut stream, format!("ack {last}\n")).await;
                log.sync().await?;
                continue;
            }
            Some(last) => {
                log.sync().await?;
                last
            }
        };
        if send_line(&mut stream, format!("ack {ack}\n"))
            .await
            .is_err()
        {
            return Ok(());
        }
    }
}

async fn server_main(ctx: ServerCtx) {
    let reason = match LogFile::open(SimStorage::current(), &ctx).await {
        Err(err) => format!("recovery failed: {err}"),
        Ok(mut log) => match TcpListener::bind(SERVER_ADDR).await {
            Err(err) => format!("bind failed: {err}"),
            Ok(listener) => loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        if let Err(reason) = serve(&mut log, stream, &ctx).await {
                            break reason;
                        }
                    }
                    Err(err) => break format!("accept failed: {err}"),
                }
            },
        },
    };
    // A real process would exit here and be restarted; the supervisor plays that part.
    ctx.trace
        .event("server", format_args!("{reason}: crashing"));
    let _ = ctx.crash_requests.send(reason);
    std::future::pending::<()>().await;
}

// ---------------------------------------------------------------------------------------------
// Client.

#[derive(Default)]
struct ClientState {
    history: History<LogEvent>,
    acked: u64,
    violations: Vec<String>,
}

struct Client {
    trace: Trace,
    state: Arc<Mutex<ClientState>>,
}

impl Client {
    fn with_state<T>(&self, f: impl FnOnce(&mut ClientState) -> T) -> T {
        f(&mut self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn acked(&self) -> u64 {
        self.with_state(|state| state.acked)
    }

    fn failed(&self) -> bool {
        self.with_state(|state| !state.violations.is_empty())
    }

    /// Handles `ack n`. Returns false when the ack proves acknowledged data was lost.
    fn on_ack(&self, line: &[u8], sent_up_to: u64) -> bool {
        let Some(n) = std::str::from_utf8(line)
            .ok()
            .and_then(|line| line.trim().strip_prefix("ack ")?.parse::<u64>().ok())
        else {
            return true;
        };
        self.with_state(|state| {
            if n < state.acked {
                let acked = state.acked;
                state.violations.push(format!(
                    "server acknowledged up to {n} after acknowledging up to {acked}: acked records lost"
                ));
                return false;
            }
            if n > sent_up_to {
                state.violations.push(format!("ack {n} for a record never sent (sent {sent_up_to})"));
                return false;
            }
            for seq in state.acked + 1..=n {
                state.history.record(LogEvent::Acked(seq));
            }
            state.acked = n;
            true
        })
    }

    /// One connection's worth of sending and acks. Returns when the connection breaks, the
    /// work is done, or a violation was seen.
    async fn session(&self, mut stream: TcpStream) {
        let mut rng = thread_rng();
        let mut next = self.acked() + 1;
        let mut buf = BytesMut::with_capacity(256);
        loop {
            let acked = self.acked();
            if acked >= RECORDS || self.failed() {
                return;
            }
            // The window goes out in messages of 1 to 4 records; each is one batch at the server.
            let first = next;
            while next <= RECORDS && next <= acked + WINDOW {
                let mut message = String::new();
                let end = next + rng.gen_range(1..=4);
                while next <= RECORDS && next <= acked + WINDOW && next < end {
                    message.push_str(&format!("rec {next}\n"));
                    self.with_state(|state| state.history.record(LogEvent::Sent(next)));
                    next += 1;
                }
                if send_line(&mut stream, message).await.is_err() {
                    return;
                }
            }
            if next > first {
                self.trace
                    .event("client", format_args!("sent {first}..={}", next - 1));
            }
            match timeout(ACK_TIMEOUT, stream.read_buf(&mut buf)).await {
                Err(_) => {
                    self.trace.event(
                        "client",
                        format_args!("no ack in time, resending from {}", acked + 1),
                    );
                    next = acked + 1;
                }
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => {
                    while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                        let line = buf.split_to(end + 1);
                        if !self.on_ack(&line, next - 1) {
                            return;
                        }
                    }
                    self.trace
                        .event("client", format_args!("acked up to {}", self.acked()));
                    // Think time, so batches come in all sizes.
                    if rng.gen_bool(0.3) {
                        sleep(Duration::from_millis(rng.gen_range(1..=5))).await;
                    }
                }
            }
        }
    }

    async fn run(self) {
        let mut rng = thread_rng();
        while self.acked() < RECORDS && !self.failed() {
            match TcpStream::connect(SERVER_ADDR).await {
                Ok(stream) => {
                    self.trace.event("client", "connected");
                    self.session(stream).await;
                }
                Err(_) => sleep(Duration::from_millis(rng.gen_range(10..=50))).await,
            }
        }
        self.trace
            .event("client", format_args!("done, {} acked", self.acked()));
    }
}

// ---------------------------------------------------------------------------------------------
// Supervisor and checker.

/// Kills the server, keeps it down for `down_for`, restarts it (always kill first: restart alone
/// neither resets the disk nor frees the listening port).
async fn crash_server(
    handle: &Handle,
    server: madsim::task::NodeId,
    down_for: Duration,
    trace: &Trace,
) {
    trace.event("supervisor", "kill server");
    handle.kill(server);
    sleep(down_for).await;
    trace.event("supervisor", "restart server");
    handle.restart(server);
}

/// Reads the log the way recovery would, without changing it.
async fn recovered_records(storage: &SimStorage) -> io::Result<Vec<u64>> {
    let file = match storage.open(LOG_PATH, false).await {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let (records, _) = read_records(storage, file).await?;
    storage.close(file).await?;
    Ok(records)
}

pub async fn run(spec: Spec, trace: Trace) -> Verdict {
    let handle = Handle::current();
    let disk = madsim::plugin::simulator::<SimDisk>();
    disk.set_options(faults::disk_options(spec.faults));
    let mut rng = thread_rng();
    let (crash_requests, mut crash_rx) = mpsc::unbounded_channel();
    let server_ctx = ServerCtx {
        trace: trace.clone(),
        crash_requests,
        bug: spec.bug,
    };
    let server = handle
        .create_node()
        .name("log-server")
        .ip(SERVER_IP)
        .init(move || server_main(server_ctx.clone()))
        .build()
        .id();
    let state = Arc::new(Mutex::new(ClientState::default()));
    let client = Client {
        trace: trace.clone(),
        state: state.clone(),
    };
    let mut client_task = handle
        .create_node()
        .name("log-client")
        .ip(CLIENT_IP)
        .build()
        .spawn(client.run());

    let mut kills: VecDeque<Kill> = if spec.faults.crash {
        faults::draw_kills(&mut rng, SAFETY_WINDOW, KILLS_MAX).into()
    } else {
        VecDeque::new()
    };
    let start = TimeHandle::current().now_instant();
    let mut liveness = false;
    let mut violations = Vec::new();
    let (mut scheduled, mut requested) = (0u32, 0u32);
    loop {
        let wake = match (liveness, kills.front()) {
            (false, Some(kill)) => kill.at.min(SAFETY_WINDOW),
            (false, None) => SAFETY_WINDOW,
            (true, _) => SAFETY_WINDOW + LIVENESS_BUDGET,
        };
        tokio::select! {
            biased;
            result = &mut client_task => {
                if result.is_err() {
                    violations.push("client task failed".to_owned());
                }
                break;
            }
            Some(reason) = crash_rx.recv() => {
                requested += 1;
                trace.event("supervisor", format_args!("server requested a crash ({reason})"));
                let down_for = Duration::from_millis(rng.gen_range(1..=50));
                crash_server(&handle, server, down_for, &trace).await;
            }
            _ = madsim::time::sleep_until(start + wake) => {
                let now = sim_now();
                if liveness {
                    break;
                }
                match kills.front().copied() {
                    Some(kill) if kill.at <= now => {
                        kills.pop_front();
                        scheduled += 1;
                        crash_server(&handle, server, kill.down_for, &trace).await;
                    }
                    _ if now >= SAFETY_WINDOW => {
                        liveness = true;
                        disk.liveness_mode();
                        trace.event("supervisor", "liveness mode: faults off");
                    }
                    _ => {}
                }
            }
        }
    }

    // The final crash resolves whatever is still pending; then read what the disk kept.
    handle.kill(server);
    let storage = SimStorage::new(server, disk.clone());
    let recovered = match recovered_records(&storage).await {
        Ok(records) => records,
        Err(err) => {
            violations.push(format!("cannot read the log after the final crash: {err}"));
            Vec::new()
        }
    };
    let (acked, history, client_violations) = {
        let state = state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (state.acked, state.history.clone(), state.violations.clone())
    };
    violations.extend(client_violations);
    let acked_records = history.events().filter_map(|event| match event {
        LogEvent::Acked(seq) => Some(*seq),
        LogEvent::Sent(_) => None,
    });
    violations.extend(checker::acked_prefix_survives(acked_records, &recovered));
    if violations.is_empty() {
        violations.extend(checker::finished(acked, RECORDS, "records acknowledged"));
    }
    let stats = disk.stats();
    let summary = format!(
        "acked {acked}/{RECORDS}, recovered {}, kills {scheduled} scheduled + {requested} requested, \
         disk: {} torn, {} dropped, {} fsync errors, {} bit flips, {} ENOSPC",
        recovered.len(),
        stats.writes_torn,
        stats.writes_dropped,
        stats.fsync_errors,
        stats.bit_flips,
        stats.enospc
    );
    trace.event("checker", &summary);
    Verdict {
        violations,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_reject_flips() {
        let frame = encode_frame(42);
        assert_eq!(decode_frame(&frame), Some(42));
        for bit in 0..FRAME_BYTES * 8 {
            let mut bad = frame;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode_frame(&bad), None, "bit {bit}");
        }
        assert_eq!(decode_frame(&[0; FRAME_BYTES]), None);
        assert_eq!(decode_frame(&frame[..5]), None);
    }
}
