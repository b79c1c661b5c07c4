//! Keystores and truststores in the formats users hold: PKCS#12 made by `openssl pkcs12` and
//! by the JDK's `keytool`, and SPIFFE trust bundles (JWK sets), each loaded or refused with
//! the reason.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use zt_identity::{SpiffeId, TrustDomain};
use zt_pki::{Ca, LeafRequest};
use zt_tls::{BundleSource, Keystore, Password, TlsError, Truststore};

const TD: &str = "zt.example";
const ID: &str = "spiffe://zt.example/ns/prod/sa/payments";

struct Material {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Material {
    fn new() -> Self {
        let domain = TrustDomain::new(TD).unwrap();
        let ca = Ca::generate(&domain, Duration::from_secs(48 * 3600)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
        let leaf = ca
            .issue(&LeafRequest::new(SpiffeId::new(ID).unwrap()))
            .unwrap();
        std::fs::write(dir.path().join("leaf.pem"), leaf.cert_pem).unwrap();
        std::fs::write(dir.path().join("leaf.key"), leaf.key_pem).unwrap();
        std::fs::write(dir.path().join("password"), "s3cret pass\n").unwrap();
        Self { dir, ca }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = Command::new(program)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{program} must be installed: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn ca_der(m: &Material) -> Vec<u8> {
    zt_pem::certificates(m.ca.cert_pem().as_bytes()).unwrap()[0].to_vec()
}

fn password(m: &Material) -> Password {
    Password::File(m.path("password"))
}

fn p12_bundle(path: &Path, password: Option<Password>, domain: Option<&str>) -> BundleSource {
    BundleSource {
        domain: domain.map(|d| TrustDomain::new(d).unwrap()),
        path: path.to_owned(),
        password,
    }
}

#[test]
fn an_openssl_pkcs12_keystore_holds_the_key_and_chain() {
    let m = Material::new();
    m.run(
        "openssl",
        &[
            "pkcs12",
            "-export",
            "-in",
            "leaf.pem",
            "-inkey",
            "leaf.key",
            "-certfile",
            "ca.pem",
            "-name",
            "payments",
            "-passout",
            "file:password",
            "-out",
            "keystore.p12",
        ],
    );
    let p12 = m.path("keystore.p12");
    // `--key` is not read: the key is in the PKCS#12 file.
    let keystore =
        Keystore::load_with_password(&p12, Path::new("/nonexistent"), Some(&password(&m))).unwrap();
    assert_eq!(keystore.spiffe_id().as_str(), ID);
    assert_eq!(keystore.certified_key().cert.len(), 2, "leaf and CA");

    let wrong = Password::Value("not it".into());
    let err = Keystore::load_with_password(&p12, Path::new("-"), Some(&wrong)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: wrong password (the file's integrity check does not verify with it)",
            p12.display()
        )
    );
    let err = Keystore::load_with_password(&p12, Path::new("-"), None).unwrap_err();
    assert!(
        err.to_string()
            .contains("a PKCS#12 file needs its password"),
        "{err}"
    );
}

#[test]
fn pkcs12_truststores_from_openssl_and_keytool() {
    let m = Material::new();
    m.run(
        "openssl",
        &[
            "pkcs12",
            "-export",
            "-nokeys",
            "-in",
            "ca.pem",
            "-passout",
            "file:password",
            "-out",
            "openssl-trust.p12",
        ],
    );
    // keytool reads the password from the file too; it takes the first line.
    m.run(
        "keytool",
        &[
            "-importcert",
            "-noprompt",
            "-alias",
            "zt-ca",
            "-file",
            "ca.pem",
            "-storetype",
            "PKCS12",
            "-keystore",
            "keytool-trust.p12",
            "-storepass:file",
            "password",
        ],
    );
    for name in ["openssl-trust.p12", "keytool-trust.p12"] {
        let source = p12_bundle(&m.path(name), Some(password(&m)), None);
        let store = Truststore::load_all(&[source], None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(store.cas().len(), 1, "{name}");
        assert_eq!(store.cas()[0].der.as_ref(), ca_der(&m), "{name}");
        assert_eq!(store.cas()[0].domain.as_str(), TD, "{name}");
    }

    // A keystore is not a truststore: a private key in a --ca file is refused.
    m.run(
        "openssl",
        &[
            "pkcs12",
            "-export",
            "-in",
            "leaf.pem",
            "-inkey",
            "leaf.key",
            "-passout",
            "file:password",
            "-out",
            "keystore.p12",
        ],
    );
    let err = Truststore::load_all(
        &[p12_bundle(
            &m.path("keystore.p12"),
            Some(password(&m)),
            None,
        )],
        None,
    )
    .unwrap_err();
    assert!(
        matches!(&err, TlsError::Pkcs12 { reason, .. } if reason.contains("a truststore holds CA certificates only")),
        "{err}"
    );
}

#[test]
fn spiffe_bundles_as_spire_writes_them() {
    let m = Material::new();
    let x5c = base64::engine::general_purpose::STANDARD.encode(ca_der(&m));
    let bundle = |keys: &str| {
        let path = m.path("bundle.json");
        std::fs::write(
            &path,
            format!(r#"{{"keys": [{keys}], "spiffe_sequence": 7, "spiffe_refresh_hint": 300}}"#),
        )
        .unwrap();
        path
    };
    let x509 = format!(r#"{{"use": "x509-svid", "kty": "EC", "crv": "P-256", "x5c": ["{x5c}"]}}"#);
    let jwt =
        r#"{"use": "jwt-svid", "kty": "EC", "kid": "k1", "crv": "P-256", "x": "AA", "y": "AA"}"#;

    // Bound to its trust domain by the source (the bundle names none), or to the only one.
    let path = bundle(&format!("{x509}, {jwt}"));
    let store = Truststore::load_all(&[p12_bundle(&path, None, Some(TD))], None).unwrap();
    assert_eq!(store.cas().len(), 1, "the JWT key is not an X.509 CA");
    assert_eq!(store.cas()[0].der.as_ref(), ca_der(&m));
    let only = TrustDomain::new(TD).unwrap();
    assert!(Truststore::load_all(&[BundleSource::from(path.as_path())], Some(&only)).is_ok());

    for (keys, reason) in [
        (
            format!(r#"{{"use": "x509-svid", "x5c": ["{x5c}", "{x5c}"]}}"#),
            "keys[0]: an x509-svid key carries exactly one certificate in \"x5c\", this one 2",
        ),
        (
            jwt.to_owned(),
            "no \"x509-svid\" key: this bundle has no X.509 CA",
        ),
        (
            r#"{"use": "x509-svid", "x5c": ["%%%"]}"#.to_owned(),
            "keys[0].x5c[0]: not base64",
        ),
    ] {
        let path = bundle(&keys);
        let err = Truststore::load_all(&[p12_bundle(&path, None, Some(TD))], None).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: SPIFFE bundle: {reason}", path.display())
        );
    }
}
