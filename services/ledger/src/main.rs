//! `ledger`: parse flags, set up logging, load everything, bind, serve until SIGTERM or Ctrl-C.

use anyhow::Context as _;
use clap::Parser as _;
use ledger::{Command, Config, Server};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    zt_telemetry::init(config.log_format);
    zt_telemetry::exit_code("ledger", run(config).await)
}

/// Runs the server or a subcommand; `Ok(false)` when a subcommand's report found a problem
/// (it has said what).
async fn run(config: Config) -> anyhow::Result<bool> {
    match &config.command {
        Some(Command::Health) => {
            let serving = ledger::probe(&config).await?;
            println!(
                "ledger: {}",
                if serving { "SERVING" } else { "NOT SERVING" }
            );
            anyhow::ensure!(serving, "ledger is not serving");
            return Ok(true);
        }
        Some(Command::Policy(command)) => return Ok(ledger::run_policy_command(&config, command)?),
        None => {}
    }
    let listen = config.listen;
    // Every pending and established connection is a descriptor: raise the soft limit to the
    // hard one, and say so if even that cannot hold what the limits allow.
    let wanted = config.limits.max_pending + config.limits.max_connections + 64;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < wanted as u64 => tracing::warn!(
            limit,
            wanted,
            "the open-file limit is below --max-pending + --max-connections: past it, accept \
             fails and backs off"
        ),
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "cannot raise the open-file limit"),
    }
    let server = Server::load(config)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    server.run(listener, shutdown_signal()).await?;
    Ok(true)
}

/// Completes on SIGTERM (what `docker stop` and Kubernetes send) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
