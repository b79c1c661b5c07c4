//! Our side: `zt_authz::Policy` deciding the same request, with the headers the ledger would
//! see from the same tonic client.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use http::HeaderMap;
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use zt_authz::{Policy, Request};

use crate::model::RequestSpec;
use crate::pki::Identity;

/// Our decision on one RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OurVerdict {
    Allowed,
    Denied,
    /// No identity (not an X509-SVID of a trusted domain): the ledger answers
    /// `UNAUTHENTICATED` before the policy is consulted.
    Unauthenticated,
}

/// The headers tonic's client adds to every RPC (`te`, `content-type`, `user-agent`, ...),
/// captured once from a real request to a local plaintext HTTP/2 listener, so our side sees
/// exactly what a tonic server behind the ledger's layer would.
pub(crate) async fn transport_headers() -> anyhow::Result<HeaderMap> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let seen = Arc::new(Mutex::new(None::<HeaderMap>));
    let record = Arc::clone(&seen);
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let service = hyper::service::service_fn(move |req: http::Request<_>| {
            if let Ok(mut slot) = record.lock() {
                *slot = Some(req.headers().clone());
            }
            async {
                http::Response::builder()
                    .header("content-type", "application/grpc")
                    .header("grpc-status", "0")
                    .body(Empty::<Bytes>::new())
            }
        });
        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .await
            .map_err(anyhow::Error::from)
    });
    // The same channel settings as the real client (zt_tls::channel), without TLS.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
        .timeout(Duration::from_secs(10))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .connect()
        .await?;
    let probe = RequestSpec {
        path: "/probe.v1.Probe/Headers".into(),
        metadata: Vec::new(),
        content_type: None,
    };
    // The answer does not matter (it has no message): only what was sent.
    let _ = crate::grpc_side::call(channel, &probe).await;
    server.abort();
    let headers = seen
        .lock()
        .map_err(|_| anyhow::anyhow!("capture lock poisoned"))?
        .take()
        .context("no request reached the capture listener")?;
    Ok(headers)
}

/// The request's headers as the ledger sees them: its metadata as tonic encodes it (binary
/// values base64 under `-bin` keys), then tonic's own headers.
pub(crate) fn headers(request: &RequestSpec, transport: &HeaderMap) -> anyhow::Result<HeaderMap> {
    let mut headers = request.metadata_map()?.into_headers();
    for (name, value) in transport {
        headers.append(name.clone(), value.clone());
    }
    if let Some(content_type) = &request.content_type {
        headers.insert(http::header::CONTENT_TYPE, content_type.parse()?);
    }
    Ok(headers)
}

/// Our decision, as the ledger's layer makes it: no identity, no policy; else the policy.
pub(crate) fn decide(
    policy: &Policy,
    identity: &Identity,
    request: &RequestSpec,
    transport: &HeaderMap,
) -> anyhow::Result<OurVerdict> {
    let Ok(peer) = &identity.ours else {
        return Ok(OurVerdict::Unauthenticated);
    };
    let headers = headers(request, transport)?;
    let decision = policy.evaluate(&Request {
        path: &request.path,
        peer: Some(peer),
        headers: &headers,
    });
    Ok(if decision.is_allowed() {
        OurVerdict::Allowed
    } else {
        OurVerdict::Denied
    })
}
