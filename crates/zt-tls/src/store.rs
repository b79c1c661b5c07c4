//! Keystore (own chain + private key) and truststore (trusted CAs), loaded from PEM files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use zt_identity::{SpiffeId, TrustDomain, inspect_leaf};

use crate::error::TlsError;

/// A service's own identity: its certificate chain (leaf first) and the matching private key.
#[derive(Debug, Clone)]
pub struct Keystore {
    certified: Arc<CertifiedKey>,
    spiffe_id: SpiffeId,
    not_after: i64,
}

impl Keystore {
    /// Loads the chain from `cert` and the key from `key`, and checks that they belong together.
    ///
    /// The leaf must be a valid X509-SVID that is valid now: a service that would be refused by
    /// every peer should fail at startup, not at its first handshake.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let chain = load_certs(cert)?;
        let bad = |reason: String| TlsError::BadCertificate {
            path: cert.to_owned(),
            index: 0,
            reason,
        };
        let leaf = inspect_leaf(&chain[0]).map_err(|e| bad(e.to_string()))?;
        let spiffe_id = match (leaf.spiffe_id, leaf.violations.first()) {
            (Some(id), None) => id,
            (_, Some(violation)) => return Err(bad(format!("not an X509-SVID: {violation}"))),
            (None, None) => return Err(bad("no SPIFFE ID".into())),
        };
        let now = unix_now();
        if now < leaf.not_before || now > leaf.not_after {
            return Err(bad(format!(
                "certificate is not valid now (valid from {} until {}, unix seconds)",
                leaf.not_before, leaf.not_after
            )));
        }
        let key_der = load_key(key)?;
        let provider = crate::crypto_provider();
        let signing_key = provider
            .key_provider
            .load_private_key(key_der)
            .map_err(|e| TlsError::BadPrivateKey {
                path: key.to_owned(),
                reason: e.to_string(),
            })?;
        let certified = CertifiedKey::new(chain, signing_key);
        match certified.keys_match() {
            Ok(()) => Ok(Self {
                certified: Arc::new(certified),
                spiffe_id,
                not_after: leaf.not_after,
            }),
            Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
            }),
            Err(e) => Err(TlsError::BadCertificate {
                path: cert.to_owned(),
                index: 0,
                reason: e.to_string(),
            }),
        }
    }

    /// The SPIFFE ID this keystore proves.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// When the leaf certificate expires, seconds since the Unix epoch.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// The chain and key, as rustls wants them.
    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.certified)
    }
}

/// A CA bundle file, optionally bound to one trust domain (`zt.example=/path/ca.pem`).
///
/// Without a domain, each CA in the file must name the trust domain it vouches for in a
/// `spiffe://<trust-domain>` URI SAN (as `zt-ca init` and SPIRE write them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSource {
    /// The trust domain every CA in the file vouches for, when given explicitly.
    pub domain: Option<TrustDomain>,
    /// The PEM file.
    pub path: PathBuf,
}

impl std::str::FromStr for BundleSource {
    type Err = std::convert::Infallible;

    /// `TRUST-DOMAIN=PATH` or `PATH`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let explicit = s
            .split_once('=')
            .and_then(|(domain, path)| Some((TrustDomain::new(domain).ok()?, path)));
        Ok(match explicit {
            Some((domain, path)) => Self {
                domain: Some(domain),
                path: path.into(),
            },
            None => Self {
                domain: None,
                path: s.into(),
            },
        })
    }
}

impl From<&Path> for BundleSource {
    fn from(path: &Path) -> Self {
        Self {
            domain: None,
            path: path.to_owned(),
        }
    }
}

/// The CAs a service trusts, **per trust domain**.
///
/// A peer's chain is only ever checked against the CAs of the trust domain its SPIFFE ID
/// claims. With one flat pool, a federated partner's CA (trusted to vouch for
/// `partner.example`) could sign `spiffe://zt.example/...` and impersonate our own workloads.
#[derive(Debug, Clone)]
pub struct Truststore {
    domains: BTreeMap<TrustDomain, Arc<RootCertStore>>,
    cas: Vec<TrustedCa>,
}

/// One CA of a [`Truststore`].
#[derive(Debug, Clone)]
pub struct TrustedCa {
    /// The trust domain it vouches for.
    pub domain: TrustDomain,
    /// Its subject (RFC 4514), which is the issuer name of what it signs.
    pub subject: String,
    /// When it expires, Unix seconds.
    pub not_after: i64,
    /// The certificate.
    pub der: CertificateDer<'static>,
}

impl Truststore {
    /// Loads one CA bundle file; see [`Truststore::load_all`].
    pub fn load(path: &Path) -> Result<Self, TlsError> {
        Self::load_all(&[BundleSource::from(path)])
    }

    /// Loads CA bundles: one or more PEM CA certificates each (several during a CA rotation, or
    /// for federated trust domains).
    ///
    /// Stricter than rustls-webpki, which checks neither validity nor critical extensions of
    /// trust anchors: every certificate must be a CA, currently valid, with no unknown critical
    /// extension, and must be bound to exactly one trust domain. A bad bundle is refused whole
    /// rather than partly trusted.
    pub fn load_all(sources: &[BundleSource]) -> Result<Self, TlsError> {
        let now = unix_now();
        let mut domains: BTreeMap<TrustDomain, RootCertStore> = BTreeMap::new();
        let mut cas = Vec::new();
        for source in sources {
            let path = &source.path;
            for (index, der) in load_certs(path)?.into_iter().enumerate() {
                let bad = |reason: String| TlsError::BadCertificate {
                    path: path.clone(),
                    index,
                    reason,
                };
                let (_, cert) = X509Certificate::from_der(&der)
                    .map_err(|e| bad(format!("malformed certificate: {e}")))?;
                if !cert.is_ca() {
                    return Err(bad(
                        "not a CA certificate (cA=false); a truststore holds CAs only".into(),
                    ));
                }
                let validity = cert.validity();
                let (from, until) = (
                    validity.not_before.timestamp(),
                    validity.not_after.timestamp(),
                );
                if !(from..=until).contains(&now) {
                    return Err(bad(format!(
                        "CA certificate is not valid now (valid from {} until {})",
                        validity.not_before, validity.not_after
                    )));
                }
                if let Some(ext) = cert.extensions().iter().find(|ext| {
                    ext.critical
                        && matches!(
                            ext.parsed_extension(),
                            ParsedExtension::UnsupportedExtension { .. }
                        )
                }) {
                    return Err(bad(format!("unknown critical extension {}", ext.oid)));
                }
                let domain = ca_trust_domain(&cert, source.domain.as_ref()).map_err(bad)?;
                domains
                    .entry(domain.clone())
                    .or_insert_with(RootCertStore::empty)
                    .add(der.clone())
                    .map_err(|e| bad(e.to_string()))?;
                cas.push(TrustedCa {
                    domain,
                    subject: zt_identity::rfc4514(cert.subject()),
                    not_after: until,
                    der,
                });
            }
        }
        Ok(Self {
            domains: domains
                .into_iter()
                .map(|(domain, roots)| (domain, Arc::new(roots)))
                .collect(),
            cas,
        })
    }

    /// The CAs that may vouch for identities of `trust_domain`.
    pub fn roots_for(&self, trust_domain: &str) -> Option<Arc<RootCertStore>> {
        self.domains
            .iter()
            .find(|(domain, _)| domain.as_str() == trust_domain)
            .map(|(_, roots)| Arc::clone(roots))
    }

    /// Every CA, in file order.
    pub fn cas(&self) -> &[TrustedCa] {
        &self.cas
    }

    /// Every trust domain some CA vouches for.
    pub fn domains(&self) -> impl Iterator<Item = &TrustDomain> {
        self.domains.keys()
    }

    /// All CAs of all domains, for what does not depend on the peer (the CA names a server
    /// suggests to clients).
    pub fn all_roots(&self) -> Arc<RootCertStore> {
        let mut all = RootCertStore::empty();
        for roots in self.domains.values() {
            all.roots.extend(roots.roots.iter().cloned());
        }
        Arc::new(all)
    }
}

/// The trust domain a CA vouches for: given explicitly, or read from its `spiffe://td` URI SAN.
fn ca_trust_domain(
    cert: &X509Certificate<'_>,
    explicit: Option<&TrustDomain>,
) -> Result<TrustDomain, String> {
    let from_san = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|name| match name {
                GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some(*uri),
                _ => None,
            })
        })
        .map(|uri| {
            TrustDomain::new(uri)
                .map_err(|e| format!("CA URI SAN {uri:?} is not a trust domain ID: {e}"))
        })
        .transpose()?;
    match (explicit, from_san) {
        (Some(given), Some(named)) if *given != named => Err(format!(
            "bound to trust domain {given} but the CA names {named} in its URI SAN"
        )),
        (Some(given), _) => Ok(given.clone()),
        (None, Some(named)) => Ok(named),
        (None, None) => Err(
            "cannot tell which trust domain this CA vouches for: it has no spiffe:// URI SAN; \
             bind the file explicitly as TRUST-DOMAIN=PATH"
                .into(),
        ),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads every certificate in a PEM file; at least one is required.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, &pem, &e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_owned(),
        },
        other => pem_error(path, &pem, &other),
    })
}

/// A PEM file the parser refused, said in words: the line, column and block where it breaks
/// (the parser itself says `base64 decode error: InvalidCharacter(33)`).
pub(crate) fn pem_error(path: &Path, pem: &[u8], err: &rustls_pki_types::pem::Error) -> TlsError {
    use rustls_pki_types::pem::Error as E;
    let reason = zt_telemetry::pem_problem(pem).unwrap_or_else(|| match err {
        E::MissingSectionEnd { .. } => "a block has no END line".to_owned(),
        E::IllegalSectionStart { .. } => "malformed BEGIN line".to_owned(),
        E::Base64Decode(_) => "a block's base64 text is invalid".to_owned(),
        E::SectionTooLarge => "a block is larger than 256 MB".to_owned(),
        other => other.to_string(),
    });
    TlsError::Pem {
        path: path.to_owned(),
        reason,
    }
}

/// Now, in Unix seconds: the unit certificate validity is compared in.
pub fn unix_now() -> i64 {
    i64::try_from(UnixTime::now().as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_pem_file_is_named_with_its_line_and_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nMIIB\nMI!B\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = load_certs(&path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: malformed PEM: line 3, column 3: '!' is not a base64 character (PEM \
                 block 1, CERTIFICATE, begins on line 1)",
                path.display()
            )
        );
        std::fs::write(&path, "-----BEGIN PRIVATE KEY-----\nMIIB\n").unwrap();
        let err = load_key(&path).unwrap_err().to_string();
        assert!(
            err.ends_with(
                "malformed PEM: line 3: the file ends before \"-----END PRIVATE KEY-----\" \
                 (PEM block 1, PRIVATE KEY, begins on line 1)"
            ),
            "{err}"
        );
    }
}
