//! The `payments` binary as a person at a terminal meets it: the `--server` forms it accepts,
//! and one clear line, with the right exit status, for those it cannot use.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

use std::path::Path;
use std::process::{Command, Output};

use zt_testkit::{Identity, TestPki};

const LEDGER_ID: &str = "spiffe://zt.example/ns/prod/sa/ledger";
const PAYMENTS_ID: &str = "spiffe://zt.example/ns/prod/sa/payments";
const POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../config/ledger-policy.json"
);

/// Runs `payments --server SERVER ... balance alice` off the test's runtime.
async fn payments(server: &str, me: &Identity, ca: &Path) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_payments"));
    command
        .args(["--server", server, "--attempts", "1", "--cert"])
        .arg(&me.cert)
        .arg("--key")
        .arg(&me.key)
        .arg("--ca")
        .arg(ca)
        .args(["balance", "alice"]);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `HOST:PORT` is what most gRPC clients take; this client only speaks TLS, so `https://` is
/// implied. It used to fail as `Unknown: transport error`.
#[tokio::test(flavor = "multi_thread")]
async fn host_and_port_without_a_scheme_means_https() {
    let pki = TestPki::new("zt.example");
    let server = pki.issue("ledger", LEDGER_ID, &["localhost"]);
    let me = pki.issue("payments", PAYMENTS_ID, &[]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config =
        ledger::Config::with_files(&server.cert, &server.key, &pki.ca_cert(), Path::new(POLICY));
    let ledger = ledger::Server::load(config)
        .unwrap()
        .spawn(listener)
        .unwrap();
    let out = payments(
        &format!("localhost:{}", ledger.addr.port()),
        &me,
        &pki.ca_cert(),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "alice: $100000.00\n");
}

/// There is no plaintext: `http://` is refused as a usage error (clap's exit status 2), in one
/// line that says why and what to write instead, before any file is read or socket opened.
#[tokio::test]
async fn http_and_other_schemes_are_refused_in_one_line() {
    let pki = TestPki::new("zt.example");
    let me = pki.issue("payments", PAYMENTS_ID, &[]);
    for (server, why) in [
        (
            "http://localhost:8443",
            "http:// is plaintext, and the ledger speaks only mutual TLS: use https://HOST:PORT \
             or HOST:PORT",
        ),
        (
            "grpc://localhost:8443",
            "unsupported scheme \"grpc://\": use https://HOST:PORT or HOST:PORT",
        ),
    ] {
        let out = payments(server, &me, &pki.ca_cert()).await;
        assert_eq!(out.status.code(), Some(2), "{server}");
        let stderr = text(&out.stderr);
        assert_eq!(
            stderr.lines().next().unwrap(),
            format!("error: invalid value '{server}' for '--server <SERVER>': {why}"),
            "{stderr}"
        );
    }
}

/// A ledger that is not there: a sentence and the gRPC code, not `Unavailable: ...` debug text.
#[tokio::test]
async fn an_unreachable_ledger_is_said_in_words() {
    let pki = TestPki::new("zt.example");
    let me = pki.issue("payments", PAYMENTS_ID, &[]);
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let out = payments(&format!("127.0.0.1:{port}"), &me, &pki.ca_cert()).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("payments: error: the ledger is unavailable: ")
            && stderr.trim_end().ends_with("(gRPC UNAVAILABLE)")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
}
