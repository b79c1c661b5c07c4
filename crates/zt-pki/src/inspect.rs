//! Human-readable description of certificates, with an X509-SVID verdict for each.

use std::fmt::Write as _;

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::error::PkiError;

/// Describes every certificate in a PEM text: subject, issuer, SANs, SPIFFE ID, validity, key
/// usages, and whether it is a valid X509-SVID leaf (and if not, every reason why).
pub fn describe_pem(pem: &str, origin: &std::path::Path) -> Result<String, PkiError> {
    let bad = |reason: String| PkiError::BadFile {
        path: origin.to_owned(),
        reason,
    };
    let certs = zt_pem::certificates(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut out = String::new();
    for (index, der) in certs.iter().enumerate() {
        let report =
            zt_identity::inspect_leaf(der).map_err(|e| bad(format!("certificate {index}: {e}")))?;
        let when = |t: i64| {
            OffsetDateTime::from_unix_timestamp(t).map_or_else(|_| t.to_string(), |d| d.to_string())
        };
        let status = if now < report.not_before {
            "NOT YET VALID"
        } else if now > report.not_after {
            "EXPIRED"
        } else {
            "valid now"
        };
        let list = |items: &[&str]| {
            if items.is_empty() {
                "-".to_owned()
            } else {
                items.join(", ")
            }
        };
        // Writing to a String cannot fail.
        let _ = writeln!(out, "certificate {index}");
        let _ = writeln!(out, "  subject:       {}", report.subject);
        let _ = writeln!(out, "  issuer:        {}", report.issuer);
        let _ = writeln!(out, "  serial:        {}", report.serial);
        let _ = writeln!(out, "  not before:    {}", when(report.not_before));
        let _ = writeln!(
            out,
            "  not after:     {} ({status})",
            when(report.not_after)
        );
        let _ = writeln!(
            out,
            "  CA:            {}",
            if report.is_ca { "yes" } else { "no" }
        );
        let uris: Vec<&str> = report.uri_sans.iter().map(String::as_str).collect();
        let dns: Vec<&str> = report.dns_sans.iter().map(String::as_str).collect();
        let _ = writeln!(out, "  URI SANs:      {}", list(&uris));
        let _ = writeln!(out, "  DNS SANs:      {}", list(&dns));
        let _ = writeln!(out, "  key usage:     {}", list(&report.key_usages));
        let _ = writeln!(
            out,
            "  ext key usage: {}",
            list(&report.extended_key_usages)
        );
        match (&report.spiffe_id, report.violations.as_slice()) {
            (Some(id), []) => {
                let _ = writeln!(out, "  SPIFFE ID:     {id}");
                let _ = writeln!(out, "  X509-SVID:     valid leaf");
            }
            (_, violations) => {
                let _ = writeln!(out, "  X509-SVID:     NOT a valid leaf SVID");
                for violation in violations {
                    let _ = writeln!(out, "    - {violation}");
                }
            }
        }
    }
    Ok(out)
}

/// The serial number (lowercase hex) of the first certificate in a PEM text: what to revoke.
pub fn leaf_serial(pem: &str, origin: &std::path::Path) -> Result<String, PkiError> {
    Ok(first_leaf(pem, origin)?.1.serial)
}

/// The first certificate of a PEM text (the leaf of a chain), with its report. `origin`
/// names the file in errors.
pub(crate) fn first_leaf(
    pem: &str,
    origin: &std::path::Path,
) -> Result<(CertificateDer<'static>, zt_identity::LeafReport), PkiError> {
    let bad = |reason: String| PkiError::BadFile {
        path: origin.to_owned(),
        reason,
    };
    let der = zt_pem::certificates(pem.as_bytes())
        .map_err(|e| bad(e.to_string()))?
        .swap_remove(0);
    let report = zt_identity::inspect_leaf(&der).map_err(|e| bad(e.to_string()))?;
    Ok((der, report))
}
