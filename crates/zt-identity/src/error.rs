//! Why a SPIFFE ID, a leaf certificate or a peer was not accepted.

use crate::spiffe_id::MAX_SPIFFE_ID_LEN;

/// A string that is not a valid SPIFFE ID, and which rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpiffeIdError {
    /// The string is empty.
    #[error("empty SPIFFE ID")]
    Empty,
    /// The scheme is not exactly `spiffe://`.
    #[error("scheme must be \"spiffe://\"")]
    WrongScheme,
    /// Nothing between `spiffe://` and the path.
    #[error("missing trust domain")]
    MissingTrustDomain,
    /// A trust domain longer than the specification allows.
    #[error(
        "trust domain longer than {} bytes",
        crate::spiffe_id::MAX_TRUST_DOMAIN_LEN
    )]
    TrustDomainTooLong,
    /// The trust domain holds a character outside `[a-z0-9.-_]` (uppercase, port, userinfo...).
    #[error(
        "trust domain may only contain lowercase letters, digits, '.', '-' and '_', found {0:?}"
    )]
    BadTrustDomainChar(char),
    /// The path holds a character outside `[A-Za-z0-9.-_/]` (percent-encoding, query, fragment...).
    #[error("path may only contain letters, digits, '.', '-', '_' and '/', found {0:?}")]
    BadPathChar(char),
    /// `//` in the path.
    #[error("path has an empty segment")]
    EmptySegment,
    /// A `.` or `..` segment.
    #[error("path has a '.' or '..' segment")]
    DotSegment,
    /// The path ends with `/`.
    #[error("path has a trailing '/'")]
    TrailingSlash,
    /// A workload ID needs a path; only a trust domain was given.
    #[error("workload SPIFFE ID needs a path after the trust domain")]
    MissingPath,
    /// Longer than the 2048 bytes the specification allows.
    #[error("longer than {MAX_SPIFFE_ID_LEN} bytes")]
    TooLong,
}

/// One way a leaf certificate breaks the X509-SVID profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SvidViolation {
    /// No URI SAN: there is no SPIFFE ID to read.
    #[error("no URI SAN (an X509-SVID carries exactly one spiffe:// URI SAN)")]
    NoUriSan,
    /// Several URI SANs: the specification says validators MUST reject this.
    #[error("{0} URI SANs (an X509-SVID carries exactly one)")]
    MultipleUriSans(usize),
    /// The one URI SAN is not a valid SPIFFE ID.
    #[error("URI SAN {uri:?} is not a valid SPIFFE ID: {reason}")]
    InvalidSpiffeId {
        /// The URI SAN as written in the certificate.
        uri: String,
        /// The rule it broke.
        reason: SpiffeIdError,
    },
    /// BasicConstraints says `cA=true`: a CA certificate is being used as a leaf.
    #[error("certificate is a CA (basicConstraints cA=true), not a leaf")]
    LeafIsCa,
    /// No KeyUsage extension.
    #[error("no KeyUsage extension (digitalSignature is required)")]
    MissingKeyUsage,
    /// KeyUsage present but not marked critical.
    #[error("KeyUsage extension is not critical")]
    KeyUsageNotCritical,
    /// KeyUsage lacks digitalSignature.
    #[error("KeyUsage lacks digitalSignature")]
    NoDigitalSignature,
    /// A leaf that may sign certificates or CRLs.
    #[error("leaf KeyUsage includes keyCertSign or cRLSign")]
    SigningKeyUsage,
    /// An ExtendedKeyUsage that lacks serverAuth or clientAuth.
    #[error("ExtendedKeyUsage present without both serverAuth and clientAuth")]
    ExtendedKeyUsage,
    /// An extension whose value cannot be parsed. Read as absent, a broken BasicConstraints
    /// would make a CA look like a leaf; the handshake (webpki) refuses such a certificate.
    #[error("extension {name} cannot be parsed: {reason}")]
    MalformedExtension {
        /// The extension's name, or its OID.
        name: String,
        /// The parser's reason.
        reason: String,
    },
    /// A critical extension this validator does not know: RFC 5280 section 4.2 requires
    /// refusing the certificate, and webpki does.
    #[error("unknown critical extension {0}")]
    UnknownCriticalExtension(String),
}

/// Why a verified chain did not yield a [`crate::PeerIdentity`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The peer presented no certificate at all.
    #[error("no client certificate")]
    NoCertificate,
    /// The leaf is not parseable DER.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// The leaf parses but is not an X509-SVID.
    #[error("not an X509-SVID: {0}")]
    NotAnSvid(SvidViolation),
    /// A valid SVID from a trust domain this service does not trust.
    #[error("trust domain {0:?} is not trusted")]
    UntrustedDomain(String),
    /// The certificate expired after the connection was established.
    #[error("certificate expired at {not_after} (unix seconds) while the connection was open")]
    Expired {
        /// The certificate's notAfter, Unix seconds.
        not_after: i64,
    },
    /// The certificate was revoked after the connection was established.
    #[error("certificate (serial {serial}) was revoked while the connection was open")]
    Revoked {
        /// The certificate's serial number, lowercase hex.
        serial: String,
    },
}

impl IdentityError {
    /// A short, stable label for logs and metrics (`no_certificate`, `not_svid`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoCertificate => "no_certificate",
            Self::Malformed(_) => "malformed_certificate",
            Self::NotAnSvid(_) => "not_svid",
            Self::UntrustedDomain(_) => "untrusted_trust_domain",
            Self::Expired { .. } => "expired",
            Self::Revoked { .. } => "revoked",
        }
    }
}
