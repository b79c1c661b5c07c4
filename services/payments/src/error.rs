//! Why a payments command failed.

/// A client failure, worded for the person at the terminal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Our keystore or truststore could not be loaded.
    #[error(transparent)]
    Tls(#[from] zt_tls::TlsError),
    /// The TLS handshake failed: the server's identity was refused, or it refused ours.
    #[error("mutual TLS handshake with the ledger failed: {message}")]
    ServerRefused {
        /// A stable label (`unexpected_server`, `unknown_ca`, `peer_alert`, ...).
        reason: &'static str,
        /// What happened, in words.
        message: String,
    },
    /// The ledger answered with an error (or could not be reached: `UNAVAILABLE`).
    #[error(
        "{}: {} (gRPC {})",
        code_words(.0.code()),
        .0.message(),
        zt_tls::grpc_code_name(.0.code())
    )]
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

/// What a status code means for the person who made the call.
fn code_words(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::PermissionDenied => "the ledger refused the call",
        Code::Unauthenticated => "the ledger did not accept our identity",
        Code::Unavailable => "the ledger is unavailable",
        Code::DeadlineExceeded => "the ledger did not answer in time",
        Code::NotFound => "not found",
        Code::InvalidArgument => "the ledger refused the request as invalid",
        Code::FailedPrecondition => "the ledger cannot do that now",
        Code::AlreadyExists => "already exists",
        Code::Unimplemented => "the ledger does not serve this call",
        _ => "the call failed",
    }
}
