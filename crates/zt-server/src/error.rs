//! Why a server could not start or stopped serving.

use std::path::PathBuf;

/// A startup or serving failure. Each message names the file and the problem in one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The keystore, truststore or a CRL could not be loaded.
    #[error(transparent)]
    Tls(#[from] zt_tls::TlsError),
    /// The policy file could not be read.
    #[error("{}: {source}", path.display())]
    PolicyRead {
        /// The policy file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The policy file is not a valid policy.
    #[error("{}: {source}", path.display())]
    Policy {
        /// The policy file.
        path: PathBuf,
        /// What is wrong with it.
        source: zt_authz::PolicyError,
    },
    /// [`ServerConfig::strict_policy`](crate::ServerConfig::strict_policy): the policy check
    /// found errors in the enforced policy.
    #[error(
        "{}: refused by --strict-policy: {first}{}",
        path.display(),
        if *errors > 1 { format!(" (and {} more error(s); see `{program} policy check`)", errors - 1) } else { String::new() }
    )]
    PolicyFindings {
        /// The policy file.
        path: PathBuf,
        /// The first error, in words (`error: allow_rules[rule]: ...`).
        first: String,
        /// How many errors the check found.
        errors: usize,
        /// The server's name ([`ServerConfig::name`](crate::ServerConfig::name)), whose
        /// `policy check` subcommand lists them all.
        program: String,
    },
    /// The metrics listener could not bind.
    #[error("cannot serve metrics on {address}: {source}")]
    MetricsListen {
        /// The address.
        address: std::net::SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The listener's local address could not be read.
    #[error("cannot read the listener's address: {0}")]
    Listener(std::io::Error),
    /// The transport failed while serving.
    #[error("serving failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// The background task serving (see [`Background`](crate::Background)) panicked or was
    /// cancelled.
    #[error("the server task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
}
