//! The gRPC handlers: translate between the wire contract and the [`Store`].
//!
//! By the time a handler runs, the authorization layer has verified the caller and inserted its
//! [`PeerIdentity`]; handlers read it (to record who moved money) but never decide access.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use zt_identity::PeerIdentity;
use zt_proto::ledger::v1 as pb;

use crate::book::{BookError, Transfer, TransferRequest};
use crate::store::Store;

/// Transfers returned by `ListTransfers` when the caller asks for no particular number.
const DEFAULT_LIST_LIMIT: usize = 100;
/// Most transfers one `ListTransfers` call returns.
const MAX_LIST_LIMIT: usize = 1000;

/// The `ledger.v1.Ledger` service. Clones share the store and the counter.
#[derive(Debug, Clone, Default)]
pub struct LedgerService {
    /// Set once the database is reachable and migrated; the server serves only after that.
    store: Arc<OnceLock<Arc<dyn Store>>>,
    /// Handler invocations: lets operators (and tests) see that refused requests never got here.
    handled: Arc<AtomicU64>,
}

impl LedgerService {
    /// A service with no store yet: its handlers answer `UNAVAILABLE` until
    /// [`LedgerService::attach`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives the service (and every clone) its store. Only the first call has an effect.
    pub fn attach(&self, store: Arc<dyn Store>) {
        let _ = self.store.set(store);
    }

    /// The store, once attached: to observe the books (tests check balances with it).
    pub fn store(&self) -> Option<Arc<dyn Store>> {
        self.store.get().cloned()
    }

    /// How many times any handler has run.
    pub fn handled(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }

    /// Counts the call and returns the caller's identity, which the authorization layer put
    /// in the request. Its absence means the layer is missing: refuse rather than act
    /// anonymously.
    fn enter<T>(&self, request: &Request<T>) -> Result<Arc<PeerIdentity>, Status> {
        self.handled.fetch_add(1, Ordering::Relaxed);
        request
            .extensions()
            .get::<Arc<PeerIdentity>>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("no verified peer identity"))
    }

    fn books(&self) -> Result<&dyn Store, Status> {
        self.store
            .get()
            .map(|store| &**store)
            .ok_or_else(|| Status::unavailable("the ledger's database is not reachable yet"))
    }
}

type TransferStream = Pin<Box<dyn Stream<Item = Result<pb::TransferRecord, Status>> + Send>>;

#[tonic::async_trait]
impl pb::ledger_server::Ledger for LedgerService {
    async fn get_balance(
        &self,
        request: Request<pb::GetBalanceRequest>,
    ) -> Result<Response<pb::GetBalanceResponse>, Status> {
        self.enter(&request)?;
        let account_id = request.into_inner().account_id;
        let balance_cents = self
            .books()?
            .balance(&account_id)
            .await
            .map_err(|e| status("GetBalance", e))?;
        Ok(Response::new(pb::GetBalanceResponse {
            account_id,
            balance_cents,
            currency: "USD".into(),
        }))
    }

    async fn transfer(
        &self,
        request: Request<pb::TransferRequest>,
    ) -> Result<Response<pb::TransferResponse>, Status> {
        let caller = self.enter(&request)?;
        let r = request.into_inner();
        let request = TransferRequest {
            idempotency_key: r.idempotency_key,
            from: r.from_account,
            to: r.to_account,
            amount_cents: r.amount_cents,
            memo: r.memo,
        };
        let (transfer, replayed) = self
            .books()?
            .transfer(caller.spiffe_id().as_str(), &request, now_unix_ms())
            .await
            .map_err(|e| status("Transfer", e))?;
        tracing::info!(
            transfer = %transfer.id,
            from = %transfer.from,
            to = %transfer.to,
            amount_cents = transfer.amount_cents,
            by = %transfer.initiated_by,
            replayed,
            "transfer"
        );
        Ok(Response::new(pb::TransferResponse {
            transfer: Some(record(transfer)),
            replayed,
        }))
    }

    type ListTransfersStream = TransferStream;

    async fn list_transfers(
        &self,
        request: Request<pb::ListTransfersRequest>,
    ) -> Result<Response<Self::ListTransfersStream>, Status> {
        self.enter(&request)?;
        let r = request.into_inner();
        let limit = match r.limit {
            0 => DEFAULT_LIST_LIMIT,
            n => usize::try_from(n)
                .unwrap_or(MAX_LIST_LIMIT)
                .min(MAX_LIST_LIMIT),
        };
        let account = Some(r.account_id.as_str()).filter(|a| !a.is_empty());
        // Read whole, then streamed: a slow reader holds no connection or lock.
        let snapshot = self
            .books()?
            .list(account, limit)
            .await
            .map_err(|e| status("ListTransfers", e))?;
        let stream = tokio_stream::iter(snapshot.into_iter().map(|t| Ok(record(t))));
        Ok(Response::new(Box::pin(stream)))
    }
}

/// What a caller learns of `err` from `method`. A refusal by the rules says what was wrong
/// with the request, in the request's own terms. A database failure says only that, in fixed
/// words: its cause (driver text, host names, the database's URL) is the operator's, logged
/// here once per failing call, never sent.
fn status(method: &'static str, err: BookError) -> Status {
    match &err {
        BookError::UnknownAccount(_) => Status::not_found(err.to_string()),
        BookError::InvalidAmount(_)
        | BookError::SameAccount
        | BookError::BadIdempotencyKey
        | BookError::MemoTooLong => Status::invalid_argument(err.to_string()),
        BookError::InsufficientFunds { .. } | BookError::KeyReused(_) => {
            Status::failed_precondition(err.to_string())
        }
        // Nothing was applied: clients retry UNAVAILABLE.
        BookError::Unavailable(_) => {
            tracing::warn!(
                method,
                error = %zt_telemetry::error_line(&err),
                "database unavailable: the call was answered UNAVAILABLE"
            );
            Status::unavailable(UNAVAILABLE)
        }
        BookError::Storage(_) => {
            tracing::error!(
                method,
                error = %zt_telemetry::error_line(&err),
                "database error: the call was answered INTERNAL"
            );
            Status::internal(FAILED)
        }
    }
}

/// The whole of what a caller is told when the database cannot be reached.
const UNAVAILABLE: &str = "the ledger's database is unavailable; nothing was applied, retry later";
/// The whole of what a caller is told when the database fails otherwise.
const FAILED: &str = "the ledger's database failed; nothing was applied";

fn record(t: Transfer) -> pb::TransferRecord {
    pb::TransferRecord {
        transfer_id: t.id,
        from_account: t.from,
        to_account: t.to,
        amount_cents: t.amount_cents,
        memo: t.memo,
        initiated_by: t.initiated_by,
        created_at_unix_ms: t.created_at_unix_ms,
        idempotency_key: t.idempotency_key,
    }
}

fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A database failure's cause stays in the log: the caller gets fixed words, whatever the
    /// driver said.
    #[test]
    fn a_failing_database_is_named_to_the_caller_and_its_cause_stays_in_the_log() {
        let reset = || {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection to db.internal:5432 reset",
            ))
        };
        let unavailable = status("Transfer", BookError::Unavailable(Arc::new(reset())));
        assert_eq!(unavailable.code(), tonic::Code::Unavailable);
        assert_eq!(unavailable.message(), UNAVAILABLE);
        let broken = status(
            "Transfer",
            BookError::Storage(Arc::new(sqlx::Error::Protocol(
                "relation \"accounts\" does not exist".into(),
            ))),
        );
        assert_eq!(broken.code(), tonic::Code::Internal);
        assert_eq!(broken.message(), FAILED);
        for status in [unavailable, broken] {
            let message = status.message();
            for secret in ["db.internal", "5432", "reset", "accounts", "sqlx"] {
                assert!(!message.contains(secret), "{secret} in {message}");
            }
        }
    }

    /// Refusals keep their codes and say what was refused, as text.
    #[test]
    fn refusals_keep_their_codes() {
        let cases = [
            (
                BookError::UnknownAccount("nobody".into()),
                tonic::Code::NotFound,
            ),
            (BookError::InvalidAmount(0), tonic::Code::InvalidArgument),
            (BookError::SameAccount, tonic::Code::InvalidArgument),
            (BookError::BadIdempotencyKey, tonic::Code::InvalidArgument),
            (BookError::MemoTooLong, tonic::Code::InvalidArgument),
            (
                BookError::InsufficientFunds {
                    account: "carol".into(),
                    balance: 1,
                    requested: 2,
                },
                tonic::Code::FailedPrecondition,
            ),
            (
                BookError::KeyReused("k".into()),
                tonic::Code::FailedPrecondition,
            ),
        ];
        for (err, code) in cases {
            let text = err.to_string();
            let answered = status("Transfer", err);
            assert_eq!(answered.code(), code, "{text}");
            assert_eq!(answered.message(), text);
        }
    }
}
