//! The client side: an impostor server posing as the target, and the legitimate client
//! configuration pointed at it (zt-client with the legitimate keystore, the bundle and the
//! server's SPIFFE ID, as the target's own clients built on this project would call it).
//!
//! The impostor listens on loopback and presents, in order of preference:
//! - with the issuing CA: a genuine certificate for another workload
//!   (`spiffe://TD/ns/zt-attack/sa/impostor`, DNS names of the target's host and `localhost`):
//!   only the pinning of the server's SPIFFE ID can refuse it;
//! - a pre-issued `spoofed-server.pem` (the lab's: a compromised `web` workload's);
//! - otherwise a certificate claiming the server's own SPIFFE ID from a rogue CA copying the
//!   real CA's name: this proves the chain check only, and the verdict says so.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use zt_identity::SpiffeId;
use zt_pki::{IssuedLeaf, LeafRequest};

use crate::Error;
use crate::catalogue::{Armed, Verdict, certified, read_issued};

/// What the impostor saw of the client.
#[derive(Debug)]
enum Seen {
    /// The handshake failed: the client sent this alert, or hung up (`None`).
    Refused(Option<String>),
    /// The handshake completed and the client sent this many bytes (its HTTP/2 preface and
    /// its request): it trusted the impostor.
    Talked(usize),
    /// The client never connected.
    Nothing,
}

/// Runs the `spoofed-server` case.
pub(crate) async fn spoofed_server(a: &Armed) -> Verdict {
    match attempt(a).await {
        Ok(verdict) => verdict,
        Err(e) => Verdict::Inconclusive(format!("could not prepare the impostor: {e}")),
    }
}

async fn attempt(a: &Armed) -> Result<Verdict, Error> {
    let (leaf, posing, proves) = impostor_material(a)?;
    let identity = certified(&leaf)?;
    let mut config = rustls::ServerConfig::builder_with_provider(zt_tls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(identity)));
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::Target(format!("the impostor cannot listen on loopback: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Target(format!("the impostor's address: {e}")))?;
    let wait = a.target.wait;
    let impostor = tokio::spawn(async move {
        let Ok(Ok((tcp, _))) = tokio::time::timeout(wait, listener.accept()).await else {
            return Seen::Nothing;
        };
        match acceptor.accept(tcp).await {
            Err(e) => Seen::Refused(
                e.get_ref()
                    .and_then(|e| e.downcast_ref::<rustls::Error>())
                    .and_then(|e| match e {
                        rustls::Error::AlertReceived(alert) => Some(zt_tls::alert_name(*alert)),
                        _ => None,
                    }),
            ),
            Ok(mut tls) => {
                let mut buf = vec![0u8; 4096];
                let mut total = 0;
                while let Ok(Ok(n)) = tokio::time::timeout(wait, tls.read(&mut buf)).await {
                    if n == 0 {
                        break;
                    }
                    total += n;
                }
                Seen::Talked(total)
            }
        }
    });

    // The victim: the legitimate client, one attempt, against the impostor.
    let server: http::Uri = format!("https://127.0.0.1:{}", addr.port())
        .parse()
        .map_err(|e| Error::Target(format!("the impostor's address: {e}")))?;
    let mut victim = zt_client::ClientConfig::new(
        server,
        a.target.server_id.clone(),
        &a.target.cert,
        &a.target.key,
        vec![a.target.bundle.clone()],
    );
    victim.attempts = 1;
    victim.connect_timeout = wait;
    victim.request_timeout = wait;
    let client = zt_client::Client::connect(&victim)?;
    let answer =
        match crate::grpc::call_status(client.channel(), &a.target.control, &[], wait).await {
            Ok(len) => format!("{} answered OK ({len} bytes)", a.target.control),
            Err(status) => client.error(status).to_string(),
        };
    let seen = tokio::time::timeout(wait * 2, impostor)
        .await
        .map_err(|_| Error::Target("the impostor did not finish".into()))??;
    Ok(match seen {
        Seen::Refused(alert) => Verdict::Blocked(format!(
            "the client refused an impostor presenting {posing} during the handshake{} ({proves}); \
             the client reported: {answer}",
            alert.map_or_else(String::new, |alert| format!(" with alert {alert}"))
        )),
        Seen::Talked(0) => Verdict::Blocked(format!(
            "the client completed a handshake with an impostor presenting {posing} but sent \
             nothing ({proves}); it reported: {answer}"
        )),
        Seen::Talked(n) => Verdict::NotBlocked(format!(
            "the client trusted an impostor presenting {posing}: it sent {n} bytes of HTTP/2 \
             after the handshake ({answer})"
        )),
        Seen::Nothing => {
            Verdict::Inconclusive(format!("the client never reached the impostor: {answer}"))
        }
    })
}

/// The impostor's keystore, what it claims, and what refusing it proves.
fn impostor_material(a: &Armed) -> Result<(IssuedLeaf, String, &'static str), Error> {
    let pinning = "its SPIFFE ID is pinned";
    if let Some(ca) = &a.issuer {
        let id = SpiffeId::new(&format!(
            "spiffe://{}/ns/zt-attack/sa/impostor",
            a.target.server_id.trust_domain()
        ))?;
        let mut request = LeafRequest::new(id.clone());
        request.dns_names = vec![a.host.clone(), "localhost".into()];
        request.dns_names.dedup();
        request.lifetime = Duration::from_secs(3600);
        let leaf = match ca.issue(&request) {
            Ok(leaf) => leaf,
            // An IP address is no DNS name: then localhost alone.
            Err(_) => {
                request.dns_names = vec!["localhost".into()];
                ca.issue(&request)?
            }
        };
        return Ok((leaf, format!("a genuine certificate for {id}"), pinning));
    }
    if let Some(dir) = &a.target.issued
        && let Some(leaf) = read_issued(dir, "spoofed-server")?
    {
        let posing = format!(
            "the pre-issued certificate {}",
            dir.join("spoofed-server.pem").display()
        );
        return Ok((leaf, posing, pinning));
    }
    let leaf = crate::forge::rogue_ca(&a.target.server_id, a.real_ca.as_ref())?;
    Ok((
        leaf,
        format!(
            "{} from a rogue CA copying the real CA's name",
            a.target.server_id
        ),
        "without the issuing CA this proves the chain check only, not that the server's \
         SPIFFE ID is pinned",
    ))
}
