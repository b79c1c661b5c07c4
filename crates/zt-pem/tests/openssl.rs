//! PEM as OpenSSL writes it, made at test time by the `openssl` command: every certificate and
//! key form users bring is read, and every way a block could be lost is an error that names it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use rustls_pki_types::PrivateKeyDer;
use zt_pem::PemError;

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// Runs `openssl` with `args` in the directory.
    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.0.path())
            .output()
            .expect("openssl must be installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    /// A self-signed CA named `name`, written to `name.pem` with its key in `name.key`.
    fn ca(&self, name: &str) -> Vec<u8> {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-subj",
            &format!("/CN={name}"),
            "-days",
            "1",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        self.read(&format!("{name}.pem"))
    }
}

fn der_of(path: &Path) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn trusted_certificate_blocks_are_read_not_skipped() {
    let dir = Dir::new();
    let first = dir.ca("first");
    dir.ca("second");
    dir.openssl(&[
        "x509",
        "-in",
        "second.pem",
        "-trustout",
        "-addtrust",
        "clientAuth",
        "-out",
        "second-trusted.pem",
    ]);
    let trusted = dir.read("second-trusted.pem");
    assert!(String::from_utf8_lossy(&trusted).contains("BEGIN TRUSTED CERTIFICATE"));

    let bundle = [first.as_slice(), &trusted].concat();
    let certs = zt_pem::certificates(&bundle).unwrap();
    assert_eq!(certs.len(), 2, "both CAs are in the bundle");
    assert_eq!(certs[0].as_ref(), der_of(&dir.path("first.pem")));
    // The certificate itself, without OpenSSL's trust settings after it.
    assert_eq!(certs[1].as_ref(), der_of(&dir.path("second.pem")));
}

#[test]
fn trust_settings_that_reject_a_use_are_refused() {
    let dir = Dir::new();
    dir.ca("ca");
    dir.openssl(&[
        "x509",
        "-in",
        "ca.pem",
        "-trustout",
        "-addreject",
        "clientAuth",
        "-out",
        "rejecting.pem",
    ]);
    let err = zt_pem::certificates(&dir.read("rejecting.pem")).unwrap_err();
    assert!(matches!(err, PemError::RejectedUses { .. }), "{err}");
    assert!(
        err.to_string().starts_with(
            "PEM block 1 (TRUSTED CERTIFICATE, line 1): OpenSSL trust settings reject"
        )
    );
}

#[test]
fn files_glued_without_a_final_newline_keep_every_certificate() {
    let dir = Dir::new();
    let first = dir.ca("first");
    let second = dir.ca("second");
    let glued = [first.strip_suffix(b"\n").unwrap(), &second].concat();
    assert!(
        String::from_utf8_lossy(&glued)
            .contains("-----END CERTIFICATE----------BEGIN CERTIFICATE-----")
    );
    let certs = zt_pem::certificates(&glued).unwrap();
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[1].as_ref(), der_of(&dir.path("second.pem")));

    // Text between blocks (openssl x509 -text output, comments) is allowed and ignored.
    let annotated = [
        b"# our CA\n".as_slice(),
        &first,
        b"Subject: CN=second\n",
        &second,
    ]
    .concat();
    assert_eq!(zt_pem::certificates(&annotated).unwrap().len(), 2);
    // So are Windows line endings.
    let crlf = String::from_utf8(first).unwrap().replace('\n', "\r\n");
    assert_eq!(zt_pem::certificates(crlf.as_bytes()).unwrap().len(), 1);
}

#[test]
fn a_damaged_bundle_names_the_block_and_line() {
    let dir = Dir::new();
    let first = String::from_utf8(dir.ca("first")).unwrap();
    let second = String::from_utf8(dir.ca("second")).unwrap();
    let lines_of_first = first.lines().count();

    // A character that is not base64 in the second block's first body line.
    let mut damaged = second.clone().into_bytes();
    let at = second.find('\n').unwrap() + 3;
    damaged[at] = b'!';
    let text = [first.as_bytes(), &damaged].concat();
    let err = zt_pem::certificates(&text).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "PEM block 2 (CERTIFICATE, line {}): line {}, column 3: '!' is not a base64 character",
            lines_of_first + 1,
            lines_of_first + 2
        )
    );

    // The second block cut off before its END.
    let cut = &second[..second.find("-----END").unwrap()];
    let err = zt_pem::certificates(format!("{first}{cut}").as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "PEM block 2 (CERTIFICATE, line {}): no END line before the end of the file",
            lines_of_first + 1
        )
    );
    // ... and then a third block, whose BEGIN comes first.
    let err = zt_pem::certificates(format!("{first}{cut}{first}").as_bytes()).unwrap_err();
    assert!(
        matches!(err, PemError::Unterminated { next: Some(_), .. }),
        "{err}"
    );

    // An END with no BEGIN, a mismatched END, a block that is not a certificate.
    let end_only = format!("{first}-----END CERTIFICATE-----\n");
    assert!(matches!(
        zt_pem::certificates(end_only.as_bytes()),
        Err(PemError::EndWithoutBegin { .. })
    ));
    let mismatched = first.replace("END CERTIFICATE", "END X509 CRL");
    assert!(matches!(
        zt_pem::certificates(mismatched.as_bytes()),
        Err(PemError::LabelMismatch { .. })
    ));
    dir.openssl(&[
        "req",
        "-new",
        "-key",
        "first.key",
        "-subj",
        "/CN=x",
        "-out",
        "req.pem",
    ]);
    let with_request = [first.as_bytes(), &dir.read("req.pem")].concat();
    assert_eq!(
        zt_pem::certificates(&with_request).unwrap_err().to_string(),
        format!(
            "PEM block 2 (CERTIFICATE REQUEST, line {}): a certificate file cannot hold a CERTIFICATE REQUEST block",
            lines_of_first + 1
        )
    );
    // A file with no block and no DER in it.
    assert_eq!(
        zt_pem::certificates(b"hello").unwrap_err(),
        PemError::Nothing("certificates", "CERTIFICATE")
    );
}

#[test]
fn der_files_are_read_whole() {
    let dir = Dir::new();
    dir.ca("ca");
    let der = der_of(&dir.path("ca.pem"));
    assert_eq!(zt_pem::certificates(&der).unwrap()[0].as_ref(), der);
    let mut trailing = der;
    trailing.push(0);
    assert!(zt_pem::certificates(&trailing).is_err());
}

#[test]
fn every_key_format_openssl_writes() {
    let dir = Dir::new();
    type IsForm = fn(&PrivateKeyDer<'_>) -> bool;
    let cases: &[(&str, &[&str], IsForm)] = &[
        (
            "p256-pkcs8.key",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ],
            |k| matches!(k, PrivateKeyDer::Pkcs8(_)),
        ),
        (
            "p384-pkcs8.key",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
            ],
            |k| matches!(k, PrivateKeyDer::Pkcs8(_)),
        ),
        ("ed25519.key", &["genpkey", "-algorithm", "ED25519"], |k| {
            matches!(k, PrivateKeyDer::Pkcs8(_))
        }),
        (
            "rsa-pkcs8.key",
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
            |k| matches!(k, PrivateKeyDer::Pkcs8(_)),
        ),
        // `ecparam -genkey` writes an EC PARAMETERS block before the SEC1 key.
        (
            "sec1.key",
            &["ecparam", "-name", "prime256v1", "-genkey"],
            |k| matches!(k, PrivateKeyDer::Sec1(_)),
        ),
        (
            "pkcs1.key",
            &["rsa", "-traditional", "-in", "rsa-pkcs8.key"],
            |k| matches!(k, PrivateKeyDer::Pkcs1(_)),
        ),
    ];
    for (name, args, check) in cases {
        let mut args = args.to_vec();
        args.extend(["-out", name]);
        dir.openssl(&args);
        let key = zt_pem::private_key(&dir.read(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(check(&key), "{name}");
    }
    let sec1 = String::from_utf8(dir.read("sec1.key")).unwrap();
    assert!(
        sec1.contains("BEGIN EC PARAMETERS"),
        "the case is what it says"
    );
}

#[test]
fn encrypted_keys_are_refused_as_encrypted() {
    let dir = Dir::new();
    dir.openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-aes256",
        "-pass",
        "pass:secret",
        "-out",
        "pkcs8-encrypted.key",
    ]);
    dir.openssl(&[
        "genrsa",
        "-traditional",
        "-aes256",
        "-passout",
        "pass:secret",
        "-out",
        "legacy-encrypted.key",
        "2048",
    ]);
    for name in ["pkcs8-encrypted.key", "legacy-encrypted.key"] {
        let err = zt_pem::private_key(&dir.read(name)).unwrap_err();
        assert!(matches!(err, PemError::Encrypted { .. }), "{name}: {err}");
        assert!(
            err.to_string()
                .contains("encrypted private keys are not supported"),
            "{err}"
        );
    }
}

#[test]
fn a_key_file_holds_one_key() {
    let dir = Dir::new();
    dir.openssl(&["genpkey", "-algorithm", "ED25519", "-out", "a.key"]);
    dir.openssl(&["genpkey", "-algorithm", "ED25519", "-out", "b.key"]);
    let two = [dir.read("a.key"), dir.read("b.key")].concat();
    assert!(matches!(
        zt_pem::private_key(&two),
        Err(PemError::SecondKey { .. })
    ));
    // A combined certificate-and-key file serves as either.
    let ca = dir.ca("ca");
    let combined = [ca.as_slice(), &dir.read("ca.key")].concat();
    assert!(zt_pem::private_key(&combined).is_ok());
    assert_eq!(zt_pem::certificates(&combined).unwrap().len(), 1);
    assert!(matches!(
        zt_pem::private_key(&ca),
        Err(PemError::Nothing(..))
    ));
}

#[test]
fn crls_in_pem_and_der() {
    let dir = Dir::new();
    dir.ca("ca");
    std::fs::write(dir.path("index.txt"), "").unwrap();
    std::fs::write(
        dir.path("ca.cnf"),
        "[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\ndefault_md=sha256\ndefault_crl_days=1\n",
    )
    .unwrap();
    dir.openssl(&[
        "ca", "-config", "ca.cnf", "-gencrl", "-keyfile", "ca.key", "-cert", "ca.pem", "-out",
        "ca.crl",
    ]);
    let pem = dir.read("ca.crl");
    let crls = zt_pem::crls(&pem).unwrap();
    assert_eq!(crls.len(), 1);
    assert_eq!(
        zt_pem::crls(crls[0].as_ref()).unwrap(),
        crls,
        "DER reads the same"
    );
    assert!(matches!(
        zt_pem::crls(&dir.read("ca.pem")),
        Err(PemError::UnexpectedLabel { .. })
    ));
}
