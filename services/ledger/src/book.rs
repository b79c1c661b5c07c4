//! The ledger's rules: what a transfer is, what makes one valid, what counts as a retry of
//! another, and the accounts it opens with. Pure: no I/O, no gRPC. The store of record
//! ([`crate::store`]) applies these rules inside its transactions.
//!
//! Money is an `i64` count of cents. A transfer carries an idempotency key, scoped to the
//! caller: the same caller retrying the same key gets the original transfer back instead of a
//! second one, whatever happened to the first response (and whichever replica answered it).

use std::sync::Arc;

use zt_proto::format_cents;

/// A completed transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// `tx-000001`: the store's sequence number (increasing, possibly with gaps).
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

/// Why the ledger refused or could not complete an operation.
///
/// A second error enum beside [`crate::Error`], on purpose: this one is what a *call* can
/// answer (every variant maps to one gRPC status in the handlers, which match it
/// exhaustively, and the store returns it), while [`crate::Error`] is why the *process* cannot
/// start or serve (files, flags, listeners). One enum for both would make every handler map
/// variants that cannot happen during a call, and the store return variants it never makes.
///
/// Its text is written for people: values by their `Display` (account ids and keys in
/// quotes, amounts as money, see [`format_cents`]). The two database variants carry the
/// driver's error, which is for the operator's log, never for a caller (the handlers answer
/// them with a fixed message).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BookError {
    /// No such account.
    #[error("unknown account '{0}'")]
    UnknownAccount(String),
    /// The amount is zero, negative or above the per-transfer limit.
    #[error(
        "amount must be between $0.01 and {}, got {}",
        format_cents(MAX_TRANSFER_CENTS),
        format_cents(*.0)
    )]
    InvalidAmount(i64),
    /// From and to are the same account.
    #[error("cannot transfer from an account to itself")]
    SameAccount,
    /// The debited account would go below zero.
    #[error(
        "insufficient funds in '{account}': balance {}, requested {}",
        format_cents(*balance),
        format_cents(*requested)
    )]
    InsufficientFunds {
        /// The debited account.
        account: String,
        /// Its balance, cents.
        balance: i64,
        /// The requested amount, cents.
        requested: i64,
    },
    /// The idempotency key is empty, too long or not printable ASCII.
    #[error("idempotency key must be 1 to {MAX_KEY_LEN} printable ASCII characters")]
    BadIdempotencyKey,
    /// The key was already used by this caller for a different transfer.
    #[error("idempotency key '{0}' was already used for a different transfer")]
    KeyReused(String),
    /// A memo longer than allowed.
    #[error("memo longer than {MAX_MEMO_LEN} bytes")]
    MemoTooLong,
    /// The database cannot be reached (not yet, or no longer), or stayed too busy through
    /// every retry. Nothing was applied: the caller may retry. The driver's error is shared
    /// (`Arc`) so that the error stays `Clone`.
    #[error("the ledger's database is unavailable: {0}")]
    Unavailable(#[source] Arc<sqlx::Error>),
    /// The database answered with an error no retry can cure (a schema or a constraint the
    /// rules did not expect), or its URL can never work. Nothing was applied.
    #[error("the ledger's database failed: {0}")]
    Storage(#[source] Arc<sqlx::Error>),
}

impl BookError {
    /// [`BookError::Unavailable`] for `err`.
    pub fn unavailable(err: sqlx::Error) -> Self {
        Self::Unavailable(Arc::new(err))
    }

    /// [`BookError::Storage`] for `err`.
    pub fn storage(err: sqlx::Error) -> Self {
        Self::Storage(Arc::new(err))
    }
}

/// Largest single transfer: 10 million units of currency.
pub const MAX_TRANSFER_CENTS: i64 = 1_000_000_000;
/// Longest idempotency key, bytes.
pub const MAX_KEY_LEN: usize = 128;
/// Longest memo, bytes.
pub const MAX_MEMO_LEN: usize = 256;

/// The demo accounts and their opening balances in cents, as the first migration creates
/// them (services/ledger/migrations/*/0001_ledger.sql): $100,000.00, $50,000.00, $25,000.00.
/// Transfers only move money between them, so the sum stays [`seed_total`] forever.
pub const SEED: [(&str, i64); 3] = [
    ("alice", 100_000_00),
    ("bob", 50_000_00),
    ("carol", 25_000_00),
];

/// The sum of all balances: what every transfer conserves.
pub fn seed_total() -> i64 {
    SEED.iter().map(|(_, cents)| cents).sum()
}

/// Checks everything about a transfer that needs no balance: the key, the amount, the memo,
/// and that it moves money between two different accounts.
///
/// # Errors
/// [`BookError::BadIdempotencyKey`], [`BookError::InvalidAmount`], [`BookError::MemoTooLong`]
/// or [`BookError::SameAccount`], in that order.
pub fn validate(request: &TransferRequest) -> Result<(), BookError> {
    let key = &request.idempotency_key;
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(BookError::BadIdempotencyKey);
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
    Ok(())
}

/// What a request whose (caller, key) was already used gets: the earlier transfer if the
/// request asks for the same movement (a retry), else [`BookError::KeyReused`].
///
/// # Errors
/// [`BookError::KeyReused`] when from, to, amount or memo differ.
pub fn replay(earlier: Transfer, request: &TransferRequest) -> Result<Transfer, BookError> {
    let same = earlier.from == request.from
        && earlier.to == request.to
        && earlier.amount_cents == request.amount_cents
        && earlier.memo == request.memo;
    if same {
        Ok(earlier)
    } else {
        Err(BookError::KeyReused(request.idempotency_key.clone()))
    }
}

/// The transfer id a store's sequence number is shown as: `tx-000042`.
pub fn transfer_id(sequence: i64) -> String {
    format!("tx-{sequence:06}")
}

/// The order in which a transfer locks its two accounts: by account id, the same for every
/// transfer, so two transfers between the same accounts in opposite directions never wait
/// for each other in a cycle. Each item is (account, signed change in cents).
pub fn lock_order(request: &TransferRequest) -> [(&str, i64); 2] {
    let debit = (request.from.as_str(), -request.amount_cents);
    let credit = (request.to.as_str(), request.amount_cents);
    if request.from <= request.to {
        [debit, credit]
    } else {
        [credit, debit]
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

    fn applied(request: &TransferRequest) -> Transfer {
        Transfer {
            id: transfer_id(1),
            from: request.from.clone(),
            to: request.to.clone(),
            amount_cents: request.amount_cents,
            memo: request.memo.clone(),
            initiated_by: "p".into(),
            idempotency_key: request.idempotency_key.clone(),
            created_at_unix_ms: 0,
        }
    }

    /// Each refusal by its variant and by the text a caller reads.
    #[test]
    fn validation_refuses_what_no_balance_can_make_right() {
        let amount = "amount must be between $0.01 and $10000000.00, got";
        let key = "idempotency key must be 1 to 128 printable ASCII characters";
        let bad_amount: fn(&BookError) -> bool = |e| matches!(e, BookError::InvalidAmount(_));
        let bad_key: fn(&BookError) -> bool = |e| matches!(e, BookError::BadIdempotencyKey);
        let cases = [
            (
                req("b", "alice", "bob", 0),
                bad_amount,
                format!("{amount} $0.00"),
            ),
            (
                req("c", "alice", "bob", -5),
                bad_amount,
                format!("{amount} -$0.05"),
            ),
            (
                req("d", "alice", "bob", MAX_TRANSFER_CENTS + 1),
                bad_amount,
                format!("{amount} $10000000.01"),
            ),
            (
                req("e", "alice", "alice", 1),
                |e| matches!(e, BookError::SameAccount),
                "cannot transfer from an account to itself".to_owned(),
            ),
            (req("", "alice", "bob", 1), bad_key, key.to_owned()),
            (req("has space", "alice", "bob", 1), bad_key, key.to_owned()),
            (
                req(&"k".repeat(MAX_KEY_LEN + 1), "alice", "bob", 1),
                bad_key,
                key.to_owned(),
            ),
        ];
        for (request, variant, text) in cases {
            let refused = validate(&request).unwrap_err();
            assert!(variant(&refused), "{request:?}: {refused:?}");
            assert_eq!(refused.to_string(), text, "{request:?}");
        }
        let mut long = req("m", "alice", "bob", 1);
        long.memo = "x".repeat(MAX_MEMO_LEN + 1);
        assert!(matches!(validate(&long), Err(BookError::MemoTooLong)));
        assert!(validate(&req("ok", "alice", "bob", MAX_TRANSFER_CENTS)).is_ok());
    }

    #[test]
    fn a_retry_gets_the_original_and_a_different_request_is_refused() {
        let first = req("k", "alice", "bob", 250);
        let original = applied(&first);
        assert_eq!(replay(original.clone(), &first).unwrap(), original);
        for other in [
            req("k", "alice", "bob", 251),
            req("k", "alice", "carol", 250),
            req("k", "bob", "alice", 250),
            TransferRequest {
                memo: "different".into(),
                ..first
            },
        ] {
            let refused = replay(original.clone(), &other).unwrap_err();
            assert!(
                matches!(&refused, BookError::KeyReused(key) if key == "k"),
                "{refused:?}"
            );
        }
    }

    /// Refusals read as text: ids and keys quoted, amounts as money, no Rust debug quoting.
    #[test]
    fn refusals_are_written_for_people() {
        let cases = [
            (
                BookError::UnknownAccount("nobody".into()),
                "unknown account 'nobody'",
            ),
            (
                BookError::InsufficientFunds {
                    account: "carol".into(),
                    balance: 25_000_00,
                    requested: 25_000_01,
                },
                "insufficient funds in 'carol': balance $25000.00, requested $25000.01",
            ),
            (
                BookError::KeyReused("k-1".into()),
                "idempotency key 'k-1' was already used for a different transfer",
            ),
            (
                BookError::UnknownAccount("say \"hi\"".into()),
                "unknown account 'say \"hi\"'",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
        assert_eq!(format_cents(1250), "$12.50");
        assert_eq!(format_cents(-5), "-$0.05");
        assert_eq!(format_cents(0), "$0.00");
        assert_eq!(format_cents(i64::MIN), "-$92233720368547758.08");
    }

    #[test]
    fn accounts_are_locked_in_one_order_whatever_the_direction() {
        assert_eq!(
            lock_order(&req("1", "alice", "bob", 5)),
            [("alice", -5), ("bob", 5)]
        );
        assert_eq!(
            lock_order(&req("2", "bob", "alice", 5)),
            [("alice", 5), ("bob", -5)]
        );
    }

    #[test]
    fn ids_and_the_seed() {
        assert_eq!(transfer_id(1), "tx-000001");
        assert_eq!(transfer_id(1_234_567), "tx-1234567");
        assert_eq!(seed_total(), 175_000_00);
    }
}
