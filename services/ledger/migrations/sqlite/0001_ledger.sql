-- The ledger's schema on SQLite. Balances in cents; the seed is book::SEED.
CREATE TABLE accounts (
    id            TEXT    PRIMARY KEY NOT NULL,
    balance_cents INTEGER NOT NULL CHECK (balance_cents >= 0)
);

-- One row per applied transfer. (initiated_by, idempotency_key) is unique: a retry finds the
-- row its first attempt wrote, in the same transaction as the money it moved.
CREATE TABLE transfers (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    initiated_by       TEXT    NOT NULL,
    idempotency_key    TEXT    NOT NULL,
    from_account       TEXT    NOT NULL,
    to_account         TEXT    NOT NULL,
    amount_cents       INTEGER NOT NULL CHECK (amount_cents > 0),
    memo               TEXT    NOT NULL,
    created_at_unix_ms INTEGER NOT NULL,
    UNIQUE (initiated_by, idempotency_key)
);
CREATE INDEX transfers_by_from ON transfers (from_account, seq);
CREATE INDEX transfers_by_to ON transfers (to_account, seq);

INSERT INTO accounts (id, balance_cents) VALUES
    ('alice', 10000000),
    ('bob', 5000000),
    ('carol', 2500000);
