//! Keystore (own chain + private key) and truststore (trusted CAs), loaded from PEM files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use zt_identity::{SpiffeId, TrustDomain, inspect_leaf};

use crate::error::TlsError;
use crate::formats::Password;
use crate::usable::{CaProblem, ca_problem, intermediate_problem};

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
        Self::load_with_password(cert, key, None)
    }

    /// As [`Keystore::load`], and `cert` may also be a PKCS#12 keystore holding the key and
    /// its chain (then `key` is not read), opened with `password`.
    pub fn load_with_password(
        cert: &Path,
        key: &Path,
        password: Option<&Password>,
    ) -> Result<Self, TlsError> {
        let crate::formats::KeystoreParts {
            chain,
            key: key_der,
            key_file,
        } = crate::formats::keystore_parts(cert, key, password)?;
        if chain.is_empty() {
            return Err(TlsError::BadCertificate {
                path: cert.to_owned(),
                index: 0,
                reason: "no certificate for the private key".into(),
            });
        }
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
        for (index, der) in chain.iter().enumerate().skip(1) {
            if let Some(reason) = intermediate_problem(der) {
                return Err(TlsError::BadCertificate {
                    path: cert.to_owned(),
                    index,
                    reason,
                });
            }
        }
        let provider = crate::crypto_provider();
        let signing_key = provider
            .key_provider
            .load_private_key(key_der)
            .map_err(|e| TlsError::BadPrivateKey {
                path: key_file.clone(),
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
                key: key_file,
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
/// Without a domain, each CA in the file vouches for the trust domain its `spiffe://` URI SAN
/// names (as `zt-ca init` and SPIRE write them); a CA that names none (openssl, step-ca,
/// cert-manager and Vault CAs) is bound to the service's one trust domain, see
/// [`Truststore::load_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSource {
    /// The trust domain every CA in the file vouches for, when given explicitly.
    pub domain: Option<TrustDomain>,
    /// The file: PEM or DER certificates, a PKCS#12 truststore or a SPIFFE bundle (JWK set).
    pub path: PathBuf,
    /// The password, if the file is a PKCS#12 truststore.
    pub password: Option<Password>,
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
                password: None,
            },
            None => Self {
                domain: None,
                path: s.into(),
                password: None,
            },
        })
    }
}

impl From<&Path> for BundleSource {
    fn from(path: &Path) -> Self {
        Self {
            domain: None,
            path: path.to_owned(),
            password: None,
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
    left_out: Vec<LeftOutCa>,
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

/// A CA of a bundle that is not trusted now: expired, or not yet valid. It is left out with a
/// warning instead of failing the load, so that a bundle carrying a CA that has just expired
/// beside its successor still loads (and a renewed certificate from the successor is taken).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOutCa {
    /// The bundle file.
    pub path: PathBuf,
    /// Its position in the file, from 0.
    pub index: usize,
    /// Its subject (RFC 4514).
    pub subject: String,
    /// Why it is left out.
    pub reason: LeftOut,
}

/// Why a [`LeftOutCa`] is not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftOut {
    /// Past its `notAfter` (Unix seconds).
    Expired {
        /// When it expired.
        not_after: i64,
    },
    /// Before its `notBefore` (Unix seconds).
    NotYetValid {
        /// When it becomes valid.
        not_before: i64,
    },
}

/// Every [`LeftOut::reason`].
pub(crate) const LEFT_OUT_REASONS: [&str; 2] = ["expired", "not_yet_valid"];

impl LeftOut {
    /// A stable label for logs and metrics: `expired` or `not_yet_valid`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
        }
    }
}

impl std::fmt::Display for LeftOutCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: certificate {} ({}): ",
            self.path.display(),
            self.index,
            self.subject
        )?;
        match self.reason {
            LeftOut::Expired { not_after } => write!(
                f,
                "CA expired at {}; left out of the truststore",
                rfc3339(not_after)
            ),
            LeftOut::NotYetValid { not_before } => write!(
                f,
                "CA is not valid before {}; left out of the truststore",
                rfc3339(not_before)
            ),
        }
    }
}

/// Unix seconds as an RFC 3339 time, for people.
fn rfc3339(at: i64) -> String {
    u64::try_from(at)
        .ok()
        .and_then(|secs| {
            std::time::SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs))
        })
        .map_or_else(
            || format!("{at} (Unix seconds)"),
            |time| humantime::format_rfc3339_seconds(time).to_string(),
        )
}

/// What loading a bundle does with one of its certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaVerdict {
    /// Trusted, for one trust domain.
    Trusted {
        /// The trust domain it vouches for.
        domain: TrustDomain,
        /// How that domain was found.
        binding: Binding,
    },
    /// Expired or not yet valid: left out, with a warning.
    LeftOut(LeftOut),
    /// A certificate no load accepts (it refuses the whole bundle), and why.
    Refused(CaRefusal),
}

/// Why loading refuses a bundle for one of its certificates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CaRefusal {
    /// The certificate does not parse.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// It cannot serve as a CA here.
    #[error(transparent)]
    Unusable(#[from] CaProblem),
    /// It cannot be bound to one trust domain (the reason says why and what to write).
    #[error("{0}")]
    TrustDomain(String),
}

/// How a trusted CA was bound to its trust domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// By its source, `TRUST-DOMAIN=PATH`.
    Source,
    /// By the `spiffe://` URI SAN it carries.
    UriSan,
    /// It names none: bound to the service's only trust domain.
    OnlyDomain,
}

/// One certificate of a bundle, and what loading does with it: [`Truststore::examine`].
#[derive(Debug, Clone)]
pub struct BundleEntry {
    /// The bundle file.
    pub path: PathBuf,
    /// Its position in the file, from 0.
    pub index: usize,
    /// Its subject (RFC 4514), or `?` if it does not parse.
    pub subject: String,
    /// When it expires, Unix seconds (0 if it does not parse).
    pub not_after: i64,
    /// What loading does with it.
    pub verdict: CaVerdict,
    /// The certificate.
    pub der: CertificateDer<'static>,
}

impl BundleEntry {
    fn judge(
        source: &BundleSource,
        index: usize,
        der: CertificateDer<'static>,
        unlabelled: Option<&TrustDomain>,
        now: i64,
    ) -> Self {
        let parsed = X509Certificate::from_der(&der);
        let (subject, not_after, verdict) = match &parsed {
            Err(e) => (
                "?".to_owned(),
                0,
                CaVerdict::Refused(CaRefusal::Malformed(e.to_string())),
            ),
            Ok((_, cert)) => {
                let validity = cert.validity();
                let (from, until) = (
                    validity.not_before.timestamp(),
                    validity.not_after.timestamp(),
                );
                let verdict = if let Some(problem) = ca_problem(cert) {
                    CaVerdict::Refused(problem.into())
                } else if now > until {
                    CaVerdict::LeftOut(LeftOut::Expired { not_after: until })
                } else if now < from {
                    CaVerdict::LeftOut(LeftOut::NotYetValid { not_before: from })
                } else {
                    match ca_trust_domain(cert, source.domain.as_ref(), unlabelled) {
                        Ok(domain) => CaVerdict::Trusted {
                            domain,
                            binding: match (&source.domain, spiffe_uri(cert)) {
                                (Some(_), _) => Binding::Source,
                                (None, Some(_)) => Binding::UriSan,
                                (None, None) => Binding::OnlyDomain,
                            },
                        },
                        Err(reason) => CaVerdict::Refused(CaRefusal::TrustDomain(reason)),
                    }
                };
                (zt_identity::rfc4514(cert.subject()), until, verdict)
            }
        };
        drop(parsed); // it borrows `der`, which moves into the entry
        Self {
            path: source.path.clone(),
            index,
            subject,
            not_after,
            verdict,
            der,
        }
    }
}

impl Truststore {
    /// Loads one CA bundle file whose CAs name their trust domains; see
    /// [`Truststore::load_all`].
    pub fn load(path: &Path) -> Result<Self, TlsError> {
        Self::load_all(&[BundleSource::from(path)], None)
    }

    /// Loads CA bundles: one or more CA certificates each (several during a CA rotation, or
    /// for federated trust domains), in PEM (every block, see [`zt_pem::certificates`]) or DER.
    ///
    /// Each CA is bound to one trust domain: the one its source names (`TRUST-DOMAIN=PATH`),
    /// else the one its `spiffe://` URI SAN names, else `unlabelled`: the service's only trust
    /// domain (a server with one `--trust-domain`, a client by its server's SPIFFE ID).
    /// Binding an unlabelled CA is logged. With `unlabelled` = `None` such a CA is an error.
    ///
    /// Stricter than rustls-webpki, which checks neither validity nor critical extensions of
    /// trust anchors, and refuses every chain through a CA it cannot use only at handshake
    /// time: every certificate must be a CA with no unknown critical extension, a key and
    /// signature this build can verify, and no URI name constraint (see
    /// [`crate::ca_problem`]). Such a bundle is refused whole, naming the file and the
    /// certificate. A CA that is expired or not yet valid is left out with a warning
    /// ([`Truststore::left_out`]); the load fails only if no usable CA remains.
    pub fn load_all(
        sources: &[BundleSource],
        unlabelled: Option<&TrustDomain>,
    ) -> Result<Self, TlsError> {
        let mut domains: BTreeMap<TrustDomain, RootCertStore> = BTreeMap::new();
        let mut cas = Vec::new();
        let mut left_out = Vec::new();
        for entry in Self::examine(sources, unlabelled)? {
            let bad = |reason: String| TlsError::BadCertificate {
                path: entry.path.clone(),
                index: entry.index,
                reason,
            };
            match entry.verdict {
                CaVerdict::Refused(reason) => return Err(bad(reason.to_string())),
                CaVerdict::LeftOut(reason) => {
                    let ca = LeftOutCa {
                        path: entry.path,
                        index: entry.index,
                        subject: entry.subject,
                        reason,
                    };
                    tracing::warn!(target: "zt_reload", reason = reason.reason(), "{ca}");
                    left_out.push(ca);
                }
                CaVerdict::Trusted { domain, binding } => {
                    if binding == Binding::OnlyDomain {
                        tracing::info!(
                            target: "zt_reload",
                            file = %entry.path.display(),
                            certificate = entry.index,
                            subject = entry.subject,
                            trust_domain = %domain,
                            "CA names no trust domain (no spiffe:// URI SAN): bound to {domain}, \
                             the only trust domain configured"
                        );
                    }
                    domains
                        .entry(domain.clone())
                        .or_insert_with(RootCertStore::empty)
                        .add(entry.der.clone())
                        .map_err(|e| bad(e.to_string()))?;
                    cas.push(TrustedCa {
                        domain,
                        subject: entry.subject,
                        not_after: entry.not_after,
                        der: entry.der,
                    });
                }
            }
        }
        if cas.is_empty() {
            return Err(TlsError::NoUsableCa {
                paths: sources.iter().map(|s| s.path.clone()).collect(),
            });
        }
        Ok(Self {
            domains: domains
                .into_iter()
                .map(|(domain, roots)| (domain, Arc::new(roots)))
                .collect(),
            cas,
            left_out,
        })
    }

    /// What [`Truststore::load_all`] would do with every certificate of `sources`, without
    /// stopping at the first refusal: the logic behind `zt-ca inspect --bundle`. Errors only
    /// for a file that cannot be read at all (missing, not PEM, DER, PKCS#12 or a SPIFFE bundle).
    pub fn examine(
        sources: &[BundleSource],
        unlabelled: Option<&TrustDomain>,
    ) -> Result<Vec<BundleEntry>, TlsError> {
        let now = unix_now();
        let mut entries = Vec::new();
        for source in sources {
            let certs =
                crate::formats::bundle_certificates(&source.path, source.password.as_ref())?;
            for (index, der) in certs.into_iter().enumerate() {
                entries.push(BundleEntry::judge(source, index, der, unlabelled, now));
            }
        }
        Ok(entries)
    }

    /// The CAs of the bundles that are expired or not yet valid, and so not trusted.
    pub fn left_out(&self) -> &[LeftOutCa] {
        &self.left_out
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

/// The CA's `spiffe://` URI SAN, if it has one.
fn spiffe_uri<'c>(cert: &'c X509Certificate<'_>) -> Option<&'c str> {
    cert.subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|name| match name {
                GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some(*uri),
                _ => None,
            })
        })
}

/// The trust domain a CA vouches for: given explicitly, read from its `spiffe://td` URI SAN,
/// or the service's only trust domain.
fn ca_trust_domain(
    cert: &X509Certificate<'_>,
    explicit: Option<&TrustDomain>,
    unlabelled: Option<&TrustDomain>,
) -> Result<TrustDomain, String> {
    let from_san = spiffe_uri(cert)
        .map(|uri| {
            TrustDomain::new(uri)
                .map_err(|e| format!("CA URI SAN {uri:?} is not a trust domain ID: {e}"))
        })
        .transpose()?;
    match (explicit, from_san, unlabelled) {
        (Some(given), Some(named), _) if *given != named => Err(format!(
            "bound to trust domain {given} but the CA names {named} in its URI SAN"
        )),
        (Some(given), _, _) => Ok(given.clone()),
        (None, Some(named), _) => Ok(named),
        (None, None, Some(only)) => Ok(only.clone()),
        (None, None, None) => Err(
            "cannot tell which trust domain this CA vouches for: it has no spiffe:// URI SAN \
             and several trust domains are configured; bind the file as TRUST-DOMAIN=PATH"
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

/// Reads every certificate of a PEM (or DER) file, in order; at least one is required. Every
/// block is used or the load fails naming it ([`zt_pem::certificates`]).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    zt_pem::certificates(&read(path)?).map_err(|source| TlsError::Pem {
        path: path.to_owned(),
        source,
    })
}

/// Now, in Unix seconds: the unit certificate validity is compared in.
pub fn unix_now() -> i64 {
    i64::try_from(UnixTime::now().as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wording belongs to the PEM reader; what an operator needs is fixed here: the
    /// file, the line, the column, the block, in words (no `InvalidCharacter(33)`).
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
        for part in [
            &format!("{}: ", path.display()),
            "block 1",
            "CERTIFICATE",
            "line 3, column 3",
            "'!' is not a base64 character",
        ] {
            assert!(err.contains(part), "{part:?} in {err}");
        }
        assert!(!err.contains("InvalidCharacter"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
