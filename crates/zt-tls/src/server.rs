//! The server's rustls configuration.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::sign::SingleCertAndKey;
use zt_identity::TrustedDomains;

use crate::error::TlsError;
use crate::store::{Keystore, Truststore};
use crate::verify::SvidClientVerifier;

/// A server configuration that accepts only TLS 1.3, only HTTP/2 (ALPN `h2`), and only clients
/// that present a valid X509-SVID of one of `domains`, chaining to a CA of that same domain.
///
/// Session resumption is off: a resumed TLS session restores the client's certificate without
/// running the verifier again, so an expired (or, later, revoked) certificate would keep
/// working for as long as the client keeps resuming.
pub fn server_config(
    keystore: &Keystore,
    truststore: &Truststore,
    domains: TrustedDomains,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = crate::crypto_provider();
    let build = |roots| {
        WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(&provider))
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))
    };
    let mut by_domain = Vec::new();
    for domain in domains.domains() {
        let roots = truststore.roots_for(domain.as_str()).ok_or_else(|| {
            TlsError::Config(format!(
                "the truststore has no CA for trust domain {domain}"
            ))
        })?;
        by_domain.push((domain.clone(), build(roots)?));
    }
    let any = build(truststore.all_roots())?;
    let verifier = Arc::new(SvidClientVerifier {
        by_domain,
        any,
        domains,
    });

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(keystore.certified_key())));
    config.alpn_protocols = vec![b"h2".to_vec()];
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}
