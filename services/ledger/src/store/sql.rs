//! The two SQL backends. Both run the same statements (`$N` parameters work on both); what
//! differs is how a transfer's transaction starts and which errors are worth a retry.
//!
//! # Concurrency: row locks in a fixed order, not SERIALIZABLE
//!
//! A transfer runs at the database's default isolation (READ COMMITTED on PostgreSQL) and
//! makes every check part of a write that locks what it checks:
//!
//! 1. `INSERT` the transfer row `ON CONFLICT (initiated_by, idempotency_key) DO NOTHING`: the
//!    unique index is the idempotency lock. A concurrent attempt with the same key (a retry on
//!    another replica) waits for the first to commit, then inserts nothing and reads the
//!    first's row: the original transfer comes back, the money moves once.
//! 2. Debit and credit as `UPDATE accounts SET balance = balance + change WHERE id = ... AND
//!    balance + change >= 0`, the two accounts in account-id order ([`book::lock_order`]).
//!    Each `UPDATE` takes the row lock and re-checks its condition against the latest
//!    committed balance, so no two transfers can spend the same cents; the fixed order means
//!    two transfers between the same accounts in opposite directions never deadlock.
//! 3. `COMMIT`, or roll everything back on any refusal or error.
//!
//! SERIALIZABLE with retries would be as correct, but under contention (every transfer from
//! one hot account) it aborts and retries work that row locks simply queue. SQLite has one
//! writer at a time: its transaction starts with `BEGIN IMMEDIATE`, taking the write lock up
//! front (waiting up to [`SQLITE_BUSY_TIMEOUT`]), so a read can never be upgraded into a
//! conflict.
//!
//! Transient failures (a lost connection, a deadlock or serialization failure, a busy file)
//! are retried up to [`TRANSFER_ATTEMPTS`] times. That is safe even when a `COMMIT` went
//! through but its answer was lost: the retry finds the idempotency row and replays it.

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use super::{
    CONNECT_TIMEOUT, ClientTls, POOL_SIZE, SQLITE_BUSY_TIMEOUT, Store, TRANSFER_ATTEMPTS,
    TRANSFER_RETRY_FIRST,
};
use crate::book::{self, BookError, Transfer, TransferRequest};

/// The columns of a transfer row, in [`Row`]'s order.
const TRANSFER_COLUMNS: &str = "seq, from_account, to_account, amount_cents, memo, \
     initiated_by, idempotency_key, created_at_unix_ms";

type Row = (i64, String, String, i64, String, String, String, i64);

fn transfer(row: Row) -> Transfer {
    let (seq, from, to, amount_cents, memo, initiated_by, idempotency_key, created) = row;
    Transfer {
        id: book::transfer_id(seq),
        from,
        to,
        amount_cents,
        memo,
        initiated_by,
        idempotency_key,
        created_at_unix_ms: created,
    }
}

/// How one attempt at a transaction ended, short of success.
enum Failure {
    /// The rules refused it (or it cannot work): final.
    Refused(BookError),
    /// Transient: the next attempt may succeed. The driver's error, for the last one.
    Transient(sqlx::Error),
}

impl From<sqlx::Error> for Failure {
    /// Sorts a database error: worth another attempt, or final.
    fn from(err: sqlx::Error) -> Self {
        if transient(&err) {
            Self::Transient(err)
        } else {
            Self::Refused(BookError::storage(err))
        }
    }
}

/// What a database error means for the caller: [`BookError::Unavailable`] when a retry (by
/// us or by the client) may succeed, [`BookError::Storage`] otherwise.
pub(crate) fn classify(err: sqlx::Error) -> BookError {
    if transient(&err) {
        BookError::unavailable(err)
    } else {
        BookError::storage(err)
    }
}

/// Whether the same statement may succeed later: the connection or the pool failed, or the
/// database reported one of the [`transient_code`]s.
fn transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| transient_code(&code)),
        _ => false,
    }
}

/// Error codes after which the same statement may succeed: PostgreSQL's serialization
/// failure (40001), deadlock (40P01), connection exceptions (class 08), shutdown and
/// start-up (57P01..57P03), and refused authentication (class 28: a certificate being
/// rotated, a pg_hba.conf being fixed); SQLite's BUSY and LOCKED (extended codes included).
fn transient_code(code: &str) -> bool {
    matches!(code, "40001" | "40P01" | "57P01" | "57P02" | "57P03")
        || code.starts_with("08")
        || code.starts_with("28")
        || code
            .parse::<u32>()
            .is_ok_and(|sqlite| matches!(sqlite & 0xff, 5 | 6))
}

/// One implementation of [`Store`] over a sqlx pool; the transaction's opening statement
/// is the only difference between the backends.
macro_rules! sql_store {
    ($store:ident, $($begin:tt)+) => {
        #[tonic::async_trait]
        impl Store for $store {
            async fn balance(&self, account: &str) -> Result<i64, BookError> {
                let row: Option<(i64,)> =
                    sqlx::query_as("SELECT balance_cents FROM accounts WHERE id = $1")
                        .bind(account)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(classify)?;
                row.map(|(cents,)| cents)
                    .ok_or_else(|| BookError::UnknownAccount(account.to_owned()))
            }

            async fn transfer(
                &self,
                caller: &str,
                request: &TransferRequest,
                now_unix_ms: i64,
            ) -> Result<(Transfer, bool), BookError> {
                book::validate(request)?;
                let mut wait = TRANSFER_RETRY_FIRST;
                let mut attempt = 1;
                loop {
                    match self.attempt_transfer(caller, request, now_unix_ms).await {
                        Ok(done) => return Ok(done),
                        Err(Failure::Refused(err)) => return Err(err),
                        Err(Failure::Transient(err)) if attempt >= TRANSFER_ATTEMPTS => {
                            return Err(BookError::unavailable(err));
                        }
                        Err(Failure::Transient(err)) => {
                            tracing::debug!(attempt, error = %err, "transfer retried");
                            tokio::time::sleep(wait).await;
                            wait *= 2;
                            attempt += 1;
                        }
                    }
                }
            }

            async fn list(
                &self,
                account: Option<&str>,
                limit: usize,
            ) -> Result<Vec<Transfer>, BookError> {
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                let rows: Vec<Row> = match account {
                    Some(account) => {
                        self.balance(account).await?;
                        sqlx::query_as(&format!(
                            "SELECT {TRANSFER_COLUMNS} FROM transfers \
                             WHERE from_account = $1 OR to_account = $1 \
                             ORDER BY seq DESC LIMIT $2"
                        ))
                        .bind(account)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await
                    }
                    None => {
                        sqlx::query_as(&format!(
                            "SELECT {TRANSFER_COLUMNS} FROM transfers ORDER BY seq DESC LIMIT $1"
                        ))
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await
                    }
                }
                .map_err(classify)?;
                Ok(rows.into_iter().map(transfer).collect())
            }

            async fn total(&self) -> Result<i64, BookError> {
                // Summed here, not in SQL: SUM's type differs between the backends.
                let rows: Vec<(i64,)> = sqlx::query_as("SELECT balance_cents FROM accounts")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(classify)?;
                Ok(rows.iter().map(|(cents,)| cents).sum())
            }
        }

        impl $store {
            /// One attempt at the transfer transaction (see the module documentation).
            async fn attempt_transfer(
                &self,
                caller: &str,
                request: &TransferRequest,
                now_unix_ms: i64,
            ) -> Result<(Transfer, bool), Failure> {
                let mut tx = self.pool.$($begin)+.await?;
                let inserted: Option<(i64,)> = sqlx::query_as(
                    "INSERT INTO transfers (initiated_by, idempotency_key, from_account, \
                     to_account, amount_cents, memo, created_at_unix_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (initiated_by, idempotency_key) DO NOTHING RETURNING seq",
                )
                .bind(caller)
                .bind(&request.idempotency_key)
                .bind(&request.from)
                .bind(&request.to)
                .bind(request.amount_cents)
                .bind(&request.memo)
                .bind(now_unix_ms)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((seq,)) = inserted else {
                    // This caller used this key before (committed: a pending one would
                    // have made us wait). Answer with what it did.
                    tx.rollback().await?;
                    let earlier: Option<Row> = sqlx::query_as(&format!(
                        "SELECT {TRANSFER_COLUMNS} FROM transfers \
                         WHERE initiated_by = $1 AND idempotency_key = $2"
                    ))
                    .bind(caller)
                    .bind(&request.idempotency_key)
                    .fetch_optional(&self.pool)
                    .await?;
                    let Some(earlier) = earlier else {
                        // The key's row vanished between the two statements: try again.
                        return Err(Failure::Transient(sqlx::Error::RowNotFound));
                    };
                    return book::replay(transfer(earlier), request)
                        .map(|t| (t, true))
                        .map_err(Failure::Refused);
                };
                for (account, change) in book::lock_order(request) {
                    let changed = sqlx::query(
                        "UPDATE accounts SET balance_cents = balance_cents + $2 \
                         WHERE id = $1 AND balance_cents + $2 >= 0",
                    )
                    .bind(account)
                    .bind(change)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if changed == 0 {
                        let balance: Option<(i64,)> =
                            sqlx::query_as("SELECT balance_cents FROM accounts WHERE id = $1")
                                .bind(account)
                                .fetch_optional(&mut *tx)
                                .await?;
                        tx.rollback().await?;
                        return Err(Failure::Refused(match balance {
                            None => BookError::UnknownAccount(account.to_owned()),
                            Some((balance,)) => BookError::InsufficientFunds {
                                account: account.to_owned(),
                                balance,
                                requested: request.amount_cents,
                            },
                        }));
                    }
                }
                tx.commit().await?;
                let applied = Transfer {
                    id: book::transfer_id(seq),
                    from: request.from.clone(),
                    to: request.to.clone(),
                    amount_cents: request.amount_cents,
                    memo: request.memo.clone(),
                    initiated_by: caller.to_owned(),
                    idempotency_key: request.idempotency_key.clone(),
                    created_at_unix_ms: now_unix_ms,
                };
                Ok((applied, false))
            }
        }
    };
}

/// The ledger's books in a SQLite file (or in memory).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and applies the migrations. An
    /// in-memory database lives as long as the pool's one connection, which never closes.
    ///
    /// # Errors
    /// [`BookError::Storage`] for a malformed URL; [`BookError::Unavailable`] when the file
    /// cannot be opened or migrated (retried at startup).
    pub async fn open(url: &str) -> Result<Self, BookError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(BookError::storage)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(true);
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        if !memory {
            first_connection::<sqlx::SqliteConnection>(&options).await?;
        }
        let pool = PoolOptions::new()
            .max_connections(if memory { 1 } else { POOL_SIZE })
            .acquire_timeout(CONNECT_TIMEOUT)
            .idle_timeout(if memory { None } else { Some(IDLE_TIMEOUT) })
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(BookError::unavailable)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| BookError::unavailable(e.into()))?;
        Ok(Self { pool })
    }
}

sql_store!(SqliteStore, begin_with("BEGIN IMMEDIATE"));

/// Opens and closes one connection, within [`CONNECT_TIMEOUT`], so that a database that cannot
/// be reached is reported with its reason (refused, TLS, authentication): a pool says only
/// that it timed out.
async fn first_connection<C: sqlx::Connection>(options: &C::Options) -> Result<(), BookError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, C::connect_with(options)).await {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(err)) => Err(BookError::unavailable(err)),
        Err(_) => Err(BookError::unavailable(sqlx::Error::Io(
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no answer within {}",
                    humantime::format_duration(CONNECT_TIMEOUT)
                ),
            ),
        ))),
    }
}

/// How long an unused pooled connection stays open.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// The ledger's books in PostgreSQL, reached over mutual TLS.
///
/// What is checked on every new connection: the server's certificate chains to `--database-ca`
/// (or the CA of `--ca`) and names the URL's host in a DNS SAN (`sslmode=verify-full`, TLS
/// 1.2 or 1.3 as the server offers); rustls also accepts the operating system's trusted roots,
/// of which a `FROM scratch` image has none. The server's SPIFFE ID is *not* checked: the
/// driver's TLS accepts no custom verifier. The ledger presents its own keystore (`--cert`,
/// `--key`, read again for each new connection, so renewals reach the pool); PostgreSQL maps
/// the certificate's CN (the last segment of the SPIFFE ID, `ledger`) to the database role
/// (`pg_ident.conf`) and refuses every login without one (`pg_hba.conf`: `hostssl ... cert
/// clientcert=verify-full`, nothing else).
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// The connection options for `url` with the ledger's TLS in force.
    ///
    /// # Errors
    /// [`BookError::Storage`] for a malformed URL.
    pub fn options(url: &str, tls: &ClientTls) -> Result<PgConnectOptions, BookError> {
        let options = PgConnectOptions::from_str(url).map_err(BookError::storage)?;
        Ok(options
            .ssl_mode(PgSslMode::VerifyFull)
            .ssl_root_cert(&tls.ca)
            .ssl_client_cert(&tls.cert)
            .ssl_client_key(&tls.key)
            .application_name("ledger"))
    }

    /// Connects to `url` over mutual TLS and applies the migrations.
    ///
    /// # Errors
    /// [`BookError::Storage`] for a malformed URL; [`BookError::Unavailable`] when the server
    /// cannot be reached, refuses the connection or the migrations fail.
    pub async fn open(url: &str, tls: &ClientTls) -> Result<Self, BookError> {
        let options = Self::options(url, tls)?;
        first_connection::<sqlx::PgConnection>(&options).await?;
        let pool = PoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(CONNECT_TIMEOUT)
            .idle_timeout(Some(IDLE_TIMEOUT))
            .connect_with(options)
            .await
            .map_err(BookError::unavailable)?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| BookError::unavailable(e.into()))?;
        Ok(Self { pool })
    }
}

sql_store!(PgStore, begin());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_database_is_unavailable_and_a_broken_one_is_not() {
        let lost = [
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Protocol("unexpected end of stream".into()),
        ];
        for err in lost {
            assert!(matches!(classify(err), BookError::Unavailable(_)));
        }
        assert!(matches!(
            classify(sqlx::Error::RowNotFound),
            BookError::Storage(_)
        ));
        for code in ["40001", "40P01", "08006", "57P01", "28000", "5", "517", "6"] {
            assert!(transient_code(code), "{code}");
        }
        for code in ["23505", "42P01", "19", "2067"] {
            assert!(!transient_code(code), "{code}");
        }
    }
}
