//! The echo server, in three variants that share everything but what is measured.

use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use zt_authz::Policy;
use zt_authz_layer::{AuthzLayer, PolicyHandle};
use zt_identity::{TrustDomain, TrustedDomains};
use zt_proto::bench::v1::echo_server::{Echo, EchoServer};
use zt_proto::bench::v1::{EchoRequest, EchoResponse};
use zt_telemetry::Metrics;
use zt_tls::{AcceptLimits, BundleSource, ServerFiles, ServerTls};

use crate::pki::{BenchPki, CLIENT_ID, TRUST_DOMAIN};
use crate::{BenchError, Variant};

/// Largest message, as the ledger's default: room for the 64 KiB payload case.
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// The policy of the `mtls-authz` variant: the load generator may echo, nobody else anything.
fn policy() -> Result<Policy, BenchError> {
    let json = serde_json::json!({
        "name": "bench",
        "deny_rules": [{
            "name": "nobody-else",
            "source": {"principals": ["spiffe://bench.example/intruder"]},
        }],
        "allow_rules": [{
            "name": "load-generator-echoes",
            "source": {"principals": [CLIENT_ID]},
            "request": {"paths": ["/bench.v1.Echo/Echo"]},
        }],
    });
    Ok(Policy::from_json(&json.to_string())?)
}

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

/// Serves the echo service on `listener` in `variant` until the process ends.
pub async fn serve(
    variant: Variant,
    listener: TcpListener,
    pki: &BenchPki,
) -> Result<(), BenchError> {
    let echo = EchoServer::new(EchoService)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    // The ledger's HTTP/2 settings, so the variants measure what the ledger would pay.
    let builder = Server::builder()
        .max_concurrent_streams(100)
        .initial_stream_window_size(64 * 1024)
        .initial_connection_window_size(1024 * 1024)
        .http2_max_local_error_reset_streams(Some(1024));
    if variant == Variant::Plain {
        // The builder's `tcp_nodelay` does not reach connections from `serve_with_incoming`:
        // set it on the incoming stream, as the TLS acceptor does, or Nagle and delayed ACKs
        // stall large plaintext responses by 40 ms.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let mut builder = builder;
        return Ok(builder
            .add_service(echo)
            .serve_with_incoming(incoming)
            .await?);
    }

    let domains = TrustedDomains::new([TrustDomain::new(TRUST_DOMAIN)?]);
    let (cert, key) = pki.keystore("server");
    let tls = Arc::new(ServerTls::load(ServerFiles {
        cert,
        key,
        keystore_password: None,
        bundles: vec![BundleSource::from(pki.ca().as_path())],
        crls: Vec::new(),
        domains: domains.clone(),
    })?);
    let metrics = Metrics::new();
    // Room for the idle-connection measurement (G6); everything else as the ledger.
    let limits = AcceptLimits {
        max_connections: 20_000,
        ..AcceptLimits::default()
    };
    let incoming = zt_tls::accept(listener, tls, limits, metrics.clone());
    let mut builder = builder;
    match variant {
        Variant::Mtls => {
            builder
                .add_service(echo)
                .serve_with_incoming(incoming)
                .await?
        }
        _ => {
            let authz = AuthzLayer::new(PolicyHandle::new(policy()?), domains)
                .with_metrics(metrics)
                .with_known_methods(["/bench.v1.Echo/Echo".to_owned()]);
            builder
                .layer(authz)
                .add_service(echo)
                .serve_with_incoming(incoming)
                .await?;
        }
    }
    Ok(())
}
