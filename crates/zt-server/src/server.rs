//! Loading a [`ServerConfig`] into a ready-to-serve server, and serving it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use zt_authz_layer::{AuthzLayer, PolicyHandle};
use zt_identity::TrustDomain;
use zt_reload::Reloader;
use zt_telemetry::Metrics;
use zt_tls::{PeerConnectInfo, ServerTls};

use crate::config::ServerConfig;
use crate::error::Error;
use crate::policy::{Role, load_policy, vet_policy};

/// The gRPC health service's name; it answers for the others, not for itself.
const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// Every method of the gRPC health service (`/grpc.health.v1.Health/Check`, `.../Watch`),
/// which every [`Server`] serves behind the same policy as the rest.
pub fn health_methods() -> Vec<String> {
    zt_proto::methods(tonic_health::pb::FILE_DESCRIPTOR_SET).unwrap_or_default()
}

/// A server whose every input (keystore, truststore, CRLs, policies) has been loaded and
/// checked. Loading does all the validation, so a bad file fails before anything listens.
///
/// Serving ([`Server::run`] or [`Server::spawn`]) puts any set of tonic services behind:
/// the hardened acceptor (`zt_tls::accept`: TLS 1.3 mutual TLS, handshake and connection
/// bounds), every HTTP/2 limit of [`Limits`](crate::Limits), the authorization layer
/// (policy, shadow policy, audit), and alongside them the gRPC health service behind the same
/// policy. Every file is reloaded when it changes and on SIGHUP; metrics are served if asked;
/// on shutdown the health service says NOT_SERVING and in-flight RPCs drain.
///
/// # Example
/// ```no_run
/// use zt_identity::{TrustDomain, TrustedDomains};
/// use zt_server::{Server, ServerConfig};
/// use zt_tls::{BundleSource, ServerFiles};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let tls = ServerFiles {
///     cert: "certs/server.pem".into(),
///     key: "certs/server.key".into(),
///     keystore_password: None,
///     bundles: vec![BundleSource::from(std::path::Path::new("certs/ca.pem"))],
///     crls: Vec::new(),
///     domains: TrustedDomains::new([TrustDomain::new("zt.example")?]),
/// };
/// let mut config = ServerConfig::new("echo", tls, "config/policy.json");
/// config.limits.max_connections = 256;
/// // The methods the routes serve, for metric labels and the policy check.
/// let server = Server::load(config, vec!["/echo.v1.Echo/Echo".to_owned()])?;
/// // Your services: `Routes::new(EchoServer::new(echo)).add_service(...)`.
/// let routes = tonic::service::Routes::default();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
/// server
///     .run(listener, routes, async {
///         let _ = tokio::signal::ctrl_c().await;
///     })
///     .await?;
/// # Ok(())
/// # }
/// ```
pub struct Server {
    config: ServerConfig,
    methods: Vec<String>,
    tls: Arc<ServerTls>,
    policy: PolicyHandle,
    shadow: Option<PolicyHandle>,
    authz: AuthzLayer<PeerConnectInfo>,
    metrics: Metrics,
    max_connection_age: Duration,
    /// Until this completes, the health service says NOT_SERVING ([`Server::ready_when`]).
    ready: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.config.name)
            .field("methods", &self.methods)
            .field("max_connection_age", &self.max_connection_age)
            .field("waits_for_readiness", &self.ready.is_some())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Loads and checks every file named in `config`. `served_methods` are the methods the
    /// routes given to [`Server::run`] serve (`/package.Service/Method`; the health
    /// service's are added): metrics label calls to others as unknown, the policy is checked
    /// against them, and each of their services is reported SERVING by the health service.
    ///
    /// Each policy finding is logged as a warning (target `zt_authz::policy`), as is each
    /// method no rule covers.
    ///
    /// # Errors
    /// [`Error::Tls`] for the keystore, truststore or CRLs; [`Error::PolicyRead`] and
    /// [`Error::Policy`] for either policy; [`Error::PolicyFindings`] for an enforced policy
    /// with errors under [`ServerConfig::strict_policy`].
    pub fn load(config: ServerConfig, served_methods: Vec<String>) -> Result<Self, Error> {
        let mut methods = served_methods;
        for method in health_methods() {
            if !methods.contains(&method) {
                methods.push(method);
            }
        }
        let domains = config.tls.domains.clone();
        let tls = Arc::new(ServerTls::load(config.tls.clone())?);
        let (strict, program) = (config.strict_policy, config.name.as_str());
        let enforced = load_policy(&config.policy)?;
        vet_policy(
            &config.policy,
            &enforced,
            Role::Enforced,
            &methods,
            strict,
            program,
        )?;
        let policy = PolicyHandle::new(enforced);
        let shadow = match &config.shadow_policy {
            Some(path) => {
                let shadow = load_policy(path)?;
                vet_policy(path, &shadow, Role::Shadow, &methods, strict, program)?;
                Some(PolicyHandle::new(shadow))
            }
            None => None,
        };
        let metrics = Metrics::new();
        tls.publish_expiry(&metrics);

        let mut authz = AuthzLayer::new(policy.clone())
            .with_metrics(&metrics)
            .with_known_methods(methods.clone());
        if let Some(shadow) = &shadow {
            authz = authz.with_shadow(shadow.clone());
        }
        // Every decision and refusal series an alert may be written on, at 0 from now on.
        authz.register_series();

        // Reconnecting clients re-handshake, so they see rotated or revoked certificates; and
        // no connection outlives the certificate that authenticated this server (as of
        // load: a rotated certificate does not change it).
        let material = tls.current();
        let remaining =
            u64::try_from(material.keystore.not_after() - zt_tls::unix_now()).unwrap_or(0);
        let max_connection_age = config.limits.connection_age(Duration::from_secs(remaining));

        tracing::info!(
            identity = %material.keystore.spiffe_id(),
            policy = policy.current().name(),
            shadow_policy = shadow.as_ref().map(|s| s.current().name().to_owned()),
            trust_domains = %domains
                .domains()
                .iter()
                .map(TrustDomain::as_str)
                .collect::<Vec<_>>()
                .join(","),
            revoked = tls.crls().revoked_count(),
            "{} configured",
            config.name
        );
        Ok(Self {
            config,
            methods,
            tls,
            policy,
            shadow,
            authz,
            metrics,
            max_connection_age,
            ready: None,
        })
    }

    /// Has the health service (gRPC health, which readiness probes and the `health`
    /// subcommands read) answer NOT_SERVING, for every served service and for the server as a
    /// whole (`""`), until `ready` completes; then SERVING. For a server whose handlers need
    /// something that may not be up yet, a database for instance: it listens and answers at
    /// once (its handlers say `UNAVAILABLE` meanwhile, which clients retry), and an
    /// orchestrator keeps traffic away until it is ready. Without it, the server is SERVING as
    /// soon as it listens. A shutdown before `ready` completes stays NOT_SERVING.
    pub fn ready_when(mut self, ready: impl Future<Output = ()> + Send + 'static) -> Self {
        self.ready = Some(Box::pin(ready));
        self
    }

    /// The metrics this server records (and serves at `/metrics` when
    /// [`ServerConfig::metrics_listen`] is set).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Every method served: those given to [`Server::load`] and the health service's.
    pub fn served_methods(&self) -> &[String] {
        &self.methods
    }

    /// The maximum connection age in force (see [`Limits::connection_age`]).
    ///
    /// [`Limits::connection_age`]: crate::Limits::connection_age
    pub fn max_connection_age(&self) -> Duration {
        self.max_connection_age
    }

    /// Watches every file the server was loaded from, and SIGHUP.
    fn reloader(&self) -> Reloader {
        let mut reloader = Reloader::new(self.config.reload_interval, self.metrics.clone());
        let (tls, metrics) = (Arc::clone(&self.tls), self.metrics.clone());
        reloader = reloader.watch("tls", self.tls.files().paths(), move || {
            tls.reload()?;
            tls.publish_expiry(&metrics);
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
                let (methods, program) = (self.methods.clone(), self.config.name.clone());
                reloader = reloader.watch(role.as_str(), vec![path.clone()], move || {
                    let policy = load_policy(&file)?;
                    vet_policy(&file, &policy, role, &methods, strict, &program)?;
                    handle.replace(policy);
                    // Its rules are new label values: their series start at 0 too.
                    authz.register_series();
                    Ok(())
                });
            }
        }
        reloader
    }

    /// The services the health service answers for: those of the served methods, but
    /// itself.
    fn service_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for method in &self.methods {
            let service = method
                .strip_prefix('/')
                .and_then(|rest| rest.split_once('/'))
                .map(|(service, _)| service);
            if let Some(service) = service
                && service != HEALTH_SERVICE
                && !names.iter().any(|n| n == service)
            {
                names.push(service.to_owned());
            }
        }
        names
    }

    /// Serves `routes` on `listener` in a background task until the returned handle is
    /// dropped or stopped.
    ///
    /// # Errors
    /// [`Error::Listener`] if the listener's address cannot be read.
    pub fn spawn(self, listener: TcpListener, routes: Routes) -> Result<Background, Error> {
        let addr = listener.local_addr().map_err(Error::Listener)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.run(listener, routes, async {
            let _ = stopped.await;
        }));
        Ok(Background {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// Serves `routes` (and the health service) on `listener` until `shutdown` completes,
    /// then says NOT_SERVING, stops accepting, lets in-flight RPCs finish for up to
    /// [`Limits::drain_timeout`](crate::Limits::drain_timeout), and returns.
    ///
    /// The log line `listening (mTLS only)` (with the `address`) is written once the
    /// reloader, its SIGHUP handler and every counter are in place.
    ///
    /// # Errors
    /// [`Error::MetricsListen`] if the metrics listener cannot bind; [`Error::Serve`] if
    /// the transport fails.
    pub async fn run(
        self,
        listener: TcpListener,
        routes: Routes,
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
        let services = self.service_names();
        let (health, health_service) = tonic_health::server::health_reporter();
        let becoming_ready = match self.ready {
            None => {
                set_status(&health, &services, ServingStatus::Serving).await;
                None
            }
            Some(ready) => {
                set_status(&health, &services, ServingStatus::NotServing).await;
                health
                    .set_service_status("", ServingStatus::NotServing)
                    .await;
                let (health, services) = (health.clone(), services.clone());
                let name = self.config.name.clone();
                Some(AbortOnDrop(tokio::spawn(async move {
                    ready.await;
                    set_status(&health, &services, ServingStatus::Serving).await;
                    health.set_service_status("", ServingStatus::Serving).await;
                    tracing::info!("{name} ready: health says SERVING");
                })))
            }
        };
        let address = listener.local_addr();
        let incoming = zt_tls::accept(
            listener,
            Arc::clone(&self.tls),
            limits.accept_limits(self.max_connection_age),
            self.metrics.clone(),
        );
        // Said only now, with the reloader (and its SIGHUP handler) in place and every
        // counter registered: whoever waits for this line may send a hangup, or scrape, at once.
        if let Ok(address) = address {
            tracing::info!(%address, "listening (mTLS only)");
        }

        let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = {
            let health = health.clone();
            async move {
                shutdown.await;
                // Not ready yet: it never will be.
                drop(becoming_ready);
                tracing::info!("shutting down: refusing new connections, draining in-flight RPCs");
                // Each service's status and the server-wide one ("") that health probes
                // mostly ask for.
                set_status(&health, &services, ServingStatus::NotServing).await;
                health
                    .set_service_status("", ServingStatus::NotServing)
                    .await;
                let _ = drain_tx.send(());
            }
        };
        let serve = limits
            .transport(self.max_connection_age)
            .layer(self.authz)
            .add_routes(routes)
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
        tracing::info!("{} stopped", self.config.name);
        Ok(())
    }
}

/// A server serving in a background task (see [`Server::spawn`]). Dropping it shuts the
/// server down gracefully (the task drains on its own); [`Background::stop`] also waits.
#[derive(Debug)]
pub struct Background {
    addr: SocketAddr,
    /// Dropping the sender completes the shutdown future.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl Background {
    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shuts the server down gracefully and waits until it has drained and returned.
    ///
    /// # Errors
    /// What [`Server::run`] returned, or [`Error::Task`] if the task panicked.
    pub async fn stop(mut self) -> Result<(), Error> {
        drop(self.stop.take());
        (&mut self.task).await?
    }
}

/// Sets the health status of each of `services`.
async fn set_status(health: &HealthReporter, services: &[String], status: ServingStatus) {
    for service in services {
        health.set_service_status(service, status).await;
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
