//! The ledger's books: accounts, balances and transfers, in memory. Pure: no I/O, no gRPC.
//!
//! Money is an `i64` count of cents; every change is checked for overflow. A transfer carries
//! an idempotency key, scoped to the caller: the same caller retrying the same key gets the
//! original transfer back instead of a second one, whatever happened to the first response.

use std::collections::HashMap;

/// A completed transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// `tx-000001`, in order of application.
    pub id: String,
    /// The debited account.
    pub from: String,
    /// The credited account.
    pub to: String,
    /// Cents moved, strictly positive.
    pub amount_cents: i64,
    /// Free text from the caller.
    pub memo: String,
    /// SPIFFE ID of the caller that made it.
    pub initiated_by: String,
    /// The caller's idempotency key.
    pub idempotency_key: String,
    /// When it was applied, milliseconds since the Unix epoch.
    pub created_at_unix_ms: i64,
}

/// What a caller asks to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRequest {
    /// Unique per logical transfer, chosen by the caller.
    pub idempotency_key: String,
    /// The account to debit.
    pub from: String,
    /// The account to credit.
    pub to: String,
    /// Cents to move.
    pub amount_cents: i64,
    /// Free text.
    pub memo: String,
}

/// Why the books refused an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    /// No such account.
    #[error("unknown account {0:?}")]
    UnknownAccount(String),
    /// The amount is zero, negative or above the per-transfer limit.
    #[error("amount must be between 1 and {MAX_TRANSFER_CENTS} cents, got {0}")]
    InvalidAmount(i64),
    /// From and to are the same account.
    #[error("cannot transfer from an account to itself")]
    SameAccount,
    /// The debited account would go below zero.
    #[error("insufficient funds in {account:?}: balance {balance} cents, requested {requested}")]
    InsufficientFunds {
        /// The debited account.
        account: String,
        /// Its balance.
        balance: i64,
        /// The requested amount.
        requested: i64,
    },
    /// The idempotency key is empty, too long or not printable ASCII.
    #[error("idempotency key must be 1 to {MAX_KEY_LEN} printable ASCII characters")]
    BadIdempotencyKey,
    /// The key was already used by this caller for a different transfer.
    #[error("idempotency key {0:?} was already used for a different transfer")]
    KeyReused(String),
    /// A memo longer than allowed.
    #[error("memo longer than {MAX_MEMO_LEN} bytes")]
    MemoTooLong,
}

/// Largest single transfer: 10 million units of currency.
pub const MAX_TRANSFER_CENTS: i64 = 1_000_000_000;
const MAX_KEY_LEN: usize = 128;
const MAX_MEMO_LEN: usize = 256;

/// Accounts, balances and the transfer log.
#[derive(Debug, Default)]
pub struct Book {
    balances: HashMap<String, i64>,
    transfers: Vec<Transfer>,
    /// (caller, idempotency key) -> index into `transfers`.
    applied: HashMap<(String, String), usize>,
}

impl Book {
    /// A book with the demo accounts and opening balances.
    pub fn seeded() -> Self {
        let mut book = Self::default();
        for (account, cents) in [
            ("alice", 100_000_00),
            ("bob", 50_000_00),
            ("carol", 25_000_00),
        ] {
            book.balances.insert(account.to_owned(), cents);
        }
        book
    }

    /// An account's balance in cents.
    pub fn balance(&self, account: &str) -> Result<i64, BookError> {
        self.balances
            .get(account)
            .copied()
            .ok_or_else(|| BookError::UnknownAccount(account.to_owned()))
    }

    /// Applies a transfer once per (caller, key). Returns the transfer and whether it is a
    /// replay of an earlier one.
    pub fn transfer(
        &mut self,
        caller: &str,
        request: TransferRequest,
        now_unix_ms: i64,
    ) -> Result<(Transfer, bool), BookError> {
        let key = &request.idempotency_key;
        if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(BookError::BadIdempotencyKey);
        }
        if let Some(&index) = self.applied.get(&(caller.to_owned(), key.clone())) {
            let earlier = &self.transfers[index];
            let same = earlier.from == request.from
                && earlier.to == request.to
                && earlier.amount_cents == request.amount_cents
                && earlier.memo == request.memo;
            return if same {
                Ok((earlier.clone(), true))
            } else {
                Err(BookError::KeyReused(key.clone()))
            };
        }
        if !(1..=MAX_TRANSFER_CENTS).contains(&request.amount_cents) {
            return Err(BookError::InvalidAmount(request.amount_cents));
        }
        if request.memo.len() > MAX_MEMO_LEN {
            return Err(BookError::MemoTooLong);
        }
        if request.from == request.to {
            return Err(BookError::SameAccount);
        }
        let from_balance = self.balance(&request.from)?;
        let to_balance = self.balance(&request.to)?;
        let Some(new_from) = from_balance
            .checked_sub(request.amount_cents)
            .filter(|b| *b >= 0)
        else {
            return Err(BookError::InsufficientFunds {
                account: request.from,
                balance: from_balance,
                requested: request.amount_cents,
            });
        };
        // Balances are bounded far below i64::MAX by MAX_TRANSFER_CENTS and the seed, but a
        // checked add keeps that an invariant rather than a hope.
        let Some(new_to) = to_balance.checked_add(request.amount_cents) else {
            return Err(BookError::InvalidAmount(request.amount_cents));
        };
        self.balances.insert(request.from.clone(), new_from);
        self.balances.insert(request.to.clone(), new_to);

        let transfer = Transfer {
            id: format!("tx-{:06}", self.transfers.len() + 1),
            from: request.from,
            to: request.to,
            amount_cents: request.amount_cents,
            memo: request.memo,
            initiated_by: caller.to_owned(),
            idempotency_key: request.idempotency_key,
            created_at_unix_ms: now_unix_ms,
        };
        self.applied.insert(
            (caller.to_owned(), transfer.idempotency_key.clone()),
            self.transfers.len(),
        );
        self.transfers.push(transfer.clone());
        Ok((transfer, false))
    }

    /// Transfers newest first, optionally only those touching `account`, at most `limit`.
    pub fn list(&self, account: Option<&str>, limit: usize) -> Vec<Transfer> {
        self.transfers
            .iter()
            .rev()
            .filter(|t| account.is_none_or(|a| t.from == a || t.to == a))
            .take(limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(key: &str, from: &str, to: &str, amount: i64) -> TransferRequest {
        TransferRequest {
            idempotency_key: key.into(),
            from: from.into(),
            to: to.into(),
            amount_cents: amount,
            memo: String::new(),
        }
    }

    #[test]
    fn transfer_moves_money_once_per_key() {
        let mut book = Book::seeded();
        let (t, replayed) = book
            .transfer("p", req("k1", "alice", "bob", 250), 1)
            .unwrap();
        assert!(!replayed);
        assert_eq!(t.id, "tx-000001");
        assert_eq!(book.balance("alice").unwrap(), 100_000_00 - 250);
        assert_eq!(book.balance("bob").unwrap(), 50_000_00 + 250);

        let (again, replayed) = book
            .transfer("p", req("k1", "alice", "bob", 250), 2)
            .unwrap();
        assert!(replayed);
        assert_eq!(again, t);
        assert_eq!(
            book.balance("alice").unwrap(),
            100_000_00 - 250,
            "applied once"
        );

        // The key is scoped per caller: another caller's k1 is a different transfer.
        let (other, replayed) = book
            .transfer("q", req("k1", "alice", "bob", 250), 3)
            .unwrap();
        assert!(!replayed);
        assert_eq!(other.id, "tx-000002");
    }

    #[test]
    fn refusals_leave_balances_untouched() {
        let mut book = Book::seeded();
        let cases = [
            (
                req("a", "alice", "nobody", 1),
                BookError::UnknownAccount("nobody".into()),
            ),
            (req("b", "alice", "bob", 0), BookError::InvalidAmount(0)),
            (req("c", "alice", "bob", -5), BookError::InvalidAmount(-5)),
            (
                req("d", "alice", "bob", MAX_TRANSFER_CENTS + 1),
                BookError::InvalidAmount(MAX_TRANSFER_CENTS + 1),
            ),
            (req("e", "alice", "alice", 1), BookError::SameAccount),
            (req("", "alice", "bob", 1), BookError::BadIdempotencyKey),
            (
                req("has space", "alice", "bob", 1),
                BookError::BadIdempotencyKey,
            ),
            (
                req("f", "carol", "bob", 25_000_01),
                BookError::InsufficientFunds {
                    account: "carol".into(),
                    balance: 25_000_00,
                    requested: 25_000_01,
                },
            ),
        ];
        for (request, want) in cases {
            assert_eq!(book.transfer("p", request, 0), Err(want));
        }
        assert_eq!(book.balance("alice").unwrap(), 100_000_00);
        assert_eq!(book.balance("carol").unwrap(), 25_000_00);
        assert!(book.list(None, 10).is_empty());
    }

    #[test]
    fn reusing_a_key_for_a_different_transfer_is_refused() {
        let mut book = Book::seeded();
        book.transfer("p", req("k", "alice", "bob", 1), 0).unwrap();
        assert_eq!(
            book.transfer("p", req("k", "alice", "bob", 2), 0),
            Err(BookError::KeyReused("k".into()))
        );
    }

    #[test]
    fn list_is_newest_first_filtered_and_limited() {
        let mut book = Book::seeded();
        book.transfer("p", req("1", "alice", "bob", 1), 0).unwrap();
        book.transfer("p", req("2", "bob", "carol", 1), 0).unwrap();
        book.transfer("p", req("3", "alice", "carol", 1), 0)
            .unwrap();
        let ids = |v: Vec<Transfer>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(
            ids(book.list(None, 10)),
            ["tx-000003", "tx-000002", "tx-000001"]
        );
        assert_eq!(ids(book.list(Some("bob"), 10)), ["tx-000002", "tx-000001"]);
        assert_eq!(ids(book.list(None, 1)), ["tx-000003"]);
    }
}
