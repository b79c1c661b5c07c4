//! Errors loading key material and building TLS configurations.

use std::path::PathBuf;

/// Why a keystore, truststore or TLS configuration could not be built. Each variant names the
/// file involved, so an operator reads one line and knows what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The file is not valid PEM, or lacks what it should hold (no certificate, no key, an
    /// encrypted key); the source names the block and line.
    #[error("{}: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        source: zt_pem::PemError,
    },
    /// Every CA of the bundles is expired or not yet valid: nothing could be verified.
    #[error("{}: no usable CA: every CA is expired or not yet valid", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NoUsableCa {
        /// The bundle files.
        paths: Vec<PathBuf>,
    },
    /// A trust domain clients may come from that no usable CA of the bundles vouches for:
    /// none of its clients could ever be verified.
    #[error(
        "{}: no usable CA vouches for trust domain {domain}, which clients may come from; add \
         its CA (bound as {domain}=PATH if it names no trust domain) or stop accepting the domain",
        paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NoCaForTrustDomain {
        /// The trust domain.
        domain: String,
        /// The bundle files.
        paths: Vec<PathBuf>,
    },
    /// A PKCS#12 keystore or truststore that cannot be used (no password, a wrong one, no
    /// key, a key in a truststore).
    #[error("{}: {reason}", path.display())]
    Pkcs12 {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A SPIFFE trust bundle (JWK set) that cannot be used.
    #[error("{}: SPIFFE bundle: {reason}", path.display())]
    SpiffeBundle {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A certificate that cannot be used for the purpose it is loaded for.
    #[error("{}: certificate {index}: {reason}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// Position of the certificate in the file, from 0.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A private key the crypto provider cannot use.
    #[error("{}: unusable private key: {reason}", path.display())]
    BadPrivateKey {
        /// The file.
        path: PathBuf,
        /// The provider's reason.
        reason: String,
    },
    /// The private key does not belong to the certificate.
    #[error("{}: private key does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// A certificate revocation list that cannot be used.
    #[error("{}: CRL {index}: {reason}", path.display())]
    BadCrl {
        /// The file.
        path: PathBuf,
        /// Position of the CRL in the file, from 0.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}
