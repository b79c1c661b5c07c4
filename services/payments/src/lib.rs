//! The payments client: moves money through the ledger over mutual TLS.
//!
//! It presents its own certificate (its keystore), verifies the ledger's chain against its
//! truststore, and accepts the ledger only if its certificate carries exactly the expected
//! SPIFFE ID: a valid certificate for any other workload is a spoofed server.
//!
//! # Layout
//! - [`config`]: flags, environment variables and subcommands; amounts as exact cents.
//! - [`Ledger`]: the ledger's calls over the library's client (`zt_client`: pinned server
//!   identity, redial on reload, retries that back off), with idempotency keys that make
//!   retried transfers safe.
//! - [`demo`]: the story the `demo` subcommand tells.

mod client;
pub mod config;
pub mod demo;
mod error;

pub use client::Ledger;
pub use config::{Command, Config};
pub use error::Error;
