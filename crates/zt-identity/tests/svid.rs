//! X509-SVID leaf rules, checked on certificates generated here with rcgen (no sockets).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use zt_identity::{IdentityError, SvidViolation, TrustDomain, TrustedDomains, inspect_leaf};

/// A conforming leaf profile; each test bends one thing.
fn svid_params(uris: &[&str]) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.subject_alt_names = uris
        .iter()
        .map(|u| SanType::URI((*u).try_into().unwrap()))
        .chain([SanType::DnsName("ledger".try_into().unwrap())])
        .collect();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params
}

fn der(params: &CertificateParams) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

fn trusted() -> TrustedDomains {
    TrustedDomains::new([TrustDomain::new("zt.example").unwrap()])
}

#[test]
fn conforming_leaf_yields_identity() {
    let leaf = der(&svid_params(&["spiffe://zt.example/ns/prod/sa/ledger"]));
    let report = inspect_leaf(&leaf).unwrap();
    assert!(report.is_valid_svid(), "{:?}", report.violations);
    assert_eq!(report.key_usages, ["digitalSignature"]);
    assert_eq!(report.extended_key_usages, ["serverAuth", "clientAuth"]);

    let peer = trusted().identify(Some(&leaf)).unwrap();
    assert_eq!(
        peer.spiffe_id().as_str(),
        "spiffe://zt.example/ns/prod/sa/ledger"
    );
    assert_eq!(peer.dns_names(), ["ledger"]);
}

#[test]
fn each_profile_violation_is_reported() {
    let two = svid_params(&["spiffe://zt.example/a", "spiffe://zt.example/b"]);
    let none = svid_params(&[]);
    let bad_id = svid_params(&["spiffe://zt.example/a/../b"]);
    let https = svid_params(&["https://zt.example/a"]);
    let mut ca = svid_params(&["spiffe://zt.example/a"]);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut no_ku = svid_params(&["spiffe://zt.example/a"]);
    no_ku.key_usages.clear();
    let mut cert_sign = svid_params(&["spiffe://zt.example/a"]);
    cert_sign.key_usages.push(KeyUsagePurpose::KeyCertSign);
    let mut server_only = svid_params(&["spiffe://zt.example/a"]);
    server_only.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let mut no_digital = svid_params(&["spiffe://zt.example/a"]);
    no_digital.key_usages = vec![KeyUsagePurpose::KeyAgreement];

    let cases = [
        (two, SvidViolation::MultipleUriSans(2)),
        (none, SvidViolation::NoUriSan),
        (ca, SvidViolation::LeafIsCa),
        (no_ku, SvidViolation::MissingKeyUsage),
        (cert_sign, SvidViolation::SigningKeyUsage),
        (server_only, SvidViolation::ExtendedKeyUsage),
        (no_digital, SvidViolation::NoDigitalSignature),
    ];
    for (params, want) in cases {
        let leaf = der(&params);
        let report = inspect_leaf(&leaf).unwrap();
        assert!(
            report.violations.contains(&want),
            "want {want:?}, got {:?}",
            report.violations
        );
        assert!(!report.is_valid_svid());
        assert_eq!(
            trusted().identify(Some(&leaf)),
            Err(IdentityError::NotAnSvid(report.violations[0].clone()))
        );
    }
    for params in [bad_id, https] {
        let report = inspect_leaf(&der(&params)).unwrap();
        assert!(
            matches!(
                report.violations[..],
                [SvidViolation::InvalidSpiffeId { .. }]
            ),
            "{:?}",
            report.violations
        );
    }
}

#[test]
fn key_usage_must_be_critical() {
    // rcgen always marks KeyUsage critical, so write the extension by hand: BIT STRING with
    // digitalSignature only (0x03 0x02 0x07 0x80), flagged non-critical.
    let mut params = svid_params(&["spiffe://zt.example/a"]);
    params.key_usages.clear();
    let mut ku = CustomExtension::from_oid_content(&[2, 5, 29, 15], vec![0x03, 0x02, 0x07, 0x80]);
    ku.set_criticality(false);
    params.custom_extensions.push(ku);
    let report = inspect_leaf(&der(&params)).unwrap();
    assert_eq!(report.violations, [SvidViolation::KeyUsageNotCritical]);
}

#[test]
fn untrusted_domain_and_missing_or_garbage_certs_are_refused() {
    let foreign = der(&svid_params(&[
        "spiffe://zt.example.evil/ns/prod/sa/payments",
    ]));
    assert_eq!(
        trusted().identify(Some(&foreign)),
        Err(IdentityError::UntrustedDomain("zt.example.evil".into()))
    );
    assert_eq!(trusted().identify(None), Err(IdentityError::NoCertificate));
    assert!(matches!(
        trusted().identify(Some(b"\x30\x03\x02\x01")),
        Err(IdentityError::Malformed(_))
    ));
    let mut trailing = der(&svid_params(&["spiffe://zt.example/a"]));
    trailing.push(0);
    assert!(matches!(
        inspect_leaf(&trailing),
        Err(IdentityError::Malformed(_))
    ));
}

/// Escaping as Go's `pkix.Name.String()` does it. Written in the order C, O, CN, this name
/// reads the same in grpc-go's form (ordered by type) and in RFC 4514 (the issuer's form: the
/// certificate's order reversed); `tests/grpc_go_subject.rs` has the names where they differ.
#[test]
fn subject_is_escaped_like_grpc_go() {
    let mut params = svid_params(&["spiffe://zt.example/a"]);
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CountryName, "DE");
    dn.push(rcgen::DnType::OrganizationName, "Zero, Trust+Co");
    dn.push(rcgen::DnType::CommonName, " web ");
    params.distinguished_name = dn;
    let report = inspect_leaf(&der(&params)).unwrap();
    assert_eq!(report.subject, r"CN=\ web\ ,O=Zero\, Trust\+Co,C=DE");
    assert_eq!(report.issuer, report.subject, "self-signed");
}

/// The reported example: extensions that do not parse were read as absent, so a leaf with a
/// broken BasicConstraints was a "valid leaf" (and an identity) while the handshake refuses
/// it, and a broken KeyUsage was reported as missing. Every tool reads through
/// `inspect_leaf`, so each now gives the handshake's verdict and the real reason.
#[test]
fn extensions_that_do_not_parse_are_named_not_read_as_absent() {
    let id = "spiffe://zt.example/ns/prod/sa/payments";
    let with = |oid: &[u64], critical: bool, content: &[u8], params: CertificateParams| {
        let mut params = params;
        let mut ext = CustomExtension::from_oid_content(oid, content.to_vec());
        ext.set_criticality(critical);
        params.custom_extensions.push(ext);
        der(&params)
    };
    // BasicConstraints (2.5.29.19) whose SEQUENCE claims 3 bytes and holds 1.
    let broken_bc = with(
        &[2, 5, 29, 19],
        true,
        &[0x30, 0x03, 0x01],
        svid_params(&[id]),
    );
    // KeyUsage (2.5.29.15) that is not a BIT STRING; the profile's own KeyUsage is left out.
    let mut no_ku = svid_params(&[id]);
    no_ku.key_usages.clear();
    let broken_ku = with(&[2, 5, 29, 15], true, &[0x04, 0x01, 0x00], no_ku);
    // A critical extension nobody here knows.
    let unknown = with(
        &[1, 3, 6, 1, 4, 1, 99999, 1],
        true,
        &[0x05, 0x00],
        svid_params(&[id]),
    );

    for (leaf, reason) in [
        (&broken_bc, "extension basicConstraints cannot be parsed"),
        (&unknown, "unknown critical extension 1.3.6.1.4.1.99999.1"),
    ] {
        let report = inspect_leaf(leaf).unwrap();
        let said: Vec<String> = report.violations.iter().map(ToString::to_string).collect();
        assert!(
            said.iter().any(|v| v.starts_with(reason)),
            "{reason}: {said:?}"
        );
        assert!(!report.is_valid_svid());
        // The handshake's validation says the same, so no identity comes of it.
        assert!(
            matches!(
                trusted().identify(Some(leaf)),
                Err(IdentityError::NotAnSvid(_))
            ),
            "{reason}"
        );
    }
    // x509-parser refuses a KeyUsage that is not a BIT STRING with the whole certificate: a
    // malformed certificate, never "no KeyUsage extension".
    assert!(matches!(
        inspect_leaf(&broken_ku),
        Err(IdentityError::Malformed(_))
    ));
    assert!(matches!(
        trusted().identify(Some(&broken_ku)),
        Err(IdentityError::Malformed(_))
    ));
}
