//! The demo story, printed plainly: what Zero Trust allows, and what it refuses.

use std::fmt::Write as _;

use tonic::Code;
use zt_proto::ledger::v1 as pb;

use crate::client::Ledger;
use zt_proto::format_cents;

/// One step's outcome, as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What was attempted.
    pub action: String,
    /// What happened.
    pub outcome: String,
    /// Whether that is what a correct Zero Trust deployment does.
    pub as_expected: bool,
}

/// The payments part: an allowed transfer, its retry (applied once), a balance check.
pub async fn payments_story(payments: &Ledger) -> Vec<Step> {
    let transfer = pb::TransferRequest {
        idempotency_key: uuid::Uuid::new_v4().to_string(),
        from_account: "alice".into(),
        to_account: "bob".into(),
        amount_cents: 12_50,
        memo: "demo: invoice 42".into(),
    };
    let first = payments_transfer(
        payments,
        "payments transfers $12.50 from alice to bob",
        transfer.clone(),
    )
    .await;

    let action = "payments retries the same transfer (same idempotency key)";
    let retry = match payments.transfer(transfer).await {
        Ok(r) if r.replayed => Step {
            action: action.into(),
            outcome: "ALLOWED, applied once: the ledger replayed the original result".into(),
            as_expected: true,
        },
        Ok(_) => Step {
            action: action.into(),
            outcome: "applied TWICE: idempotency failed".into(),
            as_expected: false,
        },
        Err(e) => unexpected(action, &e),
    };

    let action = "payments checks alice's balance";
    let balance = match payments.balance("alice").await {
        Ok(cents) => Step {
            action: action.into(),
            outcome: format!("ALLOWED: {}", format_cents(cents)),
            as_expected: true,
        },
        Err(e) => unexpected(action, &e),
    };
    vec![first, retry, balance]
}

/// The auditor part: a read it may do, and a transfer it must be refused.
pub async fn auditor_story(auditor: &Ledger) -> Vec<Step> {
    let action = "auditor reads bob's balance";
    let read = match auditor.balance("bob").await {
        Ok(cents) => Step {
            action: action.into(),
            outcome: format!("ALLOWED (read-only role): {}", format_cents(cents)),
            as_expected: true,
        },
        Err(e) => unexpected(action, &e),
    };

    let attempt = pb::TransferRequest {
        idempotency_key: uuid::Uuid::new_v4().to_string(),
        from_account: "bob".into(),
        to_account: "carol".into(),
        amount_cents: 1_000_00,
        memo: "auditor trying to move money".into(),
    };
    let action = "auditor tries to transfer $1000.00 from bob to carol";
    let refused = match auditor.transfer(attempt).await {
        Err(e) if e.code() == Some(Code::PermissionDenied) => Step {
            action: action.into(),
            outcome: format!("REFUSED before any handler ran: {e}"),
            as_expected: true,
        },
        Ok(_) => Step {
            action: action.into(),
            outcome: "ALLOWED: the policy let a read-only identity move money".into(),
            as_expected: false,
        },
        Err(e) => unexpected(action, &e),
    };
    vec![read, refused]
}

/// One periodic payment of $1.00, alternating direction so no account drains.
pub async fn payments_tick(payments: &Ledger, tick: u64) -> Step {
    let (from, to) = if tick.is_multiple_of(2) {
        ("alice", "bob")
    } else {
        ("bob", "alice")
    };
    let transfer = pb::TransferRequest {
        idempotency_key: uuid::Uuid::new_v4().to_string(),
        from_account: from.into(),
        to_account: to.into(),
        amount_cents: 1_00,
        memo: format!("periodic payment {tick}"),
    };
    payments_transfer(
        payments,
        &format!("payments transfers $1.00 from {from} to {to}"),
        transfer,
    )
    .await
}

async fn payments_transfer(payments: &Ledger, action: &str, transfer: pb::TransferRequest) -> Step {
    match payments.transfer(transfer).await {
        Ok(r) => Step {
            action: action.into(),
            outcome: format!(
                "ALLOWED: {} recorded, initiated by {}",
                r.transfer.as_ref().map_or("?", |t| t.transfer_id.as_str()),
                r.transfer.as_ref().map_or("?", |t| t.initiated_by.as_str()),
            ),
            as_expected: true,
        },
        Err(e) => unexpected(action, &e),
    }
}

fn unexpected(action: &str, err: &crate::Error) -> Step {
    Step {
        action: action.into(),
        outcome: format!("FAILED: {err}"),
        as_expected: false,
    }
}

/// The steps as numbered lines, ready to print.
pub fn render(steps: &[Step]) -> String {
    let mut out = String::new();
    for (i, step) in steps.iter().enumerate() {
        let mark = if step.as_expected { "ok " } else { "BAD" };
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "[{mark}] {}. {}\n        -> {}",
            i + 1,
            step.action,
            step.outcome
        );
    }
    let good = steps.iter().filter(|s| s.as_expected).count();
    let _ = writeln!(
        out,
        "demo: {good}/{} steps behaved as Zero Trust requires",
        steps.len()
    );
    out
}
