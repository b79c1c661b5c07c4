//! `payments`: parse flags, set up logging, run one subcommand.

use anyhow::Context as _;
use clap::Parser as _;
use payments::config::{Role, format_cents};
use payments::{Command, Config, Ledger, demo};
use zt_proto::ledger::v1 as pb;
use zt_reload::Reloader;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    zt_telemetry::init(config.log_format);
    zt_telemetry::exit_code("payments", run(config).await)
}

/// Runs the command; `Ok(false)` when it completed but the outcome was not the expected one.
async fn run(config: Config) -> anyhow::Result<bool> {
    let ledger = Ledger::connect(&config, &config.cert, &config.key)?;
    match &config.command {
        Command::Balance { account } => {
            println!(
                "{account}: {}",
                format_cents(ledger.balance(account).await?)
            );
        }
        Command::Transfer {
            from,
            to,
            amount,
            memo,
            idempotency_key,
        } => {
            let request = pb::TransferRequest {
                idempotency_key: idempotency_key
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                from_account: from.clone(),
                to_account: to.clone(),
                amount_cents: *amount,
                memo: memo.clone(),
            };
            let response = ledger.transfer(request).await?;
            if let Some(t) = response.transfer {
                let replay = if response.replayed {
                    " (replayed: already applied)"
                } else {
                    ""
                };
                println!(
                    "{}: {} from {} to {}{replay}",
                    t.transfer_id,
                    format_cents(t.amount_cents),
                    t.from_account,
                    t.to_account
                );
            }
        }
        Command::List { account, limit } => {
            for t in ledger.list(account.clone(), *limit).await? {
                println!(
                    "{}  {:>12}  {} -> {}  by {}  {}",
                    t.transfer_id,
                    format_cents(t.amount_cents),
                    t.from_account,
                    t.to_account,
                    t.initiated_by,
                    t.memo
                );
            }
        }
        Command::Demo {
            role,
            auditor_cert,
            auditor_key,
            repeat_every,
        } => {
            let mut steps = Vec::new();
            match role {
                Role::Both => {
                    let auditor = Ledger::connect(&config, auditor_cert, auditor_key)?;
                    steps.extend(demo::payments_story(&ledger).await);
                    steps.extend(demo::auditor_story(&auditor).await);
                }
                Role::Payments => steps.extend(demo::payments_story(&ledger).await),
                Role::Auditor => steps.extend(demo::auditor_story(&ledger).await),
            }
            print!("{}", demo::render(&steps));
            if !steps.iter().all(|s| s.as_expected) {
                return Ok(false);
            }
            if let Some(every) = repeat_every {
                // A long-running client: pick up renewed certificates, and show it in metrics.
                let metrics = zt_telemetry::Metrics::new();
                let reloader = Reloader::new(config.reload_interval, metrics.clone());
                ledger.watch(reloader, "tls").spawn();
                if let Some(address) = config.metrics_listen {
                    let listener = tokio::net::TcpListener::bind(address)
                        .await
                        .with_context(|| format!("metrics listener on {address}"))?;
                    tokio::spawn(zt_telemetry::serve_metrics(listener, metrics));
                }
                keep_going(&ledger, *role, *every).await;
            }
        }
        Command::Health => {
            let serving = ledger.health().await?;
            println!(
                "ledger: {}",
                if serving { "SERVING" } else { "NOT SERVING" }
            );
            return Ok(serving);
        }
    }
    Ok(true)
}

/// Plays the role's periodic part until the process is stopped. A failed round is printed,
/// not fatal: the ledger may be restarting, and the client reconnects with backoff.
async fn keep_going(ledger: &Ledger, role: Role, every: std::time::Duration) {
    for tick in 0u64.. {
        tokio::time::sleep(every).await;
        let round = match role {
            Role::Payments | Role::Both => vec![demo::payments_tick(ledger, tick).await],
            Role::Auditor => demo::auditor_story(ledger).await,
        };
        for step in round {
            let mark = if step.as_expected { "ok " } else { "BAD" };
            println!("[{mark}] {} -> {}", step.action, step.outcome);
        }
    }
}
