//! A user's own tonic client on the library: the pinned server identity refused in a
//! sentence, never retried; UNAVAILABLE retried with backoff, and nothing else retried; a
//! refused call in words; a reload redials; replicas share the calls, each pinned, and a
//! stopped one costs no call.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

use std::net::SocketAddr;
use std::sync::Arc;
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

/// Echoes, counting the calls it answered.
#[derive(Default)]
struct EchoService(Arc<AtomicU32>);

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(EchoResponse {
            payload: request.into_inner().payload,
        }))
    }
}

/// An echo server with `identity`'s certificate, allowing `allowed` to call it.
async fn serve(pki: &TestPki, identity: &Identity, allowed: &str) -> Background {
    serve_counted(pki, identity, allowed, Arc::default()).await
}

/// [`serve`], counting the calls answered in `answered`.
async fn serve_counted(
    pki: &TestPki,
    identity: &Identity,
    allowed: &str,
    answered: Arc<AtomicU32>,
) -> Background {
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
        .spawn(
            listener,
            Routes::new(EchoServer::new(EchoService(answered))),
        )
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

fn uri(addr: SocketAddr) -> http::Uri {
    format!("https://localhost:{}", addr.port())
        .parse()
        .unwrap()
}

#[tokio::test]
async fn replicas_share_the_calls_and_a_stopped_one_costs_no_call() {
    let pki = TestPki::new("zt.example");
    let server = pki.issue("server", SERVER_ID, &["localhost"]);
    let client = pki.issue("client", CLIENT_ID, &[]);
    let (first_answered, second_answered) = (Arc::default(), Arc::default());
    let first = serve_counted(&pki, &server, CLIENT_ID, Arc::clone(&first_answered)).await;
    let second = serve_counted(&pki, &server, CLIENT_ID, Arc::clone(&second_answered)).await;
    let mut config = config(&pki, first.addr(), &client);
    config.replicas = vec![uri(second.addr())];
    let me = Client::connect(&config).unwrap();
    let attempts = AtomicU32::new(0);

    for _ in 0..10 {
        assert_eq!(echo(&me, &attempts).await.unwrap(), b"hi");
    }
    assert_eq!(first_answered.load(Ordering::Relaxed), 5, "round-robin");
    assert_eq!(second_answered.load(Ordering::Relaxed), 5, "round-robin");

    // One replica goes away (a rolling restart): every call is still answered, at the cost
    // of one attempt on the stopped address before it is passed over.
    first.stop().await.unwrap();
    attempts.store(0, Ordering::Relaxed);
    for _ in 0..10 {
        assert_eq!(echo(&me, &attempts).await.unwrap(), b"hi");
    }
    assert_eq!(second_answered.load(Ordering::Relaxed), 15);
    assert_eq!(
        attempts.load(Ordering::Relaxed),
        11,
        "one failed attempt, retried elsewhere"
    );
}

#[tokio::test]
async fn every_replica_must_prove_the_pinned_identity() {
    let pki = TestPki::new("zt.example");
    let server = pki.issue("server", SERVER_ID, &["localhost"]);
    let impostor = pki.issue("impostor", IMPOSTOR_ID, &["localhost"]);
    let client = pki.issue("client", CLIENT_ID, &[]);
    let (genuine_answered, impostor_answered) = (Arc::default(), Arc::default());
    let genuine = serve_counted(&pki, &server, CLIENT_ID, Arc::clone(&genuine_answered)).await;
    let spoofed = serve_counted(&pki, &impostor, CLIENT_ID, Arc::clone(&impostor_answered)).await;
    let mut config = config(&pki, genuine.addr(), &client);
    config.replicas = vec![uri(spoofed.addr())];
    let me = Client::connect(&config).unwrap();
    let attempts = AtomicU32::new(0);

    let mut refused = 0;
    for _ in 0..4 {
        match echo(&me, &attempts).await {
            Ok(payload) => assert_eq!(payload, b"hi"),
            Err(Error::ServerRefused { reason, .. }) => {
                assert_eq!(reason, "unexpected_server");
                refused += 1;
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }

    // The impostor's turns are refused, not skipped over to the genuine replica, and it
    // never got a call.
    assert_eq!(refused, 2);
    assert_eq!(genuine_answered.load(Ordering::Relaxed), 2);
    assert_eq!(impostor_answered.load(Ordering::Relaxed), 0);
    assert_eq!(
        attempts.load(Ordering::Relaxed),
        4,
        "a refusal is not retried"
    );
}
