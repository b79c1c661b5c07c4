//! Hostile client certificates, minted at run time with the project's CA code (rcgen, no
//! openssl). Two kinds:
//!
//! - **Without the target's CA key** (all a CI job usually has: the trust bundle): a
//!   self-signed certificate and certificates from rogue CAs, one of them copying the real
//!   CA's subject name and key identifier. They prove the target checks the chain.
//! - **From the issuing CA** ([`Defect`]): certificates that chain to a CA the target trusts
//!   and carry exactly one defect (expired, not yet valid, another trust domain, two URI SANs,
//!   a CA used as a leaf, `serverAuth` only). Only these prove that the target checks more
//!   than the chain: made by any other CA, each would be refused for its CA first. They need
//!   the issuing CA's key (a test environment's), or the certificates issued beforehand by
//!   whoever holds it ([`Defect::name`], see `zt-lab pki`). Each is one case of the catalogue
//!   ([`crate::catalogue::Case::Certificate`]), named, described and minted here.
//!
//! Every certificate claims a given SPIFFE ID (the legitimate client's, so that only its
//! defect can be the reason for a refusal), and every key is a fresh ECDSA P-256 key.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use zt_identity::SpiffeId;
use zt_pki::{Ca, IssuedLeaf};

use crate::Error;

/// How long the forged certificates that are meant to be current are valid (from five
/// minutes ago, for clock skew).
pub const FORGED_LIFETIME: Duration = Duration::from_secs(3600);

/// A defect that only a certificate from a trusted CA can test: each is a case of the
/// catalogue ([`crate::catalogue::Case::Certificate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Defect {
    /// `notAfter` an hour ago.
    Expired,
    /// `notBefore` in an hour.
    NotYetValid,
    /// A SPIFFE ID in a trust domain the target does not accept (`zt-attack.invalid`), signed
    /// by a CA the target trusts (for another domain, or a CA that names no domain).
    WrongTrustDomain,
    /// Two URI SANs (X509-SVID allows exactly one).
    TwoUriSans,
    /// A CA certificate (`cA=true`, `keyCertSign`) presented as a client's leaf.
    CaAsLeaf,
    /// Extended key usage `serverAuth` only: not a client certificate.
    ServerAuthOnly,
}

impl Defect {
    /// Every defect, in catalogue order.
    pub const ALL: [Self; 6] = [
        Self::Expired,
        Self::NotYetValid,
        Self::WrongTrustDomain,
        Self::TwoUriSans,
        Self::CaAsLeaf,
        Self::ServerAuthOnly,
    ];

    /// The stable name of the case (as `--only` and `--skip` take it, and as reports and JUnit
    /// name it), and of the pre-issued files (`NAME.pem`, `NAME.key`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::NotYetValid => "not-yet-valid",
            Self::WrongTrustDomain => "wrong-trust-domain",
            Self::TwoUriSans => "two-uri-sans",
            Self::CaAsLeaf => "ca-as-leaf",
            Self::ServerAuthOnly => "server-auth-only",
        }
    }

    /// What the case tries, as `zt-lab attack --help` lists it.
    pub fn description(self) -> &'static str {
        match self {
            Self::Expired => {
                "A certificate from the trusted CA that has expired (needs the issuing CA)"
            }
            Self::NotYetValid => {
                "A certificate from the trusted CA that is not valid yet (needs the issuing CA)"
            }
            Self::WrongTrustDomain => {
                "A certificate from a trusted CA for a trust domain the target does not accept \
                 (needs the issuing CA, or a pre-issued one: a federated partner's, in the lab)"
            }
            Self::TwoUriSans => {
                "A certificate from the trusted CA with two URI SANs (needs the issuing CA)"
            }
            Self::CaAsLeaf => {
                "A CA certificate from the trusted CA used as a client's leaf (needs the issuing \
                 CA)"
            }
            Self::ServerAuthOnly => {
                "A certificate from the trusted CA with EKU `serverAuth` only (needs the issuing \
                 CA)"
            }
        }
    }

    /// What the case proves when the target refuses the certificate (`that ... is refused`).
    pub fn proves(self) -> &'static str {
        match self {
            Self::Expired => "that an expired certificate is refused",
            Self::NotYetValid => "that a certificate not valid yet is refused",
            Self::WrongTrustDomain => {
                "that a trusted CA's certificate for another trust domain is refused"
            }
            Self::TwoUriSans => "that a certificate with two URI SANs is refused",
            Self::CaAsLeaf => "that a CA certificate used as a leaf is refused",
            Self::ServerAuthOnly => "that a serverAuth-only certificate is refused as a client's",
        }
    }

    /// Issues a certificate with this defect from `ca`, claiming `claim`.
    ///
    /// # Errors
    /// [`Error::Mint`] or [`Error::Pki`] if rcgen cannot make or sign it.
    pub fn issue(self, ca: &Ca, claim: &SpiffeId) -> Result<IssuedLeaf, Error> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let now = OffsetDateTime::now_utc();
        let hour = time::Duration::hours(1);
        let mut params = svid(claim.as_str())?;
        params.use_authority_key_identifier_extension = true;
        match self {
            Self::Expired => {
                params.not_before = now - hour * 2;
                params.not_after = now - hour;
            }
            Self::NotYetValid => {
                params.not_before = now + hour;
                params.not_after = now + hour * 2;
            }
            Self::WrongTrustDomain => {
                let path: String = claim.segments().map(|s| format!("/{s}")).collect();
                let foreign = format!("spiffe://zt-attack.invalid{path}");
                params.subject_alt_names = vec![SanType::URI(foreign.as_str().try_into()?)];
            }
            Self::TwoUriSans => {
                let second = format!("spiffe://{}/ns/zt-attack/sa/second", claim.trust_domain());
                params
                    .subject_alt_names
                    .push(SanType::URI(second.as_str().try_into()?));
            }
            Self::CaAsLeaf => {
                params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
                params.key_usages = vec![
                    KeyUsagePurpose::KeyCertSign,
                    KeyUsagePurpose::DigitalSignature,
                ];
            }
            Self::ServerAuthOnly => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            }
        }
        Ok(IssuedLeaf {
            cert_pem: ca.sign_raw(params, &key)?,
            key_pem: key.serialize_pem(),
        })
    }
}

/// A self-signed certificate claiming `claim`, otherwise a perfect X509-SVID.
///
/// # Errors
/// [`Error::Mint`] if rcgen cannot make it.
pub fn self_signed(claim: &SpiffeId) -> Result<IssuedLeaf, Error> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = svid(claim.as_str())?.self_signed(&key)?;
    Ok(IssuedLeaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A certificate claiming `claim` from a rogue CA made now: one with a name of its own, or
/// with `copying`'s subject name and key identifier (only the signature can tell them apart).
/// The rogue CA's certificate follows the leaf in the chain, as a careless client would send it.
///
/// # Errors
/// [`Error::Mint`] or [`Error::Pki`] if rcgen cannot make or sign it, or cannot read `copying`.
pub fn rogue_ca(
    claim: &SpiffeId,
    copying: Option<&CertificateDer<'_>>,
) -> Result<IssuedLeaf, Error> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = svid(claim.as_str())?;
    params.use_authority_key_identifier_extension = true;
    match copying {
        Some(real) => {
            let issuer =
                Issuer::from_ca_cert_der(real, KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?)?;
            Ok(IssuedLeaf {
                cert_pem: params.signed_by(&key, &issuer)?.pem(),
                key_pem: key.serialize_pem(),
            })
        }
        None => {
            let domain = zt_identity::TrustDomain::new(claim.trust_domain())?;
            let rogue = Ca::generate(&domain, zt_pki::DEFAULT_CA_LIFETIME)?;
            Ok(IssuedLeaf {
                cert_pem: format!("{}{}", rogue.sign_raw(params, &key)?, rogue.cert_pem()),
                key_pem: key.serialize_pem(),
            })
        }
    }
}

/// An X509-SVID's parameters for `id`, as the project's CA issues them: one URI SAN, not a
/// CA, `digitalSignature`, `serverAuth` and `clientAuth`, valid from five minutes ago for
/// [`FORGED_LIFETIME`], a random positive serial.
pub(crate) fn svid(id: &str) -> Result<CertificateParams, Error> {
    let mut params = CertificateParams::default();
    let name = id.rsplit('/').next().unwrap_or("workload");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "zt-grpc");
    params.distinguished_name.push(DnType::CommonName, name);
    params.subject_alt_names = vec![SanType::URI(id.try_into()?)];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + FORGED_LIFETIME;
    params.serial_number = Some(serial(&mut rand::rng()));
    Ok(params)
}

/// A random positive 16-byte serial number.
pub(crate) fn serial(rng: &mut rand::rngs::ThreadRng) -> SerialNumber {
    use rand::Rng as _;
    let mut bytes: [u8; 16] = rng.random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}
