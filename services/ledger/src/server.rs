//! The ledger on the hardened server of `zt_server`: its service, its methods, its message
//! size and its database. Everything else (acceptor, TLS, authorization, reload, metrics,
//! health, limits, drain) is the library's.

use std::future::Future;

use tokio::net::TcpListener;
use tonic::service::Routes;
use zt_proto::ledger::v1::ledger_server::LedgerServer;
use zt_telemetry::Metrics;

use crate::book::BookError;
use crate::config::Config;
use crate::error::Error;
use crate::service::LedgerService;
use crate::store::{self, ClientTls, DatabaseUrl};

/// A ledger whose every input (keystore, truststore, CRLs, policies, database URL) has been
/// loaded and checked. Building one does all the validation, so a bad file fails before
/// anything listens.
#[derive(Debug)]
pub struct Server {
    server: zt_server::Server,
    ledger: LedgerService,
    max_message_size: usize,
    database: DatabaseUrl,
    database_tls: ClientTls,
}

/// Every method this server serves (the ledger's and the health service's), for metric labels
/// and policy tooling.
pub fn served_methods() -> Vec<String> {
    let mut methods =
        zt_proto::methods(zt_proto::ledger::v1::FILE_DESCRIPTOR_SET).unwrap_or_default();
    methods.extend(zt_server::health_methods());
    methods
}

impl Server {
    /// Loads and checks every file named in `config`. The database is reached later, by
    /// [`Server::run`] or [`Server::spawn`].
    ///
    /// # Errors
    /// [`Error::Server`] for the TLS files and policies; [`Error::Usage`] for a PostgreSQL
    /// database with a keystore that is not PEM files.
    pub fn load(config: Config) -> Result<Self, Error> {
        let database_tls = config.database_tls()?;
        let server = zt_server::Server::load(config.server_config(), served_methods())?;
        Ok(Self {
            server,
            ledger: LedgerService::new(),
            max_message_size: config.limits.max_message_size,
            database: config.database,
            database_tls,
        })
    }

    /// The metrics this server records.
    pub fn metrics(&self) -> &Metrics {
        self.server.metrics()
    }

    /// The service behind the server, to observe its state.
    pub fn ledger(&self) -> &LedgerService {
        &self.ledger
    }

    /// The ledger's routes: its service with its message size.
    fn routes(&self) -> Routes {
        Routes::new(
            LedgerServer::new(self.ledger.clone())
                .max_decoding_message_size(self.max_message_size)
                .max_encoding_message_size(self.max_message_size),
        )
    }

    /// Serves on `listener` in a background task until the returned handle is dropped. As
    /// with [`Server::run`], the health service says NOT_SERVING until the database is ready.
    ///
    /// # Errors
    /// [`Error::Server`] if the listener's address cannot be read.
    pub fn spawn(self, listener: TcpListener) -> Result<Background, Error> {
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Server(zt_server::Error::Listener(e)))?;
        let service = self.ledger.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let result = self
                .run(listener, async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(err) = &result {
                tracing::error!(error = %err, "ledger stopped");
            }
            result
        });
        Ok(Background {
            addr,
            service,
            _stop: stop,
            _task: task,
        })
    }

    /// Opens the database, then serves on `listener` until `shutdown` completes, stops
    /// accepting, lets in-flight RPCs finish for up to the drain timeout, and returns.
    ///
    /// If the database cannot be reached at first, the ledger serves anyway while it keeps
    /// trying (with backoff, logging why): until the database is ready, the health service
    /// says NOT_SERVING (a readiness probe keeps traffic away) and the ledger's calls are
    /// answered `UNAVAILABLE` (clients retry).
    ///
    /// # Errors
    /// [`Error::Database`] for a database URL that can never work; [`Error::Server`] when
    /// serving fails.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        let routes = self.routes();
        let (ledger, database, tls) = (self.ledger, self.database, self.database_tls);
        // The common case first: the database is there, and the ledger is ready as it listens.
        match store::open(&database, &tls).await {
            Ok(store) => {
                tracing::info!(%database, "database ready");
                ledger.attach(store);
                return Ok(self.server.run(listener, routes, shutdown).await?);
            }
            Err(BookError::Unavailable(err)) => tracing::warn!(
                %database,
                "database not reachable: serving NOT_SERVING until it is: {}",
                zt_telemetry::error_line(&*err)
            ),
            Err(source) => return Err(Error::Database { database, source }),
        }
        let (ready, is_ready) = tokio::sync::oneshot::channel::<()>();
        let serve = self
            .server
            .ready_when(async move {
                let _ = is_ready.await;
            })
            .run(listener, routes, shutdown);
        let open = async move {
            let store = match store::open_with_backoff(&database, &tls).await {
                Ok(store) => store,
                Err(source) => return Err(Error::Database { database, source }),
            };
            ledger.attach(store);
            let _ = ready.send(());
            // Serving goes on; only a database that can never work ends it.
            std::future::pending::<Result<(), Error>>().await
        };
        tokio::select! {
            served = serve => Ok(served?),
            failed = open => failed,
        }
    }
}

/// A ledger serving in a background task (see [`Server::spawn`]). Dropping it shuts the
/// server down gracefully.
#[derive(Debug)]
pub struct Background {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Its service, to observe state (such as how many handlers ran, or the books).
    pub service: LedgerService,
    /// Dropping it completes the shutdown future.
    _stop: tokio::sync::oneshot::Sender<()>,
    /// The serving task. Dropping the handle detaches it: it drains on its own once `_stop`
    /// is gone.
    _task: tokio::task::JoinHandle<Result<(), Error>>,
}
