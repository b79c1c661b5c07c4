//! The server's accept loop: TCP accept, a bounded TLS handshake, and a stream of
//! authenticated connections for tonic's `serve_with_incoming`.
//!
//! tonic's own loop has no handshake timeout and no connection cap, and runs pending
//! handshakes unbounded. Here every resource a peer can hold is bounded, in three stages, so
//! that neither silent sockets nor unauthenticated ones can starve real clients:
//!
//! - *before the ClientHello*: a socket only holds a file descriptor and a small task. It must
//!   send a complete ClientHello within `client_hello_timeout` (a real client sends it at
//!   once); at most `max_pending` connections may be short of a finished handshake, and at
//!   most `max_pending_per_source` from one IP address, so a slowloris from one host is refused
//!   at the door (`source_pending_limit`) without touching anyone else's room; an address
//!   whose handshakes keep failing (brute force with forged certificates) is refused at the
//!   door too once its burst of `max_failed_handshakes_per_source` is spent
//!   (`source_failure_limit`), regaining one try every `failed_handshake_refill`;
//! - *handshakes in progress* (the expensive part, after the ClientHello): at most
//!   `max_handshakes`, each under the overall `handshake_timeout`; a socket that never sent a
//!   ClientHello never takes one of these slots;
//! - *established connections*: a slot is taken only once the peer has authenticated; when
//!   none is free the new connection is refused (`connection_limit`) and the live ones are
//!   untouched.
//!
//! The peer's identity is derived once per connection, here, right after the handshake: the
//! verified leaf becomes a [`PeerIdentity`] checked against the configured trust domains,
//! whether the handshake was full or resumed (a resumed TLS 1.3 session skips certificate
//! verification: rustls restores the client's chain from the session, so it must still be a
//! valid, unexpired SVID of a trusted domain). Every request on the connection then reads that
//! identity through [`PeerConnectInfo::peer`], which re-checks what can change while a
//! connection lives: the certificate's expiry and the CRLs. (A CRL change is a reload, and a
//! reload empties the session store, see [`crate::server_config`], so a revoked peer cannot
//! resume either.)

use std::collections::HashMap;
use std::future::Future as _;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::HandshakeKind;
use rustls_pki_types::CertificateDer;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use x509_parser::prelude::{FromDer, X509Certificate};
use zt_identity::{IdentityError, PeerIdentity, TrustedDomains};
use zt_telemetry::{InFlight, Metrics};

use crate::crl::Crls;
use crate::metrics::AcceptMetrics;
use crate::server::ServerTls;

/// How long a connection being closed (its peer was revoked) may still write, so the refusal
/// of the request that found out reaches the peer before the socket goes.
const CLOSE_GRACE: Duration = Duration::from_millis(200);

/// Bounds on what peers can hold before and while they are connected.
#[derive(Debug, Clone, Copy)]
pub struct AcceptLimits {
    /// Time a peer has to complete the TLS handshake after TCP accept (default 10 s).
    pub handshake_timeout: Duration,
    /// Time a peer has to send its whole ClientHello after TCP accept (default 3 s).
    pub client_hello_timeout: Duration,
    /// Most connections short of a finished handshake at once, silent ones included
    /// (default 8192); beyond it new sockets are refused (`pending_limit`).
    pub max_pending: usize,
    /// Most connections short of a finished handshake from one IP address (default 64);
    /// beyond it that address's new sockets are refused (`source_pending_limit`).
    pub max_pending_per_source: usize,
    /// Most TLS handshakes in progress at once, counted from the ClientHello (default 128).
    pub max_handshakes: usize,
    /// Failed authentications (a certificate refused, or none) one IP address may have in a
    /// burst before its new connections are refused at the door (`source_failure_limit`),
    /// without TLS work (default 32). Brute force (many forged certificates from one host)
    /// then costs almost nothing. Behind a TCP proxy every client shares its address: raise
    /// it there.
    pub max_failed_handshakes_per_source: u32,
    /// How often one more failed handshake is allowed back to an address past its burst
    /// (default 500 ms: two a second).
    pub failed_handshake_refill: Duration,
    /// Most handshake steps computing at once (signing, checking certificates): at most
    /// this many of the runtime's worker threads spend time on handshakes, so a flood of
    /// handshakes cannot delay calls on established connections. Default: the available
    /// parallelism less one, at least 1.
    pub handshake_workers: usize,
    /// Most established (authenticated) connections open at once.
    pub max_connections: usize,
    /// Idle time before TCP keepalive probes start, to find dead peers.
    pub tcp_keepalive: Duration,
    /// The most a connection may live, from its handshake: after it, reads fail and the
    /// connection ends. `None`: no bound here. A server that asks HTTP/2 to drain connections
    /// at a maximum age (GOAWAY) sets this to that age plus the grace for in-flight calls, so a
    /// peer that keeps a stream open past the grace is cut off.
    pub max_connection_lifetime: Option<Duration>,
}

impl Default for AcceptLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            client_hello_timeout: Duration::from_secs(3),
            max_pending: 8192,
            max_pending_per_source: 64,
            max_handshakes: 128,
            max_failed_handshakes_per_source: 32,
            failed_handshake_refill: Duration::from_millis(500),
            handshake_workers: std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1))
                .max(1),
            max_connections: 1024,
            tcp_keepalive: Duration::from_secs(60),
            max_connection_lifetime: None,
        }
    }
}

/// Accepts connections on `listener` and yields those that completed the mutual TLS handshake.
///
/// Each handshake uses the configuration `tls` holds at that moment, so a reload applies from
/// the next connection on. Runs until the returned stream is dropped (tonic drops it on
/// graceful shutdown), at which point the listener is closed. Refused peers are logged under
/// the `zt_tls::refused` target with their address, a stable `reason` and the reason in words
/// (`error`), and counted; every known reason's counter exists from the start, at 0.
pub fn accept(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    limits: AcceptLimits,
    metrics: Metrics,
) -> impl Stream<Item = Result<PeerStream, io::Error>> {
    let metrics = AcceptMetrics::new(&metrics);
    // Every reason a refusal can be counted under exists from now on, at 0.
    metrics.register_refusal_reasons(crate::REFUSAL_REASONS);
    // A small buffer: connections wait here only while tonic spawns the previous one.
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(accept_loop(listener, tls, limits, metrics, tx));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    limits: AcceptLimits,
    metrics: AcceptMetrics,
    tx: mpsc::Sender<Result<PeerStream, io::Error>>,
) {
    let handshakes = Arc::new(Semaphore::new(limits.max_handshakes));
    let crypto = Arc::new(Semaphore::new(limits.handshake_workers.max(1)));
    let pending = Arc::new(Semaphore::new(limits.max_pending));
    let sources = PendingSources::new(limits.max_pending_per_source);
    let failures = FailureBudget::new(
        limits.max_failed_handshakes_per_source,
        limits.failed_handshake_refill,
    );
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let keepalive = TcpKeepalive::new().with_time(limits.tcp_keepalive);
    let mut accept_errors = 0u32;
    loop {
        let (tcp, remote) = tokio::select! {
            () = tx.closed() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    accept_errors = 0;
                    accepted
                }
                Err(err) => {
                    // EMFILE and friends: back off instead of spinning on a full fd table.
                    accept_errors = accept_errors.saturating_add(1);
                    let pause = Duration::from_millis(10 << accept_errors.min(7));
                    tracing::error!(error = %err, retry_in = ?pause, "accept failed");
                    tokio::time::sleep(pause).await;
                    continue;
                }
            },
        };
        // At the door: nothing is read, nothing is spent, before these two caps allow it.
        let refuse_at_door = |reason: &'static str, error: &str| {
            metrics.refused(reason);
            tracing::warn!(target: "zt_tls::refused", peer = %remote, reason, error, "refused connection");
        };
        if !failures.allows(remote.ip()) {
            refuse_at_door(
                "source_failure_limit",
                "too many failed handshakes from this address; try again later",
            );
            continue;
        }
        let Ok(pending_permit) = Arc::clone(&pending).try_acquire_owned() else {
            refuse_at_door(
                "pending_limit",
                "too many connections short of a finished handshake",
            );
            continue;
        };
        let Some(source) = sources.enter(remote.ip()) else {
            refuse_at_door(
                "source_pending_limit",
                "too many connections short of a finished handshake from this address",
            );
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let _ = SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
        let pending = Pending {
            tls: Arc::clone(&tls),
            domains: tls.files().domains.clone(),
            crls: tls.crls_cell(),
            remote,
            handshakes: Arc::clone(&handshakes),
            crypto: Arc::clone(&crypto),
            admission: (pending_permit, source),
            failures: failures.clone(),
            connections: Arc::clone(&connections),
            limits,
            metrics: metrics.clone(),
        };
        tokio::spawn(pending.handshake(tcp, tx.clone()));
    }
    tracing::debug!("accept loop stopped");
}

/// A future polled only while it holds one of a semaphore's permits, taken anew for each
/// poll: the CPU-heavy steps of many such futures never run on more threads at once than
/// the semaphore has permits, and the other worker threads stay free. The semaphore is fair,
/// so every future waiting gets its turn in order.
struct OnePollAtATime<F> {
    inner: Pin<Box<F>>,
    turns: Arc<Semaphore>,
    waiting: Option<Pin<Box<dyn Future<Output = TurnResult> + Send>>>,
}

type TurnResult = Result<OwnedSemaphorePermit, tokio::sync::AcquireError>;

impl<F> OnePollAtATime<F> {
    fn new(inner: F, turns: Arc<Semaphore>) -> Self {
        Self {
            inner: Box::pin(inner),
            turns,
            waiting: None,
        }
    }
}

impl<F: Future> Future for OnePollAtATime<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let turns = Arc::clone(&this.turns);
        let waiting = this
            .waiting
            .get_or_insert_with(|| Box::pin(turns.acquire_owned()));
        let Poll::Ready(turn) = waiting.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        this.waiting = None;
        let result = this.inner.as_mut().poll(cx);
        drop(turn); // also when the semaphore were closed (it never is): poll regardless
        result
    }
}

/// How long a refused connection is kept to let its alert reach the client.
const ALERT_LINGER: Duration = Duration::from_secs(1);

/// How much a refused client may still send while its alert is delivered.
const ALERT_LINGER_BYTES: usize = 64 * 1024;

/// Closes a refused connection so that the alert rustls wrote reaches the client.
///
/// A TLS 1.3 client sends its first request right after its Finished, before the server has
/// judged its certificate. Closing a socket with those bytes unread makes the kernel answer
/// with a reset, which can destroy the alert before the client reads it (the JDK then sees
/// "connection reset" instead of `certificate_required`). So: FIN after the alert, then read
/// and drop what the client still sends until it closes, for at most [`ALERT_LINGER`] and
/// [`ALERT_LINGER_BYTES`]. No handshake slot is held meanwhile.
async fn close_after_alert(mut tcp: TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    if tcp.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        while total < ALERT_LINGER_BYTES {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(ALERT_LINGER, drain).await;
}

/// How many connections short of a finished handshake each source address has.
#[derive(Debug, Clone)]
struct PendingSources {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max: usize,
}

/// One source's place among the pending connections, given back when dropped.
#[derive(Debug)]
struct SourceSlot {
    sources: PendingSources,
    ip: IpAddr,
}

impl PendingSources {
    fn new(max: usize) -> Self {
        Self {
            counts: Arc::default(),
            max,
        }
    }

    /// A slot for `ip`, or `None` if it already has `max` pending connections.
    fn enter(&self, ip: IpAddr) -> Option<SourceSlot> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(ip).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(SourceSlot {
            sources: self.clone(),
            ip,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut counts = self
            .sources
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// The refusals a source address is charged for: failed authentication, what brute force
/// produces. Silence, garbage and timeouts are the pending caps' business.
const AUTHENTICATION_FAILURES: &[&str] = &[
    "no_certificate",
    "unknown_ca",
    "expired",
    "not_yet_valid",
    "revoked",
    "not_svid",
    "untrusted_trust_domain",
    "malformed_certificate",
    "bad_certificate",
];

/// Failed handshakes per source address, as token buckets: `burst` failures at once, one
/// more every `refill`. An address with none left is refused at the door. Full buckets are
/// forgotten, so memory follows the addresses failing now, not every address ever seen.
#[derive(Debug, Clone)]
struct FailureBudget {
    buckets: Arc<Mutex<HashMap<IpAddr, (f64, tokio::time::Instant)>>>,
    burst: f64,
    refill: Duration,
}

impl FailureBudget {
    fn new(burst: u32, refill: Duration) -> Self {
        Self {
            buckets: Arc::default(),
            burst: f64::from(burst.max(1)),
            refill: refill.max(Duration::from_millis(1)),
        }
    }

    /// What `ip` has left now, refilled for the time since it was last charged.
    fn left(&self, tokens: f64, since: tokio::time::Instant) -> f64 {
        let refilled = since.elapsed().as_secs_f64() / self.refill.as_secs_f64();
        (tokens + refilled).min(self.burst)
    }

    /// Whether `ip` may try a handshake.
    fn allows(&self, ip: IpAddr) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        match buckets.get(&ip).copied() {
            None => true,
            Some((tokens, since)) => {
                let left = self.left(tokens, since);
                if left >= self.burst {
                    buckets.remove(&ip);
                }
                left >= 1.0
            }
        }
    }

    /// Charges one failed handshake to `ip`.
    fn charge(&self, ip: IpAddr) {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let now = tokio::time::Instant::now();
        let (tokens, since) = buckets.get(&ip).copied().unwrap_or((self.burst, now));
        let left = self.left(tokens, since);
        buckets.insert(ip, ((left - 1.0).max(0.0), now));
        // Addresses that stopped failing long ago: their buckets are full again.
        if buckets.len() > 4096 {
            let full = |&(tokens, since): &(f64, tokio::time::Instant)| {
                self.left(tokens, since) >= self.burst
            };
            buckets.retain(|_, bucket| !full(bucket));
        }
    }
}

/// A connection between TCP accept and the end of its handshake.
struct Pending {
    tls: Arc<ServerTls>,
    domains: TrustedDomains,
    crls: Arc<ArcSwap<Crls>>,
    remote: SocketAddr,
    handshakes: Arc<Semaphore>,
    /// Turns to run handshake steps (the signing and certificate checks).
    crypto: Arc<Semaphore>,
    /// Its place among the connections short of a finished handshake: overall and for its
    /// source address.
    admission: (OwnedSemaphorePermit, SourceSlot),
    /// Where a failed handshake is charged to its source address.
    failures: FailureBudget,
    connections: Arc<Semaphore>,
    limits: AcceptLimits,
    metrics: AcceptMetrics,
}

impl Pending {
    async fn handshake(self, tcp: TcpStream, tx: mpsc::Sender<Result<PeerStream, io::Error>>) {
        let deadline = tokio::time::Instant::now() + self.limits.handshake_timeout;
        let timed_out = |what: &str| io::Error::new(io::ErrorKind::TimedOut, what.to_owned());
        // Stage 1: the ClientHello, holding no handshake slot.
        let hello = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
        let first_flight =
            deadline.min(tokio::time::Instant::now() + self.limits.client_hello_timeout);
        let result = match tokio::time::timeout_at(first_flight, hello).await {
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                crate::describe::ClientHelloTimeout,
            )),
            Ok(Err(err)) => Err(err),
            // Stage 2: the handshake proper, with a slot, under what is left of the deadline.
            Ok(Ok(start)) => match tokio::time::timeout_at(
                deadline,
                Arc::clone(&self.handshakes).acquire_owned(),
            )
            .await
            {
                Err(_) => Err(timed_out("TLS handshake timed out")),
                Ok(Err(_)) => Err(timed_out("TLS handshake timed out")), // never closed
                Ok(Ok(slot)) => {
                    let config = self.tls.current().config.clone();
                    let accept = start.into_stream(config).into_fallible();
                    let accept = OnePollAtATime::new(accept, Arc::clone(&self.crypto));
                    let outcome = match tokio::time::timeout_at(deadline, accept).await {
                        Ok(Ok(tls)) => Ok(tls),
                        Ok(Err((err, tcp))) => {
                            tokio::spawn(close_after_alert(tcp));
                            Err(err)
                        }
                        Err(_) => Err(timed_out("TLS handshake timed out")),
                    };
                    drop(slot);
                    outcome
                }
            },
        };
        drop(self.admission);
        let refuse = |reason: &'static str, error: &dyn std::fmt::Display| {
            if AUTHENTICATION_FAILURES.contains(&reason) {
                self.failures.charge(self.remote.ip());
            }
            self.metrics.refused(reason);
            tracing::warn!(
                target: "zt_tls::refused",
                peer = %self.remote,
                reason,
                error = %error,
                "refused connection"
            );
        };
        let tls = match result {
            Ok(tls) => tls,
            Err(err) => {
                let failure = crate::describe_handshake(&err);
                return refuse(failure.reason, &failure);
            }
        };
        let session = tls.get_ref().1;
        let resumed = session.handshake_kind() == Some(HandshakeKind::Resumed);
        // Borrowed from rustls, which keeps the chain for the connection's life: no copy.
        let chain = session.peer_certificates().unwrap_or_default();
        // The identity, once for the connection. After a full handshake the verifier has
        // checked all of it; a resumed one is checked here for the first time since.
        let identity = self
            .domains
            .identify(chain.first().map(|der| der.as_ref()))
            .and_then(|peer| peer.check_expiry(crate::unix_now()).map(|()| peer));
        let identity = match identity {
            Ok(peer) => Arc::new(peer),
            Err(err) if resumed => {
                return refuse(err.kind(), &format_args!("resumed session: {err}"));
            }
            Err(err) => return refuse(err.kind(), &err),
        };
        let Ok(permit) = self.connections.try_acquire_owned() else {
            // Dropping `tls` closes the socket; a retrying client will land once a slot frees.
            return refuse("connection_limit", &"too many open connections");
        };
        let issuers = issuers_and_serials(chain);
        let stream = PeerStream {
            inner: Box::new(tls),
            shared: Arc::new(ConnShared {
                identity,
                issuers,
                resumed,
                crls: self.crls,
                closing: AtomicBool::new(false),
                metrics: self.metrics.clone(),
            }),
            grace: None,
            expires: self
                .limits
                .max_connection_lifetime
                .map(|lifetime| Box::pin(tokio::time::sleep(lifetime))),
            _permit: permit,
            _open: self.metrics.opened(),
        };
        self.metrics.completed(resumed);
        // Fails only when the server is shutting down; the connection is then dropped.
        let _ = tx.send(Ok(stream)).await;
    }
}

/// An established, mutually authenticated connection, holding its slot in the connection cap
/// until it closes.
#[derive(Debug)]
pub struct PeerStream {
    /// Boxed: the TLS state is 1.2 KiB, and tonic's connection task holds the stream twice
    /// (the stream it was given, and hyper's connection built on it), so inline it would cost
    /// every idle connection a second copy.
    inner: Box<TlsStream<TcpStream>>,
    shared: Arc<ConnShared>,
    /// Started when the connection is told to close: reads fail once it elapses.
    grace: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The end of the connection's life ([`AcceptLimits::max_connection_lifetime`]).
    expires: Option<Pin<Box<tokio::time::Sleep>>>,
    _permit: OwnedSemaphorePermit,
    _open: InFlight,
}

/// What the connection and every request on it share.
#[derive(Debug)]
struct ConnShared {
    /// Who the peer proved to be at the handshake.
    identity: Arc<PeerIdentity>,
    /// Issuer (RFC 4514) and serial (lowercase hex) of each certificate the peer presented
    /// after its leaf, for the per-request revocation check.
    issuers: Box<[(String, String)]>,
    /// Whether the handshake resumed an earlier session.
    resumed: bool,
    /// The server's CRLs, as they are now (reloads included).
    crls: Arc<ArcSwap<Crls>>,
    closing: AtomicBool,
    metrics: AcceptMetrics,
}

/// Issuer and serial of each certificate of `chain` after the leaf. One the peer sent that
/// does not parse cannot be on the path rustls verified, and is skipped.
fn issuers_and_serials(chain: &[CertificateDer<'_>]) -> Box<[(String, String)]> {
    chain
        .iter()
        .skip(1)
        .filter_map(|der| {
            let (_, cert) = X509Certificate::from_der(der).ok()?;
            Some((
                zt_identity::rfc4514(cert.issuer()),
                cert.tbs_certificate.serial.to_str_radix(16),
            ))
        })
        .collect()
}

/// What tonic puts in every request's extensions for a [`PeerStream`] connection: the TCP
/// addresses and the peer's identity, derived once at the handshake.
///
/// Cloned into each request (two `Arc`s); the state is the connection's.
#[derive(Debug, Clone)]
pub struct PeerConnectInfo {
    tcp: TcpConnectInfo,
    shared: Arc<ConnShared>,
}

impl PeerConnectInfo {
    /// The TCP addresses. tonic's `Request::remote_addr()` looks only for its own connection
    /// types, so behind this acceptor it returns `None`; a handler reads the peer's address
    /// here instead:
    ///
    /// ```
    /// # fn handler<T>(request: &tonic::Request<T>) -> Option<std::net::SocketAddr> {
    /// request
    ///     .extensions()
    ///     .get::<zt_tls::PeerConnectInfo>()
    ///     .and_then(|conn| conn.tcp().remote_addr())
    /// # }
    /// ```
    pub fn tcp(&self) -> &TcpConnectInfo {
        &self.tcp
    }

    /// Whether this connection resumed an earlier TLS session (no certificate exchange; the
    /// identity is that of the chain verified when the session was first established).
    pub fn resumed(&self) -> bool {
        self.shared.resumed
    }

    /// The identity the peer proved at the handshake, if it still holds now: its certificate
    /// has not expired since, and neither it nor any certificate of the chain it presented
    /// (an intermediate CA) is revoked by the server's CRLs as they are now (the handshake
    /// checked the CRLs of its time; a reload may have added one since).
    ///
    /// # Errors
    /// [`IdentityError::Expired`]; [`IdentityError::Revoked`], in which case the connection is
    /// also closed (after a short grace, so this request's refusal still reaches the peer) and
    /// `zt_revoked_connections_closed_total` counts it: every stream on it ends.
    pub fn peer(&self) -> Result<Arc<PeerIdentity>, IdentityError> {
        let shared = &*self.shared;
        let peer = &shared.identity;
        peer.check_expiry(crate::unix_now())?;
        let crls = shared.crls.load();
        let revoked = crls.is_revoked(peer.issuer(), peer.serial())
            || shared
                .issuers
                .iter()
                .any(|(issuer, serial)| crls.is_revoked(issuer, serial));
        if revoked {
            if !shared.closing.swap(true, Ordering::AcqRel) {
                shared.metrics.revoked_closed();
            }
            return Err(IdentityError::Revoked {
                serial: peer.serial().to_owned(),
            });
        }
        Ok(Arc::clone(peer))
    }
}

impl Connected for PeerStream {
    type ConnectInfo = PeerConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        let (tcp, _) = self.inner.get_ref();
        PeerConnectInfo {
            tcp: tcp.connect_info(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(expires) = self.expires.as_mut()
            && expires.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection closed by the server: maximum connection age and its grace passed",
            )));
        }
        if self.shared.closing.load(Ordering::Acquire) {
            let grace = self
                .grace
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(CLOSE_GRACE)));
            if grace.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "connection closed by the server: peer no longer authorized",
                )));
            }
        }
        Pin::new(&mut *self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each idle connection's task holds a `PeerStream` twice; the TLS state lives behind
    /// one pointer instead (G6, memory per idle connection).
    #[test]
    fn a_peer_stream_keeps_its_tls_state_out_of_line() {
        assert!(size_of::<PeerStream>() <= 128);
    }
}
