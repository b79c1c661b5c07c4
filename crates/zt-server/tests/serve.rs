//! Any tonic service on the library's stack: mutual TLS, the policy in front of every method
//! (health included), the health service saying NOT_SERVING on shutdown, and a drain bounded
//! by the drain timeout. (The ledger's tests cover every limit through this same stack.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

use std::time::{Duration, Instant};

use tonic::service::Routes;
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use zt_identity::{TrustDomain, TrustedDomains};
use zt_proto::bench::v1::echo_client::EchoClient;
use zt_proto::bench::v1::echo_server::{Echo, EchoServer};
use zt_proto::bench::v1::{EchoRequest, EchoResponse};
use zt_server::{Server, ServerConfig};
use zt_testkit::{TestPki, mtls_channel};
use zt_tls::{BundleSource, ServerFiles};

const SERVER_ID: &str = "spiffe://zt.example/server";
const CLIENT_ID: &str = "spiffe://zt.example/client";
const OTHER_ID: &str = "spiffe://zt.example/other";

struct EchoService;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        Ok(Response::new(EchoResponse {
            payload: request.into_inner().payload,
        }))
    }
}

#[tokio::test]
async fn a_service_behind_the_policy_with_health_and_a_bounded_drain() {
    let pki = TestPki::new("zt.example");
    let server_id = pki.issue("server", SERVER_ID, &["localhost"]);
    let client = pki.issue("client", CLIENT_ID, &[]);
    let other = pki.issue("other", OTHER_ID, &[]);
    let policy = pki.write(
        "policy.json",
        serde_json::json!({
            "name": "echo",
            "allow_rules": [{
                "name": "client-echoes-and-checks-health",
                "source": {"principals": [CLIENT_ID]},
                "request": {"paths": ["/bench.v1.Echo/*", "/grpc.health.v1.Health/*"]},
            }],
        })
        .to_string(),
    );
    let tls = ServerFiles {
        cert: server_id.cert.clone(),
        key: server_id.key.clone(),
        keystore_password: None,
        bundles: vec![BundleSource::from(pki.ca_cert().as_path())],
        crls: Vec::new(),
        domains: TrustedDomains::new([TrustDomain::new("zt.example").unwrap()]),
    };
    let mut config = ServerConfig::new("echo", tls, policy);
    config.limits.drain_timeout = Duration::from_secs(1);
    let server = Server::load(config, vec!["/bench.v1.Echo/Echo".to_owned()]).unwrap();
    assert!(
        server
            .served_methods()
            .contains(&"/grpc.health.v1.Health/Check".to_owned())
    );
    let metrics = server.metrics().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let background = server
        .spawn(listener, Routes::new(EchoServer::new(EchoService)))
        .unwrap();
    let addr = background.addr();

    let channel = mtls_channel(addr, &client, &pki.ca_cert(), SERVER_ID);
    let echoed = EchoClient::new(channel.clone())
        .echo(EchoRequest {
            payload: b"hi".to_vec(),
        })
        .await
        .unwrap();
    assert_eq!(echoed.into_inner().payload, b"hi");
    let mut health = HealthClient::new(channel);
    for service in ["", "bench.v1.Echo"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }

    // Health is behind the same policy as the service.
    let refused = HealthClient::new(mtls_channel(addr, &other, &pki.ca_cert(), SERVER_ID))
        .check(HealthCheckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let scraped = metrics.encode();
    assert!(
        scraped.contains(
            "zt_authz_decisions_total{policy=\"echo\",rule=\"<default deny>\",decision=\"deny\",\
             mode=\"enforce\",method=\"/grpc.health.v1.Health/Check\"} 1"
        ),
        "{scraped}"
    );

    // A watcher sees NOT_SERVING on shutdown; it holds its stream open, so the server
    // returns at the drain timeout.
    let mut watch = health
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
    let started = Instant::now();
    let stopped = tokio::spawn(background.stop());
    let next = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("a status change within 5 s")
        .unwrap()
        .unwrap();
    assert_eq!(next.status(), ServingStatus::NotServing);
    tokio::time::timeout(Duration::from_secs(5), stopped)
        .await
        .expect("stopped within 5 s")
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(4)).contains(&took),
        "the open watch holds the drain until its timeout (1 s): {took:?}"
    );
}
