//! A service of its own behind the project's hardened mTLS server: the Greeter, with the
//! policy in `policy.json`. `Service` is the service; the rest (flags, `serve`, `shutdown`)
//! is wiring onto `zt_server`.
//!
//! ```sh
//! greeter-server --cert certs/greeter.pem --key certs/greeter.key --ca certs/ca.pem \
//!     --policy examples/greeter/policy.json --listen 127.0.0.1:8443
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use greeter::v1::greeter_server::{Greeter, GreeterServer};
use greeter::v1::{AdminReply, AdminRequest, FILE_DESCRIPTOR_SET, HelloReply, HelloRequest};
use tonic::{Request, Response, Status};
use zt_identity::{PeerIdentity, TrustDomain, TrustedDomains};
use zt_server::{DEFAULT_MAX_MESSAGE_SIZE, Server, ServerConfig};
use zt_tls::{BundleSource, ServerFiles};

/// The service: what is about it, and nothing about TLS or authorization.
struct Service;

#[tonic::async_trait]
impl Greeter for Service {
    async fn hello(&self, request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        // The caller's verified identity, put there by the authorization layer.
        let caller = request.extensions().get::<Arc<PeerIdentity>>().map_or_else(
            || "an unknown caller".to_owned(),
            |peer| peer.spiffe_id().to_string(),
        );
        let name = request.into_inner().name;
        Ok(Response::new(HelloReply {
            message: format!("hello {name}, you are {caller}"),
        }))
    }

    async fn admin(&self, _: Request<AdminRequest>) -> Result<Response<AdminReply>, Status> {
        Ok(Response::new(AdminReply {
            message: "admin work done".to_owned(),
        }))
    }
}

/// Serves the Greeter over mutual TLS, enforcing a gRFC A43 policy.
#[derive(Debug, Parser)]
struct Args {
    /// Our certificate chain (PEM, leaf first).
    #[arg(long, env = "GREETER_CERT")]
    cert: PathBuf,
    /// Our private key (PEM).
    #[arg(long, env = "GREETER_KEY")]
    key: PathBuf,
    /// The CA bundle clients' certificates must chain to (`[TRUST-DOMAIN=]PATH`).
    #[arg(long, env = "GREETER_CA")]
    ca: BundleSource,
    /// The authorization policy (gRFC A43 JSON).
    #[arg(long, env = "GREETER_POLICY")]
    policy: PathBuf,
    /// Where to listen.
    #[arg(long, env = "GREETER_LISTEN", default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// The trust domain clients may come from.
    #[arg(long, env = "GREETER_TRUST_DOMAIN", default_value = "zt.example")]
    trust_domain: TrustDomain,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    zt_telemetry::init(zt_telemetry::LogFormat::Text);
    zt_telemetry::exit_code("greeter-server", serve(Args::parse()).await.map(|()| true))
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let tls = ServerFiles {
        cert: args.cert,
        key: args.key,
        keystore_password: None,
        bundles: vec![args.ca],
        crls: Vec::new(),
        domains: TrustedDomains::new([args.trust_domain]),
    };
    // Every limit, reload, metrics and health at its default: see zt_server::Limits.
    let config = ServerConfig::new("greeter", tls, args.policy);
    let server = Server::load(config, zt_proto::methods(FILE_DESCRIPTOR_SET)?)?;
    let service = GreeterServer::new(Service)
        .max_decoding_message_size(DEFAULT_MAX_MESSAGE_SIZE)
        .max_encoding_message_size(DEFAULT_MAX_MESSAGE_SIZE);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let routes = tonic::service::Routes::new(service);
    server.run(listener, routes, shutdown()).await?;
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C; the server then drains and returns.
async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
