//! The payments client against real ledgers over real sockets: the demo story, impostor
//! servers it must refuse, and reconnecting with backoff.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser as _;
use payments::{Config, Error, Ledger};
use tokio::net::TcpListener;
use zt_proto::ledger::v1 as pb;
use zt_testkit::{Identity, TestPki, svid_params};

const LEDGER_ID: &str = "spiffe://zt.example/ns/prod/sa/ledger";
const PAYMENTS_ID: &str = "spiffe://zt.example/ns/prod/sa/payments";
const AUDITOR_ID: &str = "spiffe://zt.example/ns/prod/sa/auditor";
const POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../config/ledger-policy.json"
);

/// Serves a ledger with `server` as its identity on `listener`, trusting `ca`.
fn serve(listener: TcpListener, server: &Identity, ca: &Path) -> ledger::Background {
    let config = ledger::Config::with_files(&server.cert, &server.key, ca, Path::new(POLICY));
    ledger::Server::load(config)
        .unwrap()
        .spawn(listener)
        .unwrap()
}

async fn serve_local(server: &Identity, ca: &Path) -> ledger::Background {
    serve(TcpListener::bind("127.0.0.1:0").await.unwrap(), server, ca)
}

fn client_config(addr: SocketAddr, me: &Identity, ca: &Path, extra: &[&str]) -> Config {
    let mut args: Vec<String> = vec![
        "payments".into(),
        "--server".into(),
        format!("https://localhost:{}", addr.port()),
        "--server-id".into(),
        LEDGER_ID.into(),
        "--cert".into(),
        me.cert.display().to_string(),
        "--key".into(),
        me.key.display().to_string(),
        "--ca".into(),
        ca.display().to_string(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args.extend(["balance".to_owned(), "alice".to_owned()]);
    Config::parse_from(args)
}

#[tokio::test]
async fn demo_story_behaves_as_zero_trust_requires() {
    let pki = TestPki::new("zt.example");
    let server = pki.issue("ledger", LEDGER_ID, &["localhost"]);
    let payments = pki.issue("payments", PAYMENTS_ID, &[]);
    let auditor = pki.issue("auditor", AUDITOR_ID, &[]);
    let ledger = serve_local(&server, &pki.ca_cert()).await;
    let (addr, service) = (ledger.addr, &ledger.service);

    let config = client_config(addr, &payments, &pki.ca_cert(), &[]);
    let as_payments = Ledger::connect(&config, &payments.cert, &payments.key).unwrap();
    let as_auditor = Ledger::connect(&config, &auditor.cert, &auditor.key).unwrap();
    let mut steps = payments::demo::payments_story(&as_payments).await;
    steps.extend(payments::demo::auditor_story(&as_auditor).await);
    assert!(as_auditor.health().await.unwrap(), "health check over mTLS");
    let report = payments::demo::render(&steps);
    assert_eq!(steps.len(), 5, "{report}");
    assert!(steps.iter().all(|s| s.as_expected), "{report}");
    assert!(
        steps[4].outcome.ends_with(&format!(
            "the ledger refused the call: {AUDITOR_ID} may not call /ledger.v1.Ledger/Transfer \
             (gRPC PERMISSION_DENIED)"
        )),
        "{report}"
    );
    // Transfer, replayed transfer, two balances; the auditor's transfer never reached a handler.
    assert_eq!(service.handled(), 4, "{report}");
    let tick = payments::demo::payments_tick(&as_payments, 1).await;
    assert!(
        tick.as_expected && tick.outcome.contains("ALLOWED"),
        "{tick:?}"
    );
}

#[tokio::test]
async fn a_server_proving_another_identity_is_refused_before_any_request() {
    let pki = TestPki::new("zt.example");
    // Valid certificate from our own CA, for a different workload: a spoofed ledger.
    let impostor = pki.issue(
        "impostor",
        "spiffe://zt.example/ns/prod/sa/impostor",
        &["localhost"],
    );
    let payments = pki.issue("payments", PAYMENTS_ID, &[]);
    let ledger = serve_local(&impostor, &pki.ca_cert()).await;
    let (addr, service) = (ledger.addr, &ledger.service);

    let config = client_config(addr, &payments, &pki.ca_cert(), &[]);
    let client = Ledger::connect(&config, &payments.cert, &payments.key).unwrap();
    let started = Instant::now();
    let err = client.balance("alice").await.unwrap_err();
    match &err {
        Error::ServerRefused { reason, .. } => assert_eq!(*reason, "unexpected_server"),
        other => panic!("want ServerRefused, got {other}"),
    }
    // What the person at the terminal reads: a sentence, no Rust debug text.
    assert_eq!(
        err.to_string(),
        format!(
            "mutual TLS handshake with the ledger failed: server presented \
             spiffe://zt.example/ns/prod/sa/impostor, expected {LEDGER_ID}"
        )
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a refused identity is not retried"
    );
    assert_eq!(
        service.handled(),
        0,
        "no request reached the impostor's handlers"
    );
}

#[tokio::test]
async fn a_server_from_a_foreign_ca_is_refused_even_with_the_right_id() {
    let pki = TestPki::new("zt.example");
    let rogue = TestPki::new("rogue.example");
    let fake_ledger = rogue.issue_params("fake-ledger", svid_params(&[LEDGER_ID]));
    let payments = pki.issue("payments", PAYMENTS_ID, &[]);
    // The rogue server trusts our CA, so only the client's check can stop this.
    let ledger = serve_local(&fake_ledger, &pki.ca_cert()).await;
    let (addr, service) = (ledger.addr, &ledger.service);

    let config = client_config(addr, &payments, &pki.ca_cert(), &[]);
    let client = Ledger::connect(&config, &payments.cert, &payments.key).unwrap();
    let err = client.balance("alice").await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::ServerRefused {
                reason: "unknown_ca",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "mutual TLS handshake with the ledger failed: the ledger's certificate was refused: \
         certificate not issued by a CA trusted for its trust domain"
    );
    assert_eq!(service.handled(), 0);
}

#[tokio::test]
async fn a_transfer_waits_for_the_ledger_with_backoff_and_reaches_it_once() {
    let pki = TestPki::new("zt.example");
    let server = pki.issue("ledger", LEDGER_ID, &["localhost"]);
    let payments = pki.issue("payments", PAYMENTS_ID, &[]);

    // Reserve a port, leave it closed, and bring the ledger up there only after a while.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let config = client_config(addr, &payments, &pki.ca_cert(), &["--attempts", "5"]);
    let client = Ledger::connect(&config, &payments.cert, &payments.key).unwrap();

    let started = Instant::now();
    let transfer = tokio::spawn(async move {
        client
            .transfer(pb::TransferRequest {
                idempotency_key: "retry-me".into(),
                from_account: "alice".into(),
                to_account: "bob".into(),
                amount_cents: 500,
                memo: String::new(),
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let ledger = serve(
        TcpListener::bind(addr).await.unwrap(),
        &server,
        &pki.ca_cert(),
    );
    let service = &ledger.service;

    let response = transfer
        .await
        .unwrap()
        .expect("succeeds once the ledger is up");
    assert!(!response.replayed);
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "it waited for the ledger"
    );
    assert_eq!(
        service.handled(),
        1,
        "failed connection attempts never reached a handler; the one that did, once"
    );
}

/// Client-side rotation: payments picks up its renewed certificate from the files while RPCs
/// keep flowing, and new RPCs present it at once. The proof is revocation: once the ledger
/// revokes the old certificate, payments keeps working, with not one failed RPC throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_rotates_its_certificate_under_load_without_a_failed_rpc() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use zt_testkit::atomic_write;

    let pki = TestPki::new("zt.example");
    let server = pki.issue("ledger", LEDGER_ID, &["localhost"]);
    let payments = pki.issue("payments", PAYMENTS_ID, &[]);
    let old_serial = zt_pki::leaf_serial(
        &std::fs::read_to_string(&payments.cert).unwrap(),
        &payments.cert,
    )
    .unwrap();
    let old = Identity {
        cert: pki.write("old.pem", std::fs::read(&payments.cert).unwrap()),
        key: pki.write("old.key", std::fs::read(&payments.key).unwrap()),
    };
    let hour = Duration::from_secs(3600);
    let crl = pki.write("ca.crl", pki.ca().sign_crl(&[], 1, hour).unwrap());
    let mut config =
        ledger::Config::with_files(&server.cert, &server.key, &pki.ca_cert(), Path::new(POLICY));
    config.crls = vec![crl.clone()];
    config.reload_interval = Duration::from_millis(100);
    let ledger = ledger::Server::load(config)
        .unwrap()
        .spawn(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap();

    let config = client_config(ledger.addr, &payments, &pki.ca_cert(), &[]);
    let client = Arc::new(Ledger::connect(&config, &payments.cert, &payments.key).unwrap());
    let reloader = zt_reload::Reloader::new(Duration::from_millis(100), Default::default());
    let reloader = client.watch(reloader, "tls").spawn();

    let (stop, ok, failed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (client, stop, ok, failed) =
                (client.clone(), stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match client.balance("alice").await {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(err) => {
                            eprintln!("failed RPC: {err}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    let wait_for = async |what: &str, check: &dyn Fn() -> bool| {
        for _ in 0..100 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("not within 5 s: {what}");
    };
    wait_for("RPCs with the old certificate", &|| {
        ok.load(Ordering::Relaxed) >= 20
    })
    .await;

    // Renewal the way `zt-ca renew` does it: a new key and certificate for the same ID, key
    // first, each file replaced atomically.
    let mut request = zt_pki::LeafRequest::new(zt_identity::SpiffeId::new(PAYMENTS_ID).unwrap());
    request.lifetime = hour;
    let renewed = pki.ca().issue(&request).unwrap();
    atomic_write(&payments.key, &renewed.key_pem);
    atomic_write(&payments.cert, &renewed.cert_pem);
    wait_for("payments reloads its files", &|| {
        client.tls().generation() == 1
    })
    .await;
    let after_reload = ok.load(Ordering::Relaxed);
    wait_for("RPCs with the new certificate", &|| {
        ok.load(Ordering::Relaxed) >= after_reload + 20
    })
    .await;

    let revoked = zt_pki::Revocation::from_hex(&old_serial, true).unwrap();
    atomic_write(&crl, pki.ca().sign_crl(&[revoked], 2, hour).unwrap());
    let refused =
        zt_tls::Probe::Refused(tokio_rustls::rustls::AlertDescription::CertificateRevoked);
    let mut attempts = 0;
    while zt_testkit::probe(ledger.addr, Some(&old), &pki.ca_cert()).await != refused {
        attempts += 1;
        assert!(
            attempts < 100,
            "the ledger never refused the old certificate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after_revocation = ok.load(Ordering::Relaxed);
    wait_for("RPCs after the old certificate is revoked", &|| {
        ok.load(Ordering::Relaxed) >= after_revocation + 20
    })
    .await;

    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    reloader.abort();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no RPC failed");
    assert_eq!(
        ledger.service.handled(),
        ok.load(Ordering::Relaxed),
        "every successful RPC reached the handler once"
    );
}

/// CA rotation seen from the client: payments' trust bundle goes old -> old + new -> new while
/// the ledger moves to a certificate from the new CA. Each bundle reload makes payments'
/// next RPC open a new connection, so every step is a real handshake against the bundle of
/// that step, and none fails; a client still trusting only the old CA is refused by then.
#[tokio::test]
async fn payments_follows_a_ca_rotation_of_its_trust_bundle() {
    use zt_testkit::{atomic_write, server_serial};

    let old = TestPki::new("zt.example");
    let next = TestPki::new("zt.example");
    let (old_ca, next_ca) = (
        std::fs::read(old.ca_cert()).unwrap(),
        std::fs::read(next.ca_cert()).unwrap(),
    );
    let server = old.issue("ledger", LEDGER_ID, &["localhost"]);
    let payments = old.issue("payments", PAYMENTS_ID, &[]);
    // The ledger's own bundle holds both CAs throughout: this test rotates the client's.
    let server_bundle = old.write("server-bundle.pem", [&old_ca[..], &next_ca].concat());
    let mut config =
        ledger::Config::with_files(&server.cert, &server.key, &server_bundle, Path::new(POLICY));
    config.reload_interval = Duration::from_millis(100);
    let server_side = ledger::Server::load(config).unwrap();
    let handshakes = server_side.metrics().clone();
    let full_handshakes = || {
        let text = handshakes.encode();
        let prefix = "zt_tls_handshakes_total{kind=\"full\"} ";
        text.lines()
            .find_map(|line| line.strip_prefix(prefix)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let ledger = server_side
        .spawn(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap();

    let bundle = old.write("client-bundle.pem", &old_ca);
    let config = client_config(ledger.addr, &payments, &bundle, &[]);
    let client = Ledger::connect(&config, &payments.cert, &payments.key).unwrap();
    let metrics = zt_telemetry::Metrics::new();
    let mut reloader = client.watch(
        zt_reload::Reloader::new(Duration::from_millis(50), metrics.clone()),
        "tls",
    );
    client.balance("alice").await.expect("step 1: old");

    atomic_write(&bundle, [&old_ca[..], &next_ca].concat());
    assert_eq!(reloader.check(false).await, 1);
    client.balance("alice").await.expect("step 2: old + new");

    let renewed = next.issue("ledger-next", LEDGER_ID, &["localhost"]);
    let before = server_serial(ledger.addr, &payments, &server_bundle).await;
    atomic_write(&server.key, std::fs::read(&renewed.key).unwrap());
    atomic_write(&server.cert, std::fs::read(&renewed.cert).unwrap());
    let mut rotated = false;
    for _ in 0..100 {
        rotated = server_serial(ledger.addr, &payments, &server_bundle).await != before;
        if rotated {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rotated, "the ledger serves its new-CA certificate");
    atomic_write(&bundle, &next_ca);
    assert_eq!(reloader.check(false).await, 1);
    assert_eq!(client.tls().generation(), 2);
    let handshakes_before = full_handshakes();
    client
        .balance("alice")
        .await
        .expect("step 3: new, on a new connection to the ledger's new certificate");
    assert_eq!(
        full_handshakes(),
        handshakes_before + 1,
        "step 3 made a new handshake, verified with the new CA only"
    );

    let stale = old.write("stale-bundle.pem", &old_ca);
    let stale = Ledger::connect(
        &client_config(ledger.addr, &payments, &stale, &[]),
        &payments.cert,
        &payments.key,
    )
    .unwrap();
    let refused = stale.balance("alice").await.unwrap_err().to_string();
    assert!(
        refused.ends_with("certificate not issued by a CA trusted for its trust domain"),
        "{refused}"
    );
    assert_eq!(
        ledger.service.handled(),
        3,
        "payments' three calls, not the stale one"
    );
    assert!(
        !metrics.encode().contains("result=\"error\""),
        "{}",
        metrics.encode()
    );
}

/// A broken key at reload leaves payments with its last good material (the reload fails,
/// is counted against the file, and no new connection is made with it); a good pair later
/// is picked up.
#[tokio::test]
async fn a_broken_file_at_reload_keeps_the_last_good_material() {
    let pki = TestPki::new("zt.example");
    let server = pki.issue("ledger", LEDGER_ID, &["localhost"]);
    let payments = pki.issue("payments", PAYMENTS_ID, &[]);
    let ledger = serve_local(&server, &pki.ca_cert()).await;
    let config = client_config(ledger.addr, &payments, &pki.ca_cert(), &[]);
    let client = Ledger::connect(&config, &payments.cert, &payments.key).unwrap();
    client.balance("alice").await.unwrap();

    let metrics = zt_telemetry::Metrics::new();
    let reloader = zt_reload::Reloader::new(Duration::from_millis(50), metrics.clone());
    let mut reloader = client.watch(reloader, "tls");
    zt_testkit::atomic_write(&payments.key, "-----BEGIN PRIVATE KEY-----\ntruncated\n");
    assert_eq!(
        reloader.check(false).await,
        0,
        "the broken key is not loaded"
    );
    assert_eq!(client.tls().generation(), 0);
    let failed = format!(
        "zt_reloads_total{{file=\"{}\",result=\"error\"}} 1",
        payments.key.display()
    );
    assert!(metrics.encode().contains(&failed), "{}", metrics.encode());
    client.balance("alice").await.expect("still working");

    let good = pki.issue("renewed", PAYMENTS_ID, &[]);
    zt_testkit::atomic_write(&payments.key, std::fs::read(&good.key).unwrap());
    zt_testkit::atomic_write(&payments.cert, std::fs::read(&good.cert).unwrap());
    assert_eq!(reloader.check(false).await, 1, "the good pair is loaded");
    assert_eq!(client.tls().generation(), 1);
    client
        .balance("alice")
        .await
        .expect("working with the new pair");
    assert_eq!(ledger.service.handled(), 3);
}

/// The ledger restarts while payments is making transfers: every transfer completes, each
/// exactly once, and the books outlive the process. The ledger drains in-flight RPCs on
/// shutdown, so a transfer either finished on the old instance (its answer delivered) or is
/// retried, with backoff, to the new one. Handler counts prove no transfer ran twice and no
/// answer was a replay; the new instance, on the same SQLite file, holds every balance the old
/// one left, and a retry of a transfer made before the restart gets the original back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_survive_a_ledger_restart_exactly_once() {
    const TRANSFERS: u64 = 40;
    let pki = TestPki::new("zt.example");
    let server = pki.issue("ledger", LEDGER_ID, &["localhost"]);
    let payments = pki.issue("payments", PAYMENTS_ID, &[]);
    // The books live beside the test's certificates, in the PKI's temporary directory.
    let books = pki.ca_cert().with_file_name("ledger.db");
    let database: ledger::store::DatabaseUrl =
        format!("sqlite://{}", books.display()).parse().unwrap();
    let durable = |listener: TcpListener| {
        let mut config = ledger::Config::with_files(
            &server.cert,
            &server.key,
            &pki.ca_cert(),
            Path::new(POLICY),
        );
        config.database = database.clone();
        ledger::Server::load(config)
            .unwrap()
            .spawn(listener)
            .unwrap()
    };
    let first = durable(TcpListener::bind("127.0.0.1:0").await.unwrap());
    let addr = first.addr;
    let config = client_config(addr, &payments, &pki.ca_cert(), &["--attempts", "8"]);
    let client = Arc::new(Ledger::connect(&config, &payments.cert, &payments.key).unwrap());
    let transfer = |i: u64| pb::TransferRequest {
        idempotency_key: format!("restart-{i}"),
        from_account: "alice".into(),
        to_account: "bob".into(),
        amount_cents: 1,
        memo: String::new(),
    };

    let load = {
        let client = client.clone();
        tokio::spawn(async move {
            let (mut replayed, mut first_applied) = (0, None);
            for i in 0..TRANSFERS {
                let response = client
                    .transfer(transfer(i))
                    .await
                    .unwrap_or_else(|e| panic!("transfer {i} failed: {e}"));
                replayed += u64::from(response.replayed);
                first_applied.get_or_insert(response.transfer);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (replayed, first_applied)
        })
    };

    let old = first.service.clone();
    while old.handled() < 10 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(first); // graceful shutdown: in-flight RPCs finish, new ones are refused
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut listener = None;
    for _ in 0..50 {
        if let Ok(bound) = TcpListener::bind(addr).await {
            listener = Some(bound);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = durable(listener.expect("the port frees"));

    let (replayed, first_applied) = load.await.unwrap();
    let (before, after) = (old.handled(), second.service.handled());
    assert_eq!(replayed, 0, "no answer was a replay");
    assert_eq!(
        before + after,
        TRANSFERS,
        "each transfer ran exactly once: {before} before the restart, {after} after"
    );
    assert!(before >= 10 && after >= 1, "{before} before, {after} after");

    let cents = |account: &'static str| {
        let client = client.clone();
        async move { client.balance(account).await.unwrap() }
    };
    let transfers = i64::try_from(TRANSFERS).unwrap();
    assert_eq!(
        cents("alice").await,
        100_000_00 - transfers,
        "every cent kept"
    );
    assert_eq!(cents("bob").await, 50_000_00 + transfers);
    let retried = client.transfer(transfer(0)).await.unwrap();
    assert!(retried.replayed, "the key from before the restart was kept");
    assert_eq!(
        retried.transfer,
        first_applied.unwrap(),
        "the original transfer"
    );
    assert_eq!(cents("alice").await, 100_000_00 - transfers, "applied once");
}

/// Sixteen payments clients call without pause, each on its own connection, across several
/// maximum connection ages (1 s, drain grace 3 s): each connection is sent GOAWAY, its calls
/// in flight finish, a call the closing connection no longer takes is retried at once on the
/// next one, and not one call fails. The handshake count shows the connections were replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_age_under_load_loses_no_call() {
    const CLIENTS: usize = 16;
    const RUN: Duration = Duration::from_secs(5);
    let pki = TestPki::new("zt.example");
    let server = pki.issue("ledger", LEDGER_ID, &["localhost"]);
    let payments = pki.issue("payments", PAYMENTS_ID, &[]);
    let mut config =
        ledger::Config::with_files(&server.cert, &server.key, &pki.ca_cert(), Path::new(POLICY));
    config.limits.max_connection_age = Some(Duration::from_secs(1));
    config.limits.drain_timeout = Duration::from_secs(3);
    let loaded = ledger::Server::load(config).unwrap();
    let metrics = loaded.metrics().clone();
    let ledger = loaded
        .spawn(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap();

    let deadline = Instant::now() + RUN;
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let config = client_config(ledger.addr, &payments, &pki.ca_cert(), &[]);
        let me = Ledger::connect(&config, &payments.cert, &payments.key).unwrap();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, Vec::new());
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let result = if n.is_multiple_of(4) {
                    me.transfer(pb::TransferRequest {
                        idempotency_key: format!("age-{client}-{n}"),
                        from_account: "alice".into(),
                        to_account: "bob".into(),
                        amount_cents: 1,
                        memo: "age".into(),
                    })
                    .await
                    .map(drop)
                } else {
                    me.balance("alice").await.map(drop)
                };
                match result {
                    Ok(()) => ok += 1,
                    Err(err) => failed.push(err.to_string()),
                }
            }
            (ok, failed)
        }));
    }
    let (mut ok, mut failed) = (0, Vec::new());
    for task in tasks {
        let (o, f) = task.await.unwrap();
        ok += o;
        failed.extend(f);
    }
    let handshakes: u64 = metrics
        .encode()
        .lines()
        .filter(|line| line.starts_with("zt_tls_handshakes_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    println!(
        "{ok} calls over {RUN:?} by {CLIENTS} payments clients, maximum age 1 s: {} failed, \
         {handshakes} handshakes",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} calls failed: {failed:?}",
        failed.len()
    );
    assert!(ok > 1000, "the load ran: {ok} calls");
    assert!(
        handshakes >= 2 * CLIENTS as u64,
        "connections were replaced at their age: {handshakes} handshakes"
    );
}
