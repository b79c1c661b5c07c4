//! Certificate revocation lists: signing one, and reading one back to extend it.

use std::time::Duration;

use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::ca::Ca;
use crate::error::PkiError;

/// How long a CRL is current unless told otherwise (its `nextUpdate`).
pub const DEFAULT_CRL_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The certificate's serial number, big-endian bytes without leading zeros.
    pub serial: Vec<u8>,
    /// When it was revoked.
    pub revoked_at: OffsetDateTime,
    /// Why, when known.
    pub key_compromise: bool,
}

impl Revocation {
    /// Revokes the certificate with serial `hex` (as `zt-ca inspect` prints it) now.
    pub fn from_hex(hex: &str, key_compromise: bool) -> Result<Self, PkiError> {
        let digits = hex.trim().trim_start_matches("0x").replace(':', "");
        let padded = if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        let bytes = (0..padded.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&padded[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| PkiError::BadSerial(hex.to_owned()))?;
        let serial: Vec<u8> = bytes.into_iter().skip_while(|b| *b == 0).collect();
        if serial.is_empty() {
            return Err(PkiError::BadSerial(hex.to_owned()));
        }
        Ok(Self {
            serial,
            revoked_at: OffsetDateTime::now_utc(),
            key_compromise,
        })
    }

    /// The serial in lowercase hex, as `zt-ca inspect` prints it.
    pub fn serial_hex(&self) -> String {
        self.serial
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .trim_start_matches('0')
            .to_owned()
    }
}

/// A CRL's content, as read back from its PEM.
#[derive(Debug, Clone, Default)]
pub struct CrlContent {
    /// Its sequence number.
    pub number: u64,
    /// What it revokes.
    pub revoked: Vec<Revocation>,
}

impl Ca {
    /// Reads back a PEM CRL (`BEGIN X509 CRL`) this CA signed, to extend it. A list signed by
    /// another CA is refused: re-signing it would make this CA vouch for another's
    /// revocations, and means `--crl` names the wrong file.
    pub fn read_crl(&self, pem: &str, origin: &std::path::Path) -> Result<CrlContent, PkiError> {
        let bad = |reason: String| PkiError::BadCrl {
            path: origin.to_owned(),
            reason,
        };
        let der = match zt_pem::crls(pem.as_bytes())
            .map_err(|e| bad(e.to_string()))?
            .as_slice()
        {
            [one] => one.clone(),
            several => {
                return Err(bad(format!(
                    "{} CRLs in one file; this CA keeps its list alone in its file",
                    several.len()
                )));
            }
        };
        let (_, crl) = CertificateRevocationList::from_der(&der)
            .map_err(|e| bad(format!("malformed CRL: {e}")))?;
        if !self.holds_for_own_certificate(|ca| crl.verify_signature(ca.public_key()).is_ok()) {
            return Err(bad(format!(
                "signed by {}, not by this CA ({})",
                zt_identity::rfc4514(crl.issuer()),
                self.common_name()
            )));
        }
        let number = crl
            .crl_number()
            .and_then(|n| u64::try_from(n.clone()).ok())
            .unwrap_or(0);
        let revoked = crl
            .iter_revoked_certificates()
            .map(|entry| Revocation {
                serial: entry.serial().to_bytes_be(),
                revoked_at: entry.revocation_date.to_datetime(),
                key_compromise: matches!(
                    entry.reason_code(),
                    Some((_, code)) if code.0 == 1
                ),
            })
            .collect();
        Ok(CrlContent { number, revoked })
    }

    /// The revocation of the leaf (first certificate) of `pem`, which this CA must have
    /// issued: a CRL speaks for its CA only, so listing another CA's certificate would revoke
    /// nothing while looking as if it did. `origin` names the file in errors.
    pub fn revocation_of(
        &self,
        pem: &str,
        origin: &std::path::Path,
        key_compromise: bool,
    ) -> Result<Revocation, PkiError> {
        let (der, report) = crate::inspect::first_leaf(pem, origin)?;
        if !self.signed(&der) {
            return Err(PkiError::BadFile {
                path: origin.to_owned(),
                reason: format!(
                    "not issued by this CA ({}); revoke it with the CA that issued it",
                    self.common_name()
                ),
            });
        }
        Revocation::from_hex(&report.serial, key_compromise)
    }

    /// Signs a CRL listing `revoked`, numbered `number`, current for `validity`.
    pub fn sign_crl(
        &self,
        revoked: &[Revocation],
        number: u64,
        validity: Duration,
    ) -> Result<String, PkiError> {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + validity,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|r| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&r.serial),
                    revocation_time: r.revoked_at,
                    reason_code: r.key_compromise.then_some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(self.issuer())?.pem()?)
    }
}
