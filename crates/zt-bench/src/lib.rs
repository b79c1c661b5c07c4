//! The benchmark harness of issue 6 (see `BENCHMARKS.md`).
//!
//! - [`server`]: one echo server whose transport is a [`Variant`]: plaintext HTTP/2, mutual
//!   TLS, or mutual TLS with the authorization layer: the last is `zt_server`'s stack, the
//!   ledger's, and the others take its limits, so the variants differ only in what is measured.
//! - [`load`]: a load generator (connections × in-flight RPCs, warm-up, fixed duration) that
//!   reports RPS, latency percentiles and the server's CPU time per RPC.
//! - [`cpu`]: a process's CPU time over a window, in nanoseconds, from the scheduler's
//!   per-thread account.
//! - [`handshake`]: handshake costs in memory against the crypto limit measured on this CPU.
//! - [`pki`]: the certificates both sides use, made fresh by the project's CA.
//! - [`quota`]: a "slow core" for the server (a CPU quota), so the server sets the pace.
//! - [`sidecar`]: G8, nginx terminating mutual TLS in front of the plaintext echo server.
//!
//! The `zt-bench run` command alternates the variants (A B C, C B A, ...) with the server and
//! the load generator pinned to separate cores and prints medians and ratios.

pub mod cpu;
pub mod handshake;
pub mod load;
pub mod pki;
pub mod quota;
pub mod server;
pub mod sidecar;

/// What stands between the load generator and the echo handler.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
pub enum Variant {
    /// HTTP/2 over plain TCP (h2c): the baseline.
    Plain,
    /// Mutual TLS 1.3 through the project's acceptor, no authorization layer.
    Mtls,
    /// Mutual TLS and the authorization layer deciding every RPC (what the ledger runs).
    MtlsAuthz,
}

impl Variant {
    /// Every variant, baseline first.
    pub const ALL: [Self; 3] = [Self::Plain, Self::Mtls, Self::MtlsAuthz];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Mtls => "mtls",
            Self::MtlsAuthz => "mtls-authz",
        }
    }
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// Certificates could not be made or loaded.
    #[error(transparent)]
    Pki(#[from] zt_pki::PkiError),
    /// A SPIFFE ID or trust domain that does not parse.
    #[error(transparent)]
    SpiffeId(#[from] zt_identity::SpiffeIdError),
    /// TLS material could not be loaded.
    #[error(transparent)]
    Tls(#[from] zt_tls::TlsError),
    /// The hardened server (`mtls-authz`) could not load or serve.
    #[error(transparent)]
    Server(#[from] zt_server::Error),
    /// The server or a connection failed.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    /// A handshake or crypto measurement went wrong.
    #[error("handshake benchmark: {0}")]
    Crypto(String),
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
