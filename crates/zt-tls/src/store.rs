//! Keystore (own chain + private key) and truststore (trusted CAs), loaded from PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use zt_identity::{SpiffeId, inspect_leaf};

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

/// The CAs a service trusts to vouch for its peers.
#[derive(Debug, Clone)]
pub struct Truststore {
    roots: Arc<RootCertStore>,
}

impl Truststore {
    /// Loads a CA bundle: one or more PEM CA certificates (several during a CA rotation).
    ///
    /// Stricter than rustls-webpki, which checks neither validity nor critical extensions of
    /// trust anchors: every certificate must be a CA, currently valid, with no unknown critical
    /// extension. A bad bundle is refused whole rather than partly trusted.
    pub fn load(path: &Path) -> Result<Self, TlsError> {
        let now = unix_now();
        let mut roots = RootCertStore::empty();
        for (index, der) in load_certs(path)?.into_iter().enumerate() {
            let bad = |reason: String| TlsError::BadCertificate {
                path: path.to_owned(),
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
            roots.add(der).map_err(|e| bad(e.to_string()))?;
        }
        Ok(Self {
            roots: Arc::new(roots),
        })
    }

    /// The trust anchors.
    pub fn roots(&self) -> Arc<RootCertStore> {
        Arc::clone(&self.roots)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
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
        other => TlsError::Pem {
            path: path.to_owned(),
            reason: other.to_string(),
        },
    })
}

fn unix_now() -> i64 {
    i64::try_from(UnixTime::now().as_secs()).unwrap_or(i64::MAX)
}
