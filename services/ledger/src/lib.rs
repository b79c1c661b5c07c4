//! The ledger: a gRPC service that holds money and trusts nobody for being on the network.
//!
//! Every connection is mutual TLS 1.3 (a client certificate chaining to the truststore and
//! carrying a SPIFFE ID of a trusted domain is required), and every RPC is authorized per method
//! by a gRFC A43 policy before its handler runs.
//!
//! # Layout
//! - [`config`]: flags and environment variables, and the resource limits they set.
//! - [`Server`]: loads and checks every file, then serves on a given listener until a
//!   shutdown future completes (`run(listener, shutdown)`, so tests bind `127.0.0.1:0`).
//! - [`book`]: the rules of transfers and idempotency keys, pure logic.
//! - [`store`]: the store of record (SQLite or PostgreSQL over mTLS) behind a small trait.
//! - [`service`]: the gRPC handlers over the store.
//! - [`probe`]: the `health` subcommand, a health check over mTLS for containers.
//! - [`policy_tools`]: the `policy check|coverage|explain` subcommands.

pub mod book;
pub mod config;
mod error;
mod health;
pub mod policy_tools;
mod server;
pub mod service;
pub mod store;

pub use config::{Command, Config, PolicyCommand};
pub use error::Error;
pub use health::probe;
pub use server::{Background, Server, served_methods};
pub use zt_server::load_policy;
