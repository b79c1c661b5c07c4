//! The identity of an authenticated peer, and the trust domains it may come from.

use std::sync::Arc;

use crate::error::IdentityError;
use crate::spiffe_id::{SpiffeId, TrustDomain};
use crate::svid::inspect_leaf;

/// Who the peer is, as proven by a certificate chain that TLS verified.
///
/// Built once per connection and shared (`Arc`) with every request on it. Handlers read it from
/// the request extensions; they never parse certificates themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    spiffe_id: SpiffeId,
    dns_names: Vec<String>,
    subject: String,
    issuer: String,
    serial: String,
    not_after: i64,
}

impl PeerIdentity {
    /// The peer's SPIFFE ID: its one URI SAN.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// The DNS SANs of the peer's certificate.
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    /// The subject of the peer's certificate as grpc-go writes it: Go's `pkix.Name.String()`
    /// (attributes ordered by type, last first: `CN=payments,O=zt-grpc`; see
    /// [`crate::pkix_name_string`]). This is the text gRFC A43 principals are matched against,
    /// spelled as grpc-go spells it so that grpc-go policies naming subjects decide the same here.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The issuer distinguished name of the peer's certificate, RFC 4514 form (the
    /// certificate's RDN order reversed; see [`crate::rfc4514`]), as CRLs are matched. Not the
    /// form of [`Self::subject`].
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The certificate's serial number, lowercase hex.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// When the certificate expires, seconds since the Unix epoch.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// Whether the certificate still holds at `now` (Unix seconds). The handshake checked it
    /// once; a connection can outlive its certificate, so requests on it check again.
    pub fn check_expiry(&self, now: i64) -> Result<(), IdentityError> {
        if now > self.not_after {
            return Err(IdentityError::Expired {
                not_after: self.not_after,
            });
        }
        Ok(())
    }
}

/// The trust domains a service accepts peers from.
///
/// Chaining to a trusted CA is not enough: a CA shared by several trust domains (or a stolen
/// certificate for another domain) must not grant access here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedDomains(Arc<[TrustDomain]>);

impl TrustedDomains {
    /// Accepts peers from any of `domains`.
    pub fn new(domains: impl IntoIterator<Item = TrustDomain>) -> Self {
        Self(domains.into_iter().collect())
    }

    /// The accepted domains.
    pub fn domains(&self) -> &[TrustDomain] {
        &self.0
    }

    /// Whether `id` belongs to an accepted trust domain.
    pub fn contains(&self, id: &SpiffeId) -> bool {
        self.0.iter().any(|domain| id.is_member_of(domain))
    }

    /// Derives the peer's identity from its leaf certificate (the first DER in a chain that TLS
    /// has already verified), enforcing the X509-SVID leaf rules and the trust domain.
    pub fn identify(&self, leaf_der: Option<&[u8]>) -> Result<PeerIdentity, IdentityError> {
        let leaf = leaf_der.ok_or(IdentityError::NoCertificate)?;
        let report = inspect_leaf(leaf)?;
        if let Some(first) = report.violations.into_iter().next() {
            return Err(IdentityError::NotAnSvid(first));
        }
        // No violation means exactly one URI SAN that parsed as a SPIFFE ID.
        let spiffe_id = report
            .spiffe_id
            .ok_or(IdentityError::NotAnSvid(crate::SvidViolation::NoUriSan))?;
        if !self.contains(&spiffe_id) {
            return Err(IdentityError::UntrustedDomain(
                spiffe_id.trust_domain().to_owned(),
            ));
        }
        Ok(PeerIdentity {
            spiffe_id,
            dns_names: report.dns_sans,
            subject: report.subject,
            issuer: report.issuer,
            serial: report.serial,
            not_after: report.not_after,
        })
    }
}
