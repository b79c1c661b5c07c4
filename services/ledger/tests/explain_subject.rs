//! `ledger policy explain` prints the subject as grpc-go writes it, the text raw principals
//! match, and decides on it. The certificate is made with the openssl CLI; without `openssl` on
//! PATH the test says so on stderr and passes (CI installs it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

use std::process::Command;

#[test]
fn explain_prints_and_matches_grpc_gos_subject() {
    if !Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("SKIPPED: `openssl` is not on PATH, so the certificate cannot be made");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("svid.cnf");
    std::fs::write(
        &config,
        "[req]\ndistinguished_name = dn\nx509_extensions = svid\n[dn]\n[svid]\n\
         subjectAltName = URI:spiffe://zt.example/ns/prod/sa/legacy-batch\n\
         keyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth, clientAuth\n\
         basicConstraints = critical, CA:FALSE\n",
    )
    .unwrap();
    let cert = dir.path().join("legacy-batch.pem");
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=legacy-batch/O=bughunt",
        ])
        .arg("-keyout")
        .arg(dir.path().join("legacy-batch.key"))
        .arg("-config")
        .arg(&config)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"name": "ledger",
  "deny_rules": [{"name": "no-legacy-batch", "source": {"principals": ["CN=legacy-batch,O=bughunt"]}}],
  "allow_rules": [{"name": "any-workload", "source": {"principals": ["spiffe://zt.example/*"]}}]}"#,
    )
    .unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args([
            "policy",
            "explain",
            "--method",
            "/ledger.v1.Ledger/Transfer",
        ])
        .args(["--expect", "deny", "--policy"])
        .arg(&policy)
        .arg("--cert")
        .arg(&cert)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{report}");
    assert!(
        report.contains("subject:   CN=legacy-batch,O=bughunt\n"),
        "{report}"
    );
    assert!(
        report.contains("decision:  DENY by deny rule \"no-legacy-batch\""),
        "{report}"
    );
}
