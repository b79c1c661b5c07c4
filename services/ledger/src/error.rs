//! Why the ledger could not start or stopped serving.

use std::path::PathBuf;

/// A startup or serving failure. Each message names the file and the problem in one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The keystore or truststore could not be loaded.
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
    /// `--strict-policy`: `policy check` found errors in the policy.
    #[error(
        "{}: refused by --strict-policy: {first}{}",
        path.display(),
        if *errors > 1 { format!(" (and {} more error(s); see `ledger policy check`)", errors - 1) } else { String::new() }
    )]
    PolicyFindings {
        /// The policy file.
        path: PathBuf,
        /// The first error, in words (`error: allow_rules[rule]: ...`).
        first: String,
        /// How many errors `policy check` found.
        errors: usize,
    },
    /// A descriptor set given to `policy` could not be read.
    #[error("{}: {reason}", path.display())]
    DescriptorSet {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A command-line value that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// The metrics listener could not bind.
    #[error("cannot serve metrics on {address}: {source}")]
    MetricsListen {
        /// The address.
        address: std::net::SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The health probe got no answer.
    #[error("health check failed: {}", .0.message())]
    Health(tonic::Status),
    /// The transport failed while serving.
    #[error("serving failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}
