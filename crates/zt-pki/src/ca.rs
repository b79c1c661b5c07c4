//! Creating a CA, loading one from PEM, and issuing leaf SVIDs from it.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use zt_identity::{SpiffeId, TrustDomain};

use crate::error::PkiError;

/// How long a CA made by [`Ca::generate`] lives unless told otherwise.
pub const DEFAULT_CA_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// How long a leaf lives unless told otherwise: short, so a stolen key is soon worthless.
pub const DEFAULT_LEAF_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// How far `notBefore` is backdated, so a peer whose clock runs a little behind still accepts it.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// A certificate authority able to sign certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    common_name: String,
    trust_domain: Option<TrustDomain>,
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Ca")
            .field("trust_domain", &self.trust_domain)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// What to put in a leaf SVID.
#[derive(Debug, Clone)]
pub struct LeafRequest {
    /// The workload's identity, the one URI SAN.
    pub spiffe_id: SpiffeId,
    /// DNS SANs, so ordinary TLS clients can verify a server by host name.
    pub dns_names: Vec<String>,
    /// How long the certificate is valid from now.
    pub lifetime: Duration,
}

impl LeafRequest {
    /// A request for `spiffe_id` with no DNS names and the default lifetime.
    pub fn new(spiffe_id: SpiffeId) -> Self {
        Self {
            spiffe_id,
            dns_names: Vec::new(),
            lifetime: DEFAULT_LEAF_LIFETIME,
        }
    }
}

/// A freshly issued leaf: the keystore of one workload.
#[derive(Clone)]
pub struct IssuedLeaf {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM. Secret.
    pub key_pem: String,
}

/// Keeps the private key out of logs and panic messages.
impl std::fmt::Debug for IssuedLeaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedLeaf")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl Ca {
    /// Creates a new self-signed CA for `trust_domain` with an ECDSA P-256 key, named
    /// `TRUST_DOMAIN root CA DATE SERIAL-PREFIX`.
    ///
    /// Each CA gets a name of its own: during a CA rotation two CAs of one trust domain are
    /// trusted at once, and CRLs (and path building) find their CA by name.
    pub fn generate(trust_domain: &TrustDomain, lifetime: Duration) -> Result<Self, PkiError> {
        let serial = random_serial();
        let generation = format!(
            "root CA {} {}",
            OffsetDateTime::now_utc().date(),
            hex_prefix(serial.as_ref(), 3)
        );
        // X.509 bounds a common name at 64 characters; a trust domain may be longer, and is in
        // the CA's URI SAN anyway.
        let name = Some(format!("{trust_domain} {generation}"))
            .filter(|name| name.len() <= 64)
            .unwrap_or(generation);
        Self::generate_with(trust_domain, lifetime, &name, serial)
    }

    /// Like [`Self::generate`], with the subject's common name chosen by the caller: an
    /// operator's naming scheme, or a lab's forged CA copying a real one's name.
    pub fn generate_named(
        trust_domain: &TrustDomain,
        lifetime: Duration,
        common_name: &str,
    ) -> Result<Self, PkiError> {
        Self::generate_with(trust_domain, lifetime, common_name, random_serial())
    }

    fn generate_with(
        trust_domain: &TrustDomain,
        lifetime: Duration,
        common_name: &str,
        serial: SerialNumber,
    ) -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name);
        // A signing certificate may carry its trust domain's ID (no path); `issue` reads it back
        // to refuse IDs of other domains.
        params.subject_alt_names =
            vec![SanType::URI(format!("spiffe://{trust_domain}").try_into()?)];
        // pathLen 0: this CA signs leaves only, so a leaked leaf key can never mint certificates.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + lifetime;
        params.serial_number = Some(serial);
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            common_name: common_name.to_owned(),
            not_after: params.not_after,
            trust_domain: Some(trust_domain.clone()),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from its certificate and private key, both PEM. `cert_origin` and
    /// `key_origin` name where they came from, for error messages.
    pub fn from_pem(
        cert_pem: &str,
        key_pem: &str,
        cert_origin: &std::path::Path,
        key_origin: &std::path::Path,
    ) -> Result<Self, PkiError> {
        let bad = |path: &std::path::Path, reason: String| PkiError::BadFile {
            path: path.to_owned(),
            reason,
        };
        let key_der =
            zt_pem::private_key(key_pem.as_bytes()).map_err(|e| bad(key_origin, e.to_string()))?;
        let key = KeyPair::try_from(&key_der)
            .map_err(|e| bad(key_origin, format!("not a usable private key: {e}")))?;
        let der = match zt_pem::certificates(cert_pem.as_bytes())
            .map_err(|e| bad(cert_origin, e.to_string()))?
            .as_slice()
        {
            [one] => one.clone(),
            several => {
                return Err(bad(
                    cert_origin,
                    format!(
                        "{} certificates; a CA certificate file holds the CA alone",
                        several.len()
                    ),
                ));
            }
        };
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|e| bad(cert_origin, format!("malformed certificate: {e}")))?;
        if !cert.is_ca() {
            return Err(bad(cert_origin, "not a CA certificate (cA=false)".into()));
        }
        if cert.public_key().raw != key.subject_public_key_info() {
            return Err(bad(
                key_origin,
                format!("does not match {}", cert_origin.display()),
            ));
        }
        let trust_domain = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .and_then(|san| {
                san.value.general_names.iter().find_map(|name| match name {
                    GeneralName::URI(uri) => TrustDomain::new(uri).ok(),
                    _ => None,
                })
            });
        let not_after = cert.validity().not_after.to_datetime();
        let common_name = cert
            .subject()
            .iter_common_name()
            .find_map(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        let issuer = Issuer::from_ca_cert_der(&der, key)
            .map_err(|e| bad(cert_origin, format!("cannot sign with it: {e}")))?;
        Ok(Self {
            issuer,
            cert_pem: cert_pem.to_owned(),
            common_name,
            trust_domain,
            not_after,
        })
    }

    /// The common name of the CA's subject, which its certificates and CRLs name as issuer.
    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// The CA certificate, PEM: what services put in their truststore.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PKCS#8 PEM. Keep it off every service host.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// The trust domain this CA issues for, when its certificate names one.
    pub fn trust_domain(&self) -> Option<&TrustDomain> {
        self.trust_domain.as_ref()
    }

    /// Issues a leaf X509-SVID with a fresh ECDSA P-256 key, by the profile in the crate docs.
    pub fn issue(&self, request: &LeafRequest) -> Result<IssuedLeaf, PkiError> {
        if let Some(domain) = &self.trust_domain
            && !request.spiffe_id.is_member_of(domain)
        {
            return Err(PkiError::ForeignTrustDomain {
                id: request.spiffe_id.to_string(),
                ca_domain: domain.to_string(),
            });
        }
        let now = OffsetDateTime::now_utc();
        let not_after = now + request.lifetime;
        if not_after > self.not_after {
            return Err(PkiError::OutlivesCa {
                requested: humantime::format_duration(request.lifetime).to_string(),
                ca_not_after: self.not_after.to_string(),
            });
        }

        let mut params = CertificateParams::default();
        let common_name = request.spiffe_id.segments().last().unwrap_or("workload");
        params.distinguished_name = distinguished_name(common_name);
        params.subject_alt_names = vec![SanType::URI(request.spiffe_id.as_str().try_into()?)];
        for dns in &request.dns_names {
            let name = dns
                .as_str()
                .try_into()
                .map_err(|_| PkiError::DnsName(dns.clone()))?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = now - CLOCK_SKEW;
        params.not_after = not_after;
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert_pem = self.sign_raw(params, &key)?;
        Ok(IssuedLeaf {
            cert_pem,
            key_pem: key.serialize_pem(),
        })
    }

    /// Whether this CA signed the certificate `der` (its signature verifies with our key).
    pub fn signed(&self, der: &[u8]) -> bool {
        let Ok((_, leaf)) = X509Certificate::from_der(der) else {
            return false;
        };
        self.holds_for_own_certificate(|ca| {
            leaf.issuer() == ca.subject() && leaf.verify_signature(Some(ca.public_key())).is_ok()
        })
    }

    /// Whether `check` holds for this CA's own certificate.
    pub(crate) fn holds_for_own_certificate(
        &self,
        check: impl FnOnce(&X509Certificate<'_>) -> bool,
    ) -> bool {
        rustls_pki_types::pem::PemObject::from_pem_slice(self.cert_pem.as_bytes()).is_ok_and(
            |der: rustls_pki_types::CertificateDer<'static>| {
                X509Certificate::from_der(&der).is_ok_and(|(_, ca)| check(&ca))
            },
        )
    }

    /// Signs arbitrary parameters with no profile checks and returns the certificate PEM.
    ///
    /// For tests and tools that need deliberately non-conforming certificates (two URI SANs,
    /// expired, CA-as-leaf) that still chain to this CA. Services should use [`Ca::issue`].
    pub fn sign_raw(
        &self,
        mut params: CertificateParams,
        key: &KeyPair,
    ) -> Result<String, PkiError> {
        if params.serial_number.is_none() {
            params.serial_number = Some(random_serial());
        }
        Ok(params.signed_by(key, &self.issuer)?.pem())
    }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "zt-grpc");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// The first `bytes` bytes of `data` in lowercase hex.
fn hex_prefix(data: &[u8], bytes: usize) -> String {
    data.iter()
        .take(bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// 159 random bits: unique per certificate and, with the top bit clear, a positive INTEGER.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 20] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}
