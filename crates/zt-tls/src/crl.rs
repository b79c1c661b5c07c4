//! Certificate revocation lists: loaded, checked against the truststore, and indexed.
//!
//! CRLs serve twice. webpki checks them during every handshake (a revoked client gets the
//! `certificate_revoked` alert). And since a connection outlives the handshake that opened it,
//! the authorization layer asks [`Crls::is_revoked`] on every request, so a peer revoked while
//! connected is cut off at its next call.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateRevocationListDer;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::error::TlsError;
use crate::store::Truststore;

/// The revocation lists in force: what webpki checks at the handshake, and an index of
/// revoked serial numbers by issuer for the per-request check.
#[derive(Debug, Clone, Default)]
pub struct Crls {
    ders: Vec<CertificateRevocationListDer<'static>>,
    /// Issuer name (RFC 4514) -> revoked serial numbers (lowercase hex).
    revoked: HashMap<String, HashSet<String>>,
}

impl Crls {
    /// No revocation lists.
    pub fn none() -> Self {
        Self::default()
    }

    /// Loads CRLs (PEM `X509 CRL` blocks, or one DER CRL per file) from `paths`.
    ///
    /// A CRL issued in the name of a trusted CA must verify with that CA's key, or the load
    /// fails: a list that cannot be authenticated is not something to half-apply. A CRL whose
    /// issuer is not a CA of the truststore is kept: webpki checks it against the issuing
    /// certificate of each client chain it applies to, so an intermediate CA's list works,
    /// and the old CA's list left configured after a CA rotation applies to nothing and does
    /// not block the rotation's last step (its entries also count in the per-request check,
    /// which can only refuse). An overdue CRL (past its `nextUpdate`) is still
    /// applied, with a warning: revocations never expire.
    pub fn load(paths: &[PathBuf], truststore: &Truststore) -> Result<Self, TlsError> {
        let mut crls = Self::none();
        for path in paths {
            for (index, der) in read_crls(path)?.into_iter().enumerate() {
                let bad = |reason: String| TlsError::BadCrl {
                    path: path.clone(),
                    index,
                    reason,
                };
                let (_, crl) = CertificateRevocationList::from_der(&der)
                    .map_err(|e| bad(format!("malformed CRL: {e}")))?;
                let issuer = zt_identity::rfc4514(crl.issuer());
                if !verify_issuer(&crl, &issuer, truststore).map_err(bad)? {
                    tracing::info!(
                        target: "zt_reload",
                        file = %path.display(),
                        issuer,
                        "CRL of an issuer that is not a trusted root (an intermediate, or a CA \
                         rotated out): checked against the issuing certificate of each chain"
                    );
                }
                if let Some(next) = crl.next_update()
                    && next.timestamp() < crate::store::unix_now()
                {
                    tracing::warn!(
                        target: "zt_reload",
                        file = %path.display(),
                        issuer,
                        next_update = %next,
                        "CRL is overdue; applying it anyway"
                    );
                }
                let serials = crls.revoked.entry(issuer).or_default();
                for entry in crl.iter_revoked_certificates() {
                    serials.insert(entry.serial().to_str_radix(16));
                }
                crls.ders.push(der);
            }
        }
        Ok(crls)
    }

    /// Whether the certificate `serial` (lowercase hex) issued by `issuer` (RFC 4514) is revoked.
    pub fn is_revoked(&self, issuer: &str, serial: &str) -> bool {
        self.revoked
            .get(issuer)
            .is_some_and(|serials| serials.contains(serial))
    }

    /// How many certificates are revoked, across all lists.
    pub fn revoked_count(&self) -> usize {
        self.revoked.values().map(HashSet::len).sum()
    }

    /// The lists, for webpki.
    pub(crate) fn ders(&self) -> &[CertificateRevocationListDer<'static>] {
        &self.ders
    }
}

/// Whether the CRL was verified with the key of the trusted CA it names (`false`: no trusted
/// CA has its issuer's name), or why it cannot be used.
fn verify_issuer(
    crl: &CertificateRevocationList<'_>,
    issuer: &str,
    truststore: &Truststore,
) -> Result<bool, String> {
    // The same CA may be listed twice (in two bundles), or re-certified with its key: what
    // counts is how many keys answer to the name.
    let mut keys: Vec<x509_parser::x509::SubjectPublicKeyInfo<'_>> = Vec::new();
    for ca in truststore.cas().iter().filter(|ca| ca.subject == issuer) {
        if let Ok((_, cert)) = X509Certificate::from_der(&ca.der)
            && !keys.iter().any(|key| key.raw == cert.public_key().raw)
        {
            keys.push(cert.tbs_certificate.subject_pki);
        }
    }
    match keys.as_slice() {
        [] => Ok(false),
        [key] => {
            let verified = crl.verify_signature(key).is_ok();
            if verified {
                Ok(true)
            } else {
                Err(format!(
                    "signature does not verify with the trusted CA {issuer}"
                ))
            }
        }
        // webpki picks a CRL by its issuer's name alone: with two CAs of one name, the CRL of
        // one would be checked against certificates of the other, and fail them.
        several => Err(format!(
            "{} trusted CAs with different keys are named {issuer}, so a CRL in that name \
             cannot say which one it is for; give each CA a subject of its own",
            several.len()
        )),
    }
}

fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    zt_pem::crls(&bytes).map_err(|source| TlsError::Pem {
        path: path.to_owned(),
        source,
    })
}
