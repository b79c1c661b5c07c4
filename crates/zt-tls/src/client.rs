//! The client's rustls configuration and a connector for tonic channels.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use std::path::PathBuf;

use arc_swap::ArcSwap;
use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::sign::SingleCertAndKey;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint};
use zt_identity::{SpiffeId, TrustDomain};

use crate::error::TlsError;
use crate::formats::Password;
use crate::store::{BundleSource, Keystore, Truststore};
use crate::usable::check_own_chain;
use crate::verify::SpiffeServerVerifier;

/// A client configuration that presents `keystore`, speaks only TLS 1.3 and HTTP/2, and accepts
/// only a server whose SPIFFE ID is `server_id`, with a chain to a CA of that ID's trust domain.
pub fn client_config(
    keystore: &Keystore,
    truststore: &Truststore,
    server_id: SpiffeId,
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = crate::crypto_provider();
    let roots = truststore
        .roots_for(server_id.trust_domain())
        .ok_or_else(|| {
            TlsError::Config(format!(
                "the truststore has no CA for trust domain {}, the server's",
                server_id.trust_domain()
            ))
        })?;
    let verifier = SpiffeServerVerifier::new(roots, server_id, Arc::clone(&provider));
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous() // a custom verifier: stricter than the default, not looser
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(keystore.certified_key())));
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A lazily connecting gRPC channel to `server` that dials with `connector`: nothing is dialled
/// until the first RPC, and a broken connection is redialled on the next one. HTTP/2 keepalive
/// finds a dead server within a minute.
pub fn channel(server: Uri, connector: MtlsConnector, request_timeout: Duration) -> Channel {
    Endpoint::from(server)
        .timeout(request_timeout)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .connect_with_connector_lazy(connector)
}

/// A client's TLS material, reloadable while connections are open: certificate and key
/// (rotated short-lived certificates) and CA bundle (CA rotation). A reload applies from the
/// next connection on; open connections keep the session they negotiated. [`Self::generation`]
/// tells a client that holds connections open when to open new ones.
#[derive(Debug)]
pub struct ClientTls {
    cert: PathBuf,
    key: PathBuf,
    keystore_password: Option<Password>,
    bundles: Vec<BundleSource>,
    server_id: SpiffeId,
    config: Arc<ArcSwap<ClientConfig>>,
    keystore: ArcSwap<Keystore>,
    generation: AtomicU64,
}

impl ClientTls {
    /// Loads the keystore (`cert`, `key`; or a PKCS#12 `cert` opened with
    /// `keystore_password`) and truststore (`bundles`) for talking to `server_id`. A CA that
    /// names no trust domain is bound to the server's.
    pub fn load(
        cert: PathBuf,
        key: PathBuf,
        keystore_password: Option<Password>,
        bundles: Vec<BundleSource>,
        server_id: SpiffeId,
    ) -> Result<Self, TlsError> {
        let (keystore, config) = Self::read(
            &cert,
            &key,
            keystore_password.as_ref(),
            &bundles,
            &server_id,
        )?;
        Ok(Self {
            cert,
            key,
            keystore_password,
            bundles,
            server_id,
            config: Arc::new(ArcSwap::new(config)),
            keystore: ArcSwap::from_pointee(keystore),
            generation: AtomicU64::new(0),
        })
    }

    fn read(
        cert: &std::path::Path,
        key: &std::path::Path,
        keystore_password: Option<&Password>,
        bundles: &[BundleSource],
        server_id: &SpiffeId,
    ) -> Result<(Keystore, Arc<ClientConfig>), TlsError> {
        let keystore = Keystore::load_with_password(cert, key, keystore_password)?;
        let server_domain = TrustDomain::new(server_id.trust_domain())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let truststore = Truststore::load_all(bundles, Some(&server_domain))?;
        check_own_chain(
            &keystore,
            &truststore,
            cert,
            crate::usable::ChainUse::Client,
        )?;
        let config = client_config(&keystore, &truststore, server_id.clone())?;
        Ok((keystore, config))
    }

    /// Reads the files again; on success new connections use them, on error nothing changes.
    pub fn reload(&self) -> Result<(), TlsError> {
        let (keystore, config) = Self::read(
            &self.cert,
            &self.key,
            self.keystore_password.as_ref(),
            &self.bundles,
            &self.server_id,
        )?;
        self.config.store(config);
        self.keystore.store(Arc::new(keystore));
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// How many times the material has been reloaded: changes when new connections would
    /// present another certificate or trust other CAs.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The files the material comes from, to watch for changes.
    pub fn paths(&self) -> Vec<PathBuf> {
        [self.cert.clone(), self.key.clone()]
            .into_iter()
            .chain(self.bundles.iter().map(|b| b.path.clone()))
            .collect()
    }

    /// Our keystore as of now.
    pub fn keystore(&self) -> Arc<Keystore> {
        self.keystore.load_full()
    }

    /// A connector that always dials with the current material.
    pub fn connector(&self, connect_timeout: Duration) -> MtlsConnector {
        MtlsConnector {
            config: Arc::clone(&self.config),
            connect_timeout,
        }
    }
}

/// Connects a tonic channel over mutual TLS: TCP connect (bounded by `connect_timeout`), then
/// the handshake with the client configuration current at that moment.
///
/// Use with `Endpoint::connect_with_connector` and an `http://` URI: TLS is done here, so
/// tonic must not try to add its own.
#[derive(Clone)]
pub struct MtlsConnector {
    config: Arc<ArcSwap<ClientConfig>>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for MtlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtlsConnector")
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl MtlsConnector {
    /// A connector that uses `config` for every connection.
    pub fn new(config: Arc<ClientConfig>, connect_timeout: Duration) -> Self {
        Self {
            config: Arc::new(ArcSwap::new(config)),
            connect_timeout,
        }
    }
}

impl tower_service::Service<Uri> for MtlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = TlsConnector::from(self.config.load_full());
        let deadline = self.connect_timeout;
        Box::pin(async move {
            let invalid =
                |msg: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{uri}: {msg}"));
            let host = uri.host().ok_or_else(|| invalid("no host"))?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().ok_or_else(|| invalid("no port"))?;
            let server_name =
                ServerName::try_from(host.clone()).map_err(|_| invalid("invalid host name"))?;
            let connect = async {
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                tls.connect(server_name, tcp).await
            };
            let stream = tokio::time::timeout(deadline, connect)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
            Ok(TokioIo::new(stream))
        })
    }
}
