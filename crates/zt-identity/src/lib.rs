//! Who is on the other end of a connection, derived only from a certificate chain that TLS has
//! already verified.
//!
//! - [`SpiffeId`] and [`TrustDomain`]: the SPIFFE ID syntax rules, enforced at parse time so an
//!   invalid ID cannot exist as a value.
//! - [`inspect_leaf`]: reads a leaf certificate and lists every way it breaks the X509-SVID
//!   profile (used by the CA tool's `inspect` and by validation alike, so both agree).
//! - [`PeerIdentity`]: the identity of an authenticated peer, built by [`TrustedDomains::identify`]
//!   from a verified chain, once per connection, and handed to authorization and handlers.
//! - [`pkix_name_string`]: a subject as grpc-go writes it (Go's `pkix.Name.String()`), the text
//!   gRFC A43 principals match ([`subject_der`] finds it in a certificate); [`rfc4514`]: a name
//!   in RFC 4514 form, for issuers and CRLs.
//!
//! Nothing here does I/O or verifies signatures: chain building and signature checks belong to
//! rustls-webpki, which does not look at URI SANs. This crate adds exactly what webpki leaves out.
//!
//! ```
//! use zt_identity::{SpiffeId, SpiffeIdError, TrustDomain};
//!
//! let payments: SpiffeId = "spiffe://zt.example/ns/prod/sa/payments".parse()?;
//! assert_eq!(payments.trust_domain(), "zt.example");
//! assert!(payments.is_member_of(&TrustDomain::new("zt.example")?));
//! assert!(!payments.is_member_of(&TrustDomain::new("partner.example")?));
//! // Invalid IDs cannot be built (SPIFFE-ID 2.2: no empty segments, no uppercase domains).
//! assert_eq!(
//!     "spiffe://zt.example/ns//sa".parse::<SpiffeId>(),
//!     Err(SpiffeIdError::EmptySegment)
//! );
//! assert!("spiffe://ZT.example/x".parse::<SpiffeId>().is_err());
//! # Ok::<(), SpiffeIdError>(())
//! ```

mod dn;
mod error;
mod peer;
mod spiffe_id;
mod svid;

pub use dn::{pkix_name_string, subject_der};
pub use error::{IdentityError, SpiffeIdError, SvidViolation};
pub use peer::{PeerIdentity, TrustedDomains};
pub use spiffe_id::{MAX_SPIFFE_ID_LEN, MAX_TRUST_DOMAIN_LEN, SpiffeId, TrustDomain};
pub use svid::{LeafReport, inspect_leaf, rfc4514};
