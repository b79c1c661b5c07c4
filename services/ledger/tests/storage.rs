//! The store of record on SQLite: the rules hold in the database, the books survive a
//! restart, two ledgers on one file conserve money and apply each key once, and a database
//! missing at startup is waited for.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::books::{books_and_keys_survive_a_restart, rules_hold, transfer_storm, transfers_held};
use common::{config, pki};
use ledger::book::{BookError, seed_total};
use ledger::store::{DatabaseUrl, SqliteStore, Store};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use zt_proto::ledger::v1 as pb;
use zt_proto::ledger::v1::ledger_client::LedgerClient;

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("ledger.db").display())
}

#[tokio::test]
async fn the_rules_hold_in_sqlite() {
    rules_hold(&SqliteStore::open("sqlite::memory:").await.unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    rules_hold(&SqliteStore::open(&sqlite_url(&dir)).await.unwrap()).await;
}

/// Balances and idempotency keys are on disk: a second store on the same file, after the first
/// is gone, sees the same books (see [`books_and_keys_survive_a_restart`]).
#[tokio::test]
async fn sqlite_books_and_keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    books_and_keys_survive_a_restart(async || SqliteStore::open(&url).await.unwrap()).await;
}

/// Two ledgers (full servers, gRPC over mTLS) sharing one SQLite file take concurrent
/// transfers, some of them sent to both at once with the same key: the total never changes,
/// each key is applied once, and every applied transfer is in the books exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ledgers_on_one_sqlite_file_conserve_money() {
    let p = pki();
    let dir = tempfile::tempdir().unwrap();
    let url: DatabaseUrl = sqlite_url(&dir).parse().unwrap();
    let mut ledgers = Vec::new();
    for _ in 0..2 {
        let mut config = config(&p.ledger, &p.pki.ca_cert());
        config.database = url.clone();
        ledgers.push(common::start_with(config).await.0);
    }
    let started = Instant::now();
    let applied = transfer_storm(
        [ledgers[0].addr, ledgers[1].addr],
        &p.payments,
        &p.pki.ca_cert(),
        4,
        25,
    )
    .await;
    let elapsed = started.elapsed();
    let store = ledgers[0].service.store().unwrap();
    assert_eq!(
        store.total().await.unwrap(),
        seed_total(),
        "money conserved"
    );
    assert_eq!(transfers_held(&store).await, applied, "each applied once");
    println!(
        "{applied} transfers applied by 2 ledgers on one SQLite file in {elapsed:?} \
         ({:.0}/s, with refusals and duplicate sends)",
        applied as f64 / elapsed.as_secs_f64()
    );
    assert!(applied > 50, "the storm ran: {applied}");
}

/// A database that cannot be opened at startup (its directory does not exist yet) is waited
/// for: meanwhile no connection is accepted (no handshake completes), then the ledger serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_missing_at_startup_is_waited_for() {
    let p = pki();
    let dir = tempfile::tempdir().unwrap();
    let later = dir.path().join("not-yet");
    let mut config = config(&p.ledger, &p.pki.ca_cert());
    config.database = format!("sqlite://{}", later.join("ledger.db").display())
        .parse()
        .unwrap();
    let (ledger, _) = common::start_with(config).await;
    let ca = p.pki.ca_cert();
    let call = || {
        let mut client = LedgerClient::new(zt_testkit::mtls_channel(
            ledger.addr,
            &p.payments,
            &ca,
            common::LEDGER_ID,
        ));
        async move {
            client
                .get_balance(pb::GetBalanceRequest {
                    account_id: "alice".into(),
                })
                .await
        }
    };
    let health = || {
        let mut client = HealthClient::new(zt_testkit::mtls_channel(
            ledger.addr,
            &p.payments,
            &ca,
            common::LEDGER_ID,
        ));
        async move {
            let mut statuses = Vec::new();
            for service in ["", "ledger.v1.Ledger"] {
                let request = HealthCheckRequest {
                    service: service.into(),
                };
                statuses.push(client.check(request).await.unwrap().into_inner().status());
            }
            statuses
        }
    };
    // It listens and answers at once, but is not ready: NOT_SERVING, and calls UNAVAILABLE
    // (which clients retry), with no handler reaching the books.
    let waiting = call().await.unwrap_err();
    assert_eq!(waiting.code(), tonic::Code::Unavailable, "{waiting:?}");
    assert_eq!(health().await, [ServingStatus::NotServing; 2]);
    assert!(ledger.service.store().is_none(), "not attached");

    std::fs::create_dir(&later).unwrap();
    common::eventually("the ledger serves once its database opens", async || {
        call().await.is_ok()
    })
    .await;
    assert_eq!(health().await, [ServingStatus::Serving; 2]);
    let store: Arc<dyn Store> = ledger.service.store().unwrap();
    assert_eq!(store.total().await.unwrap(), seed_total());
}

/// A database URL that can never work stops the ledger at once, with one line naming the
/// database, what was being done and the driver's reason, each said once; the store keeps the
/// driver's error itself as the cause.
#[tokio::test]
async fn a_database_url_that_can_never_work_stops_the_ledger_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{}?mode=sometimes", sqlite_url(&dir));
    let refused = SqliteStore::open(&url).await.unwrap_err();
    let BookError::Storage(cause) = &refused else {
        panic!("{refused:?}");
    };
    assert!(
        matches!(cause.as_ref(), sqlx::Error::Configuration(_)),
        "{cause:?}"
    );
    assert_eq!(
        refused.to_string(),
        format!("the ledger's database failed: {cause}")
    );

    let p = pki();
    let mut config = config(&p.ledger, &p.pki.ca_cert());
    config.database = url.parse().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stopped = ledger::Server::load(config)
        .unwrap()
        .run(listener, std::future::pending())
        .await
        .unwrap_err();
    let line = zt_telemetry::error_line(&stopped);
    assert_eq!(
        line,
        format!("database {url}: opening the books: the ledger's database failed: {cause}")
    );
    assert!(
        !dir.path().join("ledger.db").exists(),
        "nothing was created"
    );
}
