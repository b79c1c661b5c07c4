//! The intruders. Each attack from the source article, tried for real against the ledger over
//! the network, with a verdict that counts as `Blocked` only for the right reason.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tonic::transport::Channel;
use tonic::{Code, Status};
use zt_identity::SpiffeId;
use zt_proto::ledger::v1 as pb;
use zt_proto::ledger::v1::ledger_client::LedgerClient;
use zt_tls::MtlsConnector;
use zt_tls::Probe;

use crate::Error;

/// One intrusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Attack {
    /// Call the ledger with no client certificate (an unauthenticated caller).
    NoCert,
    /// Present a certificate from a rogue CA that copies our CA's name (a spoofed client).
    RogueCa,
    /// Present a partner trust domain's stolen certificate (its CA is trusted, its domain not).
    StolenCert,
    /// Present our CA's certificate after it expired.
    ExpiredCert,
    /// Speak plaintext HTTP/2 to the TLS port.
    Plaintext,
    /// Send a password and a bearer token instead of a certificate, then alongside a genuine
    /// low-privilege certificate (credential stuffing, token replay).
    BearerToken,
    /// As the authenticated auditor, try to move money (a malicious API request).
    MaliciousRequest,
    /// As payments, call an impostor posing as the ledger with a genuine certificate of another
    /// workload (spoofing / on-path): payments must refuse it.
    SpoofedServer,
    /// Rapid trial and error: thousands of handshakes, each with a freshly forged certificate
    /// (self-signed or rogue-CA ones claiming payments' SPIFFE ID, random ones), while
    /// payments' own calls must keep working (see [`crate::brute`]).
    BruteForce,
}

/// Where to attack and with what.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server to attack (for `spoofed-server`: the impostor).
    pub server: Uri,
    /// The identity a legitimate client requires of the ledger.
    pub server_id: SpiffeId,
    /// Directory with the attackers' certificates (`rogue`, `stolen`, `expired`).
    pub material: PathBuf,
    /// A genuine identity's certificate, for attacks made with one (`malicious-request`,
    /// `spoofed-server`).
    pub cert: Option<PathBuf>,
    /// Its key.
    pub key: Option<PathBuf>,
    /// The truststore of that identity (for `brute-force`: the real CA, whose name the rogue
    /// CA copies).
    pub ca: PathBuf,
    /// How hard `brute-force` tries.
    pub brute_force: crate::brute::Options,
}

/// The outcome of one attack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Refused by the defence, and how.
    Blocked(String),
    /// The attack worked.
    Breach(String),
    /// Nothing can be concluded (for example the target was not reachable at all).
    Inconclusive(String),
}

/// Runs one attack and judges it.
pub async fn run(attack: Attack, target: &Target) -> Verdict {
    match attack {
        Attack::NoCert => probe(target, None, None).await,
        Attack::RogueCa => probe(target, Some(&target.material.join("rogue")), None).await,
        Attack::StolenCert => probe(target, Some(&target.material.join("stolen")), None).await,
        Attack::ExpiredCert => probe(target, Some(&target.material.join("expired")), None).await,
        Attack::BearerToken => bearer_token(target).await,
        Attack::Plaintext => plaintext(target).await,
        Attack::MaliciousRequest => malicious_request(target).await,
        Attack::SpoofedServer => spoofed_server(target).await,
        Attack::BruteForce => crate::brute::run(target, &target.brute_force).await,
    }
}

/// Connects over TLS presenting `identity` (`<path>.pem`/`.key`) or nothing, trusting any
/// server (attackers do not verify), and waits for the ledger's verdict before sending a byte:
/// a TLS alert means refused. Only if the ledger accepts the connection is a `GetBalance` call
/// attempted (with an optional `authorization` header), and then only its answer decides.
async fn probe(target: &Target, identity: Option<&Path>, authorization: Option<&str>) -> Verdict {
    let config = match attacker_config(identity) {
        Ok(config) => config,
        Err(e) => return Verdict::Inconclusive(format!("could not prepare the attack: {e}")),
    };
    let host = target.server.host().unwrap_or_default();
    let port = target.server.port_u16().unwrap_or(443);
    match zt_tls::probe(host, port, Arc::clone(&config), Duration::from_secs(3)).await {
        Err(e) => return Verdict::Inconclusive(format!("target unreachable: {host}:{port}: {e}")),
        Ok(Probe::Refused(alert)) => {
            return Verdict::Blocked(format!(
                "refused during the TLS handshake with alert {}",
                zt_tls::alert_name(alert)
            ));
        }
        Ok(Probe::Closed) => {
            // No alert, no reason: could be the defence, could be anything in between.
            return Verdict::Inconclusive(
                "the connection closed during the handshake without a TLS alert".into(),
            );
        }
        Ok(Probe::Accepted) => {}
    }
    let channel = zt_tls::channel(
        target.server.clone(),
        MtlsConnector::new(config, Duration::from_secs(5)),
        Duration::from_secs(10),
    );
    let mut request = tonic::Request::new(pb::GetBalanceRequest {
        account_id: "alice".into(),
    });
    if let Some(token) = authorization {
        let metadata = request.metadata_mut();
        if let Ok(value) = token.parse() {
            metadata.insert("authorization", value);
        }
        if let Ok(value) = "admin:hunter2".parse() {
            metadata.insert("x-password", value);
        }
    }
    match LedgerClient::new(channel).get_balance(request).await {
        Ok(r) => Verdict::Breach(format!(
            "the ledger answered: alice has {} cents",
            r.into_inner().balance_cents
        )),
        Err(status) => match status.code() {
            Code::Unauthenticated | Code::PermissionDenied => Verdict::Blocked(format!(
                "refused by the authorization layer: {}",
                zt_tls::grpc_code_name(status.code())
            )),
            _ => Verdict::Inconclusive(format!(
                "failed, but not visibly by the defence: {}",
                chain(&status)
            )),
        },
    }
}

/// A stolen password or bearer token gives nothing: without a certificate the handshake fails
/// before any metadata is read, and with a genuine but low-privilege workload's certificate
/// (a compromised `web` service replaying someone's token) the policy looks only at the
/// verified identity.
async fn bearer_token(target: &Target) -> Verdict {
    const TOKEN: &str = "Bearer eyJhbGciOiJIUzI1NiJ9.c3RvbGVu.dG9rZW4";
    let anonymous = match probe(target, None, Some(TOKEN)).await {
        Verdict::Blocked(how) => how,
        other => return other,
    };
    match probe(target, Some(&target.material.join("insider")), Some(TOKEN)).await {
        Verdict::Blocked(how) => Verdict::Blocked(format!(
            "token without a certificate: {anonymous}; token with a low-privilege workload's \
             certificate: {how}"
        )),
        other => other,
    }
}

/// Sends the HTTP/2 connection preface in clear text. A TLS-only port cannot parse it as a
/// ClientHello and must answer with a TLS alert record (content type 21), never with HTTP/2.
async fn plaintext(target: &Target) -> Verdict {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let host = target.server.host().unwrap_or_default();
    let port = target.server.port_u16().unwrap_or(443);
    let exchange = async {
        let mut tcp = tokio::net::TcpStream::connect((host, port)).await?;
        tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await?;
        let mut reply = Vec::new();
        tcp.read_to_end(&mut reply).await?;
        Ok::<_, std::io::Error>(reply)
    };
    match tokio::time::timeout(Duration::from_secs(5), exchange).await {
        Err(_) => Verdict::Inconclusive("no answer within 5 s".into()),
        Ok(Err(e)) => Verdict::Inconclusive(format!("target unreachable: {host}:{port}: {e}")),
        Ok(Ok(reply)) => match reply.as_slice() {
            [0x15, 0x03, ..] => Verdict::Blocked(
                "no plaintext listener: the TLS port answered the HTTP/2 preface with a TLS \
                 alert and closed"
                    .into(),
            ),
            // A SETTINGS frame header (type 4, stream 0) would mean HTTP/2 is being spoken.
            [_, _, _, 0x04, ..] => {
                Verdict::Breach("the ledger answered in plaintext HTTP/2".into())
            }
            other => Verdict::Inconclusive(format!(
                "unexpected answer: {:02x?}",
                &other[..other.len().min(16)]
            )),
        },
    }
}

async fn malicious_request(target: &Target) -> Verdict {
    let channel = match genuine_channel(target) {
        Ok(channel) => channel,
        Err(e) => return Verdict::Inconclusive(format!("could not load the identity: {e}")),
    };
    let attempt = pb::TransferRequest {
        idempotency_key: "malicious-1".into(),
        from_account: "bob".into(),
        to_account: "carol".into(),
        amount_cents: 1_000_00,
        memo: "auditor moving money".into(),
    };
    match LedgerClient::new(channel).transfer(attempt).await {
        Ok(_) => Verdict::Breach("the read-only auditor moved money".into()),
        Err(status) if status.code() == Code::PermissionDenied => Verdict::Blocked(format!(
            "authenticated, but refused per method before any handler: {}",
            status.message()
        )),
        Err(status) => Verdict::Inconclusive(format!("unexpected answer: {}", chain(&status))),
    }
}

async fn spoofed_server(target: &Target) -> Verdict {
    let (Some(cert), Some(key)) = (&target.cert, &target.key) else {
        return Verdict::Inconclusive("needs the victim's identity (--cert, --key)".into());
    };
    let config = zt_client::ClientConfig {
        server_name: "the ledger".to_owned(),
        attempts: 1,
        ..zt_client::ClientConfig::new(
            target.server.clone(),
            target.server_id.clone(),
            cert,
            key,
            vec![zt_tls::BundleSource {
                domain: None,
                path: target.ca.clone(),
                password: None,
            }],
        )
    };
    let client = match zt_client::Client::connect(&config) {
        Ok(client) => client,
        Err(e) => return Verdict::Inconclusive(format!("could not load the identity: {e}")),
    };
    let request = pb::GetBalanceRequest {
        account_id: "alice".into(),
    };
    let balance = client
        .retry(|channel| {
            let request = request.clone();
            async move { LedgerClient::new(channel).get_balance(request).await }
        })
        .await;
    match balance {
        Ok(_) => Verdict::Breach("payments talked to the impostor".into()),
        Err(zt_client::Error::ServerRefused { message, .. }) => Verdict::Blocked(format!(
            "payments refused the impostor during the handshake: {message}"
        )),
        Err(e) => Verdict::Inconclusive(format!("unexpected failure: {e}")),
    }
}

/// A gRPC status with its sources, in one line.
pub(crate) fn chain(status: &Status) -> String {
    let mut text = format!(
        "{}: {}",
        zt_tls::grpc_code_name(status.code()),
        status.message()
    );
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}

/// A channel to the target as the genuine identity `target.cert`/`key`, verifying the server.
pub(crate) fn genuine_channel(target: &Target) -> Result<Channel, Error> {
    let (Some(cert), Some(key)) = (&target.cert, &target.key) else {
        return Err(Error::File {
            path: PathBuf::from("--cert/--key"),
            reason: "needs a genuine identity".into(),
        });
    };
    let keystore = zt_tls::Keystore::load(cert, key)?;
    let truststore = zt_tls::Truststore::load(&target.ca)?;
    let tls = zt_tls::client_config(&keystore, &truststore, target.server_id.clone())?;
    Ok(zt_tls::channel(
        target.server.clone(),
        MtlsConnector::new(tls, Duration::from_secs(5)),
        Duration::from_secs(10),
    ))
}

fn attacker_config(identity: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, Error> {
    let provider = zt_tls::crypto_provider();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustAnything(provider)));
    let mut config = match identity {
        Some(base) => {
            let (cert, key) = (base.with_extension("pem"), base.with_extension("key"));
            let bad = |path: &Path, e: rustls_pki_types::pem::Error| Error::File {
                path: path.to_owned(),
                reason: e.to_string(),
            };
            let chain = CertificateDer::pem_file_iter(&cert)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|e| bad(&cert, e))?;
            let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| bad(&key, e))?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// An attacker does not care who the server is.
#[derive(Debug)]
pub(crate) struct TrustAnything(pub(crate) Arc<CryptoProvider>);

impl ServerCertVerifier for TrustAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
