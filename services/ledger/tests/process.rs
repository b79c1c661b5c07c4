//! The `ledger` binary as an operator meets it: bad configuration fails fast with one clear
//! line, SIGHUP reloads, and SIGTERM drains in-flight RPCs and exits 0.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

mod common;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    LEDGER_ID, bound_address, demo_policy, eventually, json_log, ledger_binary, pki,
    pki_ledger_binary,
};
use zt_proto::ledger::v1 as pb;
use zt_proto::ledger::v1::ledger_client::LedgerClient;
use zt_testkit::{atomic_write, mtls_channel, server_serial, svid_params};

/// Waits for the child to exit (killing it after `limit`) and returns its status and stderr.
fn finish(mut child: Child, limit: Duration) -> (std::process::ExitStatus, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
            }
            return (status, stderr);
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("ledger still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGHUP makes the binary read its files again at once. Polling is hourly here, so only the
/// signal can explain the renewed certificate new handshakes see; and the signal, whose default
/// action is to terminate, does not kill the process even when sent the moment it reports
/// that it listens.
#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_at_once_and_does_not_kill() {
    let p = pki();
    let ca = p.pki.ca_cert();
    let mut child = pki_ledger_binary(&p, demo_policy())
        .args(["--reload-interval", "1h"])
        .spawn()
        .unwrap();
    let (addr, stderr) = bound_address(&mut child);
    let hangup = || {
        let sent = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    hangup();
    let log = std::thread::spawn(move || stderr.lines().map_while(Result::ok).collect::<Vec<_>>());
    let before = server_serial(addr, &p.payments, &ca).await;

    let renewed = p.pki.issue("ledger-renewed", LEDGER_ID, &["localhost"]);
    atomic_write(&p.ledger.key, std::fs::read(&renewed.key).unwrap());
    atomic_write(&p.ledger.cert, std::fs::read(&renewed.cert).unwrap());
    hangup();
    eventually(
        "new handshakes present the renewed certificate",
        async || server_serial(addr, &p.payments, &ca).await != before,
    )
    .await;
    let mut client = LedgerClient::new(mtls_channel(addr, &p.payments, &ca, LEDGER_ID));
    client
        .get_balance(pb::GetBalanceRequest {
            account_id: "alice".into(),
        })
        .await
        .expect("serving with the renewed certificate");
    drop(client);

    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP did not stop the ledger"
    );
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let (status, _) = tokio::task::spawn_blocking(move || finish(child, Duration::from_secs(15)))
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    let log = log.join().unwrap();
    let hangups = log
        .iter()
        .filter(|l| l.contains("SIGHUP: reloading everything"))
        .count();
    assert_eq!(hangups, 2, "{log:#?}");
}

/// The shipped policy with A59 `audit_logging_options`: `condition`, and `loggers` (JSON).
fn audited_policy(p: &common::Pki, condition: &str, loggers: &str) -> std::path::PathBuf {
    let options = format!(
        r#"{{"audit_logging_options":{{"audit_condition":"{condition}","audit_loggers":{loggers}}},"#
    );
    p.pki.write(
        &format!("policy-{condition}-{}.json", loggers.len()),
        std::fs::read_to_string(demo_policy())
            .unwrap()
            .replacen('{', &options, 1),
    )
}

/// Payments reads a balance (allowed) and the auditor tries a transfer (denied). Returns both
/// clients, whose connections stay open while they live.
async fn one_allowed_one_denied(
    addr: std::net::SocketAddr,
    p: &common::Pki,
) -> [LedgerClient<tonic::transport::Channel>; 2] {
    let ca = p.pki.ca_cert();
    let mut payments = LedgerClient::new(mtls_channel(addr, &p.payments, &ca, LEDGER_ID));
    payments
        .get_balance(pb::GetBalanceRequest {
            account_id: "alice".into(),
        })
        .await
        .expect("payments may read");
    let mut auditor = LedgerClient::new(mtls_channel(addr, &p.auditor, &ca, LEDGER_ID));
    let denied = auditor
        .transfer(pb::TransferRequest {
            idempotency_key: "audit-1".into(),
            from_account: "alice".into(),
            to_account: "bob".into(),
            amount_cents: 1,
            memo: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    [payments, auditor]
}

/// Stops the ledger and returns the A59 audit lines it wrote on stdout, each checked to be JSON.
fn audit_lines(mut child: Child) -> Vec<serde_json::Value> {
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["grpc_audit_log"].take()
        })
        .collect()
}

/// Each A59 audit condition writes the lines it names and no others, and an audit with no
/// logger writes nothing. Each line carries the method, the principal, the policy, the rule
/// and the outcome.
#[tokio::test(flavor = "multi_thread")]
async fn each_audit_condition_writes_the_lines_it_names() {
    let p = pki();
    let stdout_logger = r#"[{"name":"stdout_logger"}]"#;
    for (condition, loggers, expected) in [
        ("NONE", stdout_logger, &[][..]),
        ("ON_DENY", stdout_logger, &[false][..]),
        ("ON_ALLOW", stdout_logger, &[true][..]),
        ("ON_DENY_AND_ALLOW", stdout_logger, &[true, false][..]),
        ("ON_DENY_AND_ALLOW", "[]", &[][..]),
    ] {
        let policy = audited_policy(&p, condition, loggers);
        let mut child = pki_ledger_binary(&p, &policy)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (addr, _stderr) = bound_address(&mut child);
        one_allowed_one_denied(addr, &p).await;
        let audit = audit_lines(child);
        let authorized: Vec<bool> = audit
            .iter()
            .map(|line| line["authorized"].as_bool().unwrap())
            .collect();
        assert_eq!(
            authorized, expected,
            "{condition} with {loggers}: {audit:?}"
        );
        for line in &audit {
            let (method, principal, rule) = if line["authorized"] == true {
                ("GetBalance", common::PAYMENTS_ID, "payments-full-access")
            } else {
                ("Transfer", common::AUDITOR_ID, "auditor-never-moves-money")
            };
            assert_eq!(line["rpc_method"], format!("/ledger.v1.Ledger/{method}"));
            assert_eq!(line["principal"], principal);
            assert_eq!(line["policy_name"], "ledger");
            assert_eq!(line["matched_rule"], rule);
        }
    }
}

/// Shadow decisions logged and counted but not enforced, the Prometheus endpoint, and JSON
/// diagnostic logs, all from the binary as deployed.
#[tokio::test]
async fn shadow_decisions_metrics_and_json_logs() {
    let p = pki();
    let policy = audited_policy(&p, "ON_DENY_AND_ALLOW", r#"[{"stdout_logger":{}}]"#);
    // The candidate policy would lock payments out of reads: tried in shadow, never enforced.
    let shadow = p.pki.write(
        "shadow-policy.json",
        r#"{"name":"candidate","allow_rules":[{"name":"auditor-reads","source":{"principals":["spiffe://zt.example/ns/prod/sa/auditor"]},"request":{"paths":["/ledger.v1.Ledger/GetBalance"]}}]}"#,
    );
    let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = pki_ledger_binary(&p, &policy)
        .args([
            "--shadow-policy".as_ref(),
            shadow.as_os_str(),
            "--metrics-listen".as_ref(),
            metrics_addr.to_string().as_ref(),
            "--log-format".as_ref(),
            "json".as_ref(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (addr, stderr) = bound_address(&mut child);
    let log = json_log(stderr);
    let _open = one_allowed_one_denied(addr, &p).await;

    let metrics = zt_testkit::scrape(metrics_addr).await;
    let read = |path: &std::path::Path| {
        use rustls::pki_types::{CertificateDer, pem::PemObject as _};
        zt_identity::inspect_leaf(&CertificateDer::from_pem_file(path).unwrap()).unwrap()
    };
    let (ca, own) = (read(&p.pki.ca_cert()), read(&p.ledger.cert));
    let (ca_subject, ca_not_after, own_not_after) = (ca.subject, ca.not_after, own.not_after);
    for series in [
        r#"zt_authz_decisions_total{policy="ledger",rule="payments-full-access",decision="allow",mode="enforce",method="/ledger.v1.Ledger/GetBalance"} 1"#.to_owned(),
        r#"zt_authz_decisions_total{policy="candidate",rule="<default deny>",decision="deny",mode="shadow",method="/ledger.v1.Ledger/GetBalance"} 1"#.to_owned(),
        r#"zt_authz_decisions_total{policy="ledger",rule="auditor-never-moves-money",decision="deny",mode="enforce",method="/ledger.v1.Ledger/Transfer"} 1"#.to_owned(),
        format!(r#"zt_certificate_expiry_timestamp_seconds{{kind="own",subject="{LEDGER_ID}"}} {own_not_after}"#),
        format!(r#"zt_certificate_expiry_timestamp_seconds{{kind="ca",subject="{ca_subject}"}} {ca_not_after}"#),
        "zt_rpcs_in_flight 0".to_owned(),
        "zt_tls_connections_open 2".to_owned(),
    ] {
        assert!(metrics.contains(&series), "missing {series} in\n{metrics}");
    }

    assert_eq!(audit_lines(child).len(), 2, "both decisions audited");
    let log = log.join().unwrap();
    // Every request is decided by both policies; only the shadow's lines say "not enforced".
    let decided = |target: &str| -> Vec<(String, String, String, String)> {
        log.iter()
            .filter(|line| line["target"] == target)
            .map(|line| {
                let field = |name: &str| line[name].as_str().unwrap_or_default().to_owned();
                (
                    field("peer"),
                    field("method"),
                    field("rule"),
                    field("decision"),
                )
            })
            .collect()
    };
    let row = |peer: &str, method: &str, rule: &str, decision: &str| {
        let method = format!("/ledger.v1.Ledger/{method}");
        (
            peer.to_owned(),
            method,
            rule.to_owned(),
            decision.to_owned(),
        )
    };
    assert_eq!(
        decided("zt_authz::shadow"),
        [
            row(common::PAYMENTS_ID, "GetBalance", "<default deny>", "deny"),
            row(common::AUDITOR_ID, "Transfer", "<default deny>", "deny"),
        ],
        "{log:#?}"
    );
    assert_eq!(
        decided("zt_authz::decision"),
        [
            row(
                common::PAYMENTS_ID,
                "GetBalance",
                "payments-full-access",
                "allow"
            ),
            row(
                common::AUDITOR_ID,
                "Transfer",
                "auditor-never-moves-money",
                "deny"
            ),
        ],
        "{log:#?}"
    );
    assert!(
        log.iter()
            .filter(|line| line["target"] == "zt_authz::shadow")
            .all(|line| line["message"] == "shadow decision (not enforced)"
                && line["policy"] == "candidate"),
        "{log:#?}"
    );
}

#[test]
fn bad_configuration_fails_before_listening_with_one_line_naming_the_file() {
    let p = pki();
    let dir = p.pki.dir();
    let write = |name: &str, text: &str| p.pki.write(name, text);
    let garbage_pem = write(
        "garbage.pem",
        "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
    );
    let empty = write("empty.pem", "");
    let no_key = write("nokey.key", "just text\n");
    let not_json = write("policy-not-json.json", "{ name: ledger");
    let unknown_field = write(
        "policy-typo.json",
        r#"{"name":"p","allow_rules":[{"name":"r","sourec":{"principals":["*"]}}]}"#,
    );
    let no_allow = write("policy-no-allow.json", r#"{"name":"p","deny_rules":[]}"#);
    // Once read as an empty rule that allowed every caller.
    let array_rule = write(
        "policy-array-rule.json",
        r#"{"name":"p","allow_rules":[["a"]]}"#,
    );
    let not_svid = p.pki.issue_params("not-svid", {
        let mut params = svid_params(&[]);
        params.subject_alt_names = vec![rcgen::SanType::DnsName("localhost".try_into().unwrap())];
        params
    });
    let missing = dir.join("missing.pem");

    let (cert, key, ca, policy) = (
        &p.ledger.cert,
        &p.ledger.key,
        p.pki.ca_cert(),
        demo_policy().to_owned(),
    );
    let cases: Vec<(&str, [&std::path::Path; 4], &str)> = vec![
        (
            "missing certificate",
            [&missing, key, &ca, &policy],
            "No such file",
        ),
        (
            "malformed PEM",
            [&garbage_pem, key, &ca, &policy],
            "is not a base64 character",
        ),
        (
            "empty certificate file",
            [&empty, key, &ca, &policy],
            "no certificates found",
        ),
        (
            "key of another identity",
            [cert, &p.payments.key, &ca, &policy],
            "does not match",
        ),
        (
            "no key in key file",
            [cert, &no_key, &ca, &policy],
            "no private key found",
        ),
        (
            "server certificate is not an SVID",
            [&not_svid.cert, &not_svid.key, &ca, &policy],
            "not an X509-SVID",
        ),
        (
            "leaf in the CA bundle",
            [cert, key, &p.payments.cert, &policy],
            "not a CA certificate",
        ),
        (
            "missing CA bundle",
            [cert, key, &missing, &policy],
            "No such file",
        ),
        (
            "policy is not JSON",
            [cert, key, &ca, &not_json],
            "invalid policy JSON",
        ),
        (
            "policy has an unknown field",
            [cert, key, &ca, &unknown_field],
            "allow_rules[0].sourec: unknown field (expected one of: name, source, request)",
        ),
        (
            "policy has no allow rules",
            [cert, key, &ca, &no_allow],
            "allow_rules",
        ),
        (
            "policy rule is an array",
            [cert, key, &ca, &array_rule],
            "allow_rules[0]: expected an object, found an array",
        ),
    ];
    for (what, [cert, key, ca, policy], problem) in cases {
        let child = ledger_binary(cert, key, ca, policy).spawn().unwrap();
        let (status, stderr) = finish(child, Duration::from_secs(10));
        assert!(!status.success(), "{what}: exited 0");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(
            errors.len(),
            1,
            "{what}: want one error line, got:\n{stderr}"
        );
        let line = errors[0];
        let named = [cert, key, ca, policy]
            .iter()
            .any(|f| line.contains(&*f.display().to_string()));
        assert!(named, "{what}: the line names no file: {line}");
        assert!(
            line.contains(problem),
            "{what}: want {problem:?} in: {line}"
        );
        assert!(
            !stderr.contains("listening"),
            "{what}: listened despite bad config"
        );
    }
}

#[test]
fn invalid_trust_domain_flag_is_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["--trust-domain", "Not_Lowercase.Example"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--trust-domain"));
}

/// SIGTERM while a server-streaming response is blocked on flow control: the stream still
/// completes, then the process exits 0.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_rpcs_and_exits_zero() {
    let p = pki();
    let mut child = pki_ledger_binary(&p, demo_policy()).spawn().unwrap();

    let (addr, stderr) = bound_address(&mut child);
    let log = std::thread::spawn(move || stderr.lines().map_while(Result::ok).collect::<Vec<_>>());

    // The container healthcheck: the binary probes itself over mTLS with its own identity.
    let addr: std::net::SocketAddr = addr;
    let health = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["--listen", &addr.to_string(), "--cert"])
        .arg(&p.ledger.cert)
        .arg("--key")
        .arg(&p.ledger.key)
        .arg("--ca")
        .arg(p.pki.ca_cert())
        .arg("health")
        .output()
        .unwrap();
    assert!(
        health.status.success(),
        "{}",
        String::from_utf8_lossy(&health.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&health.stdout).trim(),
        "ledger: SERVING"
    );

    let mut client =
        LedgerClient::new(mtls_channel(addr, &p.payments, &p.pki.ca_cert(), LEDGER_ID));
    const TRANSFERS: u32 = 1000; // ~170 KB of records: more than one HTTP/2 window
    for i in 0..TRANSFERS {
        client
            .transfer(pb::TransferRequest {
                idempotency_key: format!("k-{i}"),
                from_account: "alice".into(),
                to_account: "bob".into(),
                amount_cents: 1,
                memo: "drain test".into(),
            })
            .await
            .unwrap();
    }
    let mut stream = client
        .list_transfers(pb::ListTransfersRequest {
            account_id: String::new(),
            limit: TRANSFERS,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());

    let kill = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut received = 1;
    while stream
        .message()
        .await
        .expect("in-flight stream completes after SIGTERM")
        .is_some()
    {
        received += 1;
    }
    assert_eq!(received, TRANSFERS);

    let (status, _) = tokio::task::spawn_blocking(move || finish(child, Duration::from_secs(15)))
        .await
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let log = log.join().unwrap().join("\n");
    assert!(log.contains("draining in-flight RPCs"), "{log}");
    assert!(log.contains("ledger stopped"), "{log}");
}

/// Clock skew. Issued certificates are backdated five minutes, so a ledger whose clock runs
/// three minutes behind still accepts a certificate issued this instant; ten minutes behind,
/// the same certificate is not yet valid for it and the handshake is refused. The ledger
/// runs under libfaketime (installed by `.ci/run`). Its CA and its own certificate are made
/// here, backdated an hour, so that only the client's certificate is in question.
#[tokio::test(flavor = "multi_thread")]
async fn clock_skew_within_the_backdating_is_tolerated_and_beyond_it_refused() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    use zt_testkit::{Identity, probe};
    let p = pki();
    let hour_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.subject_alt_names = vec![rcgen::SanType::URI(
        "spiffe://zt.example".try_into().unwrap(),
    )];
    ca_params.not_before = hour_ago;
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = p
        .pki
        .write("old-ca.pem", ca_params.self_signed(&ca_key).unwrap().pem());
    let issuer = Issuer::new(ca_params, ca_key);
    let sign = |name: &str, params: CertificateParams| {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        Identity {
            cert: p.pki.write(&format!("{name}.pem"), cert.pem()),
            key: p.pki.write(&format!("{name}.key"), key.serialize_pem()),
        }
    };
    let mut server = svid_params(&[LEDGER_ID]);
    server.not_before = hour_ago;
    let server = sign("ledger-backdated", server);
    // Issued this instant with the project's profile: notBefore five minutes ago.
    let fresh = sign("fresh-payments", svid_params(&[common::PAYMENTS_ID]));

    // libfaketime itself, not the `faketime` wrapper: the wrapper forks, and killing it would
    // leave the ledger running.
    let libfaketime = format!(
        "/usr/lib/{}-linux-gnu/faketime/libfaketime.so.1",
        std::env::consts::ARCH
    );
    assert!(
        std::path::Path::new(&libfaketime).exists(),
        "{libfaketime}: install faketime (.ci/run does)"
    );
    for (skew, accepted) in [("-3m", true), ("-10m", false)] {
        let mut child = ledger_binary(&server.cert, &server.key, &ca_cert, demo_policy())
            .env("LD_PRELOAD", &libfaketime)
            .env("FAKETIME", skew)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .spawn()
            .unwrap();
        let (addr, stderr) = bound_address(&mut child);
        let log =
            std::thread::spawn(move || stderr.lines().map_while(Result::ok).collect::<Vec<_>>());
        let answer = probe(addr, Some(&fresh), &ca_cert).await;
        let mut client = LedgerClient::new(mtls_channel(addr, &fresh, &ca_cert, LEDGER_ID));
        let call = client
            .get_balance(pb::GetBalanceRequest {
                account_id: "alice".into(),
            })
            .await;
        child.kill().unwrap();
        child.wait().unwrap();
        let log = log.join().unwrap().join("\n");
        if accepted {
            assert_eq!(answer, zt_tls::Probe::Accepted, "skew {skew}:\n{log}");
            call.expect("served within the backdating");
        } else {
            assert_eq!(
                answer,
                zt_tls::Probe::Refused(rustls::AlertDescription::CertificateExpired),
                "skew {skew}"
            );
            call.expect_err("refused beyond the backdating");
            assert!(
                log.contains("reason=\"not_yet_valid\""),
                "skew {skew}:\n{log}"
            );
        }
    }
}
