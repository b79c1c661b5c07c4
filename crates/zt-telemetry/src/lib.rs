//! What the services tell their operators: logs and metrics.
//!
//! - [`init`]: the `tracing` subscriber, text for people or JSON lines for machines. Every
//!   security-relevant event is a structured event under a stable target, so it can be filtered
//!   and shipped: `zt_tls::refused` (a peer refused during the handshake), `zt_authz::decision`
//!   (every authorization decision), `zt_reload` (material reloaded, or kept after a bad file).
//! - [`Metrics`]: the Prometheus metrics every crate records into, passed explicitly (no global
//!   registry), and [`serve_metrics`], which exposes them on their own plain-HTTP listener, apart
//!   from the mTLS port.

mod logs;
mod metrics;
mod serve;

pub use logs::{LogFormat, init};
pub use metrics::{InFlight, Metrics, Mode};
pub use serve::serve_metrics;
