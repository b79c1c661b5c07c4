//! Checks of the store of record that hold on every backend: run against SQLite always, and
//! against PostgreSQL when a test server is available.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a panic is a failed assertion"
)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use ledger::book::{BookError, TransferRequest, seed_total};
use ledger::store::Store;
use zt_proto::ledger::v1 as pb;
use zt_proto::ledger::v1::ledger_client::LedgerClient;
use zt_testkit::Identity;

use super::LEDGER_ID;

pub(crate) fn request(key: &str, from: &str, to: &str, cents: i64) -> TransferRequest {
    TransferRequest {
        idempotency_key: key.into(),
        from: from.into(),
        to: to.into(),
        amount_cents: cents,
        memo: String::new(),
    }
}

/// Every balance, in account order.
pub(crate) async fn balances(store: &dyn Store) -> Vec<i64> {
    let mut all = Vec::new();
    for (account, _) in ledger::book::SEED {
        all.push(store.balance(account).await.unwrap());
    }
    all
}

/// A fresh store holds the seed; refusals change nothing; a transfer moves money once per
/// (caller, key), and the same key from another caller is another transfer.
pub(crate) async fn rules_hold(store: &dyn Store) {
    assert_eq!(
        balances(store).await,
        ledger::book::SEED.map(|(_, c)| c),
        "the seed"
    );
    let unknown: fn(&BookError) -> bool =
        |e| matches!(e, BookError::UnknownAccount(a) if a == "nobody");
    let refusals = [
        (
            request("a", "alice", "nobody", 1),
            unknown,
            "unknown account 'nobody'",
        ),
        (
            request("b", "nobody", "alice", 1),
            unknown,
            "unknown account 'nobody'",
        ),
        (
            request("c", "carol", "bob", 25_000_01),
            |e| {
                matches!(
                    e,
                    BookError::InsufficientFunds { account, balance: 25_000_00, requested: 25_000_01 }
                        if account == "carol"
                )
            },
            "insufficient funds in 'carol': balance $25000.00, requested $25000.01",
        ),
        (
            request("d", "alice", "alice", 1),
            |e| matches!(e, BookError::SameAccount),
            "cannot transfer from an account to itself",
        ),
        (
            request("e", "alice", "bob", 0),
            |e| matches!(e, BookError::InvalidAmount(0)),
            "amount must be between $0.01 and $10000000.00, got $0.00",
        ),
    ];
    for (refused, variant, text) in refusals {
        let err = store.transfer("p", &refused, 1).await.unwrap_err();
        assert!(variant(&err), "{refused:?}: {err:?}");
        assert_eq!(err.to_string(), text);
    }
    assert_eq!(
        balances(store).await,
        ledger::book::SEED.map(|(_, c)| c),
        "refusals changed nothing"
    );
    // A refused key was not used up: it can carry a valid transfer now.
    let (first, replayed) = store
        .transfer("p", &request("c", "alice", "bob", 250), 10)
        .await
        .unwrap();
    assert!(!replayed);
    let (again, replayed) = store
        .transfer("p", &request("c", "alice", "bob", 250), 20)
        .await
        .unwrap();
    assert!(replayed);
    assert_eq!(again, first, "the original, timestamp included");
    let reused = store
        .transfer("p", &request("c", "alice", "bob", 251), 30)
        .await
        .unwrap_err();
    assert!(
        matches!(&reused, BookError::KeyReused(key) if key == "c"),
        "{reused:?}"
    );
    let (other, replayed) = store
        .transfer("q", &request("c", "alice", "bob", 250), 40)
        .await
        .unwrap();
    assert!(!replayed, "keys are per caller");
    assert_ne!(other.id, first.id);
    assert_eq!(store.balance("alice").await.unwrap(), 100_000_00 - 500);
    let listed = store.list(Some("bob"), 10).await.unwrap();
    assert_eq!(listed, [other.clone(), first.clone()], "newest first");
    assert_eq!(store.list(None, 1).await.unwrap(), [other]);
    let unknown = store.list(Some("nobody"), 1).await.unwrap_err();
    assert!(
        matches!(&unknown, BookError::UnknownAccount(a) if a == "nobody"),
        "{unknown:?}"
    );
    assert_eq!(store.total().await.unwrap(), seed_total());
}

/// Balances and idempotency keys are in the database: a second store from `open` (a second
/// process, in effect: the first store is gone by then) sees the same books, and a retry of a
/// transfer made before the restart gets the original back.
pub(crate) async fn books_and_keys_survive_a_restart<S: Store>(open: impl AsyncFn() -> S) {
    let transfer = request("before-restart", "alice", "carol", 12_34);
    let before = {
        let store = open().await;
        let (t, _) = store.transfer("p", &transfer, 7).await.unwrap();
        (t, balances(&store).await)
    };
    let store = open().await;
    assert_eq!(balances(&store).await, before.1, "balances kept");
    let (again, replayed) = store.transfer("p", &transfer, 8).await.unwrap();
    assert!(replayed, "the key was kept");
    assert_eq!(again, before.0);
    assert_eq!(balances(&store).await, before.1, "applied once");
}

/// `clients` gRPC clients per ledger, each making `per_client` transfers between random
/// accounts through the ledger it is bound to (alternating), every tenth one sent to both
/// ledgers at once with the same key. Returns how many were applied (not replays).
pub(crate) async fn transfer_storm(
    ledgers: [SocketAddr; 2],
    payments: &Identity,
    ca: &Path,
    clients: usize,
    per_client: usize,
) -> usize {
    let accounts = ["alice", "bob", "carol"];
    let mut tasks = Vec::new();
    for c in 0..clients * 2 {
        let mut mine = LedgerClient::new(zt_testkit::mtls_channel(
            ledgers[c % 2],
            payments,
            ca,
            LEDGER_ID,
        ));
        let mut other = LedgerClient::new(zt_testkit::mtls_channel(
            ledgers[(c + 1) % 2],
            payments,
            ca,
            LEDGER_ID,
        ));
        tasks.push(tokio::spawn(async move {
            let mut applied = 0;
            for n in 0..per_client {
                let from = accounts[rand::random_range(0..3)];
                let to = accounts
                    .iter()
                    .copied()
                    .filter(|a| *a != from)
                    .nth(rand::random_range(0..2))
                    .unwrap();
                let request = pb::TransferRequest {
                    idempotency_key: format!("storm-{c}-{n}"),
                    from_account: from.into(),
                    to_account: to.into(),
                    amount_cents: rand::random_range(1..5_000_00),
                    memo: String::new(),
                };
                if n % 10 == 0 {
                    // The same transfer on both replicas at once: applied at most once; when
                    // both succeed, one answer is the replay of the other.
                    let (a, b) =
                        tokio::join!(mine.transfer(request.clone()), other.transfer(request));
                    match (a, b) {
                        (Ok(a), Ok(b)) => {
                            let (a, b) = (a.into_inner(), b.into_inner());
                            assert_eq!(a.transfer, b.transfer, "one transfer, two answers");
                            assert!(a.replayed != b.replayed, "exactly one applied it");
                            applied += 1;
                        }
                        // A refusal uses no key: the attempt that lost the race for the key
                        // may have been refused for lack of funds before the other found
                        // enough (a transfer in between credited the account).
                        (Ok(ok), Err(refused)) | (Err(refused), Ok(ok)) => {
                            assert_eq!(
                                refused.code(),
                                tonic::Code::FailedPrecondition,
                                "{refused}"
                            );
                            assert!(!ok.into_inner().replayed);
                            applied += 1;
                        }
                        (Err(a), Err(b)) => {
                            assert_eq!(a.code(), tonic::Code::FailedPrecondition, "{a}");
                            assert_eq!(b.code(), tonic::Code::FailedPrecondition, "{b}");
                        }
                    }
                } else {
                    match mine.transfer(request).await {
                        Ok(response) => {
                            assert!(!response.into_inner().replayed);
                            applied += 1;
                        }
                        // Insufficient funds: refused whole.
                        Err(status) => {
                            assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status}")
                        }
                    }
                }
            }
            applied
        }));
    }
    let mut applied = 0;
    for task in tasks {
        applied += task.await.unwrap();
    }
    applied
}

/// How many transfers the store holds (at most 100,000).
pub(crate) async fn transfers_held(store: &Arc<dyn Store>) -> usize {
    store.list(None, 100_000).await.unwrap().len()
}
