//! The [`AuthzLayer`], which wraps a service in [`Authz`], and the [`PolicyHandle`] it reads.

use std::collections::HashSet;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tower_layer::Layer;
use zt_authz::Policy;
use zt_identity::TrustedDomains;
use zt_telemetry::Metrics;

use crate::audit::{AuditSink, StdoutAudit};
use crate::service::Authz;

/// A policy that can be replaced while requests are being served (hot reload). Every request
/// evaluates whichever policy is current when it arrives; clones share the same slot.
#[derive(Debug, Clone)]
pub struct PolicyHandle(Arc<ArcSwap<Policy>>);

impl PolicyHandle {
    /// A handle holding `policy`.
    pub fn new(policy: Policy) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(policy)))
    }

    /// The current policy.
    pub fn current(&self) -> Arc<Policy> {
        self.0.load_full()
    }

    /// Replaces the policy for every request from now on.
    pub fn replace(&self, policy: Policy) {
        self.0.store(Arc::new(policy));
    }

    pub(crate) fn guard(&self) -> arc_swap::Guard<Arc<Policy>> {
        self.0.load()
    }
}

/// Authorizes every request against a policy before the wrapped service sees it.
#[derive(Debug, Clone)]
pub struct AuthzLayer {
    shared: Arc<Shared>,
}

/// What every clone of the service shares.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub(crate) policy: PolicyHandle,
    /// Evaluated alongside, logged and counted, never enforced.
    pub(crate) shadow: Option<PolicyHandle>,
    /// Trust domains a peer's SPIFFE ID must belong to.
    pub(crate) domains: TrustedDomains,
    pub(crate) metrics: Metrics,
    pub(crate) audit: Arc<dyn AuditSink>,
    /// Method paths that may appear as metric labels; others count as `other`, so a caller
    /// inventing paths cannot create series.
    pub(crate) methods: HashSet<String>,
}

impl AuthzLayer {
    /// Enforces `policy` for peers of the `domains` trust domains; audit lines (when the
    /// policy asks for them) go to stdout, metrics to a private registry until
    /// [`AuthzLayer::with_metrics`].
    pub fn new(policy: PolicyHandle, domains: TrustedDomains) -> Self {
        Self {
            shared: Arc::new(Shared {
                policy,
                shadow: None,
                domains,
                metrics: Metrics::new(),
                audit: Arc::new(StdoutAudit),
                methods: HashSet::new(),
            }),
        }
    }

    /// Also evaluates `shadow` for every request, logging (`zt_authz::shadow`) and counting
    /// (`mode="shadow"`) what it would have decided, without enforcing it.
    pub fn with_shadow(self, shadow: PolicyHandle) -> Self {
        self.map(|s| s.shadow = Some(shadow))
    }

    /// Records decisions into `metrics`.
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        self.map(|s| s.metrics = metrics)
    }

    /// Sends audit lines to `sink` instead of stdout.
    pub fn with_audit_sink(self, sink: Arc<dyn AuditSink>) -> Self {
        self.map(|s| s.audit = sink)
    }

    /// The method paths the server serves, used as metric labels (others become `other`).
    pub fn with_known_methods(self, methods: impl IntoIterator<Item = String>) -> Self {
        self.map(|s| s.methods = methods.into_iter().collect())
    }

    fn map(self, change: impl FnOnce(&mut Shared)) -> Self {
        // Configured once, before the layer is cloned into a server.
        let mut shared = Arc::unwrap_or_clone(self.shared);
        change(&mut shared);
        Self {
            shared: Arc::new(shared),
        }
    }
}

impl<S> Layer<S> for AuthzLayer {
    type Service = Authz<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authz::new(inner, Arc::clone(&self.shared))
    }
}
