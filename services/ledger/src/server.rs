//! The ledger on the hardened server of `zt_server`: its service, its methods and its
//! message size. Everything else (acceptor, TLS, authorization, reload, metrics, health,
//! limits, drain) is the library's.

use std::future::Future;

use tokio::net::TcpListener;
use tonic::service::Routes;
use zt_proto::ledger::v1::ledger_server::LedgerServer;
use zt_telemetry::Metrics;

use crate::book::Book;
use crate::config::Config;
use crate::error::Error;
use crate::service::LedgerService;

/// A ledger whose every input (keystore, truststore, CRLs, policies) has been loaded and
/// checked. Building one does all the validation, so a bad file fails before anything listens.
#[derive(Debug)]
pub struct Server {
    server: zt_server::Server,
    ledger: LedgerService,
    max_message_size: usize,
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
    /// Loads and checks every file named in `config`.
    pub fn load(config: Config) -> Result<Self, Error> {
        let server = zt_server::Server::load(config.server_config(), served_methods())?;
        Ok(Self {
            server,
            ledger: LedgerService::new(Book::seeded()),
            max_message_size: config.limits.max_message_size,
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

    /// Serves on `listener` in a background task until the returned handle is dropped.
    pub fn spawn(self, listener: TcpListener) -> Result<Background, Error> {
        let routes = self.routes();
        let service = self.ledger.clone();
        let server = self.server.spawn(listener, routes)?;
        Ok(Background {
            addr: server.addr(),
            service,
            _server: server,
        })
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting, lets in-flight
    /// RPCs finish for up to the drain timeout, and returns.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        let routes = self.routes();
        Ok(self.server.run(listener, routes, shutdown).await?)
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
    /// Dropping it completes the shutdown future.
    _server: zt_server::Background,
}
