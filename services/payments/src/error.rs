//! Why a payments command failed: the client library's errors, which name the server as
//! "the ledger" (see [`crate::Config::client_config`]).

/// A client failure, worded for the person at the terminal.
pub use zt_client::Error;
