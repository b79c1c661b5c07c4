//! The server's accept loop: TCP accept, a bounded TLS handshake, and a stream of
//! authenticated connections for tonic's `serve_with_incoming`.
//!
//! tonic's own loop has no handshake timeout and no connection cap, and runs pending
//! handshakes unbounded. Here every resource a peer can hold is bounded, with two separate
//! caps so that unauthenticated sockets cannot starve authenticated ones:
//!
//! - *handshakes in progress*: accepting pauses while they are exhausted (the kernel backlog
//!   absorbs bursts), and each handshake runs in its own task under a deadline, so a silent
//!   socket holds a handshake slot for at most `handshake_timeout`;
//! - *established connections*: a slot is taken only once the peer has authenticated; when
//!   none is free the new connection is refused (`connection_limit`) and the live ones are
//!   untouched.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use zt_identity::{IdentityError, PeerIdentity, TrustedDomains};

/// Bounds on what peers can hold before and while they are connected.
#[derive(Debug, Clone, Copy)]
pub struct AcceptLimits {
    /// Time a peer has to complete the TLS handshake after TCP accept.
    pub handshake_timeout: Duration,
    /// Most TLS handshakes in progress at once.
    pub max_handshakes: usize,
    /// Most established (authenticated) connections open at once.
    pub max_connections: usize,
    /// Idle time before TCP keepalive probes start, to find dead peers.
    pub tcp_keepalive: Duration,
}

impl Default for AcceptLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 128,
            max_connections: 1024,
            tcp_keepalive: Duration::from_secs(60),
        }
    }
}

/// Accepts connections on `listener` and yields those that completed the mutual TLS handshake.
///
/// Runs until the returned stream is dropped (tonic drops it on graceful shutdown), at which
/// point the listener is closed. Refused peers are logged under the `zt_tls::refused` target
/// with their address and a stable `reason`.
pub fn accept(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    limits: AcceptLimits,
) -> impl Stream<Item = Result<PeerStream, io::Error>> {
    // A small buffer: connections wait here only while tonic spawns the previous one.
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), limits, tx));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: AcceptLimits,
    tx: mpsc::Sender<Result<PeerStream, io::Error>>,
) {
    let handshakes = Arc::new(Semaphore::new(limits.max_handshakes));
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let keepalive = TcpKeepalive::new().with_time(limits.tcp_keepalive);
    let mut accept_errors = 0u32;
    loop {
        let handshake_permit = tokio::select! {
            () = tx.closed() => break,
            permit = Arc::clone(&handshakes).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // the semaphore is never closed; stop rather than spin
            },
        };
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
        let _ = tcp.set_nodelay(true);
        let _ = SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
        tokio::spawn(handshake(
            acceptor.clone(),
            tcp,
            remote,
            handshake_permit,
            Arc::clone(&connections),
            limits.handshake_timeout,
            tx.clone(),
        ));
    }
    tracing::debug!("accept loop stopped");
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    remote: SocketAddr,
    handshake_permit: OwnedSemaphorePermit,
    connections: Arc<Semaphore>,
    deadline: Duration,
    tx: mpsc::Sender<Result<PeerStream, io::Error>>,
) {
    let result = match tokio::time::timeout(deadline, acceptor.accept(tcp)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    };
    drop(handshake_permit);
    let refuse = |reason: &'static str, error: &dyn std::fmt::Display| {
        tracing::warn!(
            target: "zt_tls::refused",
            peer = %remote,
            reason,
            error = %error,
            "refused connection"
        );
    };
    let tls = match result {
        Ok(tls) => tls,
        Err(err) => return refuse(refusal_reason(&err), &err),
    };
    let Ok(permit) = connections.try_acquire_owned() else {
        // Dropping `tls` closes the socket; a retrying client will land once a slot frees.
        return refuse("connection_limit", &"too many open connections");
    };
    let stream = PeerStream {
        inner: tls,
        identity: Arc::default(),
        _permit: permit,
    };
    // Fails only when the server is shutting down; the connection is then dropped.
    let _ = tx.send(Ok(stream)).await;
}

/// A short, stable label for why a handshake failed, for logs and metrics: `no_certificate`,
/// `unknown_ca`, `expired`, `not_yet_valid`, `revoked`, `not_svid`, `untrusted_trust_domain`,
/// `bad_certificate`, `protocol_version`, `no_application_protocol`, `client_alert`, `not_tls`,
/// `handshake_timeout`, `io`, `tls_error`. (The accept loop adds `connection_limit` for an
/// authenticated peer turned away because every connection slot is taken.)
pub fn refusal_reason(err: &io::Error) -> &'static str {
    use rustls::{CertificateError as C, Error as E, PeerIncompatible};
    if err.kind() == io::ErrorKind::TimedOut {
        return "handshake_timeout";
    }
    let Some(tls) = err.get_ref().and_then(|e| e.downcast_ref::<E>()) else {
        return "io";
    };
    match tls {
        E::NoCertificatesPresented => "no_certificate",
        E::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer => "unknown_ca",
            C::Expired | C::ExpiredContext { .. } => "expired",
            C::NotValidYet | C::NotValidYetContext { .. } => "not_yet_valid",
            C::Revoked => "revoked",
            C::Other(other) => other
                .0
                .downcast_ref::<IdentityError>()
                .map_or("bad_certificate", IdentityError::kind),
            _ => "bad_certificate",
        },
        E::PeerIncompatible(
            PeerIncompatible::Tls13RequiredForQuic
            | PeerIncompatible::SupportedVersionsExtensionRequired
            | PeerIncompatible::ServerDoesNotSupportTls12Or13,
        ) => "protocol_version",
        E::NoApplicationProtocol => "no_application_protocol",
        // The client refused *our* certificate (or gave up) and said so.
        E::AlertReceived(_) => "client_alert",
        E::InvalidMessage(_) => "not_tls",
        _ => "tls_error",
    }
}

/// An established, mutually authenticated connection, holding its slot in the connection cap
/// until it closes.
#[derive(Debug)]
pub struct PeerStream {
    inner: TlsStream<TcpStream>,
    identity: Arc<OnceLock<Result<Arc<PeerIdentity>, IdentityError>>>,
    _permit: OwnedSemaphorePermit,
}

/// What tonic puts in every request's extensions for a [`PeerStream`] connection.
///
/// Cloned into each request, but the identity cell is shared: the certificate is parsed into a
/// [`PeerIdentity`] once per connection, by the first request that asks.
#[derive(Debug, Clone)]
pub struct PeerConnectInfo {
    tcp: TcpConnectInfo,
    /// The chain rustls verified, leaf first; shared by every request on the connection.
    certs: Option<Arc<[CertificateDer<'static>]>>,
    identity: Arc<OnceLock<Result<Arc<PeerIdentity>, IdentityError>>>,
}

impl PeerConnectInfo {
    /// The TCP addresses, in the type tonic's `Request::remote_addr()` looks for.
    pub fn tcp(&self) -> &TcpConnectInfo {
        &self.tcp
    }

    /// The peer's verified certificate chain, leaf first.
    pub fn peer_certs(&self) -> Option<&[CertificateDer<'static>]> {
        self.certs.as_deref()
    }

    /// The peer's identity, derived from its verified leaf certificate on first use and cached
    /// for the life of the connection.
    pub fn identity(&self, domains: &TrustedDomains) -> Result<Arc<PeerIdentity>, IdentityError> {
        self.identity
            .get_or_init(|| {
                let leaf = self.peer_certs().and_then(<[_]>::first);
                domains.identify(leaf.map(|der| der.as_ref())).map(Arc::new)
            })
            .clone()
    }
}

impl Connected for PeerStream {
    type ConnectInfo = PeerConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        let (tcp, tls) = self.inner.get_ref();
        PeerConnectInfo {
            tcp: tcp.connect_info(),
            certs: tls.peer_certificates().map(Arc::from),
            identity: Arc::clone(&self.identity),
        }
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
