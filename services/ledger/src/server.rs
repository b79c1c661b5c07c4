//! Loading the configuration into a ready-to-serve server, and serving it.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::Server as Transport;
use zt_authz::{Policy, Severity};
use zt_authz_layer::{AuthzLayer, PolicyHandle};
use zt_identity::{TrustDomain, TrustedDomains};
use zt_proto::ledger::v1::ledger_server::LedgerServer;
use zt_reload::Reloader;
use zt_telemetry::Metrics;
use zt_tls::{AcceptLimits, ServerFiles, ServerTls};

use crate::book::Book;
use crate::config::Config;
use crate::error::Error;
use crate::service::LedgerService;

/// Longest connection age when the operator sets none.
const DEFAULT_MAX_CONNECTION_AGE: Duration = Duration::from_secs(3600);

/// A ledger whose every input (keystore, truststore, CRLs, policies) has been loaded and
/// checked. Building one does all the validation, so a bad file fails before anything listens.
#[derive(Debug)]
pub struct Server {
    config: Config,
    tls: Arc<ServerTls>,
    policy: PolicyHandle,
    shadow: Option<PolicyHandle>,
    authz: AuthzLayer,
    metrics: Metrics,
    ledger: LedgerService,
    max_connection_age: Duration,
}

/// Every method this server serves (the ledger's and the health service's), for metric labels
/// and policy tooling.
pub fn served_methods() -> Vec<String> {
    [
        zt_proto::ledger::v1::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
    ]
    .into_iter()
    .flat_map(|fds| zt_proto::methods(fds).unwrap_or_default())
    .collect()
}

/// Which policy a file is, in logs: the one enforced, or the shadow one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Enforced,
    Shadow,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::Enforced => "policy",
            Self::Shadow => "shadow policy",
        }
    }
}

/// What `policy check` (and `policy coverage`) say about the policy in `path`, against the
/// served methods: each finding a warning naming the file (target `zt_authz::policy`), at
/// startup and at every reload. With `strict`, an error refuses the policy.
fn vet_policy(path: &Path, policy: &Policy, role: Role, strict: bool) -> Result<(), Error> {
    let methods = served_methods();
    let findings = policy.check(&methods);
    for finding in &findings {
        let severity = match finding.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        tracing::warn!(
            target: "zt_authz::policy",
            file = %path.display(),
            role = role.as_str(),
            policy = policy.name(),
            severity,
            rule = %format_args!("{}[{}]", finding.list, finding.rule),
            "{finding}"
        );
    }
    for method in policy.coverage(&methods) {
        if !method.is_covered() {
            tracing::warn!(
                target: "zt_authz::policy",
                file = %path.display(),
                role = role.as_str(),
                policy = policy.name(),
                severity = "warning",
                method = %method.method,
                "warning: {} is UNCOVERED: no rule allows it or closes it (denied by default)",
                method.method
            );
        }
    }
    let mut errors = findings.iter().filter(|f| f.severity == Severity::Error);
    match errors.next() {
        Some(first) if strict && role == Role::Enforced => Err(Error::PolicyFindings {
            path: path.to_owned(),
            first: first.to_string(),
            errors: 1 + errors.count(),
        }),
        _ => Ok(()),
    }
}

/// Reads and compiles a policy file.
pub fn load_policy(path: &Path) -> Result<Policy, Error> {
    let json = std::fs::read_to_string(path).map_err(|source| Error::PolicyRead {
        path: path.to_owned(),
        source,
    })?;
    Policy::from_json(&json).map_err(|source| Error::Policy {
        path: path.to_owned(),
        source,
    })
}

impl Server {
    /// Loads and checks every file named in `config`.
    pub fn load(config: Config) -> Result<Self, Error> {
        let domains = TrustedDomains::new(config.trust_domains.iter().cloned());
        let tls = Arc::new(ServerTls::load(ServerFiles {
            cert: config.cert.clone(),
            key: config.key.clone(),
            keystore_password: config.keystore_password(),
            bundles: config.truststore(),
            crls: config.crls.clone(),
            domains: domains.clone(),
        })?);
        let enforced = load_policy(&config.policy)?;
        vet_policy(
            &config.policy,
            &enforced,
            Role::Enforced,
            config.strict_policy,
        )?;
        let policy = PolicyHandle::new(enforced);
        let shadow = match &config.shadow_policy {
            Some(path) => {
                let shadow = load_policy(path)?;
                vet_policy(path, &shadow, Role::Shadow, config.strict_policy)?;
                Some(PolicyHandle::new(shadow))
            }
            None => None,
        };
        let metrics = Metrics::new();
        record_certificates(&tls, &metrics);

        let mut authz = AuthzLayer::new(policy.clone(), domains)
            .with_metrics(metrics.clone())
            .with_known_methods(served_methods());
        if let Some(shadow) = &shadow {
            authz = authz.with_shadow(shadow.clone());
        }
        // Every decision and refusal series an alert may be written on, at 0 from now on.
        authz.register_series();

        // Reconnecting clients re-handshake, so they see rotated or revoked certificates; and
        // no connection outlives the certificate that authenticated this server (as of
        // startup: a rotated certificate does not change it).
        let material = tls.current();
        let remaining =
            u64::try_from(material.keystore.not_after() - zt_tls::unix_now()).unwrap_or(0);
        let max_connection_age = config.limits.max_connection_age.unwrap_or_else(|| {
            DEFAULT_MAX_CONNECTION_AGE
                .min(Duration::from_secs(remaining / 2).max(Duration::from_secs(60)))
        });

        tracing::info!(
            identity = %material.keystore.spiffe_id(),
            policy = policy.current().name(),
            shadow_policy = shadow.as_ref().map(|s| s.current().name().to_owned()),
            trust_domains = %config
                .trust_domains
                .iter()
                .map(TrustDomain::as_str)
                .collect::<Vec<_>>()
                .join(","),
            revoked = tls.crls().revoked_count(),
            "ledger configured"
        );
        Ok(Self {
            tls,
            policy,
            shadow,
            authz,
            metrics,
            ledger: LedgerService::new(Book::seeded()),
            max_connection_age,
            config,
        })
    }

    /// The metrics this server records.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Watches every file the server was loaded from, and SIGHUP.
    fn reloader(&self) -> Reloader {
        let mut reloader = Reloader::new(self.config.reload_interval, self.metrics.clone());
        let (tls, metrics) = (Arc::clone(&self.tls), self.metrics.clone());
        reloader = reloader.watch("tls", self.tls.files().paths(), move || {
            tls.reload().map_err(|e| e.to_string())?;
            record_certificates(&tls, &metrics);
            Ok(())
        });
        let policies = [
            (
                Role::Enforced,
                Some(&self.policy),
                Some(&self.config.policy),
            ),
            (
                Role::Shadow,
                self.shadow.as_ref(),
                self.config.shadow_policy.as_ref(),
            ),
        ];
        let strict = self.config.strict_policy;
        for (role, handle, path) in policies {
            if let (Some(handle), Some(path)) = (handle, path) {
                let (handle, file, authz) = (handle.clone(), path.clone(), self.authz.clone());
                reloader = reloader.watch(role.as_str(), vec![path.clone()], move || {
                    let policy = load_policy(&file).map_err(|e| e.to_string())?;
                    vet_policy(&file, &policy, role, strict).map_err(|e| e.to_string())?;
                    handle.replace(policy);
                    // Its rules are new label values: their series start at 0 too.
                    authz.register_series();
                    Ok(())
                });
            }
        }
        reloader
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
        // Both helpers stop when `run` returns (their handles abort on drop).
        let _reloader = AbortOnDrop(self.reloader().spawn());
        let _metrics = match self.config.metrics_listen {
            Some(address) => {
                let listener = TcpListener::bind(address)
                    .await
                    .map_err(|source| Error::MetricsListen { address, source })?;
                tracing::info!(%address, "serving metrics at /metrics");
                Some(AbortOnDrop(tokio::spawn(zt_telemetry::serve_metrics(
                    listener,
                    self.metrics.clone(),
                ))))
            }
            None => None,
        };
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<LedgerServer<LedgerService>>().await;
        let address = listener.local_addr();
        let incoming = zt_tls::accept(
            listener,
            Arc::clone(&self.tls),
            AcceptLimits {
                handshake_timeout: limits.handshake_timeout,
                client_hello_timeout: limits.client_hello_timeout,
                max_pending: limits.max_pending,
                max_pending_per_source: limits.max_pending_per_source,
                max_handshakes: limits.max_handshakes,
                max_connections: limits.max_connections,
                // hyper sends GOAWAY at the maximum age and lets in-flight calls finish; a
                // connection still open after the drain timeout more is closed here.
                max_connection_lifetime: Some(self.max_connection_age + limits.drain_timeout),
                ..AcceptLimits::default()
            },
            self.metrics.clone(),
        );
        // Said only now, with the reloader (and its SIGHUP handler) in place and every
        // counter registered: whoever waits for this line may send a hangup, or scrape, at once.
        if let Ok(address) = address {
            tracing::info!(%address, "listening (mTLS only)");
        }
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
            // Only the age: given a grace too, tonic 0.14 sleeps age + grace and then closes
            // the connection without ever sending GOAWAY, failing the calls in flight. The
            // grace is enforced by the acceptor (`max_connection_lifetime`).
            .max_connection_age(self.max_connection_age)
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

/// Publishes the expiry of our certificate and of every trusted CA, and how many CAs of the
/// bundles are left out (expired or not yet valid).
fn record_certificates(tls: &ServerTls, metrics: &Metrics) {
    let material = tls.current();
    let own = &material.keystore;
    metrics.certificates_in_use("own", &[(own.spiffe_id().to_string(), own.not_after())]);
    let cas: Vec<(String, i64)> = material
        .truststore
        .cas()
        .iter()
        .map(|ca| (ca.subject.clone(), ca.not_after))
        .collect();
    metrics.certificates_in_use("ca", &cas);
    let left_out: Vec<&'static str> = material
        .truststore
        .left_out()
        .iter()
        .map(|ca| ca.reason.reason())
        .collect();
    metrics.cas_left_out(&left_out);
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
