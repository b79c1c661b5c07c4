//! A handshake probe: does this server accept this client configuration, and if not, what
//! did it say? For diagnostics, the compose lab's intruders, and tests.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::{AlertDescription, ClientConfig};
use rustls_pki_types::ServerName;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How a server answered a TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// It refused with this fatal alert.
    Refused(AlertDescription),
    /// It closed the connection without an alert.
    Closed,
    /// It completed the handshake and started talking (HTTP/2 SETTINGS).
    Accepted,
}

/// Handshakes with `host:port` using `config` and waits up to `wait` for the server's first
/// word, *without sending any application data*.
///
/// In TLS 1.3 a server judges the client's certificate after the client considers the
/// handshake complete. A client that sends a request at once races the server's alert: the
/// server closes, the request draws a TCP reset, and the alert is lost. Waiting for the first
/// record makes the answer deterministic.
pub async fn probe(
    host: &str,
    port: u16,
    config: Arc<ClientConfig>,
    wait: Duration,
) -> io::Result<Probe> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let tcp = TcpStream::connect((host, port)).await?;
    let mut tls = match TlsConnector::from(config).connect(name, tcp).await {
        Ok(tls) => tls,
        Err(e) => return Ok(refusal(&e)),
    };
    let mut first = [0u8; 1];
    match tokio::time::timeout(wait, tls.read(&mut first)).await {
        Ok(Ok(0)) => Ok(Probe::Closed),
        Ok(Ok(_)) => Ok(Probe::Accepted),
        Ok(Err(e)) => Ok(refusal(&e)),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the server neither accepted nor refused in time",
        )),
    }
}

fn refusal(err: &io::Error) -> Probe {
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(alert)) => Probe::Refused(*alert),
        _ => Probe::Closed,
    }
}
