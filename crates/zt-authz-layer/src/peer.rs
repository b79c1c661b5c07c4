//! How the layer learns who is calling: [`PeerInfo`], provided by the transport.

use std::net::SocketAddr;
use std::sync::Arc;

use zt_identity::{IdentityError, PeerIdentity};

/// What a transport tells the authorization layer about the connection a request came over.
///
/// The transport puts a value of this type in every request's extensions (tonic does it for
/// the `ConnectInfo` of a `Connected` stream), and the layer reads it from there. The
/// transport owns authentication: it verifies the peer's certificate chain at the handshake,
/// derives the [`PeerIdentity`] once per connection, and re-checks on each call what can
/// change while a connection lives (expiry, revocation). The layer only decides.
///
/// Implemented for [`zt_tls::PeerConnectInfo`] (feature `tls`, on by default). Another
/// acceptor implements it for its own connection type; a test can implement it for a plain
/// struct holding a constructed identity (see the crate's tests).
pub trait PeerInfo: Clone + Send + Sync + 'static {
    /// The peer's identity, if it holds now.
    ///
    /// # Errors
    /// Why there is no valid identity; the request is refused with `UNAUTHENTICATED` and
    /// counted under [`IdentityError::kind`].
    fn peer(&self) -> Result<Arc<PeerIdentity>, IdentityError>;

    /// The peer's address, for logs; `None` when the transport has none.
    fn remote_addr(&self) -> Option<SocketAddr>;
}

#[cfg(feature = "tls")]
impl PeerInfo for zt_tls::PeerConnectInfo {
    fn peer(&self) -> Result<Arc<PeerIdentity>, IdentityError> {
        zt_tls::PeerConnectInfo::peer(self)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        self.tcp().remote_addr
    }
}
