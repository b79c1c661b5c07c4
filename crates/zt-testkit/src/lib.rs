//! Test support (dev-dependency only): everything a test needs to run real handshakes over
//! real sockets with certificates made at test time.
//!
//! - [`TestPki`]: a CA made by the project's own CA code, in a temporary directory, issuing
//!   conforming SVIDs ([`TestPki::issue`]) or anything at all ([`TestPki::issue_params`]).
//! - [`svid_params`]: a conforming leaf profile for a test to bend (expire it, add a URI SAN).
//! - [`mtls_channel`]: the production client path (SPIFFE-pinned server verification).
//! - [`raw_channel`]: a client that presents whatever certificate it is given, or none, to
//!   probe what the server refuses.
//! - [`Logs`]: what the code under test logs, captured for assertions.
//!
//! Failures here are test-setup bugs, so this crate panics freely.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a panic is a failed test"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SanType};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tempfile::TempDir;
use time::OffsetDateTime;
use tonic::transport::Channel;
use zt_identity::{SpiffeId, TrustDomain};
use zt_pki::{Ca, LeafRequest};

/// Certificate and key files of one identity.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The certificate chain, PEM.
    pub cert: PathBuf,
    /// The private key, PEM.
    pub key: PathBuf,
}

/// A CA and the files it issued, in a directory removed when this is dropped.
#[derive(Debug)]
pub struct TestPki {
    dir: TempDir,
    ca: Ca,
}

impl TestPki {
    /// A fresh CA for `trust_domain`, its certificate written to `ca.pem`.
    pub fn new(trust_domain: &str) -> Self {
        let domain = TrustDomain::new(trust_domain).unwrap();
        Self::with_ca(Ca::generate(&domain, Duration::from_secs(24 * 3600)).unwrap())
    }

    fn with_ca(ca: Ca) -> Self {
        let pki = Self {
            dir: tempfile::tempdir().unwrap(),
            ca,
        };
        pki.write("ca.pem", pki.ca.cert_pem());
        pki
    }

    /// A forger's PKI: a new CA with this one's trust domain and name but its own key, which
    /// is what certificate spoofing looks like to a server.
    pub fn impersonating(&self) -> Self {
        let domain = self.ca.trust_domain().unwrap().clone();
        let lifetime = Duration::from_secs(24 * 3600);
        Self::with_ca(Ca::generate_named(&domain, lifetime, self.ca.common_name()).unwrap())
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate file (a truststore).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The CA itself.
    pub fn ca(&self) -> &Ca {
        &self.ca
    }

    /// Issues a conforming SVID for `spiffe_id` with the project's CA code.
    pub fn issue(&self, name: &str, spiffe_id: &str, dns: &[&str]) -> Identity {
        let mut request = LeafRequest::new(SpiffeId::new(spiffe_id).unwrap());
        request.dns_names = dns.iter().map(|d| (*d).to_owned()).collect();
        request.lifetime = Duration::from_secs(3600);
        let leaf = self.ca.issue(&request).unwrap();
        self.identity(name, &leaf.cert_pem, &leaf.key_pem)
    }

    /// Signs arbitrary parameters with this CA (no profile checks) and a fresh P-256 key.
    pub fn issue_params(&self, name: &str, params: CertificateParams) -> Identity {
        let key = KeyPair::generate().unwrap();
        let cert_pem = self.ca.sign_raw(params, &key).unwrap();
        self.identity(name, &cert_pem, &key.serialize_pem())
    }

    /// A self-signed certificate with the given parameters: chains to nothing.
    pub fn self_signed(&self, name: &str, params: &CertificateParams) -> Identity {
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        self.identity(name, &cert.pem(), &key.serialize_pem())
    }

    /// Writes `contents` to `name` in the directory and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn identity(&self, name: &str, cert_pem: &str, key_pem: &str) -> Identity {
        Identity {
            cert: self.write(&format!("{name}.pem"), cert_pem),
            key: self.write(&format!("{name}.key"), key_pem),
        }
    }
}

/// A conforming X509-SVID leaf profile (valid for the next hour) for the given URI SANs and
/// `localhost`; tests bend one property to make a hostile certificate.
pub fn svid_params(uris: &[&str]) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.subject_alt_names = uris
        .iter()
        .map(|u| SanType::URI((*u).try_into().unwrap()))
        .chain([SanType::DnsName("localhost".try_into().unwrap())])
        .collect();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::hours(1);
    params
}

/// A channel over the production client path: presents `client`, and accepts the server only
/// if it chains to `ca` and proves `server_id`.
pub fn mtls_channel(addr: SocketAddr, client: &Identity, ca: &Path, server_id: &str) -> Channel {
    config_channel(addr, mtls_config(client, ca, server_id))
}

/// The production client configuration [`mtls_channel`] uses. Channels made from one
/// configuration share its TLS session cache, so a second connection can resume the first's
/// session.
pub fn mtls_config(client: &Identity, ca: &Path, server_id: &str) -> Arc<rustls::ClientConfig> {
    let keystore = zt_tls::Keystore::load(&client.cert, &client.key).unwrap();
    let truststore = zt_tls::Truststore::load(ca).unwrap();
    zt_tls::client_config(&keystore, &truststore, SpiffeId::new(server_id).unwrap()).unwrap()
}

/// What the server at `addr` answers a handshake presenting `client` as is (or nothing),
/// before any request is sent: see [`zt_tls::probe`].
pub async fn probe(addr: SocketAddr, client: Option<&Identity>, ca: &Path) -> zt_tls::Probe {
    probe_with(addr, raw_config(client, ca)).await
}

/// What the server at `addr` answers a handshake made with `config`.
pub async fn probe_with(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> zt_tls::Probe {
    zt_tls::probe("localhost", addr.port(), config, Duration::from_secs(5))
        .await
        .unwrap()
}

/// A channel that presents `client` as is (or no certificate at all), with no checks of its
/// own, and verifies the server only by chain to `ca` for the name `localhost`. For probing
/// what the server refuses.
pub fn raw_channel(addr: SocketAddr, client: Option<&Identity>, ca: &Path) -> Channel {
    config_channel(addr, raw_config(client, ca))
}

/// The configuration [`raw_channel`] and [`probe`] use: presents `client` (or nothing), and
/// verifies the server only by chain to `ca` for the name `localhost`.
pub fn raw_config(client: Option<&Identity>, ca: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(der.unwrap()).unwrap();
    }
    let provider = zt_tls::crypto_provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some(id) => {
            let chain = CertificateDer::pem_file_iter(&id.cert)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(&id.key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// A lazily connecting channel to `localhost:PORT` of `addr` that dials with `config`.
pub fn config_channel(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Channel {
    let uri = format!("https://localhost:{}", addr.port())
        .parse()
        .unwrap();
    let connector = zt_tls::MtlsConnector::new(config, Duration::from_secs(5));
    zt_tls::channel(uri, connector, Duration::from_secs(10))
}

/// Handshakes with the server at `addr` presenting `client`, and returns the serial number
/// (lowercase hex) of the certificate the server presented: which keystore it serves with now.
pub async fn server_serial(addr: SocketAddr, client: &Identity, ca: &Path) -> String {
    let connector = tokio_rustls::TlsConnector::from(raw_config(Some(client), ca));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    zt_identity::inspect_leaf(&leaf).unwrap().serial
}

/// Replaces `target` with `contents` the way deployment tools do: written beside it, then
/// renamed over it in one step.
pub fn atomic_write(target: &Path, contents: impl AsRef<[u8]>) {
    let mut temp = target.as_os_str().to_owned();
    temp.push(".swap-tmp");
    std::fs::write(&temp, contents).unwrap();
    std::fs::rename(&temp, target).unwrap();
}

/// Publishes `files` (name, contents) in `dir` the way the kubelet updates a mounted
/// ConfigMap or Secret: a new `dir/..VERSION` directory holds them, a new symlink to it is
/// renamed over `dir/..data`, and each `dir/NAME -> ..data/NAME` stays as it is (it is made
/// the first time). A reader following the path sees the old set or the new, never a mix.
pub fn kubelet_swap(dir: &Path, version: &str, files: &[(&str, &[u8])]) {
    let data = format!("..{version}");
    std::fs::create_dir_all(dir.join(&data)).unwrap();
    for (name, contents) in files {
        std::fs::write(dir.join(&data).join(name), contents).unwrap();
    }
    let link = dir.join("..data_tmp");
    std::os::unix::fs::symlink(&data, &link).unwrap();
    std::fs::rename(&link, dir.join("..data")).unwrap();
    for (name, _) in files {
        let path = dir.join(name);
        if std::fs::symlink_metadata(&path).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &path).unwrap();
        }
    }
}

/// Scrapes `GET /metrics` from `addr` with a bare HTTP/1.1 request and returns the body.
pub async fn scrape(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// What the code under test logs at `info` and above, captured for assertions on log lines.
///
/// The capture is the process's global subscriber, installed by the first [`Logs::capture`];
/// each capture sees what was logged after it began. nextest gives each test a process of its
/// own; under `cargo test` the tests of one binary share the capture, so a test should look
/// for lines naming what it made (its files, its peers) rather than count every line.
#[derive(Debug, Clone, Copy)]
pub struct Logs {
    start: usize,
}

/// The bytes every capture reads from.
#[derive(Clone)]
struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static SINK: std::sync::OnceLock<Sink> = std::sync::OnceLock::new();

impl Logs {
    /// Starts capturing (installing the global subscriber if this is the first capture).
    pub fn capture() -> Self {
        let sink = SINK.get_or_init(|| {
            let sink = Sink(Arc::default());
            let writer = sink.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in a test using Logs");
            sink
        });
        Self {
            start: sink.0.lock().unwrap().len(),
        }
    }

    /// Everything logged since this capture began.
    pub fn text(&self) -> String {
        let sink = SINK.get().expect("a capture exists");
        String::from_utf8_lossy(&sink.0.lock().unwrap()[self.start..]).into_owned()
    }
}

/// One piece of the `unusable` scenario of [`ForeignPki`]: material that can never verify, and
/// the reason both binaries refuse it with at startup (after `FILE: `).
#[derive(Debug, Clone, Copy)]
pub struct Unusable {
    /// What it is, for test messages.
    pub what: &'static str,
    /// The CA bundle file to start with.
    pub ca: &'static str,
    /// For a bad keystore: the suffix of the identity's name (`ledger-not-ca`); `None` uses
    /// the scenario's good keystore.
    pub keystore_suffix: Option<&'static str>,
    /// The reason, after the file name.
    pub problem: &'static str,
}

/// Every case of the `unusable` scenario, for the ledger's and payments' suites alike.
pub const UNUSABLE: [Unusable; 3] = [
    Unusable {
        what: "URI name constraint",
        ca: "ca-uri-constraint.pem",
        keystore_suffix: None,
        problem: "certificate 0: it has a URI name constraint (zt.example), which rustls-webpki \
                  does not evaluate: it refuses every SPIFFE certificate under this CA; issue \
                  the CA without URI name constraints",
    },
    Unusable {
        what: "CA:FALSE intermediate",
        ca: "ca.pem",
        keystore_suffix: Some("-not-ca"),
        problem: "certificate 1: as the issuer of the certificate before it in the chain: not a \
                  CA certificate (cA=false in basicConstraints, or no basicConstraints)",
    },
    Unusable {
        what: "intermediate without keyCertSign",
        ca: "ca.pem",
        keystore_suffix: Some("-no-cert-sign"),
        problem: "certificate 1: as the issuer of the certificate before it in the chain: its \
                  KeyUsage lacks keyCertSign: it may not sign certificates",
    },
];

/// CAs of the `unusable` scenario that the ring provider could not verify with (ECDSA with
/// SHA-512, a P-521 key) and aws-lc-rs, the provider now, does: they are accepted.
pub const USABLE_SINCE_AWS_LC: [&str; 2] = ["ca-sha512.pem", "ca-p521.pem"];

/// Certificates from a PKI nobody on this project wrote: `interop/foreign_pki.py` (the
/// `openssl` command line and Python `cryptography`, never zt-ca or rcgen), written into a
/// temporary directory removed when this is dropped.
#[derive(Debug)]
pub struct ForeignPki {
    dir: TempDir,
}

impl ForeignPki {
    /// Runs the generator for `scenarios` (see the script's documentation for what each
    /// writes). `key_cache` keeps the slow RSA keys across runs: pass the test's
    /// `env!("CARGO_TARGET_TMPDIR")`, which every test binary of the workspace shares.
    ///
    /// Panics with the generator's message if it fails; when Python `cryptography` is missing
    /// that message says `python3 -m pip install cryptography`.
    pub fn generate(key_cache: &str, scenarios: &[&str]) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/foreign_pki.py");
        let dir = tempfile::tempdir().unwrap();
        let output = std::process::Command::new("python3")
            .arg(&script)
            .arg("--key-cache")
            .arg(Path::new(key_cache).join("foreign-pki-keys"))
            .arg(dir.path())
            .args(scenarios)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("python3 runs (.ci/run installs it)");
        assert!(
            output.status.success(),
            "{} {scenarios:?} failed ({}): {}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Self { dir }
    }

    /// The file `name` of `scenario`.
    pub fn path(&self, scenario: &str, name: &str) -> PathBuf {
        let path = self.dir.path().join(scenario).join(name);
        assert!(path.exists(), "the generator wrote no {}", path.display());
        path
    }

    /// The identity `name` (`name.pem`, `name.key`) of `scenario`.
    pub fn identity(&self, scenario: &str, name: &str) -> Identity {
        Identity {
            cert: self.path(scenario, &format!("{name}.pem")),
            key: self.path(scenario, &format!("{name}.key")),
        }
    }

    /// Writes `contents` to `name` in `scenario`'s directory and returns its path.
    pub fn write(&self, scenario: &str, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(scenario).join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// `cat FILES... > NAME` in `scenario`'s directory: the files' bytes, glued as they are
    /// (a file without a final newline ends on the same line the next one begins).
    pub fn cat(&self, scenario: &str, name: &str, files: &[&Path]) -> PathBuf {
        let glued: Vec<u8> = files
            .iter()
            .flat_map(|file| std::fs::read(file).unwrap())
            .collect();
        self.write(scenario, name, glued)
    }
}
