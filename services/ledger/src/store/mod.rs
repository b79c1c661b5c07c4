//! The store of record: balances, transfers and idempotency keys in a SQL database, behind the
//! small [`Store`] trait the handlers use. Two backends through one crate (sqlx):
//!
//! - **SQLite** (`sqlite://PATH`, `sqlite::memory:`): a file on local disk, the embedded
//!   default. WAL journal, `synchronous=FULL`: a committed transfer survives a crash.
//! - **PostgreSQL** (`postgres://ROLE@HOST:PORT/DB`): shared by replicas, reached over mutual
//!   TLS with the ledger's own certificate (see [`sql::PgStore`]).
//!
//! Migrations live in `services/ledger/migrations/{sqlite,postgres}/`, are compiled into the
//! binary, and are applied at startup (PostgreSQL serializes concurrent migrators with an
//! advisory lock).
//!
//! **A transfer is one transaction** (see [`sql`]): the idempotency row, the debit and the
//! credit commit together or not at all, so a retry after a crash, or on another replica,
//! finds the row of the first attempt and gets that transfer back.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::book::{BookError, Transfer, TransferRequest};

pub mod sql;

pub use sql::{PgStore, SqliteStore};

/// Most connections a ledger holds to its database. SQLite writers take turns anyway; a
/// PostgreSQL server's `max_connections` (100 by default) should exceed this times the
/// number of replicas.
pub const POOL_SIZE: u32 = 8;
/// How long opening a connection, or waiting for a free one in the pool, may take before the
/// call fails `UNAVAILABLE`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a SQLite writer waits for another writer's lock (another ledger on the same file).
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// First wait between attempts to reach the database at startup; it doubles up to
/// [`STARTUP_BACKOFF_MAX`].
pub const STARTUP_BACKOFF_FIRST: Duration = Duration::from_millis(250);
/// Longest wait between attempts to reach the database at startup.
pub const STARTUP_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Attempts at one transfer transaction when the database reports a transient failure (a
/// lost connection, a deadlock or serialization failure, a busy SQLite file).
pub const TRANSFER_ATTEMPTS: u32 = 4;
/// Wait before the second attempt at a transfer; it doubles for each further one.
pub const TRANSFER_RETRY_FIRST: Duration = Duration::from_millis(20);

/// The ledger's view of its database: everything the handlers need, nothing more. Every
/// method is one statement or one transaction; a failure leaves nothing half-applied.
#[tonic::async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// An account's balance in cents.
    ///
    /// # Errors
    /// [`BookError::UnknownAccount`]; [`BookError::Unavailable`] or [`BookError::Storage`]
    /// when the database fails.
    async fn balance(&self, account: &str) -> Result<i64, BookError>;

    /// Applies a transfer once per (caller, idempotency key), in one transaction. Returns the
    /// transfer and whether it is a replay of an earlier one (by any replica).
    ///
    /// # Errors
    /// The refusals of [`crate::book::validate`] and [`crate::book::replay`],
    /// [`BookError::UnknownAccount`], [`BookError::InsufficientFunds`]; and
    /// [`BookError::Unavailable`] when the database could not complete it within
    /// [`TRANSFER_ATTEMPTS`] attempts, with nothing applied.
    async fn transfer(
        &self,
        caller: &str,
        request: &TransferRequest,
        now_unix_ms: i64,
    ) -> Result<(Transfer, bool), BookError>;

    /// Transfers newest first, only those touching `account` if given, at most `limit`.
    ///
    /// # Errors
    /// [`BookError::UnknownAccount`] for an `account` that does not exist; database failures.
    async fn list(&self, account: Option<&str>, limit: usize) -> Result<Vec<Transfer>, BookError>;

    /// The sum of every balance in cents: what transfers conserve (see
    /// [`crate::book::seed_total`]).
    ///
    /// # Errors
    /// Database failures.
    async fn total(&self) -> Result<i64, BookError>;
}

/// Where the ledger keeps its books: the value of `--database`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://PATH` (relative to the working directory), `sqlite:///ABSOLUTE/PATH`, or
    /// `sqlite::memory:` (nothing survives the process). The file is created if missing.
    Sqlite(String),
    /// `postgres://ROLE@HOST:PORT/DATABASE` (or `postgresql://`). TLS settings in the URL are
    /// replaced: the ledger always connects with `sslmode=verify-full` and its own keystore.
    Postgres(String),
}

impl DatabaseUrl {
    /// The in-memory SQLite database: for embedding a ledger whose books may vanish.
    pub fn memory() -> Self {
        Self::Sqlite("sqlite::memory:".to_owned())
    }

    /// The URL as given (with any password left out: see [`fmt::Display`]).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Sqlite(url) | Self::Postgres(url) => url,
        }
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.starts_with("sqlite:") {
            Ok(Self::Sqlite(text.to_owned()))
        } else if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Ok(Self::Postgres(text.to_owned()))
        } else {
            Err(format!(
                "'{}' is not a database URL: write sqlite://PATH, sqlite::memory: or \
                 postgres://ROLE@HOST:PORT/DATABASE",
                Masked(text)
            ))
        }
    }
}

/// Shows the URL with any password replaced by `***` (a password is never needed here:
/// PostgreSQL authenticates the ledger by its certificate).
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Masked(self.as_str()).fmt(f)
    }
}

/// Text that may be a URL, shown with the password of its `SCHEME://USER:PASSWORD@` part, if
/// any, replaced by `***`.
struct Masked<'a>(&'a str);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.0;
        let Some((scheme, rest)) = url.split_once("://") else {
            return f.write_str(url);
        };
        let authority_end = rest.find('/').unwrap_or(rest.len());
        match rest[..authority_end].rsplit_once('@') {
            Some((userinfo, _)) if userinfo.contains(':') => {
                let user = userinfo.split(':').next().unwrap_or_default();
                let after = &rest[userinfo.len()..];
                write!(f, "{scheme}://{user}:***{after}")
            }
            _ => f.write_str(url),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The files a ledger authenticates to PostgreSQL with: its own keystore (the files it serves
/// with, read again for every new connection, so a renewed certificate is used from the next
/// connection on) and the CA that issued the database server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    /// Certificate chain, PEM, leaf first.
    pub cert: std::path::PathBuf,
    /// Private key, PEM (PKCS#8, SEC1 or PKCS#1).
    pub key: std::path::PathBuf,
    /// CA certificates, PEM, that may issue the database server's certificate.
    pub ca: std::path::PathBuf,
}

/// Opens the store at `url` once: connects, checks the connection and applies the migrations.
///
/// # Errors
/// [`BookError::Unavailable`] when the database cannot be reached or refuses us (worth
/// retrying); [`BookError::Storage`] for a URL or option that can never work.
pub async fn open(url: &DatabaseUrl, tls: &ClientTls) -> Result<Arc<dyn Store>, BookError> {
    match url {
        DatabaseUrl::Sqlite(url) => Ok(Arc::new(SqliteStore::open(url).await?)),
        DatabaseUrl::Postgres(url) => Ok(Arc::new(PgStore::open(url, tls).await?)),
    }
}

/// Opens the store at `url`, waiting for it as long as it takes: each failure is logged with
/// its reason and the next attempt follows after a backoff from [`STARTUP_BACKOFF_FIRST`],
/// doubling up to [`STARTUP_BACKOFF_MAX`]. Configuration that can never work is returned at
/// once.
///
/// # Errors
/// [`BookError::Storage`] for a URL or option that can never work.
pub async fn open_with_backoff(
    url: &DatabaseUrl,
    tls: &ClientTls,
) -> Result<Arc<dyn Store>, BookError> {
    let mut wait = STARTUP_BACKOFF_FIRST;
    let mut attempts: u64 = 0;
    loop {
        attempts += 1;
        match open(url, tls).await {
            Ok(store) => {
                tracing::info!(database = %url, attempts, "database ready");
                return Ok(store);
            }
            Err(BookError::Unavailable(err)) => {
                tracing::warn!(
                    database = %url,
                    attempts,
                    retry_in = %humantime::format_duration(wait),
                    "database not reachable, not serving yet: {}",
                    zt_telemetry::error_line(&*err)
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(STARTUP_BACKOFF_MAX);
            }
            Err(other) => return Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_recognised_and_passwords_never_shown() {
        assert_eq!(
            "sqlite:///var/lib/ledger/ledger.db".parse::<DatabaseUrl>(),
            Ok(DatabaseUrl::Sqlite(
                "sqlite:///var/lib/ledger/ledger.db".into()
            ))
        );
        assert!(matches!(
            "postgresql://ledger@db:5432/ledger".parse::<DatabaseUrl>(),
            Ok(DatabaseUrl::Postgres(_))
        ));
        let refused = "mysql://x".parse::<DatabaseUrl>().unwrap_err();
        assert!(
            refused.starts_with("'mysql://x' is not a database URL: write sqlite://PATH"),
            "{refused}"
        );
        let typo = "postgress://ledger:hunter2@db/ledger"
            .parse::<DatabaseUrl>()
            .unwrap_err();
        assert!(
            typo.starts_with("'postgress://ledger:***@db/ledger' is not a database URL"),
            "{typo}"
        );
        let secret: DatabaseUrl = "postgres://ledger:hunter2@db:5432/ledger".parse().unwrap();
        assert_eq!(secret.to_string(), "postgres://ledger:***@db:5432/ledger");
        assert!(!format!("{secret:?}").contains("hunter2"));
        let plain: DatabaseUrl = "postgres://ledger@db:5432/ledger".parse().unwrap();
        assert_eq!(plain.to_string(), "postgres://ledger@db:5432/ledger");
    }
}
