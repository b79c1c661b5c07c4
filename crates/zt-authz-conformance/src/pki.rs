//! Certificates made at run time: the CA and the C++ server's SVID by the project's own CA
//! code (`zt-pki`), the callers' certificates by `openssl req`, which can write any subject
//! (several RDNs, multi-valued RDNs, escapes, UTF-8) and any SANs. Nothing is committed: all
//! of it lives in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use zt_identity::{PeerIdentity, SpiffeId, TrustDomain, TrustedDomains};
use zt_pki::{Ca, LeafRequest};

/// The trust domain of the CA and of the C++ server.
pub(crate) const TRUST_DOMAIN: &str = "zt.example";
/// The C++ server's SPIFFE ID, which the client pins.
pub(crate) const SERVER_ID: &str = "spiffe://zt.example/ns/conformance/sa/grpc-cpp";
/// Trust domains the callers come from; our side trusts all of them, as gRPC (which checks
/// only the chain) does.
pub(crate) const CALLER_DOMAINS: &[&str] = &["zt.example", "zt.example.evil", "other.org"];

const OPENSSL_CONFIG: &str = "[req]\ndistinguished_name = dn\nprompt = no\nutf8 = yes\n\
                              string_mask = utf8only\n[dn]\n";

/// The CA and server files.
#[derive(Debug)]
pub(crate) struct Pki {
    dir: PathBuf,
    pub(crate) ca_cert: PathBuf,
    ca_key: PathBuf,
    pub(crate) server_cert: PathBuf,
    pub(crate) server_key: PathBuf,
    config: PathBuf,
    domains: TrustedDomains,
}

/// What a caller's certificate says, as the generator asked for it.
#[derive(Debug, Clone)]
pub(crate) struct CertSpec {
    /// RDNs, most significant first (as `openssl -subj` takes them); each is one or more
    /// `(attribute, value)` pairs (several: a multi-valued RDN).
    pub(crate) rdns: Vec<Vec<(String, String)>>,
    pub(crate) uris: Vec<String>,
    pub(crate) dns: Vec<String>,
}

/// One caller: its certificate files, and how each side sees it.
#[derive(Debug)]
pub(crate) struct Identity {
    pub(crate) label: String,
    pub(crate) spec: CertSpec,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    /// Our view, built from the certificate DER the way the ledger builds it; an error when
    /// the ledger would answer `UNAUTHENTICATED` (not an X509-SVID of a trusted domain).
    pub(crate) ours: Result<PeerIdentity, String>,
    /// gRPC's view (auth context), filled in by a probe through the C++ server.
    pub(crate) grpc: GrpcPeer,
}

/// The auth context properties gRPC's TLS stack produced for a caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GrpcPeer {
    pub(crate) subject: String,
    pub(crate) uris: Vec<String>,
    pub(crate) dns: Vec<String>,
}

impl Pki {
    /// A CA and the server's SVID, in `dir`.
    pub(crate) fn new(dir: &Path) -> anyhow::Result<Self> {
        let domain = TrustDomain::new(TRUST_DOMAIN)?;
        let ca = Ca::generate(&domain, Duration::from_secs(48 * 3600))?;
        let mut request = LeafRequest::new(SpiffeId::new(SERVER_ID)?);
        request.dns_names = vec!["localhost".into()];
        request.lifetime = Duration::from_secs(12 * 3600);
        let server = ca.issue(&request)?;
        let write = |name: &str, contents: &str| -> anyhow::Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, contents).with_context(|| format!("writing {path:?}"))?;
            Ok(path)
        };
        let domains = CALLER_DOMAINS
            .iter()
            .map(|d| TrustDomain::new(d))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            dir: dir.to_owned(),
            ca_cert: write("ca.pem", ca.cert_pem())?,
            ca_key: write("ca.key", &ca.key_pem())?,
            server_cert: write("server.pem", &server.cert_pem)?,
            server_key: write("server.key", &server.key_pem)?,
            config: write("openssl.cnf", OPENSSL_CONFIG)?,
            domains: TrustedDomains::new(domains),
        })
    }

    /// Issues a caller certificate with `openssl req` and derives our view of it.
    pub(crate) fn issue(&self, label: &str, spec: CertSpec) -> anyhow::Result<Identity> {
        let cert = self.dir.join(format!("{label}.pem"));
        let key = self.dir.join(format!("{label}.key"));
        let der_path = self.dir.join(format!("{label}.der"));
        let mut cmd = Command::new("openssl");
        cmd.args(["req", "-x509", "-config"])
            .arg(&self.config)
            .args([
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .arg("-CA")
            .arg(&self.ca_cert)
            .arg("-CAkey")
            .arg(&self.ca_key)
            .args(["-days", "1", "-multivalue-rdn", "-utf8", "-subj"])
            .arg(subject_arg(&spec.rdns))
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .args(["-addext", "keyUsage=critical,digitalSignature"])
            .args(["-addext", "extendedKeyUsage=serverAuth,clientAuth"]);
        let sans: Vec<String> = spec
            .uris
            .iter()
            .map(|u| format!("URI:{u}"))
            .chain(spec.dns.iter().map(|d| format!("DNS:{d}")))
            .collect();
        if !sans.is_empty() {
            cmd.arg("-addext")
                .arg(format!("subjectAltName={}", sans.join(",")));
        }
        run(&mut cmd).with_context(|| format!("issuing {label}"))?;
        run(Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .arg("-out")
            .arg(&der_path))?;
        let der = std::fs::read(&der_path)?;
        let ours = self.domains.identify(Some(&der)).map_err(|e| e.to_string());
        Ok(Identity {
            label: label.to_owned(),
            spec,
            cert,
            key,
            ours,
            grpc: GrpcPeer::default(),
        })
    }
}

/// The `-subj` argument: `/A=v/B=w+C=x`, with `\`, `/` and `+` escaped.
fn subject_arg(rdns: &[Vec<(String, String)>]) -> String {
    if rdns.is_empty() {
        return "/".into();
    }
    let mut out = String::new();
    for rdn in rdns {
        out.push('/');
        for (i, (attr, value)) in rdn.iter().enumerate() {
            if i > 0 {
                out.push('+');
            }
            out.push_str(attr);
            out.push('=');
            for c in value.chars() {
                if matches!(c, '\\' | '/' | '+') {
                    out.push('\\');
                }
                out.push(c);
            }
        }
    }
    out
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let output = cmd.output().context("running openssl")?;
    if !output.status.success() {
        bail!(
            "openssl failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
