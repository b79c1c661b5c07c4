//! Typed configuration: where the server is, who it must be, who we are, and how long and how
//! often to try. Binaries map their flags onto [`ClientConfig`]; every default is written
//! here once.

use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use zt_identity::SpiffeId;
use zt_tls::{BundleSource, Password};

/// Time allowed for TCP connect plus the TLS handshake when the configuration says nothing:
/// 5 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Deadline for each call when the configuration says nothing: 10 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts per call when the configuration says nothing: 6 (the first and 5 retries).
pub const DEFAULT_ATTEMPTS: u32 = 6;

/// How the server is named in error messages when the configuration says nothing:
/// `"the server"`.
pub const DEFAULT_SERVER_NAME: &str = "the server";

/// How long an address that answered `UNAVAILABLE` is passed over by new calls while another
/// address of the service is not: 2 s (a restarting replica is back in about that long, and
/// a dead one costs one failed attempt, retried elsewhere, every 2 s).
pub const DEFAULT_UNAVAILABLE_COOLDOWN: Duration = Duration::from_secs(2);

/// Everything a [`Client`](crate::Client) is loaded from.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server's address: an `https://HOST:PORT` URI (the scheme is not used to choose
    /// TLS: every connection is mutual TLS).
    pub server: Uri,
    /// More addresses of the same service (its replicas), each of which must prove the same
    /// [`Self::server_id`]. Calls go round-robin over [`Self::server`] and these; an address
    /// that answered `UNAVAILABLE` is passed over for [`Self::unavailable_cooldown`], and a
    /// call it failed is retried at once on another (see [`Client::retry`]). Default: none.
    ///
    /// [`Client::retry`]: crate::Client::retry
    pub replicas: Vec<Uri>,
    /// The SPIFFE ID the server must prove. A server with any other identity is refused
    /// during the handshake, even with a valid certificate from a trusted CA.
    pub server_id: SpiffeId,
    /// How the server is named in error messages, as a sentence would say it (`"the
    /// ledger"`): "mutual TLS handshake with the ledger failed: ...". Default
    /// [`DEFAULT_SERVER_NAME`].
    pub server_name: String,
    /// Keystore: our certificate chain (PEM, leaf first), or a PKCS#12 keystore holding the
    /// key too (then [`Self::key`] is not read). Watched by [`Client::watch`](crate::Client::watch).
    pub cert: PathBuf,
    /// Keystore: our private key (PEM). Watched by [`Client::watch`](crate::Client::watch).
    pub key: PathBuf,
    /// The password of a PKCS#12 [`Self::cert`]. Default: none.
    pub keystore_password: Option<Password>,
    /// Truststore: the CA bundles the server's certificate must chain to, each optionally
    /// bound to a trust domain and with its PKCS#12 password. A CA that names no trust domain
    /// is bound to the trust domain of [`Self::server_id`]. Watched by
    /// [`Client::watch`](crate::Client::watch).
    pub bundles: Vec<BundleSource>,
    /// Time allowed for TCP connect plus the TLS handshake. Default
    /// [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// Deadline for each call (each attempt of it). Default [`DEFAULT_REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// Attempts per call made through [`Client::retry`](crate::Client::retry), the first
    /// included; 0 counts as 1. Default [`DEFAULT_ATTEMPTS`].
    pub attempts: u32,
    /// The delays between attempts when the server is unavailable. Default
    /// [`BackoffConfig::default`].
    pub backoff: BackoffConfig,
    /// How long an address that answered `UNAVAILABLE` is passed over while another is not
    /// (with [`Self::replicas`]). Default [`DEFAULT_UNAVAILABLE_COOLDOWN`].
    pub unavailable_cooldown: Duration,
}

impl ClientConfig {
    /// A configuration calling `server`, which must prove `server_id`, as the identity in
    /// `cert`/`key`, trusting the CAs in `bundles`; every other setting at its default: no
    /// keystore password, no replicas, [`DEFAULT_SERVER_NAME`], [`DEFAULT_CONNECT_TIMEOUT`],
    /// [`DEFAULT_REQUEST_TIMEOUT`], [`DEFAULT_ATTEMPTS`], [`BackoffConfig::default`],
    /// [`DEFAULT_UNAVAILABLE_COOLDOWN`].
    pub fn new(
        server: Uri,
        server_id: SpiffeId,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
        bundles: Vec<BundleSource>,
    ) -> Self {
        Self {
            server,
            replicas: Vec::new(),
            server_id,
            server_name: DEFAULT_SERVER_NAME.to_owned(),
            cert: cert.into(),
            key: key.into(),
            keystore_password: None,
            bundles,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
            backoff: BackoffConfig::default(),
            unavailable_cooldown: DEFAULT_UNAVAILABLE_COOLDOWN,
        }
    }
}

/// Exponential backoff with jitter, as gRPC's connection-backoff document specifies.
/// [`BackoffConfig::default`] is the one place each default is written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// The first delay (before jitter). Default 1 s.
    pub initial: Duration,
    /// Each delay is the previous one times this. Default 1.6.
    pub multiplier: f64,
    /// Each delay is spread uniformly by plus or minus this fraction of it (clamped to
    /// `[0, 1]`), so that clients cut off together do not come back together. Default 0.2.
    pub jitter: f64,
    /// No delay (before jitter) is longer. Default 120 s.
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            multiplier: 1.6,
            jitter: 0.2,
            max: Duration::from_secs(120),
        }
    }
}
