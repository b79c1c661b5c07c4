//! gRPC C++'s side: the `a43_server` process (gRPC's own translator, provider, engine and TLS
//! stack), driven over its stdin/stdout line protocol, and a tonic client that calls it over
//! the project's mutual-TLS client path, one connection per caller.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use http::uri::PathAndQuery;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tonic::transport::Channel;
use zt_identity::SpiffeId;

use crate::model::{RequestSpec, hex, unhex};
use crate::pki::{GrpcPeer, Identity, Pki, SERVER_ID};

/// What gRPC's provider said about a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Load {
    /// Accepted; for `SERVE`, the port it listens on.
    Accepted(u16),
    /// Refused by `StaticDataAuthorizationPolicyProvider::Create`: status code and message.
    Refused(i32, String),
}

/// The running `a43_server`.
#[derive(Debug)]
pub(crate) struct CppServer {
    _child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl CppServer {
    /// Starts `binary` with the server's keystore and the CA as its truststore.
    pub(crate) fn start(binary: &Path, pki: &Pki) -> anyhow::Result<Self> {
        let mut child = tokio::process::Command::new(binary)
            .arg("--cert")
            .arg(&pki.server_cert)
            .arg("--key")
            .arg(&pki.server_key)
            .arg("--ca")
            .arg(&pki.ca_cert)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {binary:?}"))?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        Ok(Self {
            _child: child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
        })
    }

    async fn command(&mut self, line: String) -> anyhow::Result<String> {
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.write_all(b"\n").await?;
        self.stdin.flush().await?;
        self.stdout.next_line().await?.context("a43_server exited")
    }

    /// Loads `policy` with gRPC's provider only.
    pub(crate) async fn check(&mut self, policy: &str) -> anyhow::Result<Load> {
        let answer = self
            .command(format!("CHECK {}", hex(policy.as_bytes())))
            .await?;
        parse_load(&answer)
    }

    /// Replaces the running server with one enforcing `policy`.
    pub(crate) async fn serve(&mut self, policy: &str) -> anyhow::Result<Load> {
        let answer = self
            .command(format!("SERVE {}", hex(policy.as_bytes())))
            .await?;
        parse_load(&answer)
    }
}

fn parse_load(answer: &str) -> anyhow::Result<Load> {
    let mut words = answer.split(' ');
    match (words.next(), words.next(), words.next()) {
        (Some("ACCEPTED"), None, None) => Ok(Load::Accepted(0)),
        (Some("LISTENING"), Some(port), None) => Ok(Load::Accepted(port.parse()?)),
        (Some("REFUSED"), Some(code), message) => Ok(Load::Refused(
            code.parse()?,
            String::from_utf8_lossy(&unhex(message.unwrap_or_default())?).into_owned(),
        )),
        _ => bail!("a43_server answered {answer:?}"),
    }
}

/// gRPC's decision on one RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The handler answered OK; what it saw of the peer.
    Allowed(GrpcPeer),
    /// `PERMISSION_DENIED` from the authorization filter.
    Denied,
    /// Anything else: a harness or transport problem, reported as such.
    Error(String),
}

/// A connection to the current server that presents `identity`: the project's client path
/// (SPIFFE-pinned server) for an X509-SVID; for a caller the project would not even load as
/// a keystore (no SPIFFE ID), plain rustls with the server checked by chain and name.
pub(crate) fn connect(port: u16, identity: &Identity, pki: &Pki) -> anyhow::Result<Channel> {
    let config = match zt_tls::Keystore::load(&identity.cert, &identity.key) {
        Ok(keystore) => {
            let truststore = zt_tls::Truststore::load(&pki.ca_cert)?;
            zt_tls::client_config(&keystore, &truststore, SpiffeId::new(SERVER_ID)?)?
        }
        Err(_) => plain_config(identity, pki)?,
    };
    let uri = format!("https://localhost:{port}").parse()?;
    let connector = zt_tls::MtlsConnector::new(config, Duration::from_secs(5));
    Ok(zt_tls::channel(uri, connector, Duration::from_secs(10)))
}

fn plain_config(identity: &Identity, pki: &Pki) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(&pki.ca_cert)? {
        roots.add(der?)?;
    }
    let chain = CertificateDer::pem_file_iter(&identity.cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&identity.key)?;
    let mut config = rustls::ClientConfig::builder_with_provider(zt_tls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Sends one RPC with `request`'s path and metadata on `channel`.
pub(crate) async fn call(channel: Channel, request: &RequestSpec) -> Verdict {
    match try_call(channel, request).await {
        Ok(verdict) => verdict,
        Err(e) => Verdict::Error(format!("{e:#}")),
    }
}

async fn try_call(channel: Channel, request: &RequestSpec) -> anyhow::Result<Verdict> {
    let content_type = request
        .content_type
        .as_deref()
        .map(http::HeaderValue::from_str)
        .transpose()?;
    let mut grpc = tonic::client::Grpc::new(SetContentType {
        inner: channel,
        content_type,
    });
    grpc.ready().await?;
    let path = PathAndQuery::try_from(request.path.as_str())?;
    let message = tonic::Request::from_parts(
        request.metadata_map()?,
        tonic::Extensions::default(),
        Vec::<u8>::new(),
    );
    let codec = tonic_prost::ProstCodec::<Vec<u8>, Vec<u8>>::default();
    match grpc.unary(message, path, codec).await {
        Ok(response) => Ok(Verdict::Allowed(parse_peer(&response.into_inner())?)),
        Err(status) if status.code() == tonic::Code::PermissionDenied => Ok(Verdict::Denied),
        Err(status) => Ok(Verdict::Error(format!(
            "{:?}: {}",
            status.code(),
            status.message()
        ))),
    }
}

/// Replaces the `content-type` tonic set (always `application/grpc`), when asked to.
#[derive(Debug, Clone)]
struct SetContentType<S> {
    inner: S,
    content_type: Option<http::HeaderValue>,
}

impl<S, B> tower_service::Service<http::Request<B>> for SetContentType<S>
where
    S: tower_service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if let Some(value) = &self.content_type {
            request
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, value.clone());
        }
        self.inner.call(request)
    }
}

/// The handler's answer: lines of `property\thex(value)`.
fn parse_peer(body: &[u8]) -> anyhow::Result<GrpcPeer> {
    let mut peer = GrpcPeer::default();
    for line in String::from_utf8_lossy(body).lines() {
        let mut fields = line.split('\t');
        let (Some(kind), Some(value)) = (fields.next(), fields.next()) else {
            continue;
        };
        let value = String::from_utf8_lossy(&unhex(value)?).into_owned();
        match kind {
            "x509_subject" => peer.subject = value,
            "peer_uri" => peer.uris.push(value),
            "peer_dns" => peer.dns.push(value),
            _ => {}
        }
    }
    Ok(peer)
}
