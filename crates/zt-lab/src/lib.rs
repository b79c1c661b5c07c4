//! The Docker Compose lab: the material and the intruders behind `docker compose up`.
//!
//! - [`pki::write_lab`]: one directory per container, each holding only that workload's own
//!   keystore and the truststore it needs (the CA key stays in its own directory, mounted by
//!   the one-shot `pki` container alone), plus the attackers' material.
//! - [`attack::run`]: one intrusion from the source article; its [`attack::Verdict`] is
//!   `Blocked` only when the refusal came from the defence (a TLS alert, a
//!   `PERMISSION_DENIED`, a refused server identity), never from the target being unreachable.
//! - [`brute::attack`]: brute force, thousands of forged certificates while the genuine
//!   client's latency is watched.

pub mod attack;
pub mod brute;
mod error;
pub mod pki;

pub use error::Error;
