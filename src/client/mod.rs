//! Client side of the wire protocol.
//!
//! For now this is the connection driver only: [`Connection`] sends requests with correlation
//! ids, keeps a window of them in flight (pipelining), and matches responses in order, which
//! Kafka guarantees per connection. `gregor bench` is built on it; the producer, consumer and
//! admin machines (sans-I/O, like the broker's) will sit on top of it later.

pub mod connection;

pub use connection::{
    ClientError, Connection, RequestSender, Response, ResponseReceiver, Versions,
};
