//! The [`AuthzLayer`], which wraps a service in [`Authz`].

use std::sync::Arc;

use tower_layer::Layer;
use zt_authz::Policy;
use zt_identity::TrustedDomains;

use crate::service::Authz;

/// Authorizes every request against a policy before the wrapped service sees it.
#[derive(Debug, Clone)]
pub struct AuthzLayer {
    pub(crate) shared: Arc<Shared>,
}

/// What every clone of the service shares: immutable after construction.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) policy: Policy,
    /// Trust domains a peer's SPIFFE ID must belong to.
    pub(crate) domains: TrustedDomains,
}

impl AuthzLayer {
    /// Enforces `policy` for peers of the `domains` trust domains.
    pub fn new(policy: Policy, domains: TrustedDomains) -> Self {
        Self {
            shared: Arc::new(Shared { policy, domains }),
        }
    }
}

impl<S> Layer<S> for AuthzLayer {
    type Service = Authz<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authz::new(inner, Arc::clone(&self.shared))
    }
}
