//! Loading the configuration into a ready-to-serve server, and serving it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;
use tonic::transport::Server as Transport;
use zt_authz::Policy;
use zt_authz_layer::AuthzLayer;
use zt_identity::TrustedDomains;
use zt_proto::ledger::v1::ledger_server::LedgerServer;
use zt_tls::{AcceptLimits, Keystore, Truststore};

use crate::book::Book;
use crate::config::Config;
use crate::error::Error;
use crate::service::LedgerService;

/// Longest connection age when the operator sets none.
const DEFAULT_MAX_CONNECTION_AGE: Duration = Duration::from_secs(3600);

/// A ledger whose every input (keystore, truststore, policy) has been loaded and checked.
/// Building one does all the validation, so a bad file fails before anything listens.
#[derive(Debug)]
pub struct Server {
    config: Config,
    tls: Arc<ServerConfig>,
    authz: AuthzLayer,
    ledger: LedgerService,
    max_connection_age: Duration,
}

impl Server {
    /// Loads and checks every file named in `config`.
    pub fn load(config: Config) -> Result<Self, Error> {
        let keystore = Keystore::load(&config.cert, &config.key)?;
        let truststore = Truststore::load_all(&config.ca)?;
        let policy_json =
            std::fs::read_to_string(&config.policy).map_err(|source| Error::PolicyRead {
                path: config.policy.clone(),
                source,
            })?;
        let policy = Policy::from_json(&policy_json).map_err(|source| Error::Policy {
            path: config.policy.clone(),
            source,
        })?;
        let domains = TrustedDomains::new(config.trust_domains.iter().cloned());
        let tls = zt_tls::server_config(&keystore, &truststore, domains.clone())?;

        // Reconnecting clients re-handshake, so they see rotated or revoked certificates; and
        // no connection outlives the certificate that authenticated this server.
        let remaining = u64::try_from(keystore.not_after() - unix_now()).unwrap_or(0);
        let max_connection_age = config.limits.max_connection_age.unwrap_or_else(|| {
            DEFAULT_MAX_CONNECTION_AGE
                .min(Duration::from_secs(remaining / 2).max(Duration::from_secs(60)))
        });

        tracing::info!(
            identity = %keystore.spiffe_id(),
            policy = policy.name(),
            trust_domains = ?config.trust_domains,
            "ledger configured"
        );
        Ok(Self {
            tls,
            authz: AuthzLayer::new(policy, domains),
            ledger: LedgerService::new(Book::seeded()),
            max_connection_age,
            config,
        })
    }

    /// The service behind the server, to observe its state.
    pub fn ledger(&self) -> &LedgerService {
        &self.ledger
    }

    /// Serves on `listener` in a background task until the returned handle is dropped.
    pub fn spawn(self, listener: TcpListener) -> std::io::Result<Background> {
        let addr = listener.local_addr()?;
        let service = self.ledger.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(self.run(listener, async {
            let _ = stopped.await;
        }));
        Ok(Background {
            addr,
            service,
            _stop: stop,
        })
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting, lets in-flight
    /// RPCs finish for up to the drain timeout, and returns.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        let limits = &self.config.limits;
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<LedgerServer<LedgerService>>().await;

        let incoming = zt_tls::accept(
            listener,
            self.tls,
            AcceptLimits {
                handshake_timeout: limits.handshake_timeout,
                max_handshakes: limits.max_handshakes,
                max_connections: limits.max_connections,
                ..AcceptLimits::default()
            },
        );
        let ledger = LedgerServer::new(self.ledger)
            .max_decoding_message_size(limits.max_message_size)
            .max_encoding_message_size(limits.max_message_size);

        let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = {
            let health = health.clone();
            async move {
                shutdown.await;
                tracing::info!("shutting down: refusing new connections, draining in-flight RPCs");
                // Both the ledger's status and the server-wide one ("") that the health
                // subcommand and most probes ask for.
                health
                    .set_not_serving::<LedgerServer<LedgerService>>()
                    .await;
                health
                    .set_service_status("", tonic_health::ServingStatus::NotServing)
                    .await;
                let _ = drain_tx.send(());
            }
        };
        let serve = Transport::builder()
            .timeout(limits.request_timeout)
            .max_concurrent_streams(limits.max_concurrent_streams)
            .http2_max_header_list_size(limits.max_header_list_size)
            // tonic >= 0.14.3 passes None, which disables hyper's defence against floods of
            // locally reset streams ("MadeYouReset"); restore hyper's own default.
            .http2_max_local_error_reset_streams(Some(1024))
            .http2_max_pending_accept_reset_streams(Some(20))
            .http2_keepalive_interval(Some(limits.keepalive_interval))
            .http2_keepalive_timeout(Some(limits.keepalive_timeout))
            .initial_stream_window_size(64 * 1024)
            .initial_connection_window_size(1024 * 1024)
            .max_connection_age(self.max_connection_age)
            .max_connection_age_grace(limits.drain_timeout)
            .layer(self.authz)
            .add_service(ledger)
            .add_service(health_service)
            .serve_with_incoming_shutdown(incoming, signal);

        let drain_deadline = async {
            if drain_rx.await.is_ok() {
                tokio::time::sleep(limits.drain_timeout).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            served = serve => served?,
            () = drain_deadline => {
                tracing::warn!(timeout = ?limits.drain_timeout, "drain timeout: closing remaining connections");
            }
        }
        tracing::info!("ledger stopped");
        Ok(())
    }
}

/// A ledger serving in a background task (see [`Server::spawn`]). Dropping it shuts the
/// server down gracefully.
#[derive(Debug)]
pub struct Background {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Its service, to observe state (such as how many handlers ran).
    pub service: LedgerService,
    /// Dropping the sender completes the shutdown future.
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
