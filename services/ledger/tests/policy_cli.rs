//! `ledger policy check|coverage|explain` as a CI job runs them: the report on stdout, and
//! an exit status that fails the job exactly when the report found a problem.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

mod common;

use std::process::Command;

use common::{demo_policy, pki};

/// Runs `ledger policy ARGS...`; returns the exit code and stdout (stderr appended).
fn policy(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .arg("policy")
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap(), text)
}

fn shipped() -> &'static str {
    demo_policy().to_str().unwrap()
}

const FLAWED: &str = r#"{
  "name": "flawed",
  "allow_rules": [
    {"name": "payments-all", "source": {"principals": ["spiffe://zt.example/ns/prod/sa/payments"]},
     "request": {"paths": ["/ledger.v1.Ledger/*"]}},
    {"name": "payments-transfer", "source": {"principals": ["spiffe://zt.example/ns/prod/sa/payments"]},
     "request": {"paths": ["/ledger.v1.Ledger/Transfer"]}},
    {"name": "typo", "source": {"principals": ["spiffe://zt.example/ns/prod/sa/auditor"]},
     "request": {"paths": ["/ledger.v1.Ledger/GetBalanse"]}},
    {"name": "anyone-lists", "source": {"principals": ["*"]},
     "request": {"paths": ["/ledger.v1.Ledger/ListTransfers"]}}
  ]
}"#;

#[test]
fn the_shipped_policy_is_clean_and_covers_every_served_method() {
    let (code, report) = policy(&["check", shipped()]);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains("0 error(s), 0 warning(s), against 5 served methods"),
        "{report}"
    );

    let (code, report) = policy(&["coverage", shipped()]);
    assert_eq!(code, 0, "{report}");
    let rows: Vec<&str> = report.lines().filter(|l| l.starts_with('/')).collect();
    assert_eq!(
        rows.len(),
        5,
        "ledger's three RPCs and health's two: {report}"
    );
    let row = |method: &str| *rows.iter().find(|r| r.starts_with(method)).unwrap();
    assert!(
        row("/ledger.v1.Ledger/Transfer ").contains("allowed")
            && row("/ledger.v1.Ledger/Transfer ").contains("(payments-full-access)")
            && !row("/ledger.v1.Ledger/Transfer ").contains("auditor"),
        "{report}"
    );
    assert!(
        row("/grpc.health.v1.Health/Check").contains("spiffe://zt.example/* (health-any-workload)"),
        "{report}"
    );
}

#[test]
fn a_flawed_policy_fails_check_and_coverage_with_every_problem_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flawed.json");
    std::fs::write(&file, FLAWED).unwrap();
    let file = file.to_str().unwrap();

    let (code, report) = policy(&["check", file]);
    assert_eq!(code, 1, "{report}");
    for expected in [
        "error: allow_rules[payments-transfer]: shadowed by the earlier rule \"payments-all\"",
        "error: allow_rules[typo]: path \"/ledger.v1.Ledger/GetBalanse\" matches no served method",
        "error: allow_rules[typo]: can never match",
        "warning: allow_rules[anyone-lists]: principal \"*\" matches every authenticated peer",
        "3 error(s), 1 warning(s)",
    ] {
        assert!(
            report.contains(expected),
            "missing {expected:?} in:\n{report}"
        );
    }

    let (code, report) = policy(&["coverage", file]);
    assert_eq!(code, 1, "{report}");
    for method in [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
    ] {
        let row = report.lines().find(|l| l.starts_with(method)).unwrap();
        assert!(row.contains("UNCOVERED"), "{row}");
    }
    assert!(report.contains("5 methods, 2 uncovered"), "{report}");
}

#[test]
fn strict_check_fails_on_warnings_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wide.json");
    std::fs::write(
        &file,
        r#"{"name": "wide", "allow_rules": [{"name": "anyone", "source": {"principals": ["*"]}}]}"#,
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let (code, report) = policy(&["check", file]);
    assert_eq!(code, 0, "warnings alone pass: {report}");
    assert!(report.contains("0 error(s), 1 warning(s)"), "{report}");
    let (code, report) = policy(&["check", "--strict", file]);
    assert_eq!(code, 1, "{report}");
}

#[test]
fn a_broken_policy_file_is_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.json");
    std::fs::write(
        &file,
        r#"{"name": "x", "allow_rules": [{"name": "a", "sorce": {}}]}"#,
    )
    .unwrap();
    let (code, report) = policy(&["check", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(report.lines().count(), 1, "{report}");
    assert!(
        report.starts_with("ledger: error: ")
            && report.contains("broken.json")
            && report.contains("sorce"),
        "{report}"
    );
}

#[test]
fn explain_gives_the_decision_the_rule_and_checks_expectations() {
    let p = pki();
    let transfer = "/ledger.v1.Ledger/Transfer";
    let explain = |cert: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "explain",
            "--policy",
            shipped(),
            "--cert",
            cert.to_str().unwrap(),
            "--method",
            transfer,
        ];
        args.extend_from_slice(extra);
        policy(&args)
    };

    let (code, report) = explain(&p.auditor.cert, &["--expect", "deny"]);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains("peer:      spiffe://zt.example/ns/prod/sa/auditor"),
        "{report}"
    );
    assert!(
        report.contains("decision:  DENY by deny rule \"auditor-never-moves-money\""),
        "{report}"
    );
    let (code, _) = explain(&p.auditor.cert, &["--expect", "allow"]);
    assert_eq!(code, 1, "a broken expectation fails the job");

    let (code, report) = explain(&p.payments.cert, &["--expect", "allow"]);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains("decision:  ALLOW by allow rule \"payments-full-access\""),
        "{report}"
    );

    // A workload of another trust domain never reaches the policy.
    let partner_pki = zt_testkit::TestPki::new("partner.example");
    let partner = partner_pki.issue(
        "partner",
        "spiffe://partner.example/ns/prod/sa/payments",
        &[],
    );
    let (code, report) = explain(&partner.cert, &["--expect", "deny"]);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains("refused before any policy runs"),
        "{report}"
    );
    assert!(report.contains("UNAUTHENTICATED"), "{report}");
}
