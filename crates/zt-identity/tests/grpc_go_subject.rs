//! The subject text principals match is grpc-go's: Go's `pkix.Name.String()`.
//!
//! `subjects_match_go_itself` makes certificates with the openssl CLI (every string type
//! openssl writes, multi-valued RDNs, escapes, non-ASCII, emailAddress, UID, DC, repeated
//! attributes, the empty subject), patches a few into string types openssl will not write, and
//! compares this crate's text with what a small Go program prints for `cert.Subject.String()`,
//! built at test time. Without `go` (or `openssl`) on PATH it says so on stderr and passes,
//! unless `ZT_REQUIRE_GO=1` is set, when it fails instead (for a CI job that installs Go).
//! `ZT_SHOW_SUBJECTS=1` prints every pair compared.
//! The other tests need neither tool.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, SanType,
};
use zt_identity::{IdentityError, TrustDomain, TrustedDomains, inspect_leaf};

/// One subject to compare. `subj` is openssl's `-subj`; `mask` its `string_mask` (which string
/// types openssl may choose); `patch` replaces, in the subject only (the last occurrence: the
/// issuer comes first), bytes by others of the same length, to reach DER openssl will not
/// write; `go_1_25` marks a case whose text changed in Go 1.25 (T61String read as Latin-1,
/// BMPString as strict UCS-2), compared only against Go 1.25 or later.
struct Case {
    subj: &'static str,
    mask: &'static str,
    patch: Option<(Vec<u8>, Vec<u8>)>,
    go_1_25: bool,
}

fn case(subj: &'static str) -> Case {
    Case {
        subj,
        mask: "utf8only",
        patch: None,
        go_1_25: false,
    }
}

fn masked(subj: &'static str, mask: &'static str) -> Case {
    Case {
        subj,
        mask,
        patch: None,
        go_1_25: false,
    }
}

/// `/O=patched/CN=XXXX` with the UTF8String `XXXX` replaced by `tag` and `content`.
fn patched(tag: u8, content: &[u8; 4], go_1_25: bool) -> Case {
    let mut to = vec![tag, 4];
    to.extend_from_slice(content);
    Case {
        subj: "/O=patched/CN=XXXX",
        mask: "utf8only",
        patch: Some((b"\x0c\x04XXXX".to_vec(), to)),
        go_1_25,
    }
}

fn cases() -> Vec<Case> {
    vec![
        // The issue's example, and the same name in the other order.
        case("/CN=legacy-batch/O=bughunt"),
        case("/O=bughunt/CN=legacy-batch"),
        case("/"),
        case(
            "/C=DE/ST=Berlin/L=Mitte/street=Main St 1/postalCode=10115/O=Org/OU=Unit/CN=full\
             /serialNumber=42",
        ),
        case("/serialNumber=42/CN=full/OU=Unit/O=Org/postalCode=10115/street=x/L=l/ST=s/C=DE"),
        // Multi-valued RDNs, repeated attributes.
        case("/CN=a+O=b"),
        case("/O=b+CN=a+C=DE/OU=u"),
        case("/L=a+ST=b+C=DE+street=s+postalCode=1"),
        case("/OU=a+OU=b/CN=x"),
        case("/O=z/OU=a/O=y"),
        case("/C=DE/C=FR/O=a/O=b/O=c"),
        case("/CN=first/CN=second"),
        case("/serialNumber=1/serialNumber=2"),
        // Attributes Go has no name for.
        case("/DC=com/DC=example/UID=u1/CN=x/emailAddress=a@b.example"),
        case("/emailAddress=ops@zt.example"),
        case("/UID=u1+CN=x+DC=org"),
        case("/title=Boss/GN=Ann/SN=Lee/CN=x/O=o"),
        case("/title=Ärger/CN=y"),
        case(
            "/title=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\
             aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ),
        // Escapes.
        case(r#"/CN=\ #a,b\+c"d\\e<f>g;h=i\ "#),
        case("/CN=#lead/O=trail\\ "),
        case("/O= two  spaces /OU=a\\/b"),
        case("/CN=tab\there"),
        // Non-ASCII, in every string type openssl picks for it.
        case("/CN=Müller/O=日本"),
        case("/CN=😀"),
        Case {
            go_1_25: true, // T61String, Latin-1
            ..masked("/CN=Müller", "nombstr")
        },
        masked("/CN=plain ascii*&", "nombstr"),
        masked("/CN=Müller/O=日本", "pkix"), // BMPString
        masked("/CN=😀", "pkix"),            // beyond the BMP: UTF8String again
        masked("/CN=a*b&c/title=x*y", "default"),
        masked("/serialNumber=12 34/CN=a", "default"),
        // String types openssl does not write, and values Go refuses.
        patched(0x0c, b"\xff\xfe\xfd\xfc", false), // invalid UTF-8
        patched(0x13, b"a@bc", false),             // PrintableString outside its set
        patched(0x13, b"*&ab", false),             // tolerated by Go's parser
        patched(0x16, b"a@b_", false),             // IA5String
        patched(0x16, b"ab\xe9d", false),          // IA5String, not ASCII
        patched(0x12, b"12 3", false),             // NumericString
        patched(0x12, b"12a3", false),
        patched(0x14, b"abcd", false),            // T61String, ASCII
        patched(0x14, b"M\xfcll", true),          // T61String, Latin-1
        patched(0x1e, b"\x00A\x00B", false),      // BMPString
        patched(0x1e, b"\x00A\x00\x00", false),   // with a terminator
        patched(0x1e, b"\xd8\x3d\xde\x00", true), // a surrogate pair
        patched(0x1e, b"\xff\xfe\x00A", true),    // a noncharacter
        patched(0x1a, b"abcd", false),            // VisibleString
        patched(0x1c, b"\x00\x00\x00A", false),   // UniversalString
        patched(0x04, b"abcd", false),            // OCTET STRING
        // An empty RDN SET (RFC 5280 forbids it, Go reads on): the RDN OU=ab becomes an empty
        // SET and the RDN OU="" (same length).
        Case {
            patch: Some((
                b"\x31\x0b\x30\x09\x06\x03\x55\x04\x0b\x0c\x02ab".to_vec(),
                b"\x31\x00\x31\x09\x30\x07\x06\x03\x55\x04\x0b\x0c\x00".to_vec(),
            )),
            ..case("/CN=x/OU=ab/O=y")
        },
        // A PrintableString with a long-form length Go refuses (0x81 0x03 for 3).
        Case {
            patch: Some((b"\x0c\x04XXXX".to_vec(), b"\x13\x81\x03abc".to_vec())),
            ..case("/O=patched/CN=XXXX")
        },
    ]
}

/// What this crate makes of a DER certificate: the subject, or `None` when it refuses.
fn ours(der: &[u8]) -> Option<String> {
    match inspect_leaf(der) {
        Ok(report) => Some(report.subject),
        Err(IdentityError::Malformed(_)) => None,
        Err(other) => panic!("unexpected error {other}"),
    }
}

fn tool_missing(tool: &str, why: &str) -> bool {
    let found = Command::new(tool)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let required = std::env::var_os("ZT_REQUIRE_GO").is_some_and(|v| v == "1");
        assert!(
            !required,
            "ZT_REQUIRE_GO=1 but `{tool}` is not on PATH ({why})"
        );
        eprintln!(
            "SKIPPED subjects_match_go_itself: `{tool}` is not on PATH, so {why}. \
             Install it (Debian: apt-get install golang-go openssl) to run the comparison; \
             set ZT_REQUIRE_GO=1 to make this a failure."
        );
    }
    !found
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn openssl_cert(dir: &Path, index: usize, case: &Case) -> PathBuf {
    let config = dir.join(format!("{}.cnf", case.mask));
    if !config.exists() {
        std::fs::write(
            &config,
            format!(
                "[req]\ndistinguished_name = dn\nstring_mask = {}\n[dn]\n",
                case.mask
            ),
        )
        .unwrap();
    }
    let out = dir.join(format!("case{index}.der"));
    run(Command::new("openssl")
        .args([
            "req", "-new", "-x509", "-utf8", "-days", "1", "-outform", "DER",
        ])
        .arg("-key")
        .arg(dir.join("key.pem"))
        .arg("-config")
        .arg(&config)
        .args(["-subj", case.subj])
        .arg("-out")
        .arg(&out));
    if let Some((from, to)) = &case.patch {
        let mut der = std::fs::read(&out).unwrap();
        patch_subject(&mut der, from, to);
        std::fs::write(&out, der).unwrap();
    }
    out
}

/// Replaces the last occurrence of `from` (in the subject: the issuer comes first) by `to`, of
/// the same length, so every length around it stays right.
fn patch_subject(der: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let at = der
        .windows(from.len())
        .rposition(|w| w == from)
        .unwrap_or_else(|| panic!("{from:x?} is not in the certificate"));
    der[at..at + to.len()].copy_from_slice(to);
}

const GO_PROGRAM: &str = r#"package main

import (
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
)

// Prints the Go version, then per DER file "OK <hex of Subject.String()>" or "ERR <hex>".
func main() {
	fmt.Println(runtime.Version())
	for _, path := range os.Args[1:] {
		der, err := os.ReadFile(path)
		if err != nil {
			panic(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			fmt.Println("ERR " + hex.EncodeToString([]byte(err.Error())))
			continue
		}
		fmt.Println("OK " + hex.EncodeToString([]byte(cert.Subject.String())))
	}
}
"#;

fn unhex(text: &str) -> String {
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect();
    String::from_utf8(bytes).unwrap()
}

/// `go1.19.8` -> (1, 19); a development build counts as new.
fn go_version(text: &str) -> (u32, u32) {
    let mut parts = text.trim_start_matches("go").split(['.', ' ', '-']);
    let major = parts.next().and_then(|p| p.parse().ok());
    let minor = parts.next().and_then(|p| p.parse().ok());
    major.zip(minor).unwrap_or((u32::MAX, 0))
}

#[test]
fn subjects_match_go_itself() {
    if tool_missing("openssl", "the certificates cannot be made")
        || tool_missing("go", "Go's pkix.Name.String() cannot be asked")
    {
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    run(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .arg("-out")
        .arg(dir.path().join("key.pem")));
    let cases = cases();
    let files: Vec<PathBuf> = cases
        .iter()
        .enumerate()
        .map(|(i, case)| openssl_cert(dir.path(), i, case))
        .collect();
    let made = started.elapsed();

    let source = dir.path().join("subject.go");
    std::fs::write(&source, GO_PROGRAM).unwrap();
    let binary = dir.path().join("subject");
    let mut build = Command::new("go");
    build
        .arg("build")
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .current_dir(dir.path())
        // Never fetch another toolchain; no module needed for one file of the standard library.
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .env("GO111MODULE", "");
    if std::env::var_os("HOME").is_none() && std::env::var_os("GOCACHE").is_none() {
        build.env("GOCACHE", dir.path().join("gocache"));
    }
    run(&mut build);
    let built = started.elapsed();

    let stdout = String::from_utf8(run(Command::new(&binary).args(&files))).unwrap();
    let mut lines = stdout.lines();
    let version = lines.next().unwrap().to_owned();
    let modern = go_version(&version) >= (1, 25);

    let mut compared = 0;
    let mut skipped = Vec::new();
    let mut mismatches = Vec::new();
    for ((case, file), line) in cases.iter().zip(&files).zip(lines) {
        let go = match line.split_once(' ') {
            Some(("OK", text)) => Ok(unhex(text)),
            Some(("ERR", text)) => Err(unhex(text)),
            _ => panic!("unexpected line from the Go program: {line}"),
        };
        let der = std::fs::read(file).unwrap();
        let ours = ours(&der);
        if case.go_1_25 && !modern {
            skipped.push(format!("{} {:x?}", case.subj, case.patch));
            continue;
        }
        compared += 1;
        if std::env::var_os("ZT_SHOW_SUBJECTS").is_some() {
            eprintln!("{:<60} go: {go:?}\n{:<60} us: {ours:?}", case.subj, "");
        }
        let agree = match (&go, &ours) {
            (Ok(go), Some(ours)) => go == ours,
            (Err(_), None) => true,
            _ => false,
        };
        if !agree {
            mismatches.push(format!(
                "{} (mask {}, patch {:x?}):\n  go:   {go:?}\n  ours: {ours:?}",
                case.subj, case.mask, case.patch
            ));
        }
    }
    eprintln!(
        "compared {compared} subjects with {version}: certificates made in {:?}, Go program \
         built in {:?}, total {:?}",
        made,
        built - made,
        started.elapsed()
    );
    if !skipped.is_empty() {
        eprintln!(
            "not compared ({version} predates Go 1.25's T61String/BMPString decoding, which \
             this crate follows; the unit tests in src/dn.rs pin it): {skipped:#?}"
        );
    }
    assert_eq!(compared + skipped.len(), cases.len(), "one answer per case");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// A conforming SVID whose subject is `dn`.
fn svid(dn: DistinguishedName) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(
        "spiffe://zt.example/ns/prod/sa/batch".try_into().unwrap(),
    )];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.distinguished_name = dn;
    params
        .self_signed(&KeyPair::generate().unwrap())
        .unwrap()
        .der()
        .to_vec()
}

fn trusted() -> TrustedDomains {
    TrustedDomains::new([TrustDomain::new("zt.example").unwrap()])
}

#[test]
fn the_peer_subject_is_grpc_gos_text_and_the_issuer_stays_rfc_4514() {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "legacy-batch");
    dn.push(DnType::OrganizationName, "bughunt");
    dn.push(DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]), "x");
    let peer = trusted().identify(Some(&svid(dn))).unwrap();
    assert_eq!(
        peer.subject(),
        "CN=legacy-batch,O=bughunt,1.2.840.113549.1.9.1=#130178"
    );
    // Self-signed: the same name, in RFC 4514 form (the certificate's order, reversed), as
    // CRLs are matched.
    assert_eq!(peer.issuer(), "Email=x,O=bughunt,CN=legacy-batch");
}

#[test]
fn a_subject_go_cannot_decode_is_refused_as_malformed_without_panicking() {
    // A UniversalString, which Go's certificate parser does not read.
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        DnValue::UniversalString("batch".try_into().unwrap()),
    );
    let refusal = trusted().identify(Some(&svid(dn))).unwrap_err();
    assert!(
        matches!(&refusal, IdentityError::Malformed(m) if m.contains("subject")),
        "{refusal}"
    );
    assert_eq!(refusal.kind(), "malformed_certificate");

    // Invalid UTF-8 in a UTF8String, and PrintableString outside its character set.
    for (tag, content) in [
        (0x0c, &b"\xc3\x28ab"[..]),
        (0x13, b"a@bc"),
        (0x1e, b"\xd8\x00\x00A"),
    ] {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "zt");
        dn.push(DnType::CommonName, "XXXX");
        let mut der = svid(dn);
        let mut to = vec![tag, 4];
        to.extend_from_slice(content);
        patch_subject(&mut der, b"\x0c\x04XXXX", &to);
        let refusal = trusted().identify(Some(&der)).unwrap_err();
        assert!(
            matches!(&refusal, IdentityError::Malformed(m) if m.contains("2.5.4.3")),
            "{tag:#x}: {refusal}"
        );
        assert!(
            inspect_leaf(&der).is_err(),
            "inspect agrees with the handshake"
        );
    }
}
