//! Per-method authorization for tonic servers, as a tower layer.
//!
//! [`AuthzLayer`] wraps the gRPC router. For every request, before any handler runs, it:
//!
//! 1. reads the connection's verified certificate chain ([`zt_tls::PeerConnectInfo`]) and turns
//!    it into a [`PeerIdentity`] (parsed once per connection, then cached);
//! 2. answers `UNAUTHENTICATED` if there is no valid identity (never consulting the policy:
//!    in Zero Trust an anonymous caller is refused, whatever a rule says);
//! 3. evaluates the [`Policy`] for the identity, the method path and the metadata, and answers
//!    `PERMISSION_DENIED` unless an allow rule matched and no deny rule did;
//! 4. logs the decision (peer, method, matched rule, decision) under `zt_authz::decision`;
//! 5. on allow, inserts `Arc<PeerIdentity>` (and tonic's `TcpConnectInfo`, so
//!    `Request::remote_addr()` works) into the request extensions, and calls the inner service.
//!
//! A denied request never reaches the inner service: the layer answers it directly with a
//! trailers-only gRPC response.
//!
//! [`PeerIdentity`]: zt_identity::PeerIdentity
//! [`Policy`]: zt_authz::Policy

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::AuthzLayer;
pub use service::Authz;
