//! Command-line tools beyond `serve`: what `gregor <subcommand>` runs, kept in the library so
//! tests can reach it.

pub mod bench;
