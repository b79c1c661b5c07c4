//! Why the ledger could not start or stopped serving.

use std::path::PathBuf;

use crate::book::BookError;
use crate::store::DatabaseUrl;

/// A startup or serving failure. Each message names the file and the problem in one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Loading or serving the hardened server failed (TLS files, policies, metrics
    /// listener, transport).
    #[error(transparent)]
    Server(#[from] zt_server::Error),
    /// The keystore or truststore could not be loaded (for the health probe).
    #[error(transparent)]
    Tls(#[from] zt_tls::TlsError),
    /// A descriptor set given to `policy` could not be read.
    #[error("{}: {reason}", path.display())]
    DescriptorSet {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The database URL or its options can never work (a reachable database that is merely
    /// down is waited for instead).
    #[error("database {database}: opening the books: {source}")]
    Database {
        /// The database (shown without its password, if the URL has one).
        database: DatabaseUrl,
        /// Why the store could not be opened.
        #[source]
        source: BookError,
    },
    /// A command-line value that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// The health probe got no answer.
    #[error("health check failed: {}", .0.message())]
    Health(tonic::Status),
}
