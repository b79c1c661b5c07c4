//! Handshake costs without sockets (G3, G4 in-process): what the crypto of a mutual TLS 1.3
//! handshake costs on this CPU, and what a whole handshake through the project's rustls
//! configurations costs each side.
//!
//! The crypto limit is computed from primitives measured here, with the provider rustls uses
//! (ring): each side of a P-256 + X25519 mutual TLS handshake makes one key exchange, signs
//! one CertificateVerify, and verifies two signatures (the peer's chain and its
//! CertificateVerify). A handshake cannot cost a side less than that, so "efficiency" is that
//! sum over the measured cost of a real handshake.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey};
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
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct CryptoCosts {
    /// ECDSA P-256 / SHA-256 signature.
    pub p256_sign_us: f64,
    /// ECDSA P-256 / SHA-256 verification.
    pub p256_verify_us: f64,
    /// X25519: ephemeral key generation, public key, and agreement.
    pub x25519_us: f64,
}

impl CryptoCosts {
    /// The crypto of one side of a mutual TLS 1.3 handshake (key exchange, one signature, two
    /// verifications), microseconds: the floor under a handshake's cost.
    pub fn per_side_us(&self) -> f64 {
        self.x25519_us + self.p256_sign_us + 2.0 * self.p256_verify_us
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
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct HandshakeReport {
    /// The primitives.
    pub crypto: CryptoCosts,
    /// The handshakes.
    pub handshakes: HandshakeCosts,
}

/// Measures the primitives and then `rounds` handshakes of each kind.
pub fn measure(pki: &BenchPki, rounds: usize) -> Result<HandshakeReport, BenchError> {
    let crypto = crypto_costs(rounds)?;
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

fn crypto_costs(rounds: usize) -> Result<CryptoCosts, BenchError> {
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|_| crypto_failed("keygen"))?;
    let key =
        EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).map_err(|_| crypto_failed("key"))?;
    // A CertificateVerify signs a 64-byte pad, a context string and a 32-byte hash.
    let message = [0x20_u8; 130];
    let signature = key
        .sign(&rng, &message)
        .map_err(|_| crypto_failed("sign"))?;
    let public = signature::UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        key.public_key().as_ref().to_vec(),
    );
    let p256_sign_us = per_op(rounds, || {
        key.sign(&rng, &message)
            .map(drop)
            .map_err(|_| crypto_failed("sign"))
    })?;
    let p256_verify_us = per_op(rounds, || {
        public
            .verify(&message, signature.as_ref())
            .map_err(|_| crypto_failed("verify"))
    })?;
    let peer = EphemeralPrivateKey::generate(&agreement::X25519, &rng)
        .and_then(|k| k.compute_public_key())
        .map_err(|_| crypto_failed("x25519"))?;
    let x25519_us = per_op(rounds, || {
        let mine = EphemeralPrivateKey::generate(&agreement::X25519, &rng)
            .map_err(|_| crypto_failed("x25519"))?;
        let _share = mine
            .compute_public_key()
            .map_err(|_| crypto_failed("x25519"))?;
        agreement::agree_ephemeral(
            mine,
            &UnparsedPublicKey::new(&agreement::X25519, peer.as_ref()),
            |secret| secret.len(),
        )
        .map(drop)
        .map_err(|_| crypto_failed("x25519"))
    })?;
    Ok(CryptoCosts {
        p256_sign_us,
        p256_verify_us,
        x25519_us,
    })
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
