//! The ledger: a gRPC service that holds money and trusts nobody for being on the network.
//!
//! Every connection is mutual TLS 1.3 (a client certificate chaining to the truststore and
//! carrying a SPIFFE ID of a trusted domain is required), and every RPC is authorized per method
//! by a gRFC A43 policy before its handler runs.
//!
//! # Layout
//! - [`Config`]: flags and environment variables, and the resource [`Limits`] they set.
//! - [`Server`]: loads and checks every file, then serves on a given listener until a
//!   shutdown future completes (`run(listener, shutdown)`, so tests bind `127.0.0.1:0`).
//! - [`book`]: the rules of transfers and idempotency keys, pure logic.
//! - [`store`]: the store of record (SQLite or PostgreSQL over mTLS) behind a small trait.
//! - [`LedgerService`]: the gRPC handlers over the store.
//! - [`probe`]: the `health` subcommand, a health check over mTLS for containers.
//! - [`run_policy_command`]: the `policy check|coverage|explain` subcommands.

pub mod book;
mod config;
mod error;
mod health;
mod policy_tools;
mod server;
mod service;
pub mod store;

pub use config::{Command, Config, DEFAULT_DATABASE, Expected, Limits, PolicyCommand};
pub use error::Error;
pub use health::probe;
pub use policy_tools::run as run_policy_command;
pub use server::{Background, Server, served_methods};
pub use service::LedgerService;
pub use zt_server::load_policy;
