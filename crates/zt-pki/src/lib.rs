//! The project's internal certificate authority.
//!
//! A CA is a key pair plus a self-signed certificate that services put in their *truststore*.
//! It signs leaf certificates (a service's *keystore*: its own key and certificate) that carry
//! exactly one SPIFFE ID, following the X509-SVID profile:
//!
//! - one URI SAN (`spiffe://trust-domain/path`), optional DNS SANs;
//! - `cA=false`; KeyUsage `digitalSignature`, critical; ExtendedKeyUsage serverAuth + clientAuth
//!   (rustls-webpki accepts a leaf *without* EKU for any purpose, so it is always set);
//! - ECDSA P-256 keys and SHA-256 signatures;
//! - `notBefore` backdated five minutes for clock skew, short lifetimes (24 h by default);
//! - never name constraints on the CA (rustls-webpki rejects URI name constraints outright).
//!
//! [`Ca`] does the cryptography and returns PEM strings; [`files`] writes them with safe
//! permissions. The `zt-ca` binary is thin wiring over both.
//!
//! ```
//! use std::time::Duration;
//! use zt_identity::{SpiffeId, TrustDomain};
//! use zt_pki::{Ca, LeafRequest};
//!
//! let domain = TrustDomain::new("zt.example")?;
//! let ca = Ca::generate(&domain, Duration::from_secs(30 * 24 * 3600))?;
//! let payments = ca.issue(&LeafRequest::new(SpiffeId::new(
//!     "spiffe://zt.example/ns/prod/sa/payments",
//! )?))?;
//! // The truststore gets `ca.cert_pem()`; the keystore gets the leaf and its key.
//! assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
//! assert!(payments.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod ca;
mod crl;
mod error;
pub mod files;
mod inspect;
mod renew;

pub use ca::{CLOCK_SKEW, Ca, DEFAULT_CA_LIFETIME, DEFAULT_LEAF_LIFETIME, IssuedLeaf, LeafRequest};
pub use crl::{CrlContent, DEFAULT_CRL_VALIDITY, Revocation};
pub use error::PkiError;
pub use inspect::{describe_pem, leaf_serial};
pub use renew::{Installed, Keystore, Renewal};
