//! Reading a leaf certificate against the X509-SVID profile.
//!
//! [`inspect_leaf`] never stops at the first problem: it reports every violation, so the CA tool
//! can explain a bad certificate completely, while validation ([`crate::TrustedDomains`]) refuses
//! on any of them. Both use this one function, so they cannot disagree.

use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::oid::Oid;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::objects::{oid_registry, oid2sn};
use x509_parser::oid_registry::{
    OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_KEY_USAGE, OID_X509_EXT_SUBJECT_ALT_NAME,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use crate::dn::{pkix_name_string, subject_der};
use crate::error::{IdentityError, SvidViolation};
use crate::spiffe_id::SpiffeId;

/// What a leaf certificate says about itself, and how it breaks the X509-SVID profile.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeafReport {
    /// The SPIFFE ID, when there is exactly one URI SAN and it is a valid SPIFFE ID.
    pub spiffe_id: Option<SpiffeId>,
    /// Every URI SAN, as written.
    pub uri_sans: Vec<String>,
    /// Every DNS SAN, as written.
    pub dns_sans: Vec<String>,
    /// The subject as grpc-go writes it (Go's `pkix.Name.String()`, see
    /// [`crate::pkix_name_string`]): the text gRFC A43 principals are matched against.
    /// Attributes are ordered by type, not as the certificate lists them, so a certificate made
    /// with `-subj /CN=ledger/O=zt` reads `CN=ledger,O=zt`.
    pub subject: String,
    /// The issuer distinguished name in RFC 4514 form (see [`rfc4514`]): the certificate's own
    /// RDN order reversed. CRLs are matched to certificates by this text.
    pub issuer: String,
    /// The serial number in lowercase hex.
    pub serial: String,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: i64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
    /// Whether BasicConstraints says `cA=true`.
    pub is_ca: bool,
    /// KeyUsage bits that are set, by name (`digitalSignature`, ...).
    pub key_usages: Vec<&'static str>,
    /// ExtendedKeyUsage purposes that are set, by name (`serverAuth`, ...).
    pub extended_key_usages: Vec<&'static str>,
    /// Every way the certificate breaks the X509-SVID leaf profile; empty for a valid SVID.
    pub violations: Vec<SvidViolation>,
}

impl LeafReport {
    /// Whether the certificate is a conforming X509-SVID leaf.
    pub fn is_valid_svid(&self) -> bool {
        self.violations.is_empty() && self.spiffe_id.is_some()
    }
}

/// Parses one DER certificate and checks it against the X509-SVID leaf profile.
///
/// Fails when the bytes are not a certificate (or carry trailing data), and when the subject
/// holds a value Go's certificate parser refuses (a string type Go does not read, invalid
/// UTF-8, ...: see [`crate::pkix_name_string`]), because grpc-go would refuse that peer too and
/// its principals could not be matched as grpc-go matches them. Profile violations are listed
/// in [`LeafReport::violations`].
pub fn inspect_leaf(der: &[u8]) -> Result<LeafReport, IdentityError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| IdentityError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(IdentityError::Malformed(format!(
            "{} bytes of trailing data after the certificate",
            rest.len()
        )));
    }
    let mut violations = Vec::new();
    // x509-parser's accessors read an extension that does not parse as absent: look first.
    let mut broken = Vec::new();
    for ext in cert.extensions() {
        let name =
            oid2sn(&ext.oid, oid_registry()).map_or_else(|_| ext.oid.to_id_string(), str::to_owned);
        match ext.parsed_extension() {
            ParsedExtension::ParseError { error } => {
                broken.push(ext.oid.clone());
                violations.push(SvidViolation::MalformedExtension {
                    name,
                    reason: error.to_string(),
                });
            }
            ParsedExtension::UnsupportedExtension { .. } if ext.critical => {
                violations.push(SvidViolation::UnknownCriticalExtension(name));
            }
            _ => {}
        }
    }
    let intact = |oid: &Oid<'_>| !broken.contains(oid);

    let (uri_sans, dns_sans) = if intact(&OID_X509_EXT_SUBJECT_ALT_NAME) {
        subject_alt_names(&cert)?
    } else {
        (Vec::new(), Vec::new())
    };
    let spiffe_id = match uri_sans.as_slice() {
        [] => {
            violations.push(SvidViolation::NoUriSan);
            None
        }
        [uri] => match SpiffeId::new(uri) {
            Ok(id) => Some(id),
            Err(reason) => {
                violations.push(SvidViolation::InvalidSpiffeId {
                    uri: uri.clone(),
                    reason,
                });
                None
            }
        },
        many => {
            violations.push(SvidViolation::MultipleUriSans(many.len()));
            None
        }
    };

    // A BasicConstraints that does not parse is not read as "not a CA".
    let is_ca = !intact(&OID_X509_EXT_BASIC_CONSTRAINTS)
        || cert
            .basic_constraints()
            .map_err(malformed)?
            .is_some_and(|bc| bc.value.ca);
    if is_ca && intact(&OID_X509_EXT_BASIC_CONSTRAINTS) {
        violations.push(SvidViolation::LeafIsCa);
    }

    let mut key_usages = Vec::new();
    match cert.key_usage().map_err(malformed)? {
        None if !intact(&OID_X509_EXT_KEY_USAGE) => {}
        None => violations.push(SvidViolation::MissingKeyUsage),
        Some(ku) => {
            let bits = ku.value;
            for (set, name) in [
                (bits.digital_signature(), "digitalSignature"),
                (bits.non_repudiation(), "contentCommitment"),
                (bits.key_encipherment(), "keyEncipherment"),
                (bits.data_encipherment(), "dataEncipherment"),
                (bits.key_agreement(), "keyAgreement"),
                (bits.key_cert_sign(), "keyCertSign"),
                (bits.crl_sign(), "cRLSign"),
            ] {
                if set {
                    key_usages.push(name);
                }
            }
            if !ku.critical {
                violations.push(SvidViolation::KeyUsageNotCritical);
            }
            if !bits.digital_signature() {
                violations.push(SvidViolation::NoDigitalSignature);
            }
            if bits.key_cert_sign() || bits.crl_sign() {
                violations.push(SvidViolation::SigningKeyUsage);
            }
        }
    }

    let mut extended_key_usages = Vec::new();
    if let Some(eku) = cert.extended_key_usage().map_err(malformed)? {
        let eku = eku.value;
        for (set, name) in [
            (eku.server_auth, "serverAuth"),
            (eku.client_auth, "clientAuth"),
            (eku.code_signing, "codeSigning"),
            (eku.email_protection, "emailProtection"),
            (eku.time_stamping, "timeStamping"),
            (eku.ocsp_signing, "OCSPSigning"),
            (eku.any, "anyExtendedKeyUsage"),
        ] {
            if set {
                extended_key_usages.push(name);
            }
        }
        // X509-SVID section 4.4: when present, both purposes MUST be set.
        if !(eku.server_auth && eku.client_auth) {
            violations.push(SvidViolation::ExtendedKeyUsage);
        }
    }

    let validity = cert.validity();
    Ok(LeafReport {
        spiffe_id,
        uri_sans,
        dns_sans,
        subject: subject_der(cert.tbs_certificate.as_ref())
            .ok_or_else(|| malformed("subject: not DER Go would read"))
            .and_then(pkix_name_string)?,
        issuer: rfc4514(cert.issuer()),
        serial: cert.tbs_certificate.serial.to_str_radix(16),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        is_ca,
        key_usages,
        extended_key_usages,
        violations,
    })
}

fn subject_alt_names(
    cert: &X509Certificate<'_>,
) -> Result<(Vec<String>, Vec<String>), IdentityError> {
    let mut uris = Vec::new();
    let mut dns = Vec::new();
    if let Some(san) = cert.subject_alternative_name().map_err(malformed)? {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(uri) => uris.push((*uri).to_owned()),
                GeneralName::DNSName(name) => dns.push((*name).to_owned()),
                _ => {}
            }
        }
    }
    Ok((uris, dns))
}

fn malformed(err: impl std::fmt::Display) -> IdentityError {
    IdentityError::Malformed(err.to_string())
}

/// A distinguished name as RFC 4514 writes it: the certificate's RDNs last first, `,` between
/// RDNs, `+` between the values of one RDN in their order, special characters escaped, values
/// that are not PrintableString, UTF8String, IA5String or NumericString as `#` and hex.
///
/// This is the form used to match CRL issuers to certificates and to name CAs. It is **not**
/// the text A43 principals match: grpc-go orders attributes by type and writes unknown types
/// differently (`CN=a,O=b` where this writes `O=b,CN=a` for `-subj /CN=a/O=b`); that form is
/// [`crate::pkix_name_string`].
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let registry = oid_registry();
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.into_iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            match x509_parser::objects::oid2abbrev(attr.attr_type(), registry) {
                Ok(abbrev) => out.push_str(abbrev),
                Err(_) => out.push_str(&attr.attr_type().to_id_string()),
            }
            out.push('=');
            match attr.as_str() {
                Ok(value) => escape_rfc4514(value, &mut out),
                Err(_) => {
                    out.push('#');
                    for byte in attr.attr_value().as_bytes() {
                        out.push_str(&format!("{byte:02x}"));
                    }
                }
            }
        }
    }
    out
}

fn escape_rfc4514(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}
