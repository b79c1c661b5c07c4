//! What this build can never verify, found when material is loaded instead of at every
//! handshake.
//!
//! rustls-webpki refuses a chain through a CA it cannot use only when a peer presents one:
//! a signature algorithm or key the crypto provider does not implement (with aws-lc-rs:
//! Brainpool keys, RSA below 2048 bits; ECDSA with SHA-512 and P-521 keys verify), a URI name constraint (which it
//! does not evaluate, failing closed; X509-SVID section 4.1 allows them, and Vault and SPIRE
//! make them). A CA in the middle of a chain that is not a CA, or may not sign certificates,
//! fails the same way. Each check here names the reason in words.

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls_pki_types::{SignatureVerificationAlgorithm, UnixTime};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::objects::{oid_registry, oid2sn};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::AlgorithmIdentifier;

use crate::store::{Keystore, Truststore};

/// Why a certificate cannot serve as a CA here: [`ca_problem`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CaProblem {
    /// BasicConstraints does not say `cA=true`.
    #[error("not a CA certificate (cA=false in basicConstraints, or no basicConstraints)")]
    NotCa,
    /// A KeyUsage without `keyCertSign`.
    #[error("its KeyUsage lacks keyCertSign: it may not sign certificates")]
    NoKeyCertSign,
    /// A critical extension nobody here knows (RFC 5280 section 4.2).
    #[error("unknown critical extension {0}")]
    UnknownCriticalExtension(String),
    /// An extension whose value does not parse.
    #[error("extension {oid} cannot be parsed: {reason}")]
    MalformedExtension {
        /// The extension's OID.
        oid: String,
        /// The parser's reason.
        reason: String,
    },
    /// A URI name constraint (permitted or excluded), which webpki refuses.
    #[error(
        "it has a URI name constraint ({0}), which rustls-webpki does not evaluate: it \
         refuses every SPIFFE certificate under this CA; issue the CA without URI name \
         constraints"
    )]
    UriNameConstraint(String),
    /// A key no algorithm of the crypto provider verifies with (its algorithm and curve).
    #[error(
        "its {0} key is one this build's crypto provider (aws-lc-rs) cannot verify signatures \
         of; use a P-256, P-384, P-521, Ed25519 or RSA (2048 bits or more) CA key"
    )]
    UnsupportedKey(String),
    /// A self-signature the crypto provider cannot verify (its algorithm).
    #[error(
        "it is signed with {0}, which this build's crypto provider (aws-lc-rs) cannot \
         verify, so certificates it signs the same way are refused at every handshake; sign \
         with SHA-256, SHA-384 or SHA-512"
    )]
    UnsupportedSignature(String),
    /// No algorithm identifiers where the certificate must have them.
    #[error("malformed certificate: no algorithm identifiers")]
    NoAlgorithm,
}

/// Why `cert` cannot serve as a CA (a trust anchor, or an intermediate of a chain), or `None`.
pub fn ca_problem(cert: &X509Certificate<'_>) -> Option<CaProblem> {
    if !cert.is_ca() {
        return Some(CaProblem::NotCa);
    }
    if let Ok(Some(usage)) = cert.key_usage()
        && !usage.value.key_cert_sign()
    {
        return Some(CaProblem::NoKeyCertSign);
    }
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::UnsupportedExtension { .. } if ext.critical => {
                return Some(CaProblem::UnknownCriticalExtension(ext.oid.to_id_string()));
            }
            ParsedExtension::ParseError { error } => {
                return Some(CaProblem::MalformedExtension {
                    oid: ext.oid.to_id_string(),
                    reason: error.to_string(),
                });
            }
            ParsedExtension::NameConstraints(constraints) => {
                let uri = [
                    &constraints.permitted_subtrees,
                    &constraints.excluded_subtrees,
                ]
                .into_iter()
                .flatten()
                .flatten()
                .find_map(|subtree| match subtree.base {
                    GeneralName::URI(uri) => Some(uri),
                    _ => None,
                });
                if let Some(uri) = uri {
                    return Some(CaProblem::UriNameConstraint(uri.to_owned()));
                }
            }
            _ => {}
        }
    }
    let algorithms = crate::crypto_provider().signature_verification_algorithms;
    let (Some(key), Some(signature)) = (spki_algorithm(cert), signature_algorithm(cert)) else {
        return Some(CaProblem::NoAlgorithm);
    };
    if !algorithms
        .all
        .iter()
        .any(|alg| alg.public_key_alg_id().as_ref() == key)
    {
        return Some(CaProblem::UnsupportedKey(key_name(
            &cert.public_key().algorithm,
        )));
    }
    if !supports(&algorithms, key, signature) {
        return Some(CaProblem::UnsupportedSignature(algorithm_name(
            &cert.signature_algorithm,
        )));
    }
    None
}

/// Why the certificate at `der`, the issuer of the one before it in a keystore chain, cannot
/// have signed it, or `None`.
pub(crate) fn intermediate_problem(der: &[u8]) -> Option<String> {
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => ca_problem(&cert).map(|reason| {
            format!("as the issuer of the certificate before it in the chain: {reason}")
        }),
        Err(e) => Some(format!("malformed certificate: {e}")),
    }
}

/// What a chain is presented as, for its ExtendedKeyUsage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainUse {
    /// A server's certificate (serverAuth).
    Server,
    /// A client's certificate (clientAuth).
    Client,
}

/// Checks `chain` (leaf first) as a peer holding `truststore` would: webpki, the handshake's
/// own code, against the CAs of `trust_domain`, for `usage`.
///
/// `Ok(false)` if the truststore has no CA of that trust domain, so there is nothing to check
/// against; an error is webpki's refusal.
pub(crate) fn verify_chain(
    chain: &[rustls_pki_types::CertificateDer<'_>],
    trust_domain: &str,
    truststore: &Truststore,
    usage: ChainUse,
) -> Result<bool, webpki::Error> {
    let Some(roots) = truststore.roots_for(trust_domain) else {
        return Ok(false);
    };
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err(webpki::Error::BadDer);
    };
    let leaf = webpki::EndEntityCert::try_from(leaf)?;
    let algorithms = crate::crypto_provider().signature_verification_algorithms;
    let usage = match usage {
        ChainUse::Server => webpki::KeyUsage::server_auth(),
        ChainUse::Client => webpki::KeyUsage::client_auth(),
    };
    leaf.verify_for_usage(
        algorithms.all,
        &roots.roots,
        intermediates,
        UnixTime::now(),
        usage,
        None,
        None,
    )?;
    Ok(true)
}

/// Why a peer would refuse a chain: webpki's refusal, said in words by its `Display`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", chain_problem(.0))]
pub struct ChainProblem(webpki::Error);

/// What a peer holding `truststore` would make of `chain` presented as `usage`: `Ok(true)` it
/// chains to a CA of `trust_domain`, `Ok(false)` the truststore has no CA of that domain, or
/// why webpki refuses it. For `zt-ca inspect --chain`.
pub fn chain_verdict(
    chain: &[rustls_pki_types::CertificateDer<'_>],
    trust_domain: &str,
    truststore: &Truststore,
    usage: ChainUse,
) -> Result<bool, ChainProblem> {
    verify_chain(chain, trust_domain, truststore, usage).map_err(ChainProblem)
}

/// Refuses a keystore whose own chain peers holding `truststore` would refuse, naming `path`.
///
/// Only a chain that does not reach a CA of our trust domain is let through, with a warning:
/// our issuing CA need not be one we trust for peers (separate server and client CAs).
pub(crate) fn check_own_chain(
    keystore: &Keystore,
    truststore: &Truststore,
    path: &std::path::Path,
    usage: ChainUse,
) -> Result<(), crate::TlsError> {
    let certified = keystore.certified_key();
    let domain = keystore.spiffe_id().trust_domain();
    match verify_chain(&certified.cert, domain, truststore, usage) {
        Ok(_) => Ok(()),
        Err(webpki::Error::UnknownIssuer) => {
            tracing::warn!(
                target: "zt_reload",
                file = %path.display(),
                trust_domain = keystore.spiffe_id().trust_domain(),
                "own certificate does not chain to a trusted CA of its own trust domain: peers \
                 need another CA (or an intermediate is missing from the file)"
            );
            Ok(())
        }
        Err(err) => Err(crate::TlsError::BadCertificate {
            path: path.to_owned(),
            index: 0,
            reason: format!(
                "peers trusting this truststore would refuse this keystore: {}",
                chain_problem(&err)
            ),
        }),
    }
}

/// webpki's refusal of a chain, in words.
fn chain_problem(err: &webpki::Error) -> String {
    use webpki::Error as E;
    match err {
        E::UnknownIssuer => {
            "it does not chain to a CA of its trust domain in the truststore (an intermediate \
             missing from the file?)"
        }
        E::CertExpired { .. } => "a certificate of the chain has expired",
        E::CertNotValidYet { .. } => "a certificate of the chain is not valid yet",
        E::CaUsedAsEndEntity => "the leaf is a CA certificate",
        E::EndEntityUsedAsCa => "a certificate in the middle of the chain is not a CA",
        E::NameConstraintViolation => {
            "a CA of the chain has name constraints the leaf breaks (or URI constraints, which \
             webpki refuses)"
        }
        E::RequiredEkuNotFoundContext(_) => {
            "the leaf's ExtendedKeyUsage does not allow this use (serverAuth for a server, \
             clientAuth for a client)"
        }
        E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            "a signature in the chain uses an algorithm this build (aws-lc-rs) cannot verify"
        }
        E::InvalidSignatureForPublicKey => "a signature in the chain does not verify",
        E::MaximumPathBuildCallsExceeded
        | E::MaximumSignatureChecksExceeded
        | E::MaximumPathDepthExceeded => {
            "building a path to the CA took too many steps (many CAs sharing one subject?)"
        }
        _ => "webpki refuses it",
    }
    .to_owned()
}

/// Whether some algorithm verifies `signature` made with a `key` key.
fn supports(algorithms: &WebPkiSupportedAlgorithms, key: &[u8], signature: &[u8]) -> bool {
    algorithms
        .all
        .iter()
        .any(|alg: &&dyn SignatureVerificationAlgorithm| {
            alg.public_key_alg_id().as_ref() == key && alg.signature_alg_id().as_ref() == signature
        })
}

/// The contents of the subject public key's `AlgorithmIdentifier`, as webpki compares them.
fn spki_algorithm<'c>(cert: &'c X509Certificate<'_>) -> Option<&'c [u8]> {
    let (_, spki, _) = zt_pem::der_split(cert.public_key().raw)?;
    let (_, algorithm, _) = zt_pem::der_split(spki)?;
    Some(algorithm)
}

/// The contents of the certificate's `signatureAlgorithm`.
fn signature_algorithm<'c>(cert: &'c X509Certificate<'_>) -> Option<&'c [u8]> {
    let (_, certificate, _) = zt_pem::der_split(cert.as_raw())?;
    let (_, _, rest) = zt_pem::der_split(certificate)?; // tbsCertificate
    let (_, algorithm, _) = zt_pem::der_split(rest)?;
    Some(algorithm)
}

fn algorithm_name(algorithm: &AlgorithmIdentifier<'_>) -> String {
    oid2sn(&algorithm.algorithm, oid_registry())
        .map_or_else(|_| algorithm.algorithm.to_id_string(), str::to_owned)
}

/// A key's algorithm, with the curve for EC keys: `id-ecPublicKey (secp521r1)`.
fn key_name(algorithm: &AlgorithmIdentifier<'_>) -> String {
    let curve = algorithm
        .parameters
        .as_ref()
        .and_then(|params| params.as_oid().ok())
        .map(|oid| oid2sn(&oid, oid_registry()).map_or_else(|_| oid.to_id_string(), str::to_owned));
    match curve {
        Some(curve) => format!("{} ({curve})", algorithm_name(algorithm)),
        None => algorithm_name(algorithm),
    }
}
