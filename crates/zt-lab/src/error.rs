//! What can stop the catalogue from running an attack at all (never the attack's verdict: a
//! refusal is a [`crate::catalogue::Verdict`]).

use std::path::PathBuf;

/// Why an attack could not be prepared or measured.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// rcgen could not make a forged certificate.
    #[error("minting a forged certificate: {0}")]
    Mint(#[from] rcgen::Error),
    /// The project's CA code refused: an unusable issuing CA, or a certificate it cannot sign.
    #[error("{0}")]
    Pki(#[from] zt_pki::PkiError),
    /// A SPIFFE ID or trust domain that does not parse.
    #[error("{0}")]
    SpiffeId(#[from] zt_identity::SpiffeIdError),
    /// rustls refused a client configuration or key.
    #[error("building a TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A file the attack reads is missing or unusable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The legitimate keystore or the trust bundle could not be loaded.
    #[error("{0}")]
    Identity(#[from] zt_tls::TlsError),
    /// The legitimate client (zt-client) could not be set up.
    #[error("{0}")]
    Client(#[from] zt_client::Error),
    /// The target or the attack's own setup is unusable, in words.
    #[error("{0}")]
    Target(String),
    /// The legitimate client's own call failed before the attack started: nothing to compare.
    #[error("the legitimate client's own call failed before the attack: {0}")]
    Baseline(String),
    /// The genuine client's thread could not start or ended early.
    #[error("the legitimate client's thread: {0}")]
    Caller(String),
    /// A background task of the attack panicked or was cancelled.
    #[error("an attack task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}
