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

/// `renew` re-issues the same identity with a fresh key, only when due unless forced, and
/// says which file is wrong when it cannot.
#[test]
fn renew_reissues_the_same_identity_when_due_or_forced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    assert!(zt_ca(&["dev", "--dir", out]).status.success());
    let (ca, ca_key) = (format!("{out}/ca.pem"), format!("{out}/ca.key"));
    let renew = |extra: &[&str]| {
        let mut args = vec!["renew", "--ca", &ca, "--ca-key", &ca_key];
        args.extend_from_slice(extra);
        zt_ca(&args)
    };
    let ledger = format!("{out}/ledger");
    let read = |file: &str| std::fs::read_to_string(dir.path().join(file)).unwrap();
    let (cert_before, key_before) = (read("ledger.pem"), read("ledger.key"));

    let not_due = renew(&["--target", &ledger]);
    assert!(not_due.status.success(), "{}", text(&not_due));
    assert!(text(&not_due).contains("not due"), "{}", text(&not_due));
    assert_eq!(
        read("ledger.pem"),
        cert_before,
        "a fresh 24 h certificate is kept"
    );

    let forced = renew(&["--target", &ledger, "--force", "--lifetime", "1h"]);
    assert!(forced.status.success(), "{}", text(&forced));
    assert!(
        text(&forced).contains("renewed (serial"),
        "{}",
        text(&forced)
    );
    assert_ne!(read("ledger.pem"), cert_before);
    assert_ne!(read("ledger.key"), key_before, "a fresh key");
    // openssl, not our code, judges the result: it chains, keeps its names, and the key
    // matches the certificate.
    let verify = openssl(&["verify", "-CAfile", "ca.pem", "ledger.pem"], dir.path());
    assert!(verify.status.success(), "{}", text(&verify));
    let described = text(&openssl(
        &["x509", "-in", "ledger.pem", "-noout", "-text"],
        dir.path(),
    ));
    assert!(
        described.contains("URI:spiffe://zt.example/ns/prod/sa/ledger"),
        "{described}"
    );
    assert!(described.contains("DNS:ledger") && described.contains("DNS:localhost"));
    let public = |args: &[&str]| openssl(args, dir.path()).stdout;
    assert_eq!(
        public(&["x509", "-in", "ledger.pem", "-noout", "-pubkey"]),
        public(&["pkey", "-in", "ledger.key", "-pubout"]),
        "the key matches the certificate"
    );

    let missing = renew(&["--target", &format!("{out}/nobody")]);
    assert!(!missing.status.success());
    let message = text(&missing);
    assert!(
        message.starts_with("zt-ca: error: ") && message.contains("nobody.pem"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
}

/// `renew --daemon` keeps a short-lived certificate fresh: with 6 s certificates it renews
/// about every 4 s. Bounded: the daemon is killed after the first renewal or 15 s.
#[test]
fn the_renew_daemon_renews_before_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    assert!(
        zt_ca(&["dev", "--dir", out, "--lifetime", "6s"])
            .status
            .success()
    );
    let cert = dir.path().join("payments.pem");
    let before = std::fs::read_to_string(&cert).unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_zt-ca"))
        .args([
            "renew",
            "--daemon",
            "--lifetime",
            "6s",
            "--check-every",
            "1s",
        ])
        .args([
            "--ca",
            &format!("{out}/ca.pem"),
            "--ca-key",
            &format!("{out}/ca.key"),
        ])
        .args(["--target", &format!("{out}/payments")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let renewed = loop {
        if std::fs::read_to_string(&cert).unwrap() != before {
            break Some(started.elapsed());
        }
        if started.elapsed() > std::time::Duration::from_secs(15) {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    daemon.kill().unwrap();
    let output = daemon.wait_with_output().unwrap();
    let renewed = renewed.unwrap_or_else(|| panic!("no renewal within 15 s: {}", text(&output)));
    assert!(
        renewed < std::time::Duration::from_secs(6),
        "renewed after {renewed:?}, when the old certificate had expired"
    );
    let verify = openssl(&["verify", "-CAfile", "ca.pem", "payments.pem"], dir.path());
    assert!(
        verify.status.success(),
        "the renewed certificate is valid now: {}",
        text(&verify)
    );
}

/// The serial number of a certificate file, as openssl prints it (uppercase hex).
fn openssl_serial(cert: &str, dir: &Path) -> String {
    let out = openssl(&["x509", "-in", cert, "-noout", "-serial"], dir);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_owned()
}

/// `openssl verify` with revocation checking: whether `cert` passes, and what openssl said.
fn verify_with_crl(cert: &str, dir: &Path) -> (bool, String) {
    let out = openssl(
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "ca.pem",
            "-CRLfile",
            "ca.crl",
            cert,
        ],
        dir,
    );
    (out.status.success(), text(&out))
}

/// `zt-ca revoke` by certificate file and by serial: each run extends one CRL, signed by the
/// CA and numbered one higher, and openssl (an independent judge) then refuses exactly the
/// revoked certificates. Revoking twice changes nothing but the number; a CRL signed by
/// another CA, or a certificate another CA issued, is refused and the CRL left as it was.
#[test]
fn revoke_by_certificate_and_by_serial_extends_one_signed_crl() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let out = certs.to_str().unwrap();
    assert!(zt_ca(&["dev", "--dir", out]).status.success());
    let (crl, ca, ca_key) = (
        format!("{out}/ca.crl"),
        format!("{out}/ca.pem"),
        format!("{out}/ca.key"),
    );
    let revoke = |what: &[&str]| {
        let mut args = vec!["revoke", "--crl", &crl, "--ca", &ca, "--ca-key", &ca_key];
        args.extend_from_slice(what);
        zt_ca(&args)
    };

    let payments = format!("{out}/payments.pem");
    let first = revoke(&["--cert", &payments, "--key-compromise"]);
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("CRL number 1: 1 revoked"),
        "{}",
        text(&first)
    );
    let auditor_serial = openssl_serial("auditor.pem", &certs).to_lowercase();
    let second = revoke(&["--serial", &auditor_serial]);
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        text(&second).contains("CRL number 2: 2 revoked"),
        "{}",
        text(&second)
    );

    let crl_text = openssl(
        &[
            "crl", "-in", "ca.crl", "-CAfile", "ca.pem", "-noout", "-text",
        ],
        &certs,
    );
    let listing = text(&crl_text);
    assert!(crl_text.status.success(), "{listing}");
    assert!(listing.contains("verify OK"), "signed by the CA: {listing}");
    let number = listing
        .split("X509v3 CRL Number:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next());
    assert_eq!(number, Some("2"), "{listing}");
    for name in ["payments.pem", "auditor.pem"] {
        let serial = openssl_serial(name, &certs);
        assert!(
            listing.contains(&serial),
            "{name} ({serial}) listed: {listing}"
        );
    }
    assert!(listing.contains("Key Compromise"), "{listing}");
    for (name, revoked) in [
        ("payments.pem", true),
        ("auditor.pem", true),
        ("ledger.pem", false),
    ] {
        let (passes, said) = verify_with_crl(name, &certs);
        assert_eq!(passes, !revoked, "{name}: {said}");
        if revoked {
            assert!(said.contains("certificate revoked"), "{name}: {said}");
        }
    }

    let again = revoke(&["--cert", &payments]);
    assert!(text(&again).contains("already revoked"), "{}", text(&again));
    assert!(
        text(&again).contains("CRL number 3: 2 revoked"),
        "{}",
        text(&again)
    );

    let other = dir.path().join("other");
    assert!(
        zt_ca(&["dev", "--dir", other.to_str().unwrap()])
            .status
            .success()
    );
    let before = std::fs::read(&crl).unwrap();
    let foreign = zt_ca(&[
        "revoke",
        "--crl",
        &crl,
        "--ca",
        other.join("ca.pem").to_str().unwrap(),
        "--ca-key",
        other.join("ca.key").to_str().unwrap(),
        "--serial",
        "01",
    ]);
    assert!(!foreign.status.success());
    let said = text(&foreign);
    assert!(
        said.contains(&crl) && said.contains("not by this CA"),
        "{said}"
    );
    let other_cert = revoke(&["--cert", other.join("payments.pem").to_str().unwrap()]);
    assert!(!other_cert.status.success());
    let said = text(&other_cert);
    assert!(
        said.contains("payments.pem") && said.contains("not issued by this CA"),
        "{said}"
    );
    assert_eq!(std::fs::read(&crl).unwrap(), before, "the CRL is untouched");
}

/// `issue --out` into a directory that does not exist is refused, in one line naming it, and
/// nothing is written (a mistyped path must not become a new home for a private key);
/// `--mkdir` creates it. `dev --dir` and `init --dir` still create theirs.
#[test]
fn issue_into_a_missing_directory_is_refused_unless_mkdir() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let certs = certs.to_str().unwrap();
    let run = zt_ca(&["dev", "--dir", certs]);
    assert!(run.status.success(), "{}", text(&run));
    let (ca, ca_key) = (format!("{certs}/ca.pem"), format!("{certs}/ca.key"));
    let missing = dir.path().join("missing-dir");
    let out = missing.join("api");
    let issue = |extra: &[&str]| {
        let mut args = vec![
            "issue",
            "--spiffe-id",
            "spiffe://zt.example/ns/prod/sa/api",
            "--ca",
            &ca,
            "--ca-key",
            &ca_key,
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        zt_ca(&args)
    };

    let refused = issue(&[]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr),
        format!(
            "zt-ca: error: {}: no such directory (pass --mkdir to create it)\n",
            missing.display()
        )
    );
    assert!(refused.stdout.is_empty());
    assert!(!missing.exists(), "nothing was created");

    let created = issue(&["--mkdir"]);
    assert!(created.status.success(), "{}", text(&created));
    assert!(missing.join("api.key").exists() && missing.join("api.pem").exists());

    let crl = dir.path().join("nowhere").join("ca.crl");
    let revoke = zt_ca(&[
        "revoke",
        "--ca",
        &ca,
        "--ca-key",
        &ca_key,
        "--crl",
        crl.to_str().unwrap(),
    ]);
    assert_eq!(revoke.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&revoke.stderr).ends_with(&format!(
            "{}: no such directory (pass --mkdir to create it)\n",
            crl.parent().unwrap().display()
        )),
        "{}",
        text(&revoke)
    );
}

/// A malformed PEM file is reported with its line, column and block, in words: no
/// `base64 decode error: InvalidCharacter(33)`.
#[test]
fn a_malformed_pem_names_the_line_and_the_block() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let certs = certs.to_str().unwrap();
    assert!(zt_ca(&["dev", "--dir", certs]).status.success());
    let good = std::fs::read_to_string(format!("{certs}/payments.pem")).unwrap();
    let mut lines: Vec<String> = good.lines().map(str::to_owned).collect();
    lines[2].replace_range(0..1, "!");
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();

    let inspect = zt_ca(&["inspect", bad.to_str().unwrap()]);
    assert_eq!(inspect.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&inspect.stderr),
        format!(
            "zt-ca: error: {}: PEM block 1 (CERTIFICATE, line 1): line 3, column 1: '!' is not \
             a base64 character\n",
            bad.display()
        )
    );
    // The CA's own files, read by every command that signs.
    let issue = zt_ca(&[
        "issue",
        "--spiffe-id",
        "spiffe://zt.example/ns/prod/sa/api",
        "--ca",
        bad.to_str().unwrap(),
        "--ca-key",
        &format!("{certs}/ca.key"),
        "--out",
        &format!("{certs}/api"),
    ]);
    assert!(
        String::from_utf8_lossy(&issue.stderr).contains(
            "PEM block 1 (CERTIFICATE, line 1): line 3, column 1: '!' is not a base64 character"
        ),
        "{}",
        text(&issue)
    );
}

/// The reported example, made by openssl: a leaf whose BasicConstraints does not parse was a
/// "valid leaf" here while the handshake refuses it. `inspect` now gives the handshake's
/// verdict and names the extension.
#[test]
fn inspect_gives_the_handshakes_verdict_on_a_broken_extension() {
    let dir = tempfile::tempdir().unwrap();
    let made = openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.pem",
            "-subj",
            "/CN=broken",
            "-days",
            "1",
            "-addext",
            "subjectAltName=URI:spiffe://zt.example/ns/prod/sa/payments",
            "-addext",
            "keyUsage=critical,digitalSignature",
            "-addext",
            "extendedKeyUsage=serverAuth,clientAuth",
            // A SEQUENCE that claims three bytes and holds one.
            "-addext",
            "2.5.29.19=critical,DER:30:03:01:01",
        ],
        dir.path(),
    );
    assert!(made.status.success(), "{}", text(&made));
    let out = zt_ca(&["inspect", dir.path().join("leaf.pem").to_str().unwrap()]);
    let said = text(&out);
    assert!(
        said.contains("X509-SVID:     NOT a valid leaf SVID"),
        "{said}"
    );
    assert!(
        said.contains("- extension basicConstraints cannot be parsed"),
        "{said}"
    );
}

/// `inspect --bundle` says what ledger and payments will do with each CA of a truststore
/// made elsewhere (openssl here), and `--chain` what peers will make of a keystore.
#[test]
fn inspect_lints_bundles_and_chains_as_the_binaries_load_them() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = openssl(args, dir.path());
        assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
    };
    let ca = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
        ];
        let (key, cert, subj) = (
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("/CN={name}"),
        );
        args.extend([key.as_str(), "-out", cert.as_str(), "-subj", subj.as_str()]);
        args.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
        args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        args.extend(extra);
        run(&args);
    };
    ca("plain", &["-days", "2"]);
    ca(
        "constrained",
        &[
            "-days",
            "2",
            "-addext",
            "nameConstraints=permitted;URI:zt.example",
        ],
    );
    // Expired: made on 2020-01-01 (under libfaketime, which .ci/run installs), valid a day.
    let old = Command::new("faketime")
        .args([
            "2020-01-01 00:00:00",
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
        ])
        .args([
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "old.key",
        ])
        .args(["-out", "old.pem", "-subj", "/CN=old", "-days", "1"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        .current_dir(dir.path())
        .output()
        .expect("faketime is installed (apt-get install faketime)");
    assert!(old.status.success(), "{}", text(&old));
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let bundle = format!(
        "{},{},{}",
        path("plain.pem"),
        path("old.pem"),
        path("constrained.pem")
    );

    let out = zt_ca(&[
        "inspect",
        "--bundle",
        &bundle,
        "--trust-domain",
        "zt.example",
    ]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    for line in [
        format!(
            "{} certificate 0 (CN=plain): trusted for zt.example (names no trust domain: bound \
             to the only one)",
            path("plain.pem")
        ),
        format!(
            "{} certificate 0 (CN=old): LEFT OUT: expired at 2020-01-02T00:00:0",
            path("old.pem")
        ),
        format!(
            "{} certificate 0 (CN=constrained): REFUSED: it has a URI name constraint (zt.example)",
            path("constrained.pem")
        ),
        "zt-ca: error: 1 problem(s) would refuse this material at load".to_owned(),
    ] {
        assert!(said.contains(&line), "want {line:?} in:\n{said}");
    }
    // Without one configured trust domain, an unlabelled CA cannot be placed.
    let out = zt_ca(&["inspect", "--bundle", &path("plain.pem")]);
    assert!(
        text(&out).contains("REFUSED: cannot tell which trust domain this CA vouches for"),
        "{}",
        text(&out)
    );

    // A keystore whose intermediate is not a CA.
    let write =
        |name: &str, contents: &str| std::fs::write(dir.path().join(name), contents).unwrap();
    write(
        "leaf.ext",
        "subjectAltName=URI:spiffe://zt.example/ns/prod/sa/api\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=critical,CA:FALSE\n",
    );
    write(
        "mid.ext",
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyCertSign\n",
    );
    run(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "mid.key",
        "-out",
        "mid.csr",
        "-subj",
        "/CN=mid",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "mid.csr",
        "-CA",
        "plain.pem",
        "-CAkey",
        "plain.key",
        "-days",
        "1",
        "-extfile",
        "mid.ext",
        "-out",
        "mid.pem",
    ]);
    run(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=api",
    ]);
    run(&[
        "x509", "-req", "-in", "leaf.csr", "-CA", "mid.pem", "-CAkey", "mid.key", "-days", "1",
        "-extfile", "leaf.ext", "-out", "leaf.pem",
    ]);
    let chain = path("chain.pem");
    std::fs::write(
        &chain,
        [
            std::fs::read(path("leaf.pem")).unwrap(),
            std::fs::read(path("mid.pem")).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let out = zt_ca(&[
        "inspect",
        "--chain",
        &chain,
        "--bundle",
        &path("plain.pem"),
        "--trust-domain",
        "zt.example",
    ]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    for line in [
        format!("{chain} certificate 0: valid X509-SVID leaf"),
        format!("{chain} certificate 1: REFUSED as an issuer: not a CA certificate"),
        "chain: REFUSED: a certificate in the middle of the chain is not a CA".to_owned(),
    ] {
        assert!(said.contains(&line), "want {line:?} in:\n{said}");
    }
}

/// `renew --daemon` is the renewer container's process: `docker stop` sends SIGTERM and kills
/// it 10 s later. It stops at once (no renewal in progress) and exits 0, on SIGTERM and on
/// Ctrl-C alike.
#[test]
fn the_renew_daemon_stops_on_sigterm_and_sigint_and_exits_0() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    assert!(zt_ca(&["dev", "--dir", out]).status.success());
    for signal in ["TERM", "INT"] {
        let mut daemon = Command::new(env!("CARGO_BIN_EXE_zt-ca"))
            .args(["renew", "--daemon", "--lifetime", "24h"])
            .args([
                "--ca",
                &format!("{out}/ca.pem"),
                "--ca-key",
                &format!("{out}/ca.key"),
            ])
            .args(["--target", &format!("{out}/payments")])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for its first round ("not due"), so the signal lands in the daemon's sleep.
        let mut stdout = std::io::BufReader::new(daemon.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        assert!(first.contains("not due"), "{first}");
        let sent = std::time::Instant::now();
        let kill = Command::new("kill")
            .args([format!("-{signal}"), daemon.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = loop {
            if let Some(status) = daemon.try_wait().unwrap() {
                break status;
            }
            if sent.elapsed() > std::time::Duration::from_secs(2) {
                daemon.kill().unwrap();
                panic!("SIG{signal}: still running 2 s later");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let stopped = sent.elapsed();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        println!("zt-ca renew --daemon: SIG{signal} -> {status} after {stopped:?}");
        assert_eq!(status.code(), Some(0), "SIG{signal}: {status}; {rest}");
        assert!(
            rest.contains(&format!("stopping (SIG{signal})")),
            "SIG{signal}: {rest}"
        );
    }
}
