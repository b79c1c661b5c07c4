//! The store of record on PostgreSQL over mutual TLS, against the throwaway server of
//! `scripts/postgres-test.sh` (which sets `ZT_TEST_POSTGRES`, `ZT_TEST_POSTGRES_PKI` and
//! `ZT_TEST_POSTGRES_PASSWORD`). Without it each test says why it skips, unless
//! `ZT_REQUIRE_POSTGRES=1` makes that a failure.
//!
//! What the server must refuse: a client without a certificate, a password (over TLS or
//! not), a certificate of another workload for the ledger's role. What the ledger must refuse:
//! a server certificate from another CA. What must hold: the rules, the books across a
//! restart, money across two ledgers, and a renewed certificate on new connections.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

mod common;

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Instant;

use common::books::{
    balances, books_and_keys_survive_a_restart, request, rules_hold, transfer_storm, transfers_held,
};
use common::{LEDGER_ID, PAYMENTS_ID};
use ledger::book::{BookError, seed_total};
use ledger::store::{ClientTls, DatabaseUrl, PgStore, Store};
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use zt_proto::ledger::v1 as pb;
use zt_proto::ledger::v1::ledger_client::LedgerClient;
use zt_testkit::Identity;

/// The test server, its CA (to issue certificates it trusts) and a scratch directory.
struct Pg {
    url: String,
    ca: zt_pki::Ca,
    ca_cert: PathBuf,
    password: String,
    dir: tempfile::TempDir,
}

fn postgres(test: &str) -> Option<Pg> {
    let Ok(url) = std::env::var("ZT_TEST_POSTGRES") else {
        assert!(
            std::env::var("ZT_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "ZT_REQUIRE_POSTGRES=1 but ZT_TEST_POSTGRES is not set: run scripts/postgres-test.sh"
        );
        println!("{test}: skipped: ZT_TEST_POSTGRES is not set (scripts/postgres-test.sh sets it)");
        return None;
    };
    let pki = PathBuf::from(std::env::var("ZT_TEST_POSTGRES_PKI").unwrap());
    let (ca_cert, ca_key) = (pki.join("ca.pem"), pki.join("ca.key"));
    let ca = zt_pki::Ca::from_pem(
        &std::fs::read_to_string(&ca_cert).unwrap(),
        &std::fs::read_to_string(&ca_key).unwrap(),
        &ca_cert,
        &ca_key,
    )
    .unwrap();
    Some(Pg {
        url,
        ca,
        ca_cert,
        password: std::env::var("ZT_TEST_POSTGRES_PASSWORD").unwrap_or_default(),
        dir: tempfile::tempdir().unwrap(),
    })
}

impl Pg {
    /// Issues `spiffe_id` from the server's CA into `name.pem` / `name.key`.
    fn issue(&self, name: &str, spiffe_id: &str) -> Identity {
        let request = zt_pki::LeafRequest {
            lifetime: std::time::Duration::from_secs(3600),
            ..zt_pki::LeafRequest::new(zt_identity::SpiffeId::new(spiffe_id).unwrap())
        };
        let leaf = self.ca.issue(&request).unwrap();
        let identity = Identity {
            cert: self.dir.path().join(format!("{name}.pem")),
            key: self.dir.path().join(format!("{name}.key")),
        };
        zt_testkit::atomic_write(&identity.cert, leaf.cert_pem);
        zt_testkit::atomic_write(&identity.key, leaf.key_pem);
        identity
    }

    fn tls(&self, who: &Identity) -> ClientTls {
        ClientTls {
            cert: who.cert.clone(),
            key: who.key.clone(),
            ca: self.ca_cert.clone(),
        }
    }

    /// A database of its own for one test (the role may create databases), as a URL.
    async fn fresh_database(&self, ledger: &Identity) -> String {
        let mut admin =
            PgConnection::connect_with(&PgStore::options(&self.url, &self.tls(ledger)).unwrap())
                .await
                .unwrap();
        let name = format!("ledger_{:016x}", rand::random::<u64>());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let (base, _) = self.url.rsplit_once('/').unwrap();
        format!("{base}/{name}")
    }

    /// The URL's options with TLS verified against the server's CA, no client certificate.
    fn without_certificate(&self) -> PgConnectOptions {
        PgConnectOptions::from_str(&self.url)
            .unwrap()
            .ssl_mode(PgSslMode::VerifyFull)
            .ssl_root_cert(&self.ca_cert)
    }
}

async fn refused(options: PgConnectOptions) -> String {
    match PgConnection::connect_with(&options).await {
        Ok(_) => panic!("the database let the connection in"),
        Err(err) => err.to_string(),
    }
}

#[tokio::test]
async fn postgres_refuses_a_client_without_a_certificate() {
    let Some(pg) = postgres("postgres_refuses_a_client_without_a_certificate") else {
        return;
    };
    let refusal = refused(pg.without_certificate()).await;
    assert!(
        refusal.contains("connection requires a valid client certificate"),
        "{refusal}"
    );
}

/// The role has a password; pg_hba.conf accepts no password method, over TLS or plaintext.
#[tokio::test]
async fn postgres_refuses_password_logins() {
    let Some(pg) = postgres("postgres_refuses_password_logins") else {
        return;
    };
    assert!(!pg.password.is_empty(), "the role has a password to refuse");
    let over_tls = refused(pg.without_certificate().password(&pg.password)).await;
    assert!(
        over_tls.contains("connection requires a valid client certificate"),
        "{over_tls}"
    );
    let plaintext = refused(
        PgConnectOptions::from_str(&pg.url)
            .unwrap()
            .ssl_mode(PgSslMode::Disable)
            .password(&pg.password),
    )
    .await;
    assert!(
        plaintext.contains("no pg_hba.conf entry") && plaintext.contains("no encryption"),
        "{plaintext}"
    );
}

/// The certificate's name is the role: the ledger's certificate logs in as `ledger`; a
/// genuine certificate of another workload (payments, same CA) does not.
#[tokio::test]
async fn postgres_maps_the_certificate_to_the_role() {
    let Some(pg) = postgres("postgres_maps_the_certificate_to_the_role") else {
        return;
    };
    let ledger = pg.issue("ledger", LEDGER_ID);
    let mut connection =
        PgConnection::connect_with(&PgStore::options(&pg.url, &pg.tls(&ledger)).unwrap())
            .await
            .unwrap();
    let (role, version): (String, String) = sqlx::query_as(
        "SELECT current_user::text, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    assert_eq!(role, "ledger");
    assert_eq!(version, "TLSv1.3");

    let payments = pg.issue("payments", PAYMENTS_ID);
    let refusal = refused(PgStore::options(&pg.url, &pg.tls(&payments)).unwrap()).await;
    assert!(
        refusal.contains("certificate authentication failed for user \"ledger\""),
        "{refusal}"
    );
}

/// `verify-full`: a server whose certificate another CA issued is refused by the ledger.
#[tokio::test]
async fn the_ledger_refuses_a_database_certificate_from_another_ca() {
    let Some(pg) = postgres("the_ledger_refuses_a_database_certificate_from_another_ca") else {
        return;
    };
    let ledger = pg.issue("ledger", LEDGER_ID);
    let other = zt_testkit::TestPki::new("zt.example");
    let tls = ClientTls {
        ca: other.ca_cert(),
        ..pg.tls(&ledger)
    };
    let refusal = refused(PgStore::options(&pg.url, &tls).unwrap()).await;
    assert!(refusal.contains("UnknownIssuer"), "{refusal}");
}

#[tokio::test]
async fn the_rules_hold_in_postgres() {
    let Some(pg) = postgres("the_rules_hold_in_postgres") else {
        return;
    };
    let ledger = pg.issue("ledger", LEDGER_ID);
    let url = pg.fresh_database(&ledger).await;
    rules_hold(&PgStore::open(&url, &pg.tls(&ledger)).await.unwrap()).await;
}

/// Balances and idempotency keys are in the database: see [`books_and_keys_survive_a_restart`].
#[tokio::test]
async fn postgres_books_and_keys_survive_a_restart() {
    let Some(pg) = postgres("postgres_books_and_keys_survive_a_restart") else {
        return;
    };
    let ledger = pg.issue("ledger", LEDGER_ID);
    let url = pg.fresh_database(&ledger).await;
    books_and_keys_survive_a_restart(async || PgStore::open(&url, &pg.tls(&ledger)).await.unwrap())
        .await;
}

/// Two ledgers (full servers, gRPC over mTLS), each with its own pool to one PostgreSQL
/// database, take concurrent transfers, some sent to both at once with the same key: money
/// is conserved and each key applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ledgers_on_postgres_conserve_money() {
    let Some(pg) = postgres("two_ledgers_on_postgres_conserve_money") else {
        return;
    };
    let ledger = pg.issue("ledger", LEDGER_ID);
    let payments = pg.issue("payments", PAYMENTS_ID);
    let url: DatabaseUrl = pg.fresh_database(&ledger).await.parse().unwrap();
    let mut ledgers = Vec::new();
    for _ in 0..2 {
        let mut config = common::config(&ledger, &pg.ca_cert);
        config.database = url.clone();
        ledgers.push(common::start_with(config).await.0);
    }
    let started = Instant::now();
    let applied = transfer_storm(
        [ledgers[0].addr, ledgers[1].addr],
        &payments,
        &pg.ca_cert,
        4,
        25,
    )
    .await;
    let elapsed = started.elapsed();
    let store: Arc<dyn Store> = ledgers[1].service.store().unwrap();
    assert_eq!(
        store.total().await.unwrap(),
        seed_total(),
        "money conserved"
    );
    assert_eq!(transfers_held(&store).await, applied, "each applied once");
    println!(
        "{applied} transfers applied by 2 ledgers on one PostgreSQL database in {elapsed:?} \
         ({:.0}/s, with refusals and duplicate sends)",
        applied as f64 / elapsed.as_secs_f64()
    );
    assert!(applied > 50, "the storm ran: {applied}");
}

/// The options are built once, as the pool's are; each new connection reads the keystore
/// files again, so after a renewal (new key, new certificate, written in place) the next
/// connection presents the new certificate: PostgreSQL sees its serial.
#[tokio::test]
async fn a_renewed_certificate_reaches_new_connections() {
    let Some(pg) = postgres("a_renewed_certificate_reaches_new_connections") else {
        return;
    };
    let ledger = pg.issue("ledger", LEDGER_ID);
    let options = PgStore::options(&pg.url, &pg.tls(&ledger)).unwrap();
    let serial = async |options: &PgConnectOptions| -> String {
        let mut connection = PgConnection::connect_with(options).await.unwrap();
        let (serial,): (String,) = sqlx::query_as(
            "SELECT client_serial::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        )
        .fetch_one(&mut connection)
        .await
        .unwrap();
        serial
    };
    let before = serial(&options).await;
    let renewed = pg.issue("renewed", LEDGER_ID);
    zt_testkit::atomic_write(&ledger.key, std::fs::read(&renewed.key).unwrap());
    zt_testkit::atomic_write(&ledger.cert, std::fs::read(&renewed.cert).unwrap());
    let after = serial(&options).await;
    assert_ne!(before, after, "the renewed certificate was presented");
    assert_eq!(after, serial_of(&renewed.cert));
}

/// The certificate's serial as PostgreSQL prints it (decimal).
fn serial_of(cert: &Path) -> String {
    let pem = std::fs::read_to_string(cert).unwrap();
    let hex = zt_pki::leaf_serial(&pem, cert).unwrap();
    let mut digits = vec![0u32]; // little-endian base 10^9
    for nibble in hex.chars().filter(char::is_ascii_hexdigit) {
        let mut carry = nibble.to_digit(16).unwrap();
        for digit in &mut digits {
            let value = u64::from(*digit) * 16 + u64::from(carry);
            *digit = u32::try_from(value % 1_000_000_000).unwrap();
            carry = u32::try_from(value / 1_000_000_000).unwrap();
        }
        if carry > 0 {
            digits.push(carry);
        }
    }
    let mut text = digits.last().unwrap().to_string();
    for digit in digits.iter().rev().skip(1) {
        text.push_str(&format!("{digit:09}"));
    }
    text
}

/// A TCP relay to the database that can be cut: every relayed connection closed, new ones
/// closed at once. Stands for the network (or the server) going away under a serving ledger.
struct Relay {
    port: u16,
    open: Arc<std::sync::atomic::AtomicBool>,
    relays: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    _accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn to(target: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let relays = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (flag, tasks) = (Arc::clone(&open), Arc::clone(&relays));
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !flag.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                tasks.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Self {
            port,
            open,
            relays,
            _accept: accept,
        }
    }

    /// A relay to the server of `url`, and `url` through it.
    async fn for_url(url: &str) -> (Self, String) {
        let (scheme_host, rest) = url.rsplit_once(':').unwrap();
        let (port, database) = rest.split_once('/').unwrap();
        let relay = Self::to(port.parse().unwrap()).await;
        let relayed = format!("{scheme_host}:{}/{database}", relay.port);
        (relay, relayed)
    }

    fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for task in self.relays.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The database goes away while the ledger serves: a transfer then fails `Unavailable`
/// (UNAVAILABLE on the wire, which clients retry) and applies nothing; once the database is
/// back, the same transfer (same key) is applied, once, on a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_lost_while_serving_is_unavailable_and_nothing_is_half_applied() {
    let Some(pg) =
        postgres("a_database_lost_while_serving_is_unavailable_and_nothing_is_half_applied")
    else {
        return;
    };
    let ledger = pg.issue("ledger", LEDGER_ID);
    let url = pg.fresh_database(&ledger).await;
    let (relay, relayed) = Relay::for_url(&url).await;
    let store = PgStore::open(&relayed, &pg.tls(&ledger)).await.unwrap();
    store
        .transfer("p", &request("before", "alice", "bob", 1_00), 1)
        .await
        .unwrap();
    let before = balances(&store).await;

    relay.cut();
    let lost = store
        .transfer("p", &request("during", "alice", "bob", 2_00), 2)
        .await;
    let Err(BookError::Unavailable(cause)) = &lost else {
        panic!("{lost:?}");
    };
    // The driver's own error is kept, typed, and said once in the error's text.
    assert!(
        matches!(
            cause.as_ref(),
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_)
        ),
        "{cause:?}"
    );
    let err = lost.as_ref().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("the ledger's database is unavailable: {cause}")
    );
    assert_eq!(zt_telemetry::error_line(err), err.to_string());

    relay.restore();
    assert_eq!(balances(&store).await, before, "nothing was applied");
    let (applied, replayed) = store
        .transfer("p", &request("during", "alice", "bob", 2_00), 3)
        .await
        .unwrap();
    assert!(!replayed, "the lost attempt left no key behind");
    assert_eq!(applied.amount_cents, 2_00);
    assert_eq!(store.balance("alice").await.unwrap(), before[0] - 2_00);
    assert_eq!(store.total().await.unwrap(), seed_total());
}

/// The same loss as a caller of the `ledger` binary meets it: UNAVAILABLE, in fixed words that
/// name neither the database (its URL, host, port or name) nor the driver or its error, while
/// the ledger's log has the cause, once for the one failing call, at WARN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_learns_that_the_database_is_unavailable_and_nothing_more() {
    let Some(pg) = postgres("a_caller_learns_that_the_database_is_unavailable_and_nothing_more")
    else {
        return;
    };
    let ledger = pg.issue("ledger", LEDGER_ID);
    let payments = pg.issue("payments", PAYMENTS_ID);
    let url = pg.fresh_database(&ledger).await;
    let (relay, relayed) = Relay::for_url(&url).await;
    let mut child = common::ledger_binary_on(
        &ledger.cert,
        &ledger.key,
        &pg.ca_cert,
        common::demo_policy(),
        &relayed,
    )
    .args(["--log-format", "json"])
    .spawn()
    .unwrap();
    let (addr, stderr) = common::bound_address(&mut child);
    let log = common::json_log(stderr);
    let mut client = LedgerClient::new(zt_testkit::mtls_channel(
        addr,
        &payments,
        &pg.ca_cert,
        LEDGER_ID,
    ));
    let transfer = |key: &str| pb::TransferRequest {
        idempotency_key: key.into(),
        from_account: "alice".into(),
        to_account: "bob".into(),
        amount_cents: 1_00,
        memo: String::new(),
    };
    client.transfer(transfer("before")).await.unwrap();

    relay.cut();
    let lost = client.transfer(transfer("during")).await.unwrap_err();
    relay.restore();
    child.kill().unwrap();
    child.wait().unwrap();
    let log = log.join().unwrap();

    assert_eq!(lost.code(), tonic::Code::Unavailable, "{lost}");
    let warned: Vec<&serde_json::Value> = log
        .iter()
        .filter(|line| {
            line["level"] == "WARN"
                && line["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("database unavailable"))
        })
        .collect();
    assert_eq!(
        warned.len(),
        1,
        "one line for the one failing call: {log:#?}"
    );
    assert_eq!(warned[0]["method"], "Transfer");
    let logged = warned[0]["error"].as_str().unwrap();
    let driver = logged
        .strip_prefix("the ledger's database is unavailable: ")
        .unwrap_or_else(|| panic!("the cause is logged: {logged}"));
    assert!(!driver.is_empty() && !driver.contains("Io("), "{logged}");

    let message = lost.message();
    let (_, database) = url.rsplit_once('/').unwrap();
    let port = relayed
        .rsplit_once(':')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap();
    for secret in [
        relayed.as_str(),
        "postgres",
        "localhost",
        port,
        database,
        "sqlx",
        driver,
    ] {
        assert!(!message.contains(secret), "{secret:?} in {message:?}");
    }
    assert!(message.contains("unavailable"), "{message}");
    println!("the caller read: {message}\nthe log says: {logged}");
}
