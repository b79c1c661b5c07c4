//! Keystore and truststore files in the formats users already hold.
//!
//! - PEM or DER, read by [`zt_pem`] (every block used or refused by name).
//! - PKCS#12 (`.p12`, `.pfx`): Java's keystores and truststores, and `openssl pkcs12 -export`.
//!   A keystore file holds the private key and its chain; a truststore file holds CA
//!   certificates only. The password comes from a file or an environment variable, never a
//!   command-line flag ([`Password`]).
//! - SPIFFE trust bundles: a JWK set whose `x509-svid` keys carry their CA in `x5c`, as
//!   `spire-server bundle show -format spiffe` writes (SPIFFE Trust Domain and Bundle, section
//!   4). The bundle does not name its trust domain; the source binds it ([`crate::BundleSource`]).
//!
//! The format is recognised from the content, not the file name: a JWK set starts with `{`, a
//! PKCS#12 file is a DER `PFX` (a SEQUENCE starting with the version `INTEGER 3`).

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::TlsError;

/// The password of a PKCS#12 file.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// Read from this file at every load (a trailing newline is not part of it), so a
    /// rotated password file takes effect with the rotated keystore.
    File(PathBuf),
    /// Given directly, from an environment variable the binary read at startup.
    Value(String),
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Value(_) => f.write_str("Value(<redacted>)"),
        }
    }
}

impl Password {
    /// The password in `file` if one is given, else the value of the environment variable
    /// `env` if it is set, else none. A binary's flag names the file; the value itself is
    /// never a flag (it would show in `ps` and shell history).
    pub fn from_file_or_env(file: Option<&Path>, env: &str) -> Option<Self> {
        match file {
            Some(file) => Some(Self::File(file.to_owned())),
            None => std::env::var(env).ok().map(Self::Value),
        }
    }

    fn read(&self) -> Result<String, TlsError> {
        match self {
            Self::Value(value) => Ok(value.clone()),
            Self::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| TlsError::Read {
                    path: path.clone(),
                    source,
                })?;
                Ok(text
                    .strip_suffix('\n')
                    .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t))
                    .to_owned())
            }
        }
    }
}

/// How a file's content is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    PemOrDer,
    Pkcs12,
    SpiffeBundle,
}

fn sniff(bytes: &[u8]) -> Format {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        return Format::SpiffeBundle;
    }
    // PFX ::= SEQUENCE { version INTEGER {v3(3)}, ... }; a certificate's SEQUENCE starts with
    // another SEQUENCE (its tbsCertificate).
    match zt_pem::der_split(bytes) {
        Some((0x30, [0x02, 0x01, 0x03, ..], _)) => Format::Pkcs12,
        _ => Format::PemOrDer,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The CA certificates of a truststore file, in file order.
pub(crate) fn bundle_certificates(
    path: &Path,
    password: Option<&Password>,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    match sniff(&bytes) {
        Format::PemOrDer => pem_certificates(path, &bytes),
        Format::SpiffeBundle => spiffe_bundle(path, &bytes),
        Format::Pkcs12 => {
            let store = open_pkcs12(path, &bytes, password, Pkcs12ImportPolicy::Raw)?;
            let mut certs = Vec::new();
            for (alias, entry) in store.entries() {
                match entry {
                    KeyStoreEntry::Certificate(cert) => {
                        certs.push(CertificateDer::from(cert.as_der().to_vec()));
                    }
                    KeyStoreEntry::PrivateKeyChain(_) | KeyStoreEntry::Secret(_) => {
                        return Err(TlsError::Pkcs12 {
                            path: path.to_owned(),
                            reason: format!(
                                "entry {alias:?} holds a key: a truststore holds CA certificates only"
                            ),
                        });
                    }
                }
            }
            if certs.is_empty() {
                return Err(TlsError::Pkcs12 {
                    path: path.to_owned(),
                    reason: "no certificate in this PKCS#12 truststore".into(),
                });
            }
            Ok(certs)
        }
    }
}

/// A keystore as read: the chain (leaf first), the private key, and the file the key came from.
pub(crate) struct KeystoreParts {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    pub(crate) key_file: PathBuf,
}

/// A keystore from a PEM certificate file and a PEM key file, or from one PKCS#12 file at
/// `cert` (then `key` is not read).
pub(crate) fn keystore_parts(
    cert: &Path,
    key: &Path,
    password: Option<&Password>,
) -> Result<KeystoreParts, TlsError> {
    let bytes = read(cert)?;
    match sniff(&bytes) {
        Format::PemOrDer => {
            let chain = pem_certificates(cert, &bytes)?;
            let key_der = zt_pem::private_key(&read(key)?).map_err(|source| TlsError::Pem {
                path: key.to_owned(),
                source,
            })?;
            Ok(KeystoreParts {
                chain,
                key: key_der,
                key_file: key.to_owned(),
            })
        }
        Format::SpiffeBundle => Err(TlsError::Pkcs12 {
            path: cert.to_owned(),
            reason: "a SPIFFE trust bundle is a truststore (--ca), not a keystore".into(),
        }),
        Format::Pkcs12 => {
            let store = open_pkcs12(cert, &bytes, password, Pkcs12ImportPolicy::Strict)?;
            let mut chains = store.entries().filter_map(|(alias, entry)| match entry {
                KeyStoreEntry::PrivateKeyChain(chain) => Some((alias, chain)),
                _ => None,
            });
            let fail = |reason: String| TlsError::Pkcs12 {
                path: cert.to_owned(),
                reason,
            };
            let Some((_, chain)) = chains.next() else {
                return Err(fail(
                    "no private key with its certificate in this PKCS#12 keystore".into(),
                ));
            };
            if let Some((second, _)) = chains.next() {
                return Err(fail(format!(
                    "more than one private key (entry {second:?} is a second one); keep one \
                     key and its chain per keystore"
                )));
            }
            let certs = chain
                .certs()
                .iter()
                .map(|c| CertificateDer::from(c.as_der().to_vec()))
                .collect();
            Ok(KeystoreParts {
                chain: certs,
                key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec())),
                key_file: cert.to_owned(),
            })
        }
    }
}

fn pem_certificates(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    zt_pem::certificates(bytes).map_err(|source| TlsError::Pem {
        path: path.to_owned(),
        source,
    })
}

fn open_pkcs12(
    path: &Path,
    bytes: &[u8],
    password: Option<&Password>,
    policy: Pkcs12ImportPolicy,
) -> Result<KeyStore, TlsError> {
    let fail = |reason: String| TlsError::Pkcs12 {
        path: path.to_owned(),
        reason,
    };
    let Some(password) = password else {
        return Err(fail(
            "a PKCS#12 file needs its password: give it in a file (--keystore-password-file, \
             --truststore-password-file) or the matching *_PASSWORD environment variable"
                .into(),
        ));
    };
    KeyStore::from_pkcs12(bytes, &password.read()?, policy).map_err(|e| {
        fail(match e {
            p12_keystore::error::Error::MacError(_) => {
                "wrong password (the file's integrity check does not verify with it)".into()
            }
            p12_keystore::error::Error::UnsupportedEncryptionScheme => {
                "encrypted with a scheme this reader does not support (use AES-256-CBC with \
                 PBKDF2, openssl's default, or 3DES)"
                    .into()
            }
            other => format!("not a readable PKCS#12 file: {other}"),
        })
    })
}

/// A SPIFFE bundle's entry (RFC 7517 JWK). Other members (`kty`, `crv`, `n`, ...) describe
/// the key itself, which the certificate carries too.
#[derive(serde::Deserialize)]
struct Jwk {
    #[serde(rename = "use")]
    usage: Option<String>,
    x5c: Option<Vec<String>>,
}

#[derive(serde::Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

/// The X.509 CAs of a SPIFFE bundle: each `"use": "x509-svid"` key's one `x5c` certificate
/// (SPIFFE Trust Domain and Bundle, section 4.2.2). `jwt-svid` keys are for JWT-SVIDs and
/// are skipped; a key of another or no `use` is ignored, as the specification says.
fn spiffe_bundle(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |reason: String| TlsError::SpiffeBundle {
        path: path.to_owned(),
        reason,
    };
    let jwks: Jwks =
        serde_json::from_slice(bytes).map_err(|e| fail(format!("not a JWK set: {e}")))?;
    let mut certs = Vec::new();
    for (index, key) in jwks.keys.into_iter().enumerate() {
        if key.usage.as_deref() != Some("x509-svid") {
            continue;
        }
        let x5c = key.x5c.unwrap_or_default();
        let [cert] = x5c.as_slice() else {
            return Err(fail(format!(
                "keys[{index}]: an x509-svid key carries exactly one certificate in \"x5c\", \
                 this one {}",
                x5c.len()
            )));
        };
        let der = base64::engine::general_purpose::STANDARD
            .decode(cert)
            .map_err(|_| fail(format!("keys[{index}].x5c[0]: not base64")))?;
        certs.push(CertificateDer::from(der));
    }
    if certs.is_empty() {
        return Err(fail(
            "no \"x509-svid\" key: this bundle has no X.509 CA".into(),
        ));
    }
    Ok(certs)
}
