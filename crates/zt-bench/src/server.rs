//! The echo server, in three variants that share everything but what is measured.
//!
//! `mtls-authz` is exactly what a service on `zt_server` runs (the ledger's stack): the
//! hardened acceptor, the authorization layer, every limit, reload, health. The baselines
//! take the same limits from [`zt_server::Limits`]: `plain` its HTTP/2 settings over TCP,
//! `mtls` those and the acceptor's, without the authorization layer.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use zt_identity::{TrustDomain, TrustedDomains};
use zt_proto::bench::v1::echo_server::{Echo, EchoServer};
use zt_proto::bench::v1::{EchoRequest, EchoResponse};
use zt_server::{DEFAULT_MAX_MESSAGE_SIZE, Limits, ServerConfig};
use zt_telemetry::Metrics;
use zt_tls::{BundleSource, ServerFiles, ServerTls};

use crate::pki::{BenchPki, TRUST_DOMAIN};
use crate::{BenchError, Variant};

/// The one method served.
const ECHO: &str = "/bench.v1.Echo/Echo";

#[derive(Debug, Clone, Copy)]
struct EchoService;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        Ok(Response::new(EchoResponse {
            payload: request.into_inner().payload,
        }))
    }
}

/// The library's limits, but room for the idle-connection measurement (G6).
fn limits() -> Limits {
    Limits {
        max_connections: 20_000,
        ..Limits::default()
    }
}

/// The server's TLS files: its keystore, the bench CA, the bench trust domain.
fn tls_files(pki: &BenchPki) -> Result<ServerFiles, BenchError> {
    let (cert, key) = pki.keystore("server");
    Ok(ServerFiles {
        cert,
        key,
        keystore_password: None,
        bundles: vec![BundleSource::from(pki.ca().as_path())],
        crls: Vec::new(),
        domains: TrustedDomains::new([TrustDomain::new(TRUST_DOMAIN)?]),
    })
}

/// Serves the echo service on `listener` in `variant` until the process ends.
pub async fn serve(
    variant: Variant,
    listener: TcpListener,
    pki: &BenchPki,
) -> Result<(), BenchError> {
    // Room for the 64 KiB payload case; the message size is the service's own.
    let echo = EchoServer::new(EchoService)
        .max_decoding_message_size(DEFAULT_MAX_MESSAGE_SIZE)
        .max_encoding_message_size(DEFAULT_MAX_MESSAGE_SIZE);
    let limits = limits();
    match variant {
        Variant::Plain => {
            // The builder's `tcp_nodelay` does not reach connections from
            // `serve_with_incoming`: set it on the incoming stream, as the TLS acceptor does,
            // or Nagle and delayed ACKs stall large plaintext responses by 40 ms.
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            let age = limits.connection_age(Duration::MAX);
            limits
                .transport(age)
                .add_service(echo)
                .serve_with_incoming(incoming)
                .await?;
        }
        Variant::Mtls => {
            let tls = Arc::new(ServerTls::load(tls_files(pki)?)?);
            let remaining = tls.current().keystore.not_after() - zt_tls::unix_now();
            let age =
                limits.connection_age(Duration::from_secs(u64::try_from(remaining).unwrap_or(0)));
            let incoming = zt_tls::accept(listener, tls, limits.accept_limits(age), Metrics::new());
            limits
                .transport(age)
                .add_service(echo)
                .serve_with_incoming(incoming)
                .await?;
        }
        Variant::MtlsAuthz => {
            let mut config = ServerConfig::new("zt-bench", tls_files(pki)?, pki.write_policy()?);
            config.limits = limits;
            let server = zt_server::Server::load(config, vec![ECHO.to_owned()])?;
            server
                .run(listener, Routes::new(echo), std::future::pending())
                .await?;
        }
    }
    Ok(())
}
