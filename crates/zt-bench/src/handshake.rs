//! Handshake costs without sockets (G3, G4 in-process): what the crypto of a mutual TLS 1.3
//! handshake costs on this CPU, and what a whole handshake through the project's rustls
//! configurations costs each side.
//!
//! The crypto limit is computed from primitives measured here, with the provider and key
//! exchange the project uses (`zt_tls::crypto_provider()`): each side of a P-256 mutual TLS
//! handshake makes one key exchange, signs one CertificateVerify, and verifies two signatures
//! (the peer's chain and its CertificateVerify). A handshake cannot cost a side less than that,
//! so "efficiency" is that sum over the measured cost of a real handshake.
//!
//! [`compare_providers`] measures ring and aws-lc-rs (X25519, and the X25519MLKEM768 hybrid)
//! in the same process through the same rustls APIs: primitives, full and resumed handshakes
//! with stock verifiers, and the server's cost of one 64 B and one 64 KiB request and response
//! with AES-128-GCM and AES-256-GCM.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use rustls::client::Resumption;
use rustls::{ClientConfig, ClientConnection, HandshakeKind, ServerConfig, ServerConnection};
use rustls_pki_types::ServerName;
use zt_identity::{SpiffeId, TrustDomain, TrustedDomains};
use zt_tls::{Crls, Keystore, Truststore};

use crate::BenchError;
use crate::pki::{BenchPki, SERVER_ID, TRUST_DOMAIN};

/// Cost of each primitive, microseconds per operation (median of batches).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CryptoCosts {
    /// ECDSA P-256 / SHA-256 signature.
    pub p256_sign_us: f64,
    /// ECDSA P-256 / SHA-256 verification.
    pub p256_verify_us: f64,
    /// The key exchange the project negotiates first, server side.
    pub kx_us: f64,
    /// Which provider and key exchange: `aws-lc-rs, X25519MLKEM768`.
    pub provider: String,
}

impl CryptoCosts {
    /// The crypto of one side of a mutual TLS 1.3 handshake (key exchange, one signature, two
    /// verifications), microseconds: the floor under a handshake's cost.
    pub fn per_side_us(&self) -> f64 {
        self.kx_us + self.p256_sign_us + 2.0 * self.p256_verify_us
    }

    /// Handshakes per second one core could complete for one side, on crypto alone.
    pub fn limit_per_core(&self) -> f64 {
        1e6 / self.per_side_us()
    }
}

/// Cost of whole in-memory handshakes, microseconds per handshake, per side.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct HandshakeCosts {
    /// Full handshake, server side (our verifier, SVID checks included).
    pub full_server_us: f64,
    /// Full handshake, client side (server identity pinning included).
    pub full_client_us: f64,
    /// Resumed handshake (TLS 1.3 PSK with ECDHE), server side.
    pub resumed_server_us: f64,
    /// Resumed handshake, client side.
    pub resumed_client_us: f64,
}

/// Both measurements of one run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HandshakeReport {
    /// The primitives.
    pub crypto: CryptoCosts,
    /// The handshakes.
    pub handshakes: HandshakeCosts,
    /// ring and aws-lc-rs through the same rustls APIs (stock verifiers).
    pub providers: Vec<ProviderFigures>,
}

/// Measures the providers (primitives, handshakes, records), then `rounds` handshakes of each
/// kind through the project's own configurations.
pub fn measure(pki: &BenchPki, rounds: usize) -> Result<HandshakeReport, BenchError> {
    let providers = compare_providers(pki, rounds)?;
    let ours = providers
        .iter()
        .find(|p| p.ours)
        .ok_or_else(|| crypto_failed("the project's provider is none of those compared"))?;
    let crypto = CryptoCosts {
        p256_sign_us: ours.p256_sign_us,
        p256_verify_us: ours.p256_verify_us,
        kx_us: ours.kx_server_us,
        provider: ours.name.clone(),
    };
    let (server, client) = configs(pki)?;
    let mut no_resumption = (*client).clone();
    no_resumption.resumption = Resumption::disabled();
    let full = time_handshakes(&server, &Arc::new(no_resumption), rounds, false)?;
    let resumed = time_handshakes(&server, &client, rounds, true)?;
    Ok(HandshakeReport {
        crypto,
        handshakes: HandshakeCosts {
            full_server_us: full.0,
            full_client_us: full.1,
            resumed_server_us: resumed.0,
            resumed_client_us: resumed.1,
        },
        providers,
    })
}

/// The server and client configurations the echo server and load generator use.
fn configs(pki: &BenchPki) -> Result<(Arc<ServerConfig>, Arc<ClientConfig>), BenchError> {
    let (cert, key) = pki.keystore("server");
    let truststore = Truststore::load(pki.ca().as_path())?;
    let server = zt_tls::server_config(
        &Keystore::load(&cert, &key)?,
        &truststore,
        &Crls::load(&[], &truststore)?,
        TrustedDomains::new([TrustDomain::new(TRUST_DOMAIN)?]),
    )?;
    let (cert, key) = pki.keystore("client");
    let client = zt_tls::client_config(
        &Keystore::load(&cert, &key)?,
        &truststore,
        SpiffeId::new(SERVER_ID)?,
    )?;
    Ok((server, client))
}

/// Median microseconds per call of `op`, over batches of `rounds / 10` calls.
fn per_op(
    rounds: usize,
    mut op: impl FnMut() -> Result<(), BenchError>,
) -> Result<f64, BenchError> {
    let batch = (rounds / 10).max(1);
    let mut samples = Vec::with_capacity(10);
    for _ in 0..10 {
        let started = Instant::now();
        for _ in 0..batch {
            op()?;
        }
        samples.push(started.elapsed().as_secs_f64() * 1e6 / batch as f64);
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples[samples.len() / 2])
}

fn crypto_failed(what: &str) -> BenchError {
    BenchError::Crypto(what.to_owned())
}

/// Runs `rounds` handshakes in memory and returns the median server and client
/// microseconds per handshake (each side's time is only the time spent in its own calls).
fn time_handshakes(
    server: &Arc<ServerConfig>,
    client: &Arc<ClientConfig>,
    rounds: usize,
    resume: bool,
) -> Result<(f64, f64), BenchError> {
    // Warm-up, and the first session to resume.
    handshake(server, client)?;
    let batch = (rounds / 10).max(1);
    let (mut servers, mut clients) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        let mut total = (Duration::ZERO, Duration::ZERO);
        for _ in 0..batch {
            let (s, c, kind) = handshake(server, client)?;
            let expected = if resume {
                HandshakeKind::Resumed
            } else {
                HandshakeKind::Full
            };
            if kind != expected {
                return Err(crypto_failed(&format!(
                    "expected a {expected:?} handshake, got {kind:?}"
                )));
            }
            total.0 += s;
            total.1 += c;
        }
        servers.push(total.0.as_secs_f64() * 1e6 / batch as f64);
        clients.push(total.1.as_secs_f64() * 1e6 / batch as f64);
    }
    servers.sort_by(f64::total_cmp);
    clients.sort_by(f64::total_cmp);
    Ok((servers[servers.len() / 2], clients[clients.len() / 2]))
}

/// One handshake between fresh connections, flights passed in memory until both sides are
/// done and the server's session ticket has reached the client. Returns the time each side
/// spent, and what kind of handshake the server made.
fn handshake(
    server: &Arc<ServerConfig>,
    client: &Arc<ClientConfig>,
) -> Result<(Duration, Duration, HandshakeKind), BenchError> {
    let tls = |e: rustls::Error| crypto_failed(&e.to_string());
    let name = ServerName::try_from("localhost").map_err(|e| crypto_failed(&e.to_string()))?;
    let (mut server_time, mut client_time) = (Duration::ZERO, Duration::ZERO);
    let started = Instant::now();
    let mut c = ClientConnection::new(Arc::clone(client), name).map_err(tls)?;
    client_time += started.elapsed();
    let started = Instant::now();
    let mut s = ServerConnection::new(Arc::clone(server)).map_err(tls)?;
    server_time += started.elapsed();
    let mut wire = Vec::with_capacity(8 * 1024);
    // A handshake is three flights plus the ticket; more rounds than that is a bug.
    for _ in 0..8 {
        let started = Instant::now();
        wire.clear();
        while c.wants_write() {
            c.write_tls(&mut wire)?;
        }
        client_time += started.elapsed();
        let started = Instant::now();
        feed(&wire, |rd| s.read_tls(rd))?;
        s.process_new_packets().map_err(tls)?;
        wire.clear();
        while s.wants_write() {
            s.write_tls(&mut wire)?;
        }
        server_time += started.elapsed();
        let started = Instant::now();
        feed(&wire, |rd| c.read_tls(rd))?;
        c.process_new_packets().map_err(tls)?;
        client_time += started.elapsed();
        if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() && !s.wants_write() {
            let kind = s
                .handshake_kind()
                .ok_or_else(|| crypto_failed("no handshake"))?;
            return Ok((server_time, client_time, kind));
        }
    }
    Err(crypto_failed("the handshake did not finish"))
}

fn feed(
    mut bytes: &[u8],
    mut read: impl FnMut(&mut &[u8]) -> std::io::Result<usize>,
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        read(&mut bytes)?;
    }
    Ok(())
}

/// One crypto provider (and key exchange) measured against the others in the same process:
/// the choice of provider is made on these figures (`BENCHMARKS.md`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ProviderFigures {
    /// `ring, X25519`, `aws-lc-rs, X25519`, `aws-lc-rs, X25519MLKEM768`.
    pub name: String,
    /// This is the provider and first key exchange of `zt_tls::crypto_provider()`.
    pub ours: bool,
    /// ECDSA P-256 / SHA-256 signature through the provider's key provider, microseconds.
    pub p256_sign_us: f64,
    /// ECDSA P-256 / SHA-256 verification through the provider's webpki algorithm.
    pub p256_verify_us: f64,
    /// The key exchange, server side (the peer's share in, a secret and our share out).
    pub kx_server_us: f64,
    /// The key exchange, client side (key generation, then completion with the server's).
    pub kx_client_us: f64,
    /// Full mutual TLS 1.3 handshake in memory, server side (stock webpki verifiers).
    pub full_server_us: f64,
    /// The same, client side.
    pub full_client_us: f64,
    /// Resumed handshake, server side.
    pub resumed_server_us: f64,
    /// Resumed handshake, client side.
    pub resumed_client_us: f64,
    /// One 64 B request and response, server side: decrypt one record, encrypt one.
    pub record_64b_us: f64,
    /// One 64 KiB request and response with AES-128-GCM, server side (decrypt + encrypt).
    pub aes128_64k_us: f64,
    /// The same with AES-256-GCM.
    pub aes256_64k_us: f64,
}

/// ring with X25519, aws-lc-rs with X25519, and aws-lc-rs with X25519MLKEM768, each through
/// the same rustls APIs, `rounds` operations of each kind.
pub fn compare_providers(
    pki: &BenchPki,
    rounds: usize,
) -> Result<Vec<ProviderFigures>, BenchError> {
    use rustls::NamedGroup;
    use rustls::crypto::{aws_lc_rs, ring};
    let cases = [
        (
            "ring, X25519",
            ring::default_provider(),
            ring::kx_group::X25519,
        ),
        (
            "aws-lc-rs, X25519",
            aws_lc_rs::default_provider(),
            aws_lc_rs::kx_group::X25519,
        ),
        (
            "aws-lc-rs, X25519MLKEM768",
            aws_lc_rs::default_provider(),
            aws_lc_rs::kx_group::X25519MLKEM768,
        ),
    ];
    let project = zt_tls::crypto_provider();
    let same = |p: &rustls::crypto::CryptoProvider, group: NamedGroup| {
        format!("{:?}", p.secure_random) == format!("{:?}", project.secure_random)
            && project.kx_groups.first().map(|g| g.name()) == Some(group)
    };
    let mut figures = Vec::new();
    for (name, provider, kx) in cases {
        let ours = same(&provider, kx.name());
        let provider = rustls::crypto::CryptoProvider {
            kx_groups: vec![kx],
            ..provider
        };
        let mut row = provider_figures(name, &provider, pki, rounds)?;
        row.ours = ours;
        figures.push(row);
    }
    Ok(figures)
}

fn provider_figures(
    name: &str,
    provider: &rustls::crypto::CryptoProvider,
    pki: &BenchPki,
    rounds: usize,
) -> Result<ProviderFigures, BenchError> {
    use rustls::SignatureScheme;
    use rustls::crypto::CryptoProvider;
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    // Signing and verifying through the provider's own objects.
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|_| crypto_failed("keygen"))?;
    let public = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng)
        .map_err(|_| crypto_failed("key"))?
        .public_key()
        .as_ref()
        .to_vec();
    let key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            pkcs8.as_ref().to_vec(),
        )))
        .map_err(|e| crypto_failed(&e.to_string()))?;
    let signer = key
        .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
        .ok_or_else(|| crypto_failed("no P-256 signer"))?;
    let message = [0x20_u8; 130];
    let signature = signer
        .sign(&message)
        .map_err(|e| crypto_failed(&e.to_string()))?;
    let p256_sign_us = per_op(rounds, || {
        signer
            .sign(&message)
            .map(drop)
            .map_err(|e| crypto_failed(&e.to_string()))
    })?;
    let verifier = provider
        .signature_verification_algorithms
        .mapping
        .iter()
        .find(|(scheme, _)| *scheme == SignatureScheme::ECDSA_NISTP256_SHA256)
        .and_then(|(_, algs)| algs.first().copied())
        .ok_or_else(|| crypto_failed("no P-256 verifier"))?;
    let p256_verify_us = per_op(rounds, || {
        verifier
            .verify_signature(&public, &message, &signature)
            .map_err(|_| crypto_failed("verify"))
    })?;

    let group = *provider
        .kx_groups
        .first()
        .ok_or_else(|| crypto_failed("no key exchange"))?;
    let tls = |e: rustls::Error| crypto_failed(&e.to_string());
    let client_share = group.start().map_err(tls)?.pub_key().to_vec();
    let server_share = group
        .start_and_complete(&client_share)
        .map_err(tls)?
        .pub_key;
    let kx_server_us = per_op(rounds, || {
        group
            .start_and_complete(&client_share)
            .map(drop)
            .map_err(tls)
    })?;
    let kx_client_us = per_op(rounds, || {
        group
            .start()
            .and_then(|kx| kx.complete(&server_share))
            .map(drop)
            .map_err(tls)
    })?;

    let base = CryptoProvider {
        kx_groups: provider.kx_groups.clone(),
        cipher_suites: provider.cipher_suites.clone(),
        signature_verification_algorithms: provider.signature_verification_algorithms,
        secure_random: provider.secure_random,
        key_provider: provider.key_provider,
    };
    let (server, client) = stock_configs(pki, Arc::new(base))?;
    let mut no_resumption = (*client).clone();
    no_resumption.resumption = Resumption::disabled();
    let full = time_handshakes(&server, &Arc::new(no_resumption), rounds, false)?;
    let resumed = time_handshakes(&server, &client, rounds, true)?;

    let suite = |wanted: rustls::CipherSuite| -> Result<_, BenchError> {
        let only = provider
            .cipher_suites
            .iter()
            .find(|s| s.suite() == wanted)
            .copied()
            .ok_or_else(|| crypto_failed(&format!("{name}: no {wanted:?}")))?;
        let one = CryptoProvider {
            cipher_suites: vec![only],
            kx_groups: provider.kx_groups.clone(),
            signature_verification_algorithms: provider.signature_verification_algorithms,
            secure_random: provider.secure_random,
            key_provider: provider.key_provider,
        };
        stock_configs(pki, Arc::new(one))
    };
    let (s128, c128) = suite(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)?;
    let (s256, c256) = suite(rustls::CipherSuite::TLS13_AES_256_GCM_SHA384)?;
    let messages = (rounds / 4).max(10);
    Ok(ProviderFigures {
        name: name.to_owned(),
        ours: false,
        p256_sign_us,
        p256_verify_us,
        kx_server_us,
        kx_client_us,
        full_server_us: full.0,
        full_client_us: full.1,
        resumed_server_us: resumed.0,
        resumed_client_us: resumed.1,
        record_64b_us: echo_cost(&s128, &c128, 64, messages * 10)?,
        aes128_64k_us: echo_cost(&s128, &c128, 64 * 1024, messages)?,
        aes256_64k_us: echo_cost(&s256, &c256, 64 * 1024, messages)?,
    })
}

/// Server and client configurations on `provider` with rustls' stock webpki verifiers (the
/// same certificates as the echo server; our SPIFFE checks need the project's provider).
fn stock_configs(
    pki: &BenchPki,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<(Arc<ServerConfig>, Arc<ClientConfig>), BenchError> {
    use rustls::server::WebPkiClientVerifier;
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject as _;
    let tls = |e: rustls::Error| crypto_failed(&e.to_string());
    let pem = |e: rustls_pki_types::pem::Error| crypto_failed(&e.to_string());
    let roots = Truststore::load(pki.ca().as_path())?.all_roots();
    let (cert, key) = pki.keystore("server");
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| crypto_failed(&e.to_string()))?;
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            zt_tls::load_certs(&cert)?,
            PrivateKeyDer::from_pem_file(&key).map_err(pem)?,
        )
        .map_err(tls)?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    let (cert, key) = pki.keystore("client");
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .with_root_certificates(roots)
        .with_client_auth_cert(
            zt_tls::load_certs(&cert)?,
            PrivateKeyDer::from_pem_file(&key).map_err(pem)?,
        )
        .map_err(tls)?;
    client.alpn_protocols = vec![b"h2".to_vec()];
    Ok((Arc::new(server), Arc::new(client)))
}

/// Median server microseconds to receive one `size`-byte message and send it back, over
/// batches of `rounds / 10` messages on one in-memory connection (records of 16 KiB).
fn echo_cost(
    server: &Arc<ServerConfig>,
    client: &Arc<ClientConfig>,
    size: usize,
    rounds: usize,
) -> Result<f64, BenchError> {
    use std::io::{Read as _, Write as _};
    let tls = |e: rustls::Error| crypto_failed(&e.to_string());
    let name = ServerName::try_from("localhost").map_err(|e| crypto_failed(&e.to_string()))?;
    let mut c =
        rustls::Connection::from(ClientConnection::new(Arc::clone(client), name).map_err(tls)?);
    let mut s = rustls::Connection::from(ServerConnection::new(Arc::clone(server)).map_err(tls)?);
    c.set_buffer_limit(None);
    s.set_buffer_limit(None);
    let mut wire = Vec::with_capacity(size + 4096);
    let mut plain = vec![0_u8; size];
    // The handshake, bounded.
    for _ in 0..8 {
        wire.clear();
        while c.wants_write() {
            c.write_tls(&mut wire)?;
        }
        pump(&wire, &mut s, &mut plain)?;
        wire.clear();
        while s.wants_write() {
            s.write_tls(&mut wire)?;
        }
        pump(&wire, &mut c, &mut plain)?;
        if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() && !s.wants_write() {
            break;
        }
    }
    if c.is_handshaking() || s.is_handshaking() {
        return Err(crypto_failed("the handshake did not finish"));
    }
    let message = vec![0x5a_u8; size];
    let batch = (rounds / 10).max(1);
    let mut samples = Vec::with_capacity(10);
    for _ in 0..10 {
        let mut server_time = Duration::ZERO;
        for _ in 0..batch {
            c.writer().write_all(&message)?;
            wire.clear();
            while c.wants_write() {
                c.write_tls(&mut wire)?;
            }
            let started = Instant::now();
            let received = pump(&wire, &mut s, &mut plain)?;
            s.writer().write_all(&plain[..received.min(size)])?;
            wire.clear();
            while s.wants_write() {
                s.write_tls(&mut wire)?;
            }
            server_time += started.elapsed();
            if received != size {
                return Err(crypto_failed("a message did not arrive whole"));
            }
            pump(&wire, &mut c, &mut plain)?;
        }
        samples.push(server_time.as_secs_f64() * 1e6 / batch as f64);
    }
    samples.sort_by(f64::total_cmp);
    // Keep the reader in use so a plaintext left unread is an error, not a silent skip.
    let mut rest = [0_u8; 1];
    if let Ok(n) = s.reader().read(&mut rest)
        && n > 0
    {
        return Err(crypto_failed("plaintext left unread"));
    }
    Ok(samples[samples.len() / 2])
}

/// Feeds `bytes` to `conn`, processing records as they arrive and reading the plaintext into
/// `sink` (from its start); returns how many plaintext bytes were read.
fn pump(
    mut bytes: &[u8],
    conn: &mut rustls::Connection,
    sink: &mut [u8],
) -> Result<usize, BenchError> {
    use std::io::Read as _;
    let mut received = 0;
    // Each pass takes at least one byte, or fails.
    while !bytes.is_empty() {
        conn.read_tls(&mut bytes)?;
        conn.process_new_packets()
            .map_err(|e| crypto_failed(&e.to_string()))?;
        loop {
            let room = sink.len().saturating_sub(received);
            if room == 0 {
                break;
            }
            match conn.reader().read(&mut sink[received..]) {
                Ok(0) => break,
                Ok(n) => received += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(received)
}
