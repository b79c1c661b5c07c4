//! Errors of the certificate authority and its files.

use std::path::PathBuf;

/// Everything that can go wrong creating, loading or using a CA.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// Key generation, encoding or signing failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The directory to write into does not exist (and creating it was not asked for).
    #[error("{}: no such directory (pass --mkdir to create it)", .0.display())]
    MissingDirectory(PathBuf),
    /// Refusing to replace existing key material.
    #[error("{}: already exists (pass --force to overwrite)", .0.display())]
    Exists(PathBuf),
    /// A certificate, key or CA file that cannot be used.
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The requested SPIFFE ID belongs to another trust domain than the CA's.
    #[error("{id} is outside this CA's trust domain {ca_domain}")]
    ForeignTrustDomain {
        /// The requested ID.
        id: String,
        /// The CA's trust domain.
        ca_domain: String,
    },
    /// The requested leaf would outlive the CA that signs it.
    #[error("a {requested} leaf would outlive the CA (valid until {ca_not_after})")]
    OutlivesCa {
        /// The requested lifetime, human readable.
        requested: String,
        /// The CA's expiry.
        ca_not_after: String,
    },
    /// A serial number that is not hex.
    #[error("{0:?} is not a serial number (expected hex, as `zt-ca inspect` prints it)")]
    BadSerial(String),
    /// A CRL file that cannot be read back.
    #[error("{}: {reason}", path.display())]
    BadCrl {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A SPIFFE ID that does not parse.
    #[error("invalid SPIFFE ID: {0}")]
    SpiffeId(#[from] zt_identity::SpiffeIdError),
    /// A DNS name that is not a valid SAN.
    #[error("invalid DNS name {0:?}")]
    DnsName(String),
}
