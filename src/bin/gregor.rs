//! The `gregor` command: `gregor serve` runs a broker; `gregor bench` measures one.
// A binary: it reads the config file and creates the data directory before Storage exists.
#![allow(clippy::disallowed_methods)]

use clap::{Parser, Subcommand};
use gregor::cli::bench::BenchCommand;
use gregor::config::BrokerConfig;
use gregor::storage::FileStorage;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "gregor", version, about = "A Kafka-compatible message broker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker (default: node 1, 127.0.0.1:9092, data in ./data).
    Serve(ServeArgs),
    /// Load generators: `gregor bench produce`, `gregor bench consume`.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// A Kafka-style properties file (server.properties).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override a property, e.g. `--set log.retention.ms=60000` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Shorthand for `--set listeners=PLAINTEXT://ADDR`.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Shorthand for `--set log.dirs=DIR`.
    #[arg(long, value_name = "DIR")]
    data: Option<String>,
    /// Shorthand for `--set node.id=N`.
    #[arg(long)]
    node_id: Option<i32>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        // A closed stdout (`| head`) is not worth a panic.
        Command::Bench(command) => gregor::cli::bench::run(command)
            .map(|report| drop(write!(std::io::stdout(), "{report}"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gregor: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let text = match &args.config {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        None => String::new(),
    };
    let mut overrides = Vec::new();
    for item in &args.set {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("--set expects KEY=VALUE, got '{item}'"))?;
        overrides.push((k.trim().to_string(), v.trim().to_string()));
    }
    if let Some(addr) = &args.listen {
        overrides.push(("listeners".into(), format!("PLAINTEXT://{addr}")));
    }
    if let Some(dir) = &args.data {
        overrides.push(("log.dirs".into(), dir.clone()));
    }
    if let Some(id) = args.node_id {
        overrides.push(("node.id".into(), id.to_string()));
    }
    let (config, warnings) = BrokerConfig::parse(&text, &overrides).map_err(|e| e.to_string())?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    std::fs::create_dir_all(&config.log_dir)
        .map_err(|e| format!("cannot create {}: {e}", config.log_dir))?;
    let storage = FileStorage::open(PathBuf::from(&config.log_dir))
        .map_err(|e| format!("cannot open data directory {}: {e}", config.log_dir))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    let seed = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    runtime
        .block_on(gregor::runtime::serve(
            config,
            Arc::new(storage),
            seed,
            |_| {},
            shutdown_signal(),
        ))
        .map_err(|e| e.to_string())
}

/// SIGTERM or SIGINT: stop accepting, finish what is in flight, exit 0.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
