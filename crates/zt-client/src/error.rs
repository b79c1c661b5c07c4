//! Why a call failed, in words: the refusal classification of TLS handshake failures, and the
//! transport's own "not sent" statuses.

use tonic::{Code, Status};

/// A client failure, worded for the person at the terminal: every message is a sentence
/// naming the server as [`ClientConfig::server_name`](crate::ClientConfig::server_name) says.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Our keystore or truststore could not be loaded (at [`Client::connect`](crate::Client::connect)).
    #[error(transparent)]
    Tls(#[from] zt_tls::TlsError),
    /// The TLS handshake failed: the server's identity was refused, or it refused ours. Never
    /// retried: such failures are not transient.
    #[error("mutual TLS handshake with {server} failed: {message}")]
    ServerRefused {
        /// The server, as named in the configuration (`"the ledger"`).
        server: String,
        /// A stable label: `unexpected_server` (a valid certificate with another SPIFFE ID),
        /// `unknown_ca`, `expired`, ... (see `zt_tls::describe_tls`), or `peer_alert` (the
        /// server refused our certificate or identity).
        reason: &'static str,
        /// What happened, in words.
        message: String,
    },
    /// The server answered with an error, or could not be reached (`UNAVAILABLE`, after every
    /// attempt).
    #[error(
        "{}: {} (gRPC {})",
        code_words(.status.code(), server),
        .status.message(),
        zt_tls::grpc_code_name(.status.code())
    )]
    Rpc {
        /// The server, as named in the configuration (`"the ledger"`).
        server: String,
        /// The status of the last attempt.
        status: Status,
    },
}

impl Error {
    /// The gRPC status code, when the server answered (or was unavailable).
    pub fn code(&self) -> Option<Code> {
        match self {
            Self::Rpc { status, .. } => Some(status.code()),
            _ => None,
        }
    }

    /// Classifies the `status` of a call to `server` (named as in
    /// [`ClientConfig::server_name`](crate::ClientConfig::server_name)): a failed TLS
    /// handshake is [`Error::ServerRefused`], anything else [`Error::Rpc`].
    pub fn from_status(status: Status, server: &str) -> Self {
        tls_refusal(&status, server).unwrap_or_else(|| Self::Rpc {
            server: server.to_owned(),
            status,
        })
    }
}

/// What a status code means for the person who made the call.
fn code_words(code: Code, server: &str) -> String {
    match code {
        Code::PermissionDenied => format!("{server} refused the call"),
        Code::Unauthenticated => format!("{server} did not accept our identity"),
        Code::Unavailable => format!("{server} is unavailable"),
        Code::DeadlineExceeded => format!("{server} did not answer in time"),
        Code::NotFound => "not found".to_owned(),
        Code::InvalidArgument => format!("{server} refused the request as invalid"),
        Code::FailedPrecondition => format!("{server} cannot do that now"),
        Code::AlreadyExists => "already exists".to_owned(),
        Code::Unimplemented => format!("{server} does not serve this call"),
        _ => "the call failed".to_owned(),
    }
}

/// Whether `status` was made by our own transport from a connection failure (tonic keeps the
/// error it came from as the status's source), not sent by the server: the connection broke
/// while the call was out (a replica restarting, a reset). The server may or may not have
/// handled the call, so only a call that is safe to repeat may be retried on it.
pub(crate) fn broken_connection(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unknown | Code::Internal | Code::Cancelled
    ) && std::error::Error::source(status).is_some()
}

/// Whether `status` is the transport's, for a call a closing connection did not take: the
/// connection went away before it was sent (hyper's "operation was canceled"), or HTTP/2
/// refused its stream after a GOAWAY (tonic reports the h2 error as a status of its own).
/// Neither carries a `grpc-status` from the server.
pub(crate) fn not_sent(status: &Status) -> bool {
    match status.code() {
        Code::Cancelled => status.message() == "operation was canceled",
        Code::Internal | Code::Unavailable => status.message().starts_with("h2 protocol error"),
        _ => false,
    }
}

/// If `status` comes from a failed TLS handshake (the server's certificate or identity was
/// refused, or it refused ours), that failure in words; such failures are not transient.
pub(crate) fn tls_refusal(status: &Status, server: &str) -> Option<Error> {
    use tokio_rustls::rustls::Error as TlsError;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(status);
    while let Some(err) = source {
        let tls = err.downcast_ref::<TlsError>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<TlsError>())
        });
        if let Some(tls) = tls {
            let failure = zt_tls::describe_tls(tls);
            let (reason, message) = match tls {
                TlsError::InvalidCertificate(_) if failure.reason == "unexpected_server" => {
                    (failure.reason, failure.message)
                }
                TlsError::InvalidCertificate(_) => (
                    failure.reason,
                    format!("{server}'s certificate was refused: {failure}"),
                ),
                TlsError::AlertReceived(alert) => (
                    "peer_alert",
                    format!(
                        "{server} refused the handshake with the alert {} (our certificate \
                         or identity was not accepted)",
                        zt_tls::alert_name(*alert)
                    ),
                ),
                _ => (failure.reason, failure.message),
            };
            return Some(Error::ServerRefused {
                server: server.to_owned(),
                reason,
                message,
            });
        }
        source = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rpc_error_is_a_sentence_naming_the_server() {
        let err = Error::from_status(Status::permission_denied("no"), "the ledger");
        assert_eq!(err.code(), Some(Code::PermissionDenied));
        assert_eq!(
            err.to_string(),
            "the ledger refused the call: no (gRPC PERMISSION_DENIED)"
        );
        let err = Error::from_status(Status::unavailable("down"), "the server");
        assert_eq!(
            err.to_string(),
            "the server is unavailable: down (gRPC UNAVAILABLE)"
        );
    }

    #[test]
    fn a_refused_server_identity_is_classified_not_debug_printed() {
        use tokio_rustls::rustls;
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::BadCertificate);
        let status = Status::from_error(Box::new(std::io::Error::other(alert)));
        let err = Error::from_status(status, "the ledger");
        assert!(
            matches!(
                &err,
                Error::ServerRefused {
                    reason: "peer_alert",
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("mutual TLS handshake with the ledger failed: the ledger refused the handshake with the alert "),
            "{text}"
        );
        assert!(!text.contains('{') && !text.contains("Custom"), "{text}");
    }

    #[test]
    fn only_the_transports_not_sent_statuses_are_transparent() {
        assert!(not_sent(&Status::cancelled("operation was canceled")));
        assert!(not_sent(&Status::unavailable("h2 protocol error: refused")));
        assert!(!not_sent(&Status::cancelled("the caller cancelled")));
        assert!(!not_sent(&Status::unavailable("connection refused")));
    }

    #[test]
    fn a_broken_connection_is_the_transports_never_the_servers() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(broken_connection(&Status::from_error(Box::new(reset))));
        // The same codes sent by the server (no source): its answer, not retried.
        assert!(!broken_connection(&Status::unknown("transport error")));
        assert!(!broken_connection(&Status::internal("boom")));
    }
}
