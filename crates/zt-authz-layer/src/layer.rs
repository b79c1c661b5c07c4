//! The [`AuthzLayer`], which wraps a service in [`Authz`], and the [`PolicyHandle`] it reads.

use std::marker::PhantomData;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tower_layer::Layer;
use zt_authz::Policy;
use zt_telemetry::Metrics;

use crate::audit::{AuditSink, StdoutAudit};
use crate::metrics::{AuthzMetrics, DecisionKey, Mode};
use crate::service::{Authz, DEFAULT_DENY};

/// Every reason `zt_authz_unauthenticated_total` is counted under: why a request had no
/// valid identity (`zt_identity::IdentityError::kind`).
pub const UNAUTHENTICATED_REASONS: &[&str] = &[
    "no_certificate",
    "malformed_certificate",
    "not_svid",
    "untrusted_trust_domain",
    "expired",
    "revoked",
];

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
///
/// `P` is the transport's connection information, found in each request's extensions: the
/// layer asks it for the peer's identity ([`crate::PeerInfo`]). Behind `zt_tls::accept`, it is
/// [`zt_tls::PeerConnectInfo`]:
///
/// ```
/// use zt_authz::Policy;
/// use zt_authz_layer::{AuthzLayer, PolicyHandle};
///
/// let policy = Policy::from_json(r#"{"name": "greeter", "allow_rules": [{"name": "all",
///     "source": {"principals": ["spiffe://example.org/ns/prod/sa/*"]}}]}"#)?;
/// let layer = AuthzLayer::<zt_tls::PeerConnectInfo>::new(PolicyHandle::new(policy))
///     .with_known_methods(["/greeter.v1.Greeter/SayHello".to_owned()]);
/// // tonic::transport::Server::builder().layer(layer).add_service(...)
/// # let _ = layer;
/// # Ok::<(), zt_authz::PolicyError>(())
/// ```
pub struct AuthzLayer<P> {
    shared: Arc<Shared>,
    _peer: PhantomData<fn() -> P>,
}

impl<P> Clone for AuthzLayer<P> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            _peer: PhantomData,
        }
    }
}

impl<P> std::fmt::Debug for AuthzLayer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthzLayer")
            .field("shared", &self.shared)
            .finish()
    }
}

/// What every clone of the service shares.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub(crate) policy: PolicyHandle,
    /// Evaluated alongside, logged and counted, never enforced.
    pub(crate) shadow: Option<PolicyHandle>,
    pub(crate) metrics: AuthzMetrics,
    pub(crate) audit: Arc<dyn AuditSink>,
    /// Method paths that may appear as metric labels; others count as `other`, so a caller
    /// inventing paths cannot create series.
    pub(crate) methods: foldhash::HashSet<String>,
}

impl<P> AuthzLayer<P> {
    /// Enforces `policy` for the peers the transport authenticated (which trust domains may
    /// connect at all is the transport's configuration); audit lines (when the policy asks for
    /// them) go to stdout, metrics to a private registry until [`AuthzLayer::with_metrics`].
    pub fn new(policy: PolicyHandle) -> Self {
        Self {
            shared: Arc::new(Shared {
                policy,
                shadow: None,
                metrics: AuthzMetrics::new(&Metrics::new()),
                audit: Arc::new(StdoutAudit),
                methods: foldhash::HashSet::default(),
            }),
            _peer: PhantomData,
        }
    }

    /// Also evaluates `shadow` for every request, logging (`zt_authz::shadow`) and counting
    /// (`mode="shadow"`) what it would have decided, without enforcing it.
    pub fn with_shadow(self, shadow: PolicyHandle) -> Self {
        self.map(|s| s.shadow = Some(shadow))
    }

    /// Records decisions into `metrics` (see the crate docs for the series).
    pub fn with_metrics(self, metrics: &Metrics) -> Self {
        let metrics = AuthzMetrics::new(metrics);
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

    /// Creates, at 0, every series this layer can count for its policies as they are now:
    /// `zt_authz_unauthenticated_total` for each of [`UNAUTHENTICATED_REASONS`], and
    /// `zt_authz_decisions_total` for each served method (see [`AuthzLayer::with_known_methods`])
    /// with each rule that can decide it (the allow rules that let someone call it, every deny
    /// rule, `<default deny>`), and for `other` methods with `<default deny>`, in both modes.
    ///
    /// Prometheus advises exporting known label sets from the start: an alert on an increase
    /// then sees the first event, which a series born at 1 hides. Call it once configured, and
    /// again after replacing a policy (its rules are new label values); series of a replaced
    /// policy stay, with their counts.
    pub fn register_series(&self) {
        let shared = &*self.shared;
        let metrics = &shared.metrics;
        metrics.register_unauthenticated_reasons(UNAUTHENTICATED_REASONS);
        let mut methods: Vec<String> = shared.methods.iter().cloned().collect();
        methods.sort();
        register_policy(metrics, &shared.policy.current(), Mode::Enforce, &methods);
        if let Some(shadow) = &shared.shadow {
            register_policy(metrics, &shadow.current(), Mode::Shadow, &methods);
        }
    }

    fn map(self, change: impl FnOnce(&mut Shared)) -> Self {
        // Configured once, before the layer is cloned into a server.
        let mut shared = Arc::unwrap_or_clone(self.shared);
        change(&mut shared);
        Self {
            shared: Arc::new(shared),
            _peer: PhantomData,
        }
    }
}

/// The decision series `policy` can produce on `methods`, at 0.
fn register_policy(metrics: &AuthzMetrics, policy: &Policy, mode: Mode, methods: &[String]) {
    let policy_name = policy.name();
    let register = |rule: &str, decision, method: &str| {
        metrics.register_decision(DecisionKey {
            policy: policy_name,
            rule,
            decision,
            mode,
            method,
        });
    };
    for method in methods {
        for coverage in policy.coverage(std::slice::from_ref(method)) {
            for (rule, _) in &coverage.allowed_by {
                register(rule, "allow", method);
            }
            if coverage.closed_by.is_none() {
                register(DEFAULT_DENY, "deny", method);
            }
        }
        for (list, rule) in policy.rules_reaching(method) {
            if list == "deny_rules" {
                register(rule, "deny", method);
            }
        }
    }
    register(DEFAULT_DENY, "deny", "other");
}

impl<S, P> Layer<S> for AuthzLayer<P> {
    type Service = Authz<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Authz::new(inner, Arc::clone(&self.shared))
    }
}
