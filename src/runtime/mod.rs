//! The tokio driver: the only code that touches sockets, timers and tasks. It depends on tokio
//! through madsim-tokio, so under `--cfg madsim` the very same code runs on simulated time and a
//! simulated network.

pub mod clock;
pub mod connection;
pub mod executor;
pub mod log_io;
pub mod meta;
pub mod node;
pub mod producer_recovery;
pub mod server;
pub mod timer;

pub use server::{serve, serve_with, ServeError, ServeOptions};
