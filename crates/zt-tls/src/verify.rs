//! The two certificate verifiers that make TLS speak SPIFFE.
//!
//! rustls-webpki validates chains, validity, EKU and signatures, but ignores URI SANs. Each
//! verifier here reads the claimed SPIFFE ID first (X509-SVID rules, trust domain), then runs
//! webpki against the CAs *of that trust domain only*, so a peer that chains to a
//! trusted CA is still refused *during the handshake* unless it is a valid SVID of a trusted
//! trust domain (server side) or exactly the expected server (client side).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::server::ParsedCertificate;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use zt_identity::{SpiffeId, TrustDomain, TrustedDomains};

/// The server proved a valid identity, but not the one the client was told to expect: a
/// spoofed or misrouted server.
#[derive(Debug, thiserror::Error)]
#[error("server presented {presented}, expected {expected}")]
pub struct UnexpectedServer {
    /// The SPIFFE ID the client requires.
    pub expected: SpiffeId,
    /// The SPIFFE ID the server's certificate carries.
    pub presented: SpiffeId,
}

fn refuse(err: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(err))))
}

/// Server side: a client certificate is required, must be a valid X509-SVID from one of the
/// trusted domains, and must chain (webpki) to a CA *of the trust domain it claims*.
#[derive(Debug)]
pub(crate) struct SvidClientVerifier {
    /// One webpki verifier per trusted domain, over that domain's CAs only.
    pub(crate) by_domain: Vec<(TrustDomain, Arc<dyn ClientCertVerifier>)>,
    /// A verifier over every CA: for what does not depend on the peer (CA hints, signature
    /// schemes, handshake signatures).
    pub(crate) any: Arc<dyn ClientCertVerifier>,
    pub(crate) domains: TrustedDomains,
}

impl ClientCertVerifier for SvidClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.any.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        // The claimed identity picks the CAs allowed to vouch for it; then webpki decides
        // whether one of them really did.
        let peer = self.domains.identify(Some(end_entity)).map_err(refuse)?;
        let claimed = peer.spiffe_id().trust_domain();
        let (_, webpki) = self
            .by_domain
            .iter()
            .find(|(domain, _)| domain.as_str() == claimed)
            .ok_or(Error::InvalidCertificate(CertificateError::UnknownIssuer))?;
        webpki.verify_client_cert(end_entity, intermediates, now)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.any.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.any.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.any.supported_verify_schemes()
    }
}

/// Client side: the server's SPIFFE ID must be exactly `expected` and its chain must verify
/// against the CAs of `expected`'s trust domain. The host name dialled plays no part.
#[derive(Debug)]
pub(crate) struct SpiffeServerVerifier {
    roots: Arc<RootCertStore>,
    expected: SpiffeId,
    domain: TrustedDomains,
    provider: Arc<CryptoProvider>,
}

impl SpiffeServerVerifier {
    pub(crate) fn new(
        roots: Arc<RootCertStore>,
        expected: SpiffeId,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        // Built from a valid SpiffeId, so the trust domain is valid too.
        let domain = TrustDomain::new(expected.trust_domain())
            .map(|td| TrustedDomains::new([td]))
            .unwrap_or_else(|_| TrustedDomains::new([]));
        Self {
            roots,
            expected,
            domain,
            provider,
        }
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let peer = self.domain.identify(Some(end_entity)).map_err(refuse)?;
        if peer.spiffe_id() != &self.expected {
            return Err(refuse(UnexpectedServer {
                expected: self.expected.clone(),
                presented: peer.spiffe_id().clone(),
            }));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
