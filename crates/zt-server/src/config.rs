//! Typed configuration: what to load ([`ServerConfig`]) and every bound a peer meets
//! ([`Limits`]). Binaries map their flags onto these; every default is written here once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tonic::transport::Server as Transport;
use zt_tls::{AcceptLimits, ServerFiles};

/// How often files are checked for changes when the configuration says nothing: 2 s.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// The longest a connection lives when [`Limits::max_connection_age`] is `None`: one hour
/// (shortened to half the server certificate's remaining lifetime when that is less).
pub const DEFAULT_MAX_CONNECTION_AGE: Duration = Duration::from_secs(3600);

/// The shortest default connection age, however close the certificate is to expiry: 60 s.
pub const MIN_DEFAULT_CONNECTION_AGE: Duration = Duration::from_secs(60);

/// The largest gRPC message a service should accept or send, in bytes (4 MiB, gRPC's own
/// default). The library does not apply it: the message size is per service, set on the
/// generated server (`max_decoding_message_size` / `max_encoding_message_size`).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// Everything a [`Server`](crate::Server) is loaded from.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The server's name in logs (`"NAME configured"`, `"NAME stopped"`) and in the
    /// strict-policy refusal (which says: see `NAME policy check`).
    pub name: String,
    /// Keystore, truststore, CRLs and the trust domains clients may come from. Every file is
    /// watched and reloaded.
    pub tls: ServerFiles,
    /// The enforced authorization policy (gRFC A43 JSON). Watched and reloaded.
    pub policy: PathBuf,
    /// A second policy evaluated alongside the enforced one: its decisions are logged
    /// (`zt_authz::shadow`) and counted (`mode="shadow"`), never enforced. Watched and
    /// reloaded. Default: none.
    pub shadow_policy: Option<PathBuf>,
    /// Refuse an enforced policy in which the policy check finds errors (a path naming no
    /// served method, a rule that can never match...): at load, [`Error::PolicyFindings`];
    /// at a reload the last good policy stays (logged and counted as a failed reload).
    /// Without it (the default), each finding is logged as a warning and the policy is used.
    ///
    /// [`Error::PolicyFindings`]: crate::Error::PolicyFindings
    pub strict_policy: bool,
    /// How often every file is checked for changes; SIGHUP reloads at once. Default
    /// [`DEFAULT_RELOAD_INTERVAL`].
    pub reload_interval: Duration,
    /// Serve Prometheus metrics over plain HTTP at this address (`GET /metrics`). Default:
    /// none.
    pub metrics_listen: Option<SocketAddr>,
    /// Every HTTP/2 and connection bound. Default [`Limits::default`].
    pub limits: Limits,
}

impl ServerConfig {
    /// A configuration named `name` loading `tls` and enforcing `policy`, with every other
    /// setting at its default: no shadow policy, not strict, [`DEFAULT_RELOAD_INTERVAL`], no
    /// metrics listener, [`Limits::default`].
    pub fn new(name: impl Into<String>, tls: ServerFiles, policy: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            tls,
            policy: policy.into(),
            shadow_policy: None,
            strict_policy: false,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
            metrics_listen: None,
            limits: Limits::default(),
        }
    }
}

/// Bounds on everything a peer can hold. Defaults follow common hardening guidance; tonic's
/// own defaults leave several of these unlimited. [`Limits::default`] is the one place each
/// default is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Time a client has to finish the TLS handshake after TCP accept. Default 10 s.
    pub handshake_timeout: Duration,
    /// Time a client has to send its whole ClientHello; a socket that has not is closed
    /// (`client_hello_timeout`) without ever holding a handshake slot. Default 3 s.
    pub client_hello_timeout: Duration,
    /// Most connections short of a finished handshake (silent ones included); beyond it new
    /// sockets are refused at once (`pending_limit`). Default 8192.
    pub max_pending: usize,
    /// Most connections short of a finished handshake from one IP address; beyond it that
    /// address's new sockets are refused at once (`source_pending_limit`). Default 64.
    pub max_pending_per_source: usize,
    /// Most TLS handshakes in progress at once, counted from the ClientHello; further clients
    /// wait for a slot within their handshake timeout. Default 128.
    pub max_handshakes: usize,
    /// Most established (authenticated) connections; beyond it new ones are refused.
    /// Default 1024.
    pub max_connections: usize,
    /// Failed authentications (a certificate refused, or none) one IP address may have in a
    /// burst before its new connections are refused at the door (`source_failure_limit`),
    /// without TLS work: brute force from one host costs almost nothing. Behind a TCP proxy
    /// every client shares its address: raise it there. Default 32.
    pub max_failed_handshakes_per_source: u32,
    /// How often an address past its burst gets one more try. Default 500 ms.
    pub failed_handshake_refill: Duration,
    /// Most concurrent HTTP/2 streams (RPCs) per connection. Default 100.
    pub max_concurrent_streams: u32,
    /// Largest request header block (metadata), in bytes. Default 16 KiB.
    pub max_header_list_size: u32,
    /// Deadline for each RPC, whatever the client asks. Default 30 s.
    pub request_timeout: Duration,
    /// HTTP/2 PING interval, to find dead peers. Default 30 s.
    pub keepalive_interval: Duration,
    /// How long a PING may go unanswered before the connection is closed. Default 20 s.
    pub keepalive_timeout: Duration,
    /// Most streams a client may open and reset before the server accepted them, per
    /// connection (the "Rapid Reset" defence, CVE-2023-44487). Default 20 (hyper's).
    pub max_pending_accept_reset_streams: usize,
    /// Most streams the server may reset because of the client's errors, per connection
    /// (the "MadeYouReset" defence). Default 1024 (hyper's own; tonic >= 0.14.3 would pass
    /// none, disabling it).
    pub max_local_error_reset_streams: usize,
    /// HTTP/2 initial stream flow-control window, in bytes. Default 64 KiB.
    pub initial_stream_window_size: u32,
    /// HTTP/2 initial connection flow-control window, in bytes. Default 1 MiB.
    pub initial_connection_window_size: u32,
    /// Close connections (gracefully, with GOAWAY) after this long, so clients re-handshake
    /// and pick up rotated certificates. `None` (the default): [`DEFAULT_MAX_CONNECTION_AGE`],
    /// or half the server certificate's remaining lifetime at load if that is shorter (but
    /// at least [`MIN_DEFAULT_CONNECTION_AGE`]); see [`Limits::connection_age`].
    pub max_connection_age: Option<Duration>,
    /// On shutdown, and after a connection's maximum age, how long in-flight RPCs may take
    /// to finish before their connection is closed. Default 30 s.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        // The acceptor's own defaults, so they too are written once (in zt-tls).
        let accept = AcceptLimits::default();
        Self {
            handshake_timeout: accept.handshake_timeout,
            client_hello_timeout: accept.client_hello_timeout,
            max_pending: accept.max_pending,
            max_pending_per_source: accept.max_pending_per_source,
            max_handshakes: accept.max_handshakes,
            max_connections: accept.max_connections,
            max_failed_handshakes_per_source: accept.max_failed_handshakes_per_source,
            failed_handshake_refill: accept.failed_handshake_refill,
            max_concurrent_streams: 100,
            max_header_list_size: 16 * 1024,
            request_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(20),
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 1024,
            initial_stream_window_size: 64 * 1024,
            initial_connection_window_size: 1024 * 1024,
            max_connection_age: None,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// The maximum connection age to enforce for a server certificate with `remaining`
    /// lifetime: [`Limits::max_connection_age`] if set, else the smaller of
    /// [`DEFAULT_MAX_CONNECTION_AGE`] and half of `remaining` (whole seconds), but at least
    /// [`MIN_DEFAULT_CONNECTION_AGE`]. So no connection outlives the certificate that
    /// authenticated the server (as of load: a rotated certificate does not change it).
    pub fn connection_age(&self, remaining: Duration) -> Duration {
        self.max_connection_age.unwrap_or_else(|| {
            DEFAULT_MAX_CONNECTION_AGE
                .min(Duration::from_secs(remaining.as_secs() / 2).max(MIN_DEFAULT_CONNECTION_AGE))
        })
    }

    /// The acceptor's limits: the handshake and connection bounds, and a connection
    /// lifetime of `max_connection_age` plus [`Limits::drain_timeout`] (HTTP/2 sends GOAWAY
    /// at the age and lets in-flight calls finish; a connection still open after the drain
    /// timeout more is closed by the acceptor). TCP keepalive stays at the acceptor's
    /// default.
    pub fn accept_limits(&self, max_connection_age: Duration) -> AcceptLimits {
        AcceptLimits {
            handshake_timeout: self.handshake_timeout,
            client_hello_timeout: self.client_hello_timeout,
            max_pending: self.max_pending,
            max_pending_per_source: self.max_pending_per_source,
            max_handshakes: self.max_handshakes,
            max_connections: self.max_connections,
            max_failed_handshakes_per_source: self.max_failed_handshakes_per_source,
            failed_handshake_refill: self.failed_handshake_refill,
            max_connection_lifetime: Some(max_connection_age + self.drain_timeout),
            ..AcceptLimits::default()
        }
    }

    /// A tonic transport with every HTTP/2 bound set, and GOAWAY at `max_connection_age`.
    /// [`Server`](crate::Server) serves through it; exposed so that a baseline (plaintext,
    /// say) can run the very same HTTP/2 settings.
    pub fn transport(&self, max_connection_age: Duration) -> Transport {
        Transport::builder()
            .timeout(self.request_timeout)
            .max_concurrent_streams(self.max_concurrent_streams)
            .http2_max_header_list_size(self.max_header_list_size)
            .http2_max_local_error_reset_streams(Some(self.max_local_error_reset_streams))
            .http2_max_pending_accept_reset_streams(Some(self.max_pending_accept_reset_streams))
            .http2_keepalive_interval(Some(self.keepalive_interval))
            .http2_keepalive_timeout(Some(self.keepalive_timeout))
            .initial_stream_window_size(self.initial_stream_window_size)
            .initial_connection_window_size(self.initial_connection_window_size)
            // Only the age: given a grace too, tonic 0.14 sleeps age + grace and then closes
            // the connection without ever sending GOAWAY, failing the calls in flight. The
            // grace is enforced by the acceptor (`accept_limits`: `max_connection_lifetime`).
            .max_connection_age(max_connection_age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_age_is_an_hour_or_half_the_certificate_life_but_at_least_a_minute() {
        let limits = Limits::default();
        let hours = |h: u64| Duration::from_secs(h * 3600);
        assert_eq!(limits.connection_age(hours(24)), hours(1));
        assert_eq!(
            limits.connection_age(Duration::from_secs(1200)),
            Duration::from_secs(600)
        );
        assert_eq!(
            limits.connection_age(Duration::ZERO),
            Duration::from_secs(60)
        );
        let set = Limits {
            max_connection_age: Some(Duration::from_secs(5)),
            ..Limits::default()
        };
        assert_eq!(set.connection_age(Duration::ZERO), Duration::from_secs(5));
    }

    #[test]
    fn the_acceptor_cuts_connections_off_one_drain_timeout_after_their_age() {
        let limits = Limits::default();
        let accept = limits.accept_limits(Duration::from_secs(100));
        assert_eq!(
            accept.max_connection_lifetime,
            Some(Duration::from_secs(130))
        );
        assert_eq!(accept.max_connections, limits.max_connections);
        assert_eq!(accept.tcp_keepalive, AcceptLimits::default().tcp_keepalive);
    }
}
