//! Test harness: a real gregor broker on an ephemeral 127.0.0.1 port, in-process (the same
//! `runtime::serve` the binary runs, with real files) or as the `gregor` binary.
#![allow(dead_code, clippy::disallowed_methods, clippy::disallowed_types)]

use gregor::config::BrokerConfig;
use gregor::storage::FileStorage;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty data directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("gregor-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A broker running on its own thread and tokio runtime.
pub struct TestBroker {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestBroker {
    pub fn start(name: &str) -> TestBroker {
        TestBroker::start_in(temp_dir(name), &[])
    }

    pub fn start_in(dir: PathBuf, overrides: &[(&str, &str)]) -> TestBroker {
        let mut props: Vec<(String, String)> = vec![
            ("listeners".into(), "PLAINTEXT://127.0.0.1:0".into()),
            ("log.dirs".into(), dir.display().to_string()),
        ];
        props.extend(
            overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let (config, _) = BrokerConfig::parse("", &props).expect("valid test config");
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let storage_dir = dir.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let storage = Arc::new(FileStorage::open(storage_dir).expect("open storage"));
            let result = rt.block_on(gregor::runtime::serve(
                config,
                storage,
                42,
                move |addrs| {
                    let _ = ready_tx.send(addrs[0]);
                },
                async {
                    let _ = stop_rx.await;
                },
            ));
            result.expect("broker ran");
        });
        let addr = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("broker started");
        TestBroker {
            addr,
            dir,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Graceful stop (like SIGTERM); returns the data directory for a restart.
    pub fn stop(mut self) -> PathBuf {
        self.shutdown();
        self.dir.clone()
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The `gregor` binary as a child process, for kill -9 tests.
pub struct BrokerProcess {
    pub child: Child,
    pub addr: SocketAddr,
}

impl BrokerProcess {
    pub fn start(dir: &Path, port: u16) -> BrokerProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_gregor"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn gregor");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "gregor did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        BrokerProcess { child, addr }
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
