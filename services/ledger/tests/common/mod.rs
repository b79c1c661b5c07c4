//! Shared setup: a PKI with the demo identities, and a ledger serving on 127.0.0.1:0.
#![allow(dead_code, reason = "each test crate uses part of the shared setup")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test setup: a panic is a failed test"
)]

use std::net::SocketAddr;
use std::path::Path;

use clap::Parser as _;
use ledger::service::LedgerService;
use ledger::{Config, Server};
use tokio::sync::oneshot;
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

/// A running ledger. Dropping it stops the server.
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    pub(crate) service: LedgerService,
    _stop: oneshot::Sender<()>,
}

pub(crate) async fn start(server_identity: &Identity, ca: &Path, extra_args: &[&str]) -> Running {
    let mut args = vec![
        "ledger".to_owned(),
        "--cert".into(),
        server_identity.cert.display().to_string(),
        "--key".into(),
        server_identity.key.display().to_string(),
        "--ca".into(),
        ca.display().to_string(),
        "--policy".into(),
        demo_policy().display().to_string(),
    ];
    args.extend(extra_args.iter().map(|a| (*a).to_owned()));
    let server = Server::load(Config::parse_from(args)).expect("valid test configuration");
    let service = server.ledger().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(listener, async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        service,
        _stop: stop,
    }
}
