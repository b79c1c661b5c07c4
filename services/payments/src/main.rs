//! `payments`: parse flags, set up logging, run one subcommand.

use clap::Parser as _;
use payments::config::format_cents;
use payments::{Command, Config, Ledger};
use zt_proto::ledger::v1 as pb;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    zt_telemetry::init(config.log_format);
    match run(config).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(err) => {
            eprintln!("payments: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
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
            auditor_cert,
            auditor_key,
        } => {
            let auditor = Ledger::connect(&config, auditor_cert, auditor_key)?;
            let steps = payments::demo::run(&ledger, &auditor).await;
            print!("{}", payments::demo::render(&steps));
            return Ok(steps.iter().all(|s| s.as_expected));
        }
    }
    Ok(true)
}
