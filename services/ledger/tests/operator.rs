//! What an operator reads: policy findings at startup and at every reload (refused with
//! `--strict-policy`), health checks kept out of the info log but counted, counters that
//! exist at 0 before the first event, refusals said in words with stable fields, and one
//! clear line with the right exit status for a value the CLI cannot use.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

mod common;

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use common::{AUDITOR_ID, PAYMENTS_ID, bound_address, config, demo_policy, eventually, pki};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use zt_proto::ledger::v1 as pb;
use zt_proto::ledger::v1::ledger_client::LedgerClient;
use zt_testkit::{Logs, atomic_write, mtls_channel};

/// The demo policy with one typo: payments' paths name a service that does not exist, so
/// `policy check` finds errors, and payments is refused every call it makes.
fn misspelt_policy(p: &common::Pki) -> PathBuf {
    p.pki.write(
        "misspelt-policy.json",
        std::fs::read_to_string(demo_policy())
            .unwrap()
            .replace("/ledger.v1.Ledger/*", "/ledger.v1.Ledgr/*"),
    )
}

/// The sentence `policy check` says about [`misspelt_policy`].
const FINDING: &str = "error: allow_rules[payments-full-access]: path \"/ledger.v1.Ledgr/*\" \
                       matches no served method";

/// Waits for the child to exit and returns its status and stderr.
fn finish(child: Child) -> (std::process::ExitStatus, String) {
    let output = child.wait_with_output().unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn balance() -> pb::GetBalanceRequest {
    pb::GetBalanceRequest {
        account_id: "alice".into(),
    }
}

/// `--strict-policy` (or `LEDGER_STRICT_POLICY`): a policy with errors is refused at startup,
/// in one line naming the file and the finding, exit status 1, before anything listens.
#[test]
fn strict_policy_refuses_a_policy_with_errors_at_startup() {
    let p = pki();
    let policy = misspelt_policy(&p);
    let expected = format!(
        "ledger: error: {}: refused by --strict-policy: {FINDING} (and 1 more error(s); see \
         `ledger policy check`)",
        policy.display()
    );
    for strict in [
        &["--strict-policy"][..],
        &[],
        // The environment variable, as a container would set it.
    ] {
        let mut command = common::pki_ledger_binary(&p, &policy);
        command.args(strict);
        if strict.is_empty() {
            command.env("LEDGER_STRICT_POLICY", "1");
        }
        let (status, stderr) = finish(command.spawn().unwrap());
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().last(), Some(expected.as_str()), "{stderr}");
        assert!(!stderr.contains("listening"), "{stderr}");
    }
}

/// Without `--strict-policy` the policy is used, and each finding is a WARN line naming the
/// file, the rule and the finding in words.
#[test]
fn findings_are_warnings_naming_the_file_at_startup() {
    let p = pki();
    let policy = misspelt_policy(&p);
    let mut child = common::pki_ledger_binary(&p, &policy)
        .args(["--log-format", "json"])
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut warnings = Vec::new();
    loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "ledger exited");
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if event["message"] == "listening (mTLS only)" {
            break;
        }
        if event["target"] == "zt_authz::policy" {
            warnings.push(event);
        }
    }
    child.kill().unwrap();
    let _ = child.wait();
    let first = &warnings[0];
    assert_eq!(first["level"], "WARN");
    assert_eq!(first["message"], FINDING);
    assert_eq!(first["file"], policy.display().to_string());
    assert_eq!(first["severity"], "error");
    assert_eq!(first["rule"], "allow_rules[payments-full-access]");
    assert_eq!(first["role"], "policy");
    assert!(
        warnings.iter().any(|w| w["message"]
            == "error: allow_rules[payments-full-access]: can never match: it reaches no \
                served method"),
        "{warnings:#?}"
    );
    // What `policy coverage` would call UNCOVERED is said too: nobody may transfer now.
    assert!(
        warnings.iter().any(|w| w["message"]
            == "warning: /ledger.v1.Ledger/Transfer is UNCOVERED: no rule allows it or closes \
                it (denied by default)"
            && w["method"] == "/ledger.v1.Ledger/Transfer"),
        "{warnings:#?}"
    );
}

/// At a reload, `--strict-policy` keeps the last good policy (the next request is still
/// decided by it), logs why naming the file, and counts the failure like any failed reload;
/// without it, the findings are warnings and the new policy is enforced.
#[tokio::test]
async fn a_reload_with_errors_is_refused_when_strict_and_warned_otherwise() {
    let logs = Logs::capture();
    for strict in [true, false] {
        let p = pki();
        let ca = p.pki.ca_cert();
        let policy = p.pki.write(
            "policy.json",
            std::fs::read_to_string(demo_policy()).unwrap(),
        );
        let mut config = config(&p.ledger, &ca);
        config.policy.clone_from(&policy);
        config.strict_policy = strict;
        config.reload_interval = Duration::from_millis(100);
        let (server, metrics) = common::start_with(config).await;
        let mut client = LedgerClient::new(mtls_channel(
            server.addr,
            &p.payments,
            &ca,
            common::LEDGER_ID,
        ));
        client.get_balance(balance()).await.unwrap();

        atomic_write(
            &policy,
            std::fs::read_to_string(misspelt_policy(&p)).unwrap(),
        );
        let file = policy.display().to_string();
        let result = if strict { "error" } else { "ok" };
        let counted = format!("zt_reloads_total{{file=\"{file}\",result=\"{result}\"}} 1");
        eventually("the reload is counted", async || {
            metrics.encode().contains(&counted)
        })
        .await;
        let text = logs.text();
        let warned = text
            .lines()
            .find(|l| l.contains("zt_authz::policy") && l.contains(&file))
            .unwrap_or_else(|| panic!("no finding logged for {file}:\n{text}"));
        assert!(
            warned.contains(" WARN ") && warned.contains(FINDING),
            "{warned}"
        );
        let answer = client.get_balance(balance()).await;
        if strict {
            let refused = text
                .lines()
                .find(|l| l.contains("reload failed") && l.contains(&file))
                .unwrap_or_else(|| panic!("no failed reload logged:\n{text}"));
            // The error as a sentence, written as is (not a quoted debug string).
            let error = format!("error={file}: refused by --strict-policy: {FINDING}");
            assert!(refused.contains(&error), "{refused}\n{error}");
            answer.expect("the last good policy still decides");
        } else {
            assert_eq!(
                answer.unwrap_err().code(),
                tonic::Code::PermissionDenied,
                "the new policy is enforced"
            );
        }
    }
}

/// Allowed health checks are logged at `debug` (they were half the compose log), still
/// counted; other decisions stay at `info`, and a refused one at `warn`.
#[tokio::test]
async fn health_decisions_are_debug_and_still_counted() {
    let p = pki();
    let ca = p.pki.ca_cert();
    let metrics_addr = free_port();
    let mut child = common::pki_ledger_binary(&p, demo_policy())
        .args([
            "--log-format",
            "json",
            "--metrics-listen",
            &metrics_addr.to_string(),
        ])
        .env("RUST_LOG", "info,zt_authz=debug")
        .spawn()
        .unwrap();
    let (addr, stderr) = bound_address(&mut child);
    let log = std::thread::spawn(move || stderr.lines().map_while(Result::ok).collect::<Vec<_>>());

    let mut health = HealthClient::new(mtls_channel(addr, &p.payments, &ca, common::LEDGER_ID));
    health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    let mut ledger = LedgerClient::new(mtls_channel(addr, &p.payments, &ca, common::LEDGER_ID));
    ledger.get_balance(balance()).await.unwrap();
    let mut auditor = LedgerClient::new(mtls_channel(addr, &p.auditor, &ca, common::LEDGER_ID));
    auditor
        .transfer(pb::TransferRequest {
            idempotency_key: "k".into(),
            from_account: "bob".into(),
            to_account: "carol".into(),
            amount_cents: 1,
            memo: String::new(),
        })
        .await
        .unwrap_err();

    let metrics = zt_testkit::scrape(metrics_addr).await;
    let health_series = "zt_authz_decisions_total{policy=\"ledger\",rule=\"health-any-workload\",\
                         decision=\"allow\",mode=\"enforce\",method=\"/grpc.health.v1.Health/Check\"} 1";
    assert!(metrics.contains(health_series), "{metrics}");

    child.kill().unwrap();
    let _ = child.wait();
    let levels: Vec<(String, String, String)> = log
        .join()
        .unwrap()
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["target"] == "zt_authz::decision")
        .map(|event| {
            let text = |key: &str| event[key].as_str().unwrap_or_default().to_owned();
            (text("method"), text("peer"), text("level"))
        })
        .collect();
    assert_eq!(
        levels,
        [
            (
                "/grpc.health.v1.Health/Check".to_owned(),
                PAYMENTS_ID.to_owned(),
                "DEBUG".to_owned()
            ),
            (
                "/ledger.v1.Ledger/GetBalance".to_owned(),
                PAYMENTS_ID.to_owned(),
                "INFO".to_owned()
            ),
            (
                "/ledger.v1.Ledger/Transfer".to_owned(),
                AUDITOR_ID.to_owned(),
                "WARN".to_owned()
            ),
        ]
    );
}

fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Every known label set is exported at 0 before the first RPC (Prometheus's advice), so an
/// alert on `increase(...)` sees the first event: each served method's decisions, `other`
/// methods, and every reason for a refused handshake or an unauthenticated request.
#[tokio::test]
async fn known_counters_exist_at_zero_before_any_rpc() {
    let p = pki();
    let metrics_addr = free_port();
    let mut child = common::pki_ledger_binary(&p, demo_policy())
        .args(["--metrics-listen", &metrics_addr.to_string()])
        .spawn()
        .unwrap();
    let (_addr, stderr) = bound_address(&mut child);
    let _drain = std::thread::spawn(move || stderr.lines().map_while(Result::ok).count());
    let metrics = zt_testkit::scrape(metrics_addr).await;
    child.kill().unwrap();
    let _ = child.wait();

    let decision = |rule: &str, decision: &str, method: &str| {
        format!(
            "zt_authz_decisions_total{{policy=\"ledger\",rule=\"{rule}\",decision=\"{decision}\",\
             mode=\"enforce\",method=\"{method}\"}} 0"
        )
    };
    let mut expected = vec![
        decision(
            "payments-full-access",
            "allow",
            "/ledger.v1.Ledger/Transfer",
        ),
        decision(
            "auditor-never-moves-money",
            "deny",
            "/ledger.v1.Ledger/Transfer",
        ),
        decision("<default deny>", "deny", "/ledger.v1.Ledger/Transfer"),
        decision("auditor-read-only", "allow", "/ledger.v1.Ledger/GetBalance"),
        decision(
            "health-any-workload",
            "allow",
            "/grpc.health.v1.Health/Check",
        ),
        decision(
            "health-any-workload",
            "allow",
            "/grpc.health.v1.Health/Watch",
        ),
        decision("<default deny>", "deny", "other"),
    ];
    for reason in zt_tls::REFUSAL_REASONS {
        expected.push(format!(
            "zt_tls_handshake_refusals_total{{reason=\"{reason}\"}} 0"
        ));
    }
    for reason in zt_authz_layer::UNAUTHENTICATED_REASONS {
        expected.push(format!(
            "zt_authz_unauthenticated_total{{reason=\"{reason}\"}} 0"
        ));
    }
    for series in expected {
        assert!(metrics.contains(&series), "missing {series} in\n{metrics}");
    }
}

/// A refused handshake is logged in words beside its stable `reason`: no
/// `Other(OtherError(UntrustedDomain(..)))`.
#[tokio::test]
async fn a_refused_handshake_is_logged_in_words() {
    let logs = Logs::capture();
    let p = pki();
    let partner = zt_testkit::TestPki::new("partner.example");
    let intruder = partner.issue("intruder", "spiffe://partner.example/ns/x/sa/y", &[]);
    // Both CAs are trusted, but only zt.example's workloads may call.
    let bundle = p.pki.write(
        "bundle.pem",
        std::fs::read_to_string(p.pki.ca_cert()).unwrap()
            + &std::fs::read_to_string(partner.ca_cert()).unwrap(),
    );
    let (server, _) = common::start_with(config(&p.ledger, &bundle)).await;
    let mut client = LedgerClient::new(mtls_channel(
        server.addr,
        &intruder,
        &p.pki.ca_cert(),
        common::LEDGER_ID,
    ));
    client.get_balance(balance()).await.unwrap_err();
    eventually("the refusal is logged", async || {
        logs.text().contains("zt_tls::refused")
    })
    .await;
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("zt_tls::refused"))
        .unwrap();
    assert!(
        line.contains("reason=\"untrusted_trust_domain\"")
            && line.contains("error=trust domain \"partner.example\" is not trusted"),
        "{line}"
    );
    assert!(!line.contains("Other("), "{line}");
}

/// `policy explain --method` takes a gRPC method path; anything else is a usage error (exit
/// status 2, as for every value clap refuses), in one line, with the full path suggested
/// when the name is one the ledger serves.
#[test]
fn explain_refuses_a_method_that_is_not_a_path() {
    let p = pki();
    for (method, hint) in [
        ("Transfer", " (did you mean /ledger.v1.Ledger/Transfer?)"),
        ("ledger.v1.Ledger/Transfer", ""),
        ("/ledger.v1.Ledger", ""),
    ] {
        let output: Output = std::process::Command::new(env!("CARGO_BIN_EXE_ledger"))
            .args(["policy", "explain", "--policy"])
            .arg(demo_policy())
            .arg("--cert")
            .arg(&p.auditor.cert)
            .args(["--method", method])
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{method}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.lines().next().unwrap(),
            format!(
                "error: invalid value '{method}' for '--method <METHOD>': not a gRPC method \
                 path: write /package.Service/Method, e.g. /ledger.v1.Ledger/Transfer{hint}"
            ),
            "{stderr}"
        );
        assert!(output.stdout.is_empty());
    }
}
