//! Why a payments command failed.

/// A client failure, worded for the person at the terminal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Our keystore or truststore could not be loaded.
    #[error(transparent)]
    Tls(#[from] zt_tls::TlsError),
    /// The TLS handshake failed: the server's identity was refused, or it refused ours.
    #[error("mutual TLS handshake failed: {0}")]
    ServerRefused(String),
    /// The ledger answered with an error.
    #[error("{:?}: {}", .0.code(), .0.message())]
    Rpc(tonic::Status),
}

impl Error {
    /// The gRPC status code, when the ledger answered.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Self::Rpc(status) => Some(status.code()),
            _ => None,
        }
    }
}
