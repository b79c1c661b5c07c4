//! Mutual TLS for the services, built on rustls directly.
//!
//! tonic's own TLS builds one rustls config it never changes, cannot pin TLS 1.3, and cannot
//! check a SPIFFE ID. This crate owns the whole TLS story instead:
//!
//! - [`Keystore`] (a service's own certificate chain and private key) and [`Truststore`] (the CAs
//!   it trusts, *per trust domain*), loaded from PEM files with errors that name the file and
//!   the problem.
//! - [`server_config`]: TLS 1.3 only, ALPN `h2` only, a client certificate *required*, chained
//!   to the truststore *and* a valid X509-SVID from a trusted trust domain, not revoked by the
//!   [`Crls`]. [`ServerTls`] holds it and rebuilds it from the files on reload.
//! - [`client_config`]: the client presents its own certificate and accepts a server only if its
//!   chain verifies and its SPIFFE ID is exactly the one expected (DNS names play no part).
//! - [`accept`]: the server's accept loop, with a handshake timeout, handshake and connection
//!   caps, TCP keepalive and a structured log line and metric for every refused peer. Each
//!   connection carries a [`PeerConnectInfo`] that caches the peer's identity for all requests
//!   on it, checks it against the current CRLs, and can close the connection.
//! - [`channel`] / [`MtlsConnector`]: a tonic channel (or just its connector) over mutual TLS.
//! - [`probe`]: what a server answers a given client configuration (alert, close, accept).
//! - [`describe_tls`] / [`describe_handshake`]: a TLS failure in words, with a stable `reason`.
//!
//! A server's accept loop (the `zt-server` crate wires this, the authorization layer and
//! tonic together; use it unless you need your own server):
//!
//! ```no_run
//! use std::sync::Arc;
//! use zt_identity::{TrustDomain, TrustedDomains};
//! use zt_tls::{AcceptLimits, ServerFiles, ServerTls};
//!
//! # async fn serve() -> Result<(), Box<dyn std::error::Error>> {
//! let tls = Arc::new(ServerTls::load(ServerFiles {
//!     cert: "certs/ledger.pem".into(),
//!     key: "certs/ledger.key".into(),
//!     keystore_password: None,
//!     bundles: vec!["certs/ca.pem".parse()?],
//!     crls: Vec::new(),
//!     domains: TrustedDomains::new([TrustDomain::new("zt.example")?]),
//! })?);
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
//! let metrics = zt_telemetry::Metrics::new();
//! let incoming = zt_tls::accept(listener, tls, AcceptLimits::default(), metrics);
//! // Each item is a PeerStream whose PeerConnectInfo carries the peer's identity:
//! // tonic::transport::Server::builder().layer(authz).add_service(svc)
//! //     .serve_with_incoming(incoming)
//! # drop(incoming);
//! # Ok(())
//! # }
//! ```

mod acceptor;
mod client;
mod crl;
mod describe;
mod error;
mod formats;
mod metrics;
mod probe;
mod server;
mod store;
mod usable;
mod verify;

pub use acceptor::{AcceptLimits, PeerConnectInfo, PeerStream, accept};
pub use client::{ClientTls, MtlsConnector, channel, client_config};
pub use crl::Crls;
pub use describe::{
    REFUSAL_REASONS, TlsFailure, alert_name, describe_handshake, describe_tls, grpc_code_name,
};
pub use error::TlsError;
pub use formats::Password;
pub use probe::{Probe, probe};
pub use server::{ServerFiles, ServerMaterial, ServerTls, server_config};
pub use store::{
    Binding, BundleEntry, BundleSource, CaRefusal, CaVerdict, Keystore, LeftOut, LeftOutCa,
    TrustedCa, Truststore, load_certs, unix_now,
};
pub use usable::{CaProblem, ChainProblem, ChainUse, ca_problem, chain_verdict};
pub use verify::UnexpectedServer;

/// The one crypto provider used everywhere (aws-lc-rs), so no process ever mixes two. Its key
/// exchanges, in order of preference: X25519MLKEM768 (post-quantum hybrid), X25519, P-256,
/// P-384; a peer without the hybrid gets X25519 (after one HelloRetryRequest at most).
pub fn crypto_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}
