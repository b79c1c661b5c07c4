//! `payments`: parse flags, set up logging, run one subcommand. The long-running mode
//! (`demo --repeat-every`) stops on SIGTERM or Ctrl-C: at once between rounds, or once the
//! call in flight finishes (abandoned after [`GRACE`]), and exits 0.

use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use payments::config::Role;
use payments::{Command, Config, Ledger, demo};
use zt_proto::format_cents;
use zt_proto::ledger::v1 as pb;
use zt_reload::Reloader;

/// How long a call in flight when the stop signal arrives may take to finish before it is
/// abandoned (its stream reset): well inside `docker stop`'s 10 s.
const GRACE: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    zt_telemetry::init(config.log_format);
    let long_running = matches!(
        config.command,
        Command::Demo {
            repeat_every: Some(_),
            ..
        }
    );
    if !long_running {
        // One-shot commands keep the default signal handling: interrupted is not done.
        return zt_telemetry::exit_code("payments", run(config, None).await);
    }
    // Listen before doing anything, so a stop that arrives during the story is not lost.
    let stop = match Stop::listen() {
        Ok(stop) => stop,
        Err(err) => return zt_telemetry::exit_code("payments", Err(err)),
    };
    let outcome = tokio::select! {
        outcome = run(config, Some(stop.clone())) => outcome,
        // A backstop: `keep_going` returns by itself well before this.
        () = async {
            stop.requested().await;
            tokio::time::sleep(GRACE + Duration::from_millis(500)).await;
        } => {
            println!("payments: stopped ({}); the call in flight was abandoned", stop.signal());
            Ok(true)
        }
    };
    zt_telemetry::exit_code("payments", outcome)
}

/// SIGTERM (what `docker stop` and Kubernetes send) or SIGINT (Ctrl-C), once received.
#[derive(Clone, Debug)]
struct Stop(tokio::sync::watch::Receiver<Option<&'static str>>);

impl Stop {
    /// Installs the handlers (from now on the signals no longer kill the process) and watches
    /// for either.
    fn listen() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
        let (tx, rx) = tokio::sync::watch::channel(None);
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            let _ = tx.send(Some(name));
            // Keep the sender (and the handlers) alive: later signals change nothing.
            std::future::pending::<()>().await;
        });
        Ok(Self(rx))
    }

    /// Completes once a stop signal has arrived.
    async fn requested(&self) {
        let mut rx = self.0.clone();
        // The sender lives as long as the runtime; an error cannot happen before shutdown.
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// Which signal arrived.
    fn signal(&self) -> &'static str {
        self.0.borrow().unwrap_or("stop")
    }
}

/// Runs the command; `Ok(false)` when it completed but the outcome was not the expected one.
async fn run(config: Config, stop: Option<Stop>) -> anyhow::Result<bool> {
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
                if let Some(stop) = stop {
                    keep_going(&ledger, *role, *every, &stop).await;
                }
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

/// Plays the role's periodic part until `stop`. A failed round is printed, not fatal: the
/// ledger may be restarting, and the client reconnects with backoff. On `stop`, returns at once
/// between rounds; a round in flight gets [`GRACE`] to finish, then is abandoned (dropping
/// its call resets the stream; nothing half-done is left in the ledger, whose transfers are
/// atomic and idempotent).
async fn keep_going(ledger: &Ledger, role: Role, every: Duration, stop: &Stop) {
    for tick in 0u64.. {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stop.requested() => {
                println!("payments: stopping ({}): no call in flight", stop.signal());
                return;
            }
        }
        let round = async {
            match role {
                Role::Payments | Role::Both => vec![demo::payments_tick(ledger, tick).await],
                Role::Auditor => demo::auditor_story(ledger).await,
            }
        };
        tokio::pin!(round);
        let (steps, stopping) = tokio::select! {
            steps = &mut round => (steps, false),
            () = stop.requested() => match tokio::time::timeout(GRACE, &mut round).await {
                Ok(steps) => (steps, true),
                Err(_) => {
                    println!(
                        "payments: stopping ({}): abandoned the call in flight after {}",
                        stop.signal(),
                        humantime::format_duration(GRACE)
                    );
                    return;
                }
            },
        };
        for step in steps {
            let mark = if step.as_expected { "ok " } else { "BAD" };
            println!("[{mark}] {} -> {}", step.action, step.outcome);
        }
        if stopping {
            println!(
                "payments: stopping ({}): finished the call in flight",
                stop.signal()
            );
            return;
        }
    }
}
