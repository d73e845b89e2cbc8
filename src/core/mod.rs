//! The state machines: everything that decides. Nothing in here owns a socket, a file, a clock,
//! a thread or a global RNG. Inputs come in as method calls carrying `now`; outputs go out as data
//! (storage operations, responses) for a driver to carry out. See each module's contract.

pub mod broker;
pub mod buggify;
pub mod log;
pub mod time;
