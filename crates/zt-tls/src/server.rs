//! The server's rustls configuration.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::SingleCertAndKey;
use zt_identity::TrustedDomains;

use crate::error::TlsError;
use crate::store::{Keystore, Truststore};
use crate::verify::SvidClientVerifier;

/// A server configuration that accepts only TLS 1.3, only HTTP/2 (ALPN `h2`), and only clients
/// that present a certificate chaining to `truststore` which is a valid X509-SVID of one of
/// `domains`.
pub fn server_config(
    keystore: &Keystore,
    truststore: &Truststore,
    domains: TrustedDomains,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = crate::crypto_provider();
    let webpki =
        WebPkiClientVerifier::builder_with_provider(truststore.roots(), Arc::clone(&provider))
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
    let verifier = Arc::new(SvidClientVerifier { webpki, domains });

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(keystore.certified_key())));
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}
