//! The long-running `payments` (`demo --repeat-every`, the compose lab's `payments` and
//! `auditor`) stops on SIGTERM the way `docker stop` needs: within a second or two, the call
//! in flight finished or abandoned, exit 0. Before this, compose killed it after 10 s (137).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use zt_testkit::{Identity, TestPki};

const LEDGER_ID: &str = "spiffe://zt.example/ns/prod/sa/ledger";
const PAYMENTS_ID: &str = "spiffe://zt.example/ns/prod/sa/payments";
const POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../config/ledger-policy.json"
);

/// A running `payments` binary and the lines it printed so far.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn demo(port: u16, me: &Identity, ca: &Path, every: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_payments"))
            .args(["--server", &format!("https://localhost:{port}")])
            .args(["--server-id", LEDGER_ID, "--attempts", "3", "--cert"])
            .arg(&me.cert)
            .arg("--key")
            .arg(&me.key)
            .arg("--ca")
            .arg(ca)
            .args(["demo", "--role", "payments", "--repeat-every", every])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (off the runtime's threads) until a line containing `text` is printed.
    fn wait_for_line(&mut self, text: &str, limit: Duration) {
        let start = Instant::now();
        while !self.seen.iter().any(|l| l.contains(text)) {
            let left = limit.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no line with {text:?} within {limit:?}: {:#?}", self.seen),
            }
        }
    }

    /// Sends SIGTERM and waits up to 2 s for the exit; returns the status and how long it took.
    fn terminate(&mut self) -> (ExitStatus, Duration) {
        let sent = Instant::now();
        let kill = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let took = sent.elapsed();
                self.seen.extend(self.lines.try_iter());
                // The reader thread gets the last lines once the pipe closes.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(line);
                }
                return (status, took);
            }
            if sent.elapsed() > Duration::from_secs(2) {
                self.child.kill().unwrap();
                panic!("still running 2 s after SIGTERM: {:#?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    server: &Identity,
    ca: &Path,
) -> ledger::Background {
    let config = ledger::Config::with_files(&server.cert, &server.key, ca, Path::new(POLICY));
    ledger::Server::load(config)
        .unwrap()
        .spawn(listener)
        .unwrap()
}

/// Between rounds (the usual case: a transfer every 10 s) it stops at once.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_between_rounds_stops_at_once_with_exit_0() {
    let pki = TestPki::new("zt.example");
    let server = pki.issue("ledger", LEDGER_ID, &["localhost"]);
    let payments = pki.issue("payments", PAYMENTS_ID, &[]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ledger = serve(listener, &server, &pki.ca_cert()).await;
    let port = ledger.addr.port();
    let ca = pki.ca_cert();
    let (status, took, seen) = tokio::task::spawn_blocking(move || {
        let mut running = Running::demo(port, &payments, &ca, "30s");
        running.wait_for_line(
            "steps behaved as Zero Trust requires",
            Duration::from_secs(20),
        );
        let (status, took) = running.terminate();
        (status, took, running.seen)
    })
    .await
    .unwrap();
    println!("payments demo --repeat-every: SIGTERM between rounds -> {status} after {took:?}");
    assert_eq!(status.code(), Some(0), "{seen:#?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(
        seen.iter()
            .any(|l| l.contains("stopping (SIGTERM): no call in flight")),
        "{seen:#?}"
    );
    assert_eq!(
        ledger.service.handled(),
        3,
        "the story's three calls, nothing more"
    );
}

/// With a call in flight that will not finish (the ledger went away and something that never
/// answers took its port), the call is abandoned after the 1 s grace and the exit is still 0,
/// well inside `docker stop`'s 10 s.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_a_call_in_flight_abandons_it_after_the_grace_with_exit_0() {
    let pki = TestPki::new("zt.example");
    let server = pki.issue("ledger", LEDGER_ID, &["localhost"]);
    let payments = pki.issue("payments", PAYMENTS_ID, &[]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ledger = serve(listener, &server, &pki.ca_cert()).await;
    let addr = ledger.addr;
    let ca = pki.ca_cert();
    let mut running = tokio::task::spawn_blocking(move || {
        let mut running = Running::demo(addr.port(), &payments, &ca, "500ms");
        running.wait_for_line(
            "steps behaved as Zero Trust requires",
            Duration::from_secs(20),
        );
        running
    })
    .await
    .unwrap();
    // The ledger goes; a listener that accepts and never answers takes its port.
    drop(ledger);
    let blackhole = loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => break listener,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    // The next round connects to it: that call is now in flight, and stays so.
    let (held, _) = tokio::time::timeout(Duration::from_secs(10), blackhole.accept())
        .await
        .expect("the next round never connected")
        .unwrap();
    let (status, took, seen) = tokio::task::spawn_blocking(move || {
        let (status, took) = running.terminate();
        (status, took, running.seen)
    })
    .await
    .unwrap();
    drop(held);
    println!(
        "payments demo --repeat-every: SIGTERM with a call in flight -> {status} after {took:?}"
    );
    assert_eq!(status.code(), Some(0), "{seen:#?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(2),
        "took {took:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.contains("stopping (SIGTERM): abandoned the call in flight after 1s")),
        "{seen:#?}"
    );
}
