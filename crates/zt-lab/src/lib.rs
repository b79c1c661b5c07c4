//! The attack catalogue, a CI check for any mutual-TLS gRPC service, and the Docker Compose
//! lab's material.
//!
//! - [`catalogue::run`]: every intrusion this project defends against, tried for real against
//!   a target (address, server SPIFFE ID, trust bundle, a legitimate keystore, methods some
//!   identity must be refused on), each judged BLOCKED only when the refusal came from the
//!   defence (a TLS alert, `UNAUTHENTICATED` or `PERMISSION_DENIED`), never from the target
//!   being unreachable. [`junit::write`] reports it for CI.
//! - [`forge`]: the hostile certificates, minted at run time.
//! - [`brute`]: brute force, thousands of forged certificates while the legitimate client's
//!   latency is watched.
//! - [`pki::write_lab`]: one directory per container of the compose lab, each holding only
//!   that workload's own keystore and the truststore it needs, plus the certificates that
//!   only the lab's CA can make for the catalogue (`--issued`).

pub mod brute;
pub mod catalogue;
mod error;
pub mod forge;
pub mod grpc;
pub mod junit;
pub mod pki;
mod spoof;

pub use error::Error;
