//! Per-method authorization for tonic servers, as a tower layer.
//!
//! [`AuthzLayer`] wraps the gRPC router. For every request, before any handler runs, it:
//!
//! 1. asks the transport for the caller's [`PeerIdentity`] ([`PeerInfo`], found in the request
//!    extensions: behind `zt_tls::accept`, a [`zt_tls::PeerConnectInfo`], whose identity was
//!    derived once, at the handshake);
//! 2. answers `UNAUTHENTICATED` if there is no valid identity (never consulting the policy:
//!    in Zero Trust an anonymous caller is refused, whatever a rule says), or if the
//!    certificate expired or was revoked (current CRLs) since the handshake, in which case the
//!    transport closes the connection as well;
//! 3. evaluates the current [`Policy`] (a [`PolicyHandle`], replaceable at runtime) for the
//!    identity, the method path and the metadata, and answers `PERMISSION_DENIED` unless an
//!    allow rule matched and no deny rule did; an optional *shadow* policy is evaluated too,
//!    logged and counted, never enforced;
//! 4. logs the decision (peer, method, matched rule, decision) under `zt_authz::decision`
//!    (an allowed health check at `debug`, everything else at `info` or `warn`), counts it
//!    (`zt_authz_decisions_total`; [`AuthzLayer::register_series`] creates the known series
//!    at 0), and writes a gRFC A59 audit line when the policy asks for one ([`AuditSink`],
//!    stdout by default);
//! 5. on allow, inserts `Arc<PeerIdentity>` into the request extensions and calls the inner
//!    service. That is the one value it adds: the transport's connection info is there
//!    already (tonic puts it in every request; behind zt-tls a [`zt_tls::PeerConnectInfo`],
//!    whose `tcp()` holds the peer's address, which tonic's `Request::remote_addr()` does not
//!    look for), and a fourth value would make the map grow on every request.
//!
//! A denied request never reaches the inner service: the layer answers it directly with a
//! trailers-only gRPC response.
//!
//! [`PeerIdentity`]: zt_identity::PeerIdentity
//! [`Policy`]: zt_authz::Policy

//!
//! The layer does no I/O and parses no certificate: it can be tested as a tower service with
//! a constructed identity and no socket (see `tests/`), and put behind any transport that
//! implements [`PeerInfo`]. Feature `tls` (default) implements it for zt-tls's connections.

mod audit;
mod body;
mod future;
mod layer;
mod metrics;
mod peer;
mod service;

pub use audit::{AuditRecord, AuditSink, StdoutAudit, audit_line};
pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use layer::{AuthzLayer, PolicyHandle, UNAUTHENTICATED_REASONS};
pub use metrics::Mode;
pub use peer::PeerInfo;
pub use service::{Authz, HEALTH_SERVICE};
