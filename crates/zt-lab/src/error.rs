//! What can stop the lab from running an attack at all (never the attack's verdict: a refusal
//! is a [`crate::attack::Verdict`]).

use std::path::PathBuf;

/// Why an attack could not be prepared or measured.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// rcgen could not make a forged certificate.
    #[error("minting a forged certificate: {0}")]
    Mint(#[from] rcgen::Error),
    /// rustls refused a client configuration or key.
    #[error("building a client configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A file the attack reads is missing or unusable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The genuine identity given for the latency measurement could not be loaded.
    #[error("the genuine identity: {0}")]
    Identity(#[from] zt_tls::TlsError),
    /// The genuine identity's own call failed before the attack started: nothing to compare.
    #[error("payments' own call failed before the attack: {0}")]
    Baseline(String),
    /// The genuine client's thread could not start or ended early.
    #[error("the genuine client's thread: {0}")]
    Caller(String),
    /// A background task of the attack panicked or was cancelled.
    #[error("an attack task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}
