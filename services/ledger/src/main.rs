//! `ledger`: parse flags, set up logging, load everything, bind, serve until SIGTERM or Ctrl-C.

use anyhow::Context as _;
use clap::Parser as _;
use ledger::{Command, Config, Server};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    zt_telemetry::init(config.log_format);
    match run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // One line: what failed and why, file names included.
            eprintln!("ledger: error: {}", zt_telemetry::error_line(err.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    if let Some(Command::Health) = config.command {
        let serving = ledger::probe(&config).await?;
        println!(
            "ledger: {}",
            if serving { "SERVING" } else { "NOT SERVING" }
        );
        anyhow::ensure!(serving, "ledger is not serving");
        return Ok(());
    }
    let listen = config.listen;
    let server = Server::load(config)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, "listening (mTLS only)");
    server.run(listener, shutdown_signal()).await?;
    Ok(())
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
