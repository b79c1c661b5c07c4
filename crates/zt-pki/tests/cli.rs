//! The `zt-ca` command line, with openssl as an independent judge of what it writes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

use std::path::Path;
use std::process::{Command, Output};

fn zt_ca(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zt-ca"))
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr)
}

fn openssl(args: &[&str], dir: &Path) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed")
}

#[test]
fn dev_writes_a_working_set_with_private_keys_0600() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let out = out.to_str().unwrap();
    let run = zt_ca(&["dev", "--dir", out]);
    assert!(run.status.success(), "{}", text(&run));

    for name in ["ca", "ledger", "payments", "auditor"] {
        let key = Path::new(out).join(format!("{name}.key"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}.key");
        }
    }
    for (name, purpose) in [
        ("ledger", "sslserver"),
        ("payments", "sslclient"),
        ("auditor", "sslclient"),
    ] {
        let verify = openssl(
            &[
                "verify",
                "-purpose",
                purpose,
                "-CAfile",
                "ca.pem",
                &format!("{name}.pem"),
            ],
            Path::new(out),
        );
        assert!(
            verify.status.success(),
            "openssl verify {name}: {}",
            text(&verify)
        );

        let inspect = zt_ca(&["inspect", &format!("{out}/{name}.pem")]);
        let report = text(&inspect);
        assert!(
            report.contains(&format!(
                "SPIFFE ID:     spiffe://zt.example/ns/prod/sa/{name}"
            )),
            "{report}"
        );
        assert!(report.contains("X509-SVID:     valid leaf"), "{report}");
    }
    let ledger = openssl(
        &["x509", "-in", "ledger.pem", "-noout", "-text"],
        Path::new(out),
    );
    let ledger = text(&ledger);
    assert!(ledger.contains("X509v3 Key Usage: critical"), "{ledger}");
    assert!(ledger.contains("TLS Web Server Authentication, TLS Web Client Authentication"));
    assert!(ledger.contains("URI:spiffe://zt.example/ns/prod/sa/ledger"));
    assert!(ledger.contains("DNS:ledger") && ledger.contains("DNS:localhost"));
    assert!(ledger.contains("ecdsa-with-SHA256") && ledger.contains("prime256v1"));
    assert!(!ledger.contains("Name Constraints"));

    // The CA's own certificate is reported as not a leaf SVID, with the reasons.
    let ca = text(&zt_ca(&["inspect", &format!("{out}/ca.pem")]));
    assert!(
        ca.contains("NOT a valid leaf SVID") && ca.contains("is a CA"),
        "{ca}"
    );
}

#[test]
fn existing_keys_are_never_overwritten_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    assert!(
        zt_ca(&["init", "--trust-domain", "zt.example", "--dir", out])
            .status
            .success()
    );
    let before = std::fs::read(dir.path().join("ca.key")).unwrap();

    let again = zt_ca(&["init", "--trust-domain", "zt.example", "--dir", out]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("already exists (pass --force to overwrite)"),
        "{}",
        text(&again)
    );
    assert_eq!(
        std::fs::read(dir.path().join("ca.key")).unwrap(),
        before,
        "key untouched"
    );

    assert!(
        zt_ca(&[
            "init",
            "--trust-domain",
            "zt.example",
            "--dir",
            out,
            "--force"
        ])
        .status
        .success()
    );
    assert_ne!(std::fs::read(dir.path().join("ca.key")).unwrap(), before);
}

#[test]
fn issue_follows_the_profile_and_refuses_what_the_ca_must_not_sign() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    assert!(
        zt_ca(&[
            "init",
            "--trust-domain",
            "zt.example",
            "--dir",
            out,
            "--lifetime",
            "30d"
        ])
        .status
        .success()
    );
    let ca = format!("{out}/ca.pem");
    let ca_key = format!("{out}/ca.key");
    let issue = |extra: &[&str]| {
        let mut args = vec!["issue", "--ca", &ca, "--ca-key", &ca_key];
        args.extend_from_slice(extra);
        zt_ca(&args)
    };

    let ok = issue(&[
        "--spiffe-id",
        "spiffe://zt.example/ns/dev/sa/api",
        "--dns",
        "api",
        "--lifetime",
        "2h",
        "--out",
        &format!("{out}/api"),
    ]);
    assert!(ok.status.success(), "{}", text(&ok));
    let dates = text(&openssl(
        &["x509", "-in", "api.pem", "-noout", "-startdate", "-enddate"],
        dir.path(),
    ));
    assert!(
        dates.contains("notBefore") && dates.contains("notAfter"),
        "{dates}"
    );

    let cases = [
        (
            vec!["--spiffe-id", "spiffe://other.example/x"],
            "outside this CA's trust domain",
        ),
        (
            vec!["--spiffe-id", "spiffe://zt.example/x", "--lifetime", "60d"],
            "would outlive the CA",
        ),
        (
            vec!["--spiffe-id", "spiffe://zt.example/a/../b"],
            "'.' or '..' segment",
        ),
    ];
    for (args, problem) in cases {
        let mut args = args;
        let target = format!("{out}/refused");
        args.extend(["--out", &target]);
        let run = issue(&args);
        assert!(!run.status.success(), "{args:?}");
        assert!(text(&run).contains(problem), "{args:?}: {}", text(&run));
        assert!(!dir.path().join("refused.key").exists(), "nothing written");
    }

    let target = format!("{out}/refused");
    let missing_key = zt_ca(&[
        "issue",
        "--ca",
        &ca,
        "--ca-key",
        "/nonexistent/ca.key",
        "--spiffe-id",
        "spiffe://zt.example/x",
        "--out",
        &target,
    ]);
    assert!(!missing_key.status.success());
    assert!(
        text(&missing_key).contains("/nonexistent/ca.key"),
        "{}",
        text(&missing_key)
    );
    let wrong_key = zt_ca(&[
        "issue",
        "--ca",
        &ca,
        "--ca-key",
        &format!("{out}/api.key"),
        "--spiffe-id",
        "spiffe://zt.example/x",
        "--out",
        &target,
    ]);
    assert!(
        text(&wrong_key).contains("api.key: does not match"),
        "{}",
        text(&wrong_key)
    );
}
