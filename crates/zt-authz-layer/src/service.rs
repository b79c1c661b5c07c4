//! The [`Authz`] service: identity, decision, audit line, then the inner service or a refusal.

use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tower_service::Service;
use zt_authz::{Decision, Policy, Request};
use zt_identity::IdentityError;

use crate::PeerInfo;
use crate::audit::AuditRecord;
use crate::body::ResponseBody;
use crate::future::ResponseFuture;
use crate::layer::Shared;
use crate::metrics::{DecisionKey, Mode};

/// The `rule` label and log field of a default deny.
pub(crate) const DEFAULT_DENY: &str = "<default deny>";

/// Wraps a gRPC service and authorizes each request before calling it, reading the peer from
/// the `P` in the request's extensions. Built by [`crate::AuthzLayer`].
pub struct Authz<S, P> {
    inner: S,
    shared: Arc<Shared>,
    _peer: PhantomData<fn() -> P>,
}

impl<S: Clone, P> Clone for Authz<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            _peer: PhantomData,
        }
    }
}

impl<S: std::fmt::Debug, P> std::fmt::Debug for Authz<S, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authz")
            .field("inner", &self.inner)
            .field("shared", &self.shared)
            .finish()
    }
}

impl<S, P> Authz<S, P> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self {
            inner,
            shared,
            _peer: PhantomData,
        }
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

impl<S, P, ReqBody, ResBody> Service<http::Request<ReqBody>> for Authz<S, P>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    P: PeerInfo,
    ResBody: Default,
{
    type Response = http::Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Authorization needs no capacity of its own; readiness is the inner service's.
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let shared = &*self.shared;
        let method = req.uri().path();
        let conn = req.extensions().get::<P>();
        let remote = conn.and_then(PeerInfo::remote_addr);
        let policy = shared.policy.guard();

        let peer = match conn.map_or(Err(IdentityError::NoCertificate), PeerInfo::peer) {
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
                shared.metrics.unauthenticated(err.kind());
                audit(shared, &policy, method, "", "", false);
                return ResponseFuture::refused(
                    Status::unauthenticated("a valid client certificate (X509-SVID) is required")
                        .into_http(),
                );
            }
        };

        let request = Request {
            path: method,
            peer: Some(&peer),
            headers: req.headers(),
        };
        let label = if shared.methods.contains(method) {
            method
        } else {
            "other"
        };
        if let Some(shadow) = &shared.shadow {
            let shadow = shadow.guard();
            let decision = shadow.evaluate(&request);
            let (verdict, rule) = verdict(decision);
            shared.metrics.decision(DecisionKey {
                policy: shadow.name(),
                rule,
                decision: verdict,
                mode: Mode::Shadow,
                method: label,
            });
            tracing::info!(
                target: "zt_authz::shadow",
                peer = %peer.spiffe_id(),
                method,
                policy = shadow.name(),
                rule,
                decision = verdict,
                "shadow decision (not enforced)"
            );
        }

        let decision = policy.evaluate(&request);
        let (verdict, rule) = verdict(decision);
        shared.metrics.decision(DecisionKey {
            policy: policy.name(),
            rule,
            decision: verdict,
            mode: Mode::Enforce,
            method: label,
        });
        audit(
            shared,
            &policy,
            method,
            peer.spiffe_id().as_str(),
            decision.matched_rule().unwrap_or_default(),
            decision.is_allowed(),
        );
        if decision.is_allowed() {
            // Health checks come every few seconds from every probe: at `info` they would be
            // half the log. They are still counted, and audited when the policy asks (A59).
            macro_rules! allowed {
                ($level:ident) => {
                    tracing::$level!(
                        target: "zt_authz::decision",
                        peer = %peer.spiffe_id(),
                        peer_addr = %PeerAddr(remote),
                        method,
                        policy = policy.name(),
                        rule,
                        decision = verdict,
                        "request allowed"
                    )
                };
            }
            if is_health_check(method) {
                allowed!(debug);
            } else {
                allowed!(info);
            }
        } else {
            tracing::warn!(
                target: "zt_authz::decision",
                peer = %peer.spiffe_id(),
                peer_addr = %PeerAddr(remote),
                method,
                policy = policy.name(),
                rule,
                decision = verdict,
                "request denied"
            );
            let message = format!("{} may not call {method}", peer.spiffe_id());
            return ResponseFuture::refused(Status::permission_denied(message).into_http());
        }

        // One insert: tonic has put the connection's `P` there, and the router adds its path
        // parameters; a fourth value would make the extension map grow (rehash) per request.
        req.extensions_mut().insert(peer);
        let in_flight = shared.metrics.rpc_started();
        ResponseFuture::allowed(self.inner.call(req), in_flight)
    }
}

/// The gRPC health service's methods (`Check`, `Watch`), whose allowed decisions are logged at
/// `debug`. A refused health check stays a warning: it is rare, and worth a look.
pub const HEALTH_SERVICE: &str = "/grpc.health.v1.Health/";

fn is_health_check(method: &str) -> bool {
    method.starts_with(HEALTH_SERVICE)
}

fn verdict(decision: Decision<'_>) -> (&'static str, &str) {
    let verdict = if decision.is_allowed() {
        "allow"
    } else {
        "deny"
    };
    (verdict, decision.matched_rule().unwrap_or(DEFAULT_DENY))
}

/// Writes an A59 audit line if the policy asks for one for this outcome.
fn audit(
    shared: &Shared,
    policy: &Policy,
    method: &str,
    principal: &str,
    matched_rule: &str,
    authorized: bool,
) {
    if policy.audit_to_stdout() && policy.audit_condition().audits(authorized) {
        shared.audit.record(&AuditRecord {
            rpc_method: method,
            principal,
            policy_name: policy.name(),
            matched_rule,
            authorized,
        });
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
