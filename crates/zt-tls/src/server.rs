//! The server's rustls configuration, and [`ServerTls`], which rebuilds it when files change.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::sign::SingleCertAndKey;
use zt_identity::{TrustDomain, TrustedDomains};

use crate::crl::Crls;
use crate::error::TlsError;
use crate::formats::Password;
use crate::store::{BundleSource, Keystore, Truststore};
use crate::usable::check_own_chain;
use crate::verify::SvidClientVerifier;

/// Resumable sessions a server configuration keeps (least recently used go first); about
/// 1 KiB each, mostly the client's certificate.
const SESSION_CACHE_SIZE: usize = 1024;

/// A server configuration that accepts only TLS 1.3, only HTTP/2 (ALPN `h2`), and only clients
/// that present a valid X509-SVID of one of `domains`, chaining to a CA of that same domain,
/// and not revoked by `crls`.
///
/// TLS 1.3 session resumption is on, with a session store of its own: rustls restores a
/// resumed client's certificate from the session without running the verifier again, so a
/// session must never outlive the material that verified it. A reload (certificate, CAs, CRLs,
/// trust domains) builds a new configuration and with it an empty store, so no session
/// verified under the old material resumes under the new one; the accept loop checks a
/// resumed peer's certificate dates itself ([`crate::accept`]). Sessions are single-use (each
/// resumption takes its entry and gets a fresh ticket), and the store is bounded.
pub fn server_config(
    keystore: &Keystore,
    truststore: &Truststore,
    crls: &Crls,
    domains: TrustedDomains,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = crate::crypto_provider();
    let build = |roots| {
        WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(&provider))
            .with_crls(crls.ders().iter().cloned())
            // CRLs cover the CAs that publish one; a partner CA without a CRL is not an error.
            .allow_unknown_revocation_status()
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
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
    // One ticket per handshake: a client resumes one connection per ticket, and each
    // resumption brings a new one.
    config.send_tls13_tickets = 1;
    Ok(Arc::new(config))
}

/// Where a server's TLS material comes from.
#[derive(Debug, Clone)]
pub struct ServerFiles {
    /// Keystore: certificate chain (PEM, leaf first), or a PKCS#12 keystore with the key.
    pub cert: PathBuf,
    /// Keystore: private key (PEM); not read when `cert` is a PKCS#12 keystore.
    pub key: PathBuf,
    /// The password of `cert` when it is a PKCS#12 keystore.
    pub keystore_password: Option<Password>,
    /// Truststore: CA bundles.
    pub bundles: Vec<BundleSource>,
    /// Certificate revocation lists.
    pub crls: Vec<PathBuf>,
    /// Trust domains clients may come from.
    pub domains: TrustedDomains,
}

impl ServerFiles {
    /// The trust domain a CA that names none is bound to: the only one clients may come
    /// from. With several, such a CA must be bound explicitly (`TRUST-DOMAIN=PATH`).
    pub fn only_domain(&self) -> Option<&TrustDomain> {
        match self.domains.domains() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// Every file the material is read from, to watch for changes.
    pub fn paths(&self) -> Vec<PathBuf> {
        [self.cert.clone(), self.key.clone()]
            .into_iter()
            .chain(self.bundles.iter().map(|b| b.path.clone()))
            .chain(self.crls.iter().cloned())
            .collect()
    }
}

/// What a [`ServerTls`] serves with right now.
#[derive(Debug)]
pub struct ServerMaterial {
    /// The rustls configuration new handshakes use.
    pub config: Arc<ServerConfig>,
    /// Our certificate and key.
    pub keystore: Keystore,
    /// The CAs we trust.
    pub truststore: Truststore,
}

/// The server's TLS material, reloadable while serving.
///
/// A reload reads every file again and builds a whole new configuration; only if all of it is
/// good does it replace the current one, atomically. New handshakes then use the new material;
/// established connections keep the session they negotiated. The CRLs are also shared with
/// every open connection ([`crate::PeerConnectInfo::peer`]), so a revocation reaches
/// live peers at their next request.
#[derive(Debug)]
pub struct ServerTls {
    files: ServerFiles,
    current: ArcSwap<ServerMaterial>,
    crls: Arc<ArcSwap<Crls>>,
}

impl ServerTls {
    /// Loads everything from `files`; any problem is an error naming the file.
    pub fn load(files: ServerFiles) -> Result<Self, TlsError> {
        let (material, crls) = Self::read(&files)?;
        Ok(Self {
            files,
            current: ArcSwap::from_pointee(material),
            crls: Arc::new(ArcSwap::from_pointee(crls)),
        })
    }

    /// Reads every file again and, if all is well, serves with the result from the next
    /// handshake on. On error nothing changes.
    pub fn reload(&self) -> Result<(), TlsError> {
        let (material, crls) = Self::read(&self.files)?;
        self.current.store(Arc::new(material));
        self.crls.store(Arc::new(crls));
        Ok(())
    }

    fn read(files: &ServerFiles) -> Result<(ServerMaterial, Crls), TlsError> {
        let keystore = Keystore::load_with_password(
            &files.cert,
            &files.key,
            files.keystore_password.as_ref(),
        )?;
        let truststore = Truststore::load_all(&files.bundles, files.only_domain())?;
        check_own_chain(
            &keystore,
            &truststore,
            &files.cert,
            crate::usable::ChainUse::Server,
        )?;
        if let Some(domain) = files
            .domains
            .domains()
            .iter()
            .find(|domain| truststore.roots_for(domain.as_str()).is_none())
        {
            return Err(TlsError::NoCaForTrustDomain {
                domain: domain.to_string(),
                paths: files.bundles.iter().map(|b| b.path.clone()).collect(),
            });
        }
        let crls = Crls::load(&files.crls, &truststore)?;
        let config = server_config(&keystore, &truststore, &crls, files.domains.clone())?;
        Ok((
            ServerMaterial {
                config,
                keystore,
                truststore,
            },
            crls,
        ))
    }

    /// The material in use now.
    pub fn current(&self) -> Arc<ServerMaterial> {
        self.current.load_full()
    }

    /// The revocation lists in use now.
    pub fn crls(&self) -> Arc<Crls> {
        self.crls.load_full()
    }

    /// Where the material comes from.
    pub fn files(&self) -> &ServerFiles {
        &self.files
    }

    pub(crate) fn crls_cell(&self) -> Arc<ArcSwap<Crls>> {
        Arc::clone(&self.crls)
    }
}
