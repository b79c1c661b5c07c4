//! Shared setup: a PKI with the demo identities, and a ledger serving on 127.0.0.1:0.
#![allow(dead_code, reason = "each test crate uses part of the shared setup")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test setup: a panic is a failed test"
)]

pub(crate) mod books;
pub(crate) mod raw_h2;

use std::io::BufRead as _;
use std::path::Path;

use ledger::{Background, Config, Server};
use zt_testkit::{Identity, TestPki};

pub(crate) const TD: &str = "zt.example";
pub(crate) const LEDGER_ID: &str = "spiffe://zt.example/ns/prod/sa/ledger";
pub(crate) const PAYMENTS_ID: &str = "spiffe://zt.example/ns/prod/sa/payments";
pub(crate) const AUDITOR_ID: &str = "spiffe://zt.example/ns/prod/sa/auditor";

/// The policy the project ships, so tests check the real demo rules.
pub(crate) fn demo_policy() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/ledger-policy.json"
    ))
}

pub(crate) struct Pki {
    pub(crate) pki: TestPki,
    pub(crate) ledger: Identity,
    pub(crate) payments: Identity,
    pub(crate) auditor: Identity,
}

pub(crate) fn pki() -> Pki {
    let pki = TestPki::new(TD);
    Pki {
        ledger: pki.issue("ledger", LEDGER_ID, &["localhost"]),
        payments: pki.issue("payments", PAYMENTS_ID, &[]),
        auditor: pki.issue("auditor", AUDITOR_ID, &[]),
        pki,
    }
}

/// Starts a ledger with `server_identity` on 127.0.0.1:0, trusting `ca`, enforcing the demo
/// policy. Dropping the result stops it.
pub(crate) async fn start(server_identity: &Identity, ca: &Path) -> Background {
    start_with(config(server_identity, ca)).await.0
}

/// The configuration [`start`] uses, to adjust before [`start_with`].
pub(crate) fn config(server_identity: &Identity, ca: &Path) -> Config {
    Config::with_files(
        &server_identity.cert,
        &server_identity.key,
        ca,
        demo_policy(),
    )
}

/// Starts a ledger with `config` on 127.0.0.1:0; also returns its metrics.
pub(crate) async fn start_with(config: Config) -> (Background, zt_telemetry::Metrics) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::load(config).expect("valid test configuration");
    let metrics = server.metrics().clone();
    (server.spawn(listener).unwrap(), metrics)
}

/// Polls `check` every 50 ms until it holds, for at most 10 s.
pub(crate) async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("not within 10 s: {what}");
}

/// Reads the child's log until it says where it listens (for RPCs, not metrics).
pub(crate) fn bound_address(
    child: &mut std::process::Child,
) -> (
    std::net::SocketAddr,
    std::io::BufReader<std::process::ChildStderr>,
) {
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "ledger exited early"
        );
        if line.starts_with('{') {
            // --log-format json
            let event: serde_json::Value = serde_json::from_str(&line).unwrap();
            if event["message"] == "listening (mTLS only)" {
                return (event["address"].as_str().unwrap().parse().unwrap(), stderr);
            }
        } else if let Some(at) = line
            .contains("listening")
            .then(|| line.find("address="))
            .flatten()
        {
            return (
                line[at + "address=".len()..].trim().parse().unwrap(),
                stderr,
            );
        }
    }
}

/// Reads the rest of a `--log-format json` log on a thread: one JSON object per line, a line
/// that is not JSON failing the test with its text.
pub(crate) fn json_log(
    stderr: std::io::BufReader<std::process::ChildStderr>,
) -> std::thread::JoinHandle<Vec<serde_json::Value>> {
    std::thread::spawn(move || {
        stderr
            .lines()
            .map_while(Result::ok)
            .map(|line| serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    })
}

/// Runs `openssl s_client -connect ADDR -tls1_3 -alpn h2 ARGS...` against a ledger serving on
/// this test's runtime, and returns whether it succeeded and everything it printed. It runs
/// off the runtime (s_client blocks), and its stdin stays open for a second so it reads the
/// server's post-handshake alert before it exits.
pub(crate) async fn s_client(addr: std::net::SocketAddr, args: &[&str]) -> (bool, String) {
    let mut command = std::process::Command::new("openssl");
    command
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-tls1_3",
            "-alpn",
            "h2",
        ])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let output = tokio::task::spawn_blocking(move || {
        let mut child = command
            .spawn()
            .expect("openssl is installed (.ci/run installs it)");
        std::thread::sleep(std::time::Duration::from_millis(1000));
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

/// The `ledger` binary serving as the test PKI's ledger (its keystore, its CA), with `policy`:
/// see [`ledger_binary`].
pub(crate) fn pki_ledger_binary(p: &Pki, policy: &Path) -> std::process::Command {
    ledger_binary(&p.ledger.cert, &p.ledger.key, &p.pki.ca_cert(), policy)
}

/// The `ledger` binary, listening on 127.0.0.1:0 with this keystore, truststore and policy,
/// its books in memory, logging at `info` to a piped stderr (read it, e.g. with
/// [`bound_address`], or it fills).
pub(crate) fn ledger_binary(
    cert: &Path,
    key: &Path,
    ca: &Path,
    policy: &Path,
) -> std::process::Command {
    ledger_binary_on(cert, key, ca, policy, "sqlite::memory:")
}

/// [`ledger_binary`] with its books in `database` (a `--database` URL).
pub(crate) fn ledger_binary_on(
    cert: &Path,
    key: &Path,
    ca: &Path,
    policy: &Path,
    database: &str,
) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ledger"));
    command
        .args(["--listen", "127.0.0.1:0", "--cert"])
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg("--ca")
        .arg(ca)
        .arg("--policy")
        .arg(policy)
        .args(["--database", database])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    command
}
