//! TLS failures in words, each with a stable label beside it.
//!
//! rustls renders many of its errors with Rust debug text
//! (`invalid peer certificate: Other(OtherError(UntrustedDomain("partner.example")))`). Logs,
//! errors and CLI output go through [`describe_tls`] / [`describe_handshake`] instead: a
//! sentence for people, and a `reason` for machines (log fields, metric labels, tests), the
//! same `reason` the accept loop counts in `zt_tls_handshake_refusals_total`.

use std::fmt;
use std::io;

use rustls::{AlertDescription, CertificateError as C, Error as E, PeerIncompatible};
use zt_identity::IdentityError;

use crate::verify::UnexpectedServer;

/// Every `reason` the accept loop can log and count for a refused connection, so their
/// series can exist (at 0) from startup: see [`crate::accept`].
pub const REFUSAL_REASONS: &[&str] = &[
    "no_certificate",
    "unknown_ca",
    "expired",
    "not_yet_valid",
    "revoked",
    "not_svid",
    "untrusted_trust_domain",
    "malformed_certificate",
    "bad_certificate",
    "protocol_version",
    "no_application_protocol",
    "client_alert",
    "not_tls",
    "handshake_timeout",
    "client_hello_timeout",
    "pending_limit",
    "source_pending_limit",
    "source_failure_limit",
    "connection_limit",
    "io",
    "tls_error",
];

/// A socket that sent no complete ClientHello within `client_hello_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("no complete ClientHello in time")]
pub(crate) struct ClientHelloTimeout;

/// A TLS failure: what happened in a sentence, and a stable label for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFailure {
    /// A short, stable label: `unknown_ca`, `expired`, `untrusted_trust_domain`,
    /// `unexpected_server`, ... (see [`REFUSAL_REASONS`]; a client also sees
    /// `unexpected_server` and `peer_alert`).
    pub reason: &'static str,
    /// What happened, in words.
    pub message: String,
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl TlsFailure {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// A failed handshake as the accept loop or a connector sees it: an I/O error that may
/// carry a rustls error, or a timeout.
pub fn describe_handshake(err: &io::Error) -> TlsFailure {
    if err.get_ref().is_some_and(|e| e.is::<ClientHelloTimeout>()) {
        return TlsFailure::new("client_hello_timeout", ClientHelloTimeout.to_string());
    }
    if err.kind() == io::ErrorKind::TimedOut {
        return TlsFailure::new("handshake_timeout", "TLS handshake timed out");
    }
    match err.get_ref().and_then(|e| e.downcast_ref::<E>()) {
        Some(tls) => describe_tls(tls),
        None => TlsFailure::new("io", err.to_string()),
    }
}

/// A rustls error in words. Our own verifiers' reasons (an identity refused, an unexpected
/// server) are carried inside rustls as `OtherError`; they are unwrapped and said as written.
pub fn describe_tls(err: &E) -> TlsFailure {
    match err {
        E::NoCertificatesPresented => TlsFailure::new(
            "no_certificate",
            "no certificate presented (mutual TLS requires one)",
        ),
        E::InvalidCertificate(cert) => describe_certificate(cert),
        E::PeerIncompatible(why) => {
            // A client offering only TLS 1.2 in its supported_versions extension (the JDK
            // does) is Tls12NotOfferedOrEnabled, the same refusal as one without it.
            let version = matches!(
                why,
                PeerIncompatible::Tls13RequiredForQuic
                    | PeerIncompatible::SupportedVersionsExtensionRequired
                    | PeerIncompatible::ServerDoesNotSupportTls12Or13
                    | PeerIncompatible::Tls12NotOfferedOrEnabled
            );
            let reason = if version {
                "protocol_version"
            } else {
                "tls_error"
            };
            let message = match why {
                _ if version => "no TLS version in common (TLS 1.3 only)".to_owned(),
                other => format!("incompatible peer: {}", words(other)),
            };
            TlsFailure::new(reason, message)
        }
        E::PeerMisbehaved(why) => {
            TlsFailure::new("tls_error", format!("peer misbehaved: {}", words(why)))
        }
        E::NoApplicationProtocol => TlsFailure::new(
            "no_application_protocol",
            "no application protocol in common (ALPN: only h2 is spoken)",
        ),
        E::AlertReceived(alert) => TlsFailure::new(
            "client_alert",
            format!(
                "the peer ended the handshake with the alert {}",
                alert_name(*alert)
            ),
        ),
        E::InvalidMessage(what) => TlsFailure::new(
            "not_tls",
            format!("not TLS: a malformed message ({})", words(what)),
        ),
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            TlsFailure::new("tls_error", "the peer sent a message out of order")
        }
        E::DecryptError => TlsFailure::new("tls_error", "cannot decrypt the peer's message"),
        E::InvalidCertRevocationList(crl) => TlsFailure::new(
            "tls_error",
            format!("unusable certificate revocation list: {}", words(crl)),
        ),
        E::InconsistentKeys(why) => TlsFailure::new(
            "tls_error",
            format!(
                "the private key does not fit the certificate: {}",
                words(why)
            ),
        ),
        E::General(text) => TlsFailure::new("tls_error", text.clone()),
        E::Other(other) => TlsFailure::new("tls_error", other.0.to_string()),
        // The rest are rare (local failures, a peer's oversized record, ...); rustls's own
        // text for them is already in words.
        other => TlsFailure::new("tls_error", other.to_string()),
    }
}

fn describe_certificate(err: &C) -> TlsFailure {
    let (reason, message): (&'static str, String) = match err {
        C::UnknownIssuer => (
            "unknown_ca",
            "certificate not issued by a CA trusted for its trust domain".into(),
        ),
        C::BadSignature => (
            "bad_certificate",
            "certificate signature does not verify".into(),
        ),
        C::Expired => ("expired", "certificate expired".into()),
        C::ExpiredContext { time, not_after } => (
            "expired",
            format!(
                "certificate expired at {} ({} s before the handshake)",
                rfc3339(not_after.as_secs()),
                time.as_secs().saturating_sub(not_after.as_secs())
            ),
        ),
        C::NotValidYet => ("not_yet_valid", "certificate not valid yet".into()),
        C::NotValidYetContext { time, not_before } => (
            "not_yet_valid",
            format!(
                "certificate not valid until {} ({} s after the handshake: check the clocks)",
                rfc3339(not_before.as_secs()),
                not_before.as_secs().saturating_sub(time.as_secs())
            ),
        ),
        C::Revoked => ("revoked", "certificate revoked (listed in a CRL)".into()),
        C::UnknownRevocationStatus => (
            "bad_certificate",
            "certificate revocation status unknown: no CRL from its issuer".into(),
        ),
        C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => (
            "bad_certificate",
            "the CRL that covers this certificate has expired".into(),
        ),
        C::UnhandledCriticalExtension => (
            "bad_certificate",
            "certificate has a critical extension this verifier does not know".into(),
        ),
        C::BadEncoding => ("bad_certificate", "certificate is not valid DER".into()),
        C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => (
            "bad_certificate",
            "certificate signed with an algorithm this verifier does not support".into(),
        ),
        C::NotValidForName => (
            "bad_certificate",
            "certificate not valid for the name dialled".into(),
        ),
        C::InvalidPurpose => (
            "bad_certificate",
            "certificate's extended key usage does not allow this use".into(),
        ),
        // rustls says these (names, usages) in words itself.
        C::NotValidForNameContext { .. } | C::InvalidPurposeContext { .. } => {
            ("bad_certificate", err.to_string())
        }
        C::Other(other) => {
            let inner = &*other.0;
            if let Some(identity) = inner.downcast_ref::<IdentityError>() {
                (identity.kind(), identity.to_string())
            } else if let Some(unexpected) = inner.downcast_ref::<UnexpectedServer>() {
                ("unexpected_server", unexpected.to_string())
            } else {
                ("bad_certificate", inner.to_string())
            }
        }
        other => (
            "bad_certificate",
            format!("certificate refused: {}", words(other)),
        ),
    };
    TlsFailure::new(reason, message)
}

/// A gRPC status code by its canonical name (`PERMISSION_DENIED`, `UNAVAILABLE`, ...), as
/// the gRPC specification and every other implementation write it: a stable field beside the
/// words, where tonic's debug text would say `PermissionDenied`.
pub fn grpc_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A TLS alert by its name in the TLS registry (RFC 8446 §6): `certificate_required`,
/// `decrypt_error`, ...
pub fn alert_name(alert: AlertDescription) -> String {
    words(&alert).replace(' ', "_")
}

/// A unit enum value's debug name in lowercase words: `NoCipherSuitesInCommon` gives
/// `no cipher suites in common`. Payloads are left out.
fn words(value: &impl fmt::Debug) -> String {
    let debug = format!("{value:?}");
    let name = debug
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default();
    let mut out = String::with_capacity(name.len() + 8);
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            out.push(' ');
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Unix seconds as RFC 3339 UTC, e.g. `2026-11-24T10:00:00Z`.
fn rfc3339(unix: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::{AlertDescription, CertificateError, Error, OtherError, PeerIncompatible};
    use zt_identity::{IdentityError, SpiffeId};

    use super::*;

    fn other(err: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(err))))
    }

    #[test]
    fn refusals_are_sentences_with_stable_reasons() {
        let id = |s: &str| SpiffeId::new(s).unwrap();
        let cases = [
            (
                other(IdentityError::UntrustedDomain("partner.example".into())),
                "untrusted_trust_domain",
                "trust domain \"partner.example\" is not trusted",
            ),
            (
                other(UnexpectedServer {
                    expected: id("spiffe://zt.example/ns/prod/sa/ledger"),
                    presented: id("spiffe://zt.example/ns/prod/sa/web"),
                }),
                "unexpected_server",
                "server presented spiffe://zt.example/ns/prod/sa/web, expected \
                 spiffe://zt.example/ns/prod/sa/ledger",
            ),
            (
                Error::InvalidCertificate(CertificateError::UnknownIssuer),
                "unknown_ca",
                "certificate not issued by a CA trusted for its trust domain",
            ),
            (
                Error::InvalidCertificate(CertificateError::ExpiredContext {
                    time: rustls_pki_types::UnixTime::since_unix_epoch(
                        std::time::Duration::from_secs(1_800_000_060),
                    ),
                    not_after: rustls_pki_types::UnixTime::since_unix_epoch(
                        std::time::Duration::from_secs(1_800_000_000),
                    ),
                }),
                "expired",
                "certificate expired at 2027-01-15T08:00:00Z (60 s before the handshake)",
            ),
            (
                Error::NoCertificatesPresented,
                "no_certificate",
                "no certificate presented (mutual TLS requires one)",
            ),
            (
                Error::AlertReceived(AlertDescription::CertificateRequired),
                "client_alert",
                "the peer ended the handshake with the alert certificate_required",
            ),
            (
                Error::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon),
                "tls_error",
                "incompatible peer: no cipher suites in common",
            ),
            (
                Error::PeerIncompatible(PeerIncompatible::SupportedVersionsExtensionRequired),
                "protocol_version",
                "no TLS version in common (TLS 1.3 only)",
            ),
            (
                Error::PeerIncompatible(PeerIncompatible::Tls12NotOfferedOrEnabled),
                "protocol_version",
                "no TLS version in common (TLS 1.3 only)",
            ),
        ];
        for (err, reason, message) in cases {
            let failure = describe_tls(&err);
            assert_eq!(
                (failure.reason, failure.message.as_str()),
                (reason, message)
            );
            let handshake = describe_handshake(&io::Error::new(io::ErrorKind::InvalidData, err));
            assert_eq!(handshake, failure);
            assert!(REFUSAL_REASONS.contains(&reason) || reason == "unexpected_server");
        }
        let timeout = describe_handshake(&io::Error::new(io::ErrorKind::TimedOut, "x"));
        assert_eq!(timeout.reason, "handshake_timeout");
    }

    #[test]
    fn every_identity_refusal_reason_is_known() {
        let all = [
            IdentityError::NoCertificate,
            IdentityError::Malformed(String::new()),
            IdentityError::NotAnSvid(zt_identity::SvidViolation::NoUriSan),
            IdentityError::UntrustedDomain(String::new()),
            IdentityError::Expired { not_after: 0 },
            IdentityError::Revoked {
                serial: String::new(),
            },
        ];
        for err in all {
            assert!(REFUSAL_REASONS.contains(&err.kind()), "{}", err.kind());
        }
    }

    #[test]
    fn alerts_have_their_registry_names() {
        assert_eq!(alert_name(AlertDescription::DecryptError), "decrypt_error");
        assert_eq!(
            grpc_code_name(tonic::Code::PermissionDenied),
            "PERMISSION_DENIED"
        );
        assert_eq!(
            alert_name(AlertDescription::NoApplicationProtocol),
            "no_application_protocol"
        );
    }
}
