//! A user's own tonic client on the library: the pinned server identity refused in a
//! sentence, never retried; UNAVAILABLE retried with backoff, and nothing else retried; a
//! refused call in words; a reload redials.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tonic::service::Routes;
use tonic::{Code, Request, Response, Status};
use zt_client::{BackoffConfig, Client, ClientConfig, Error};
use zt_identity::{TrustDomain, TrustedDomains};
use zt_proto::bench::v1::echo_client::EchoClient;
use zt_proto::bench::v1::echo_server::{Echo, EchoServer};
use zt_proto::bench::v1::{EchoRequest, EchoResponse};
use zt_server::{Background, Server, ServerConfig};
use zt_testkit::{Identity, TestPki};
use zt_tls::{BundleSource, ServerFiles};

const SERVER_ID: &str = "spiffe://zt.example/server";
const IMPOSTOR_ID: &str = "spiffe://zt.example/impostor";
const CLIENT_ID: &str = "spiffe://zt.example/client";

struct EchoService;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        Ok(Response::new(EchoResponse {
            payload: request.into_inner().payload,
        }))
    }
}

/// An echo server with `identity`'s certificate, allowing `allowed` to call it.
async fn serve(pki: &TestPki, identity: &Identity, allowed: &str) -> Background {
    let policy = pki.write(
        "policy.json",
        format!(
            r#"{{"name": "echo", "allow_rules": [{{"name": "echo",
                "source": {{"principals": ["{allowed}"]}},
                "request": {{"paths": ["/bench.v1.Echo/*"]}}}}]}}"#
        ),
    );
    let tls = ServerFiles {
        cert: identity.cert.clone(),
        key: identity.key.clone(),
        keystore_password: None,
        bundles: vec![BundleSource::from(pki.ca_cert().as_path())],
        crls: Vec::new(),
        domains: TrustedDomains::new([TrustDomain::new("zt.example").unwrap()]),
    };
    let server = Server::load(
        ServerConfig::new("echo", tls, policy),
        vec!["/bench.v1.Echo/Echo".to_owned()],
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    server
        .spawn(listener, Routes::new(EchoServer::new(EchoService)))
        .unwrap()
}

fn config(pki: &TestPki, addr: SocketAddr, client: &Identity) -> ClientConfig {
    let mut config = ClientConfig::new(
        format!("https://localhost:{}", addr.port())
            .parse()
            .unwrap(),
        SERVER_ID.parse().unwrap(),
        &client.cert,
        &client.key,
        vec![BundleSource::from(pki.ca_cert().as_path())],
    );
    config.backoff = BackoffConfig {
        initial: Duration::from_millis(20),
        ..BackoffConfig::default()
    };
    config
}

/// Echoes once through `client.retry`, counting the attempts in `calls`.
async fn echo(client: &Client, calls: &AtomicU32) -> Result<Vec<u8>, Error> {
    client
        .retry(|channel| {
            calls.fetch_add(1, Ordering::Relaxed);
            async move {
                EchoClient::new(channel)
                    .echo(EchoRequest {
                        payload: b"hi".to_vec(),
                    })
                    .await
            }
        })
        .await
        .map(|r| r.payload)
}

#[tokio::test]
async fn the_pinned_server_answers_and_a_refused_call_is_a_sentence() {
    let pki = TestPki::new("zt.example");
    let server = pki.issue("server", SERVER_ID, &["localhost"]);
    let client = pki.issue("client", CLIENT_ID, &[]);
    let running = serve(&pki, &server, CLIENT_ID).await;
    let me = Client::connect(&config(&pki, running.addr(), &client)).unwrap();
    let calls = AtomicU32::new(0);
    assert_eq!(echo(&me, &calls).await.unwrap(), b"hi");

    // Another identity of ours, which the policy does not allow: refused once, not retried.
    let stranger = pki.issue("stranger", "spiffe://zt.example/stranger", &[]);
    let other = Client::connect(&config(&pki, running.addr(), &stranger)).unwrap();
    let calls = AtomicU32::new(0);
    let err = echo(&other, &calls).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied));
    assert_eq!(calls.load(Ordering::Relaxed), 1, "a refusal is not retried");
    assert!(
        err.to_string().starts_with("the server refused the call: "),
        "{err}"
    );
    assert!(
        err.to_string().ends_with(" (gRPC PERMISSION_DENIED)"),
        "{err}"
    );
}

#[tokio::test]
async fn a_server_with_the_wrong_identity_is_refused_in_a_sentence_and_never_retried() {
    let pki = TestPki::new("zt.example");
    let impostor = pki.issue("impostor", IMPOSTOR_ID, &["localhost"]);
    let client = pki.issue("client", CLIENT_ID, &[]);
    let running = serve(&pki, &impostor, CLIENT_ID).await;
    let me = Client::connect(&config(&pki, running.addr(), &client)).unwrap();
    let calls = AtomicU32::new(0);
    let started = Instant::now();
    let err = echo(&me, &calls).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::ServerRefused {
                reason: "unexpected_server",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "mutual TLS handshake with the server failed: server presented {IMPOSTOR_ID}, \
             expected {SERVER_ID}"
        )
    );
    assert_eq!(
        calls.load(Ordering::Relaxed),
        1,
        "a refused identity is not retried"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn an_unreachable_server_is_retried_with_backoff_up_to_the_attempts() {
    let pki = TestPki::new("zt.example");
    let client = pki.issue("client", CLIENT_ID, &[]);
    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut config = config(&pki, closed, &client);
    config.attempts = 3;
    let me = Client::connect(&config).unwrap();
    let calls = AtomicU32::new(0);
    let started = Instant::now();
    let err = echo(&me, &calls).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unavailable), "{err}");
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    // Two delays: 20 ms and 32 ms, each within 20 % jitter.
    assert!(
        started.elapsed() >= Duration::from_millis(16 + 25),
        "{:?}",
        started.elapsed()
    );
    assert!(
        err.to_string().starts_with("the server is unavailable: "),
        "{err}"
    );
}

#[tokio::test]
async fn a_reload_redials_and_keeps_answering() {
    let pki = TestPki::new("zt.example");
    let server = pki.issue("server", SERVER_ID, &["localhost"]);
    let client = pki.issue("client", CLIENT_ID, &[]);
    let running = serve(&pki, &server, CLIENT_ID).await;
    let me = Client::connect(&config(&pki, running.addr(), &client)).unwrap();
    let calls = AtomicU32::new(0);
    echo(&me, &calls).await.unwrap();
    me.tls().reload().unwrap();
    assert_eq!(me.tls().generation(), 1);
    assert_eq!(echo(&me, &calls).await.unwrap(), b"hi");
    assert_eq!(calls.load(Ordering::Relaxed), 2);
}
