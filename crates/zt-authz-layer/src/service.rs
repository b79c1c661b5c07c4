//! The [`Authz`] service: identity, decision, audit line, then the inner service or a refusal.

use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tower_service::Service;
use zt_authz::{Decision, Request};
use zt_tls::PeerConnectInfo;

use crate::future::ResponseFuture;
use crate::layer::Shared;

/// Wraps a gRPC service and authorizes each request before calling it. Built by
/// [`crate::AuthzLayer`].
#[derive(Debug, Clone)]
pub struct Authz<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Authz<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Authz<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Authorization needs no capacity of its own; readiness is the inner service's.
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let shared = &self.shared;
        let method = req.uri().path();
        let conn = req.extensions().get::<PeerConnectInfo>();
        let remote = conn.and_then(|c| c.tcp().remote_addr);

        let identity = match conn {
            Some(conn) => conn.identity(&shared.domains).and_then(|peer| {
                peer.check_expiry(unix_now())?;
                Ok(peer)
            }),
            None => Err(zt_identity::IdentityError::NoCertificate),
        };
        let peer = match identity {
            Ok(peer) => peer,
            Err(err) => {
                tracing::warn!(
                    target: "zt_authz::decision",
                    peer_addr = %PeerAddr(remote),
                    method,
                    decision = "unauthenticated",
                    reason = err.kind(),
                    error = %err,
                    "request refused: no verified identity"
                );
                return ResponseFuture::refused(
                    Status::unauthenticated("a valid client certificate (X509-SVID) is required")
                        .into_http(),
                );
            }
        };

        let decision = shared.policy.evaluate(&Request {
            path: method,
            peer: Some(&peer),
            headers: req.headers(),
        });
        let policy = shared.policy.name();
        match decision {
            Decision::Allow { rule } => {
                tracing::info!(
                    target: "zt_authz::decision",
                    peer = %peer.spiffe_id(),
                    peer_addr = %PeerAddr(remote),
                    method,
                    policy,
                    rule,
                    decision = "allow",
                    "request allowed"
                );
            }
            Decision::Deny { .. } | Decision::DefaultDeny => {
                tracing::warn!(
                    target: "zt_authz::decision",
                    peer = %peer.spiffe_id(),
                    peer_addr = %PeerAddr(remote),
                    method,
                    policy,
                    rule = decision.matched_rule().unwrap_or("<default deny>"),
                    decision = "deny",
                    "request denied"
                );
                let message = format!("{} may not call {method}", peer.spiffe_id());
                return ResponseFuture::refused(Status::permission_denied(message).into_http());
            }
        }

        if let Some(tcp) = conn.map(|c| c.tcp().clone()) {
            req.extensions_mut().insert(tcp);
        }
        req.extensions_mut().insert(peer);
        ResponseFuture::allowed(self.inner.call(req))
    }
}

/// Displays a peer address, or `-` when the connection has none.
struct PeerAddr(Option<std::net::SocketAddr>);

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("-"),
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
