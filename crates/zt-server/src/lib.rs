//! The hardened mutual-TLS gRPC server, as a library: serve any set of tonic services the
//! way the ledger serves its own.
//!
//! From a typed [`ServerConfig`] (binaries map their flags onto it), [`Server::load`] loads
//! and checks every file, and [`Server::run`] serves until a shutdown future completes:
//!
//! - the hardened acceptor (`zt_tls::accept`): TLS 1.3 mutual TLS with SPIFFE identities,
//!   handshake, pending and connection bounds, a bounded connection lifetime;
//! - every HTTP/2 limit of [`Limits`] (streams, header list, request timeout, keepalive,
//!   reset-flood caps, windows, maximum connection age with GOAWAY);
//! - the authorization layer (`zt_authz_layer`): the enforced policy, an optional shadow
//!   policy, the audit log, decision metrics with every series registered at 0;
//! - hot reload (`zt_reload`) of every TLS file and policy when it changes and on SIGHUP,
//!   each policy vetted as at load;
//! - the metrics listener, certificate expiry and left-out-CA gauges;
//! - the gRPC health service behind the same policy, NOT_SERVING on shutdown;
//! - graceful drain on shutdown, bounded by [`Limits::drain_timeout`].
//!
//! [`Server::spawn`] serves in the background for tests, until its [`Background`] is
//! dropped.
//!
//! What stays with each service is what is about it: its routes, the methods they serve,
//! and its message size (see [`DEFAULT_MAX_MESSAGE_SIZE`]).

mod config;
mod error;
mod policy;
mod server;

pub use config::{
    DEFAULT_MAX_CONNECTION_AGE, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_RELOAD_INTERVAL, Limits,
    MIN_DEFAULT_CONNECTION_AGE, ServerConfig,
};
pub use error::Error;
pub use policy::load_policy;
pub use server::{Background, Server, health_methods};
