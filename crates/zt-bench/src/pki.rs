//! The benchmark's certificates: a CA, the server (`bench-server`) and the load generator
//! (`bench-client`), written by the project's own CA code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use zt_identity::{SpiffeId, TrustDomain};
use zt_pki::files::{Bundle, Secrecy, leaf_cert, leaf_key};
use zt_pki::{Ca, LeafRequest};

use crate::BenchError;

/// The trust domain of the benchmark.
pub const TRUST_DOMAIN: &str = "bench.example";
/// The server's SPIFFE ID, which the load generator requires.
pub const SERVER_ID: &str = "spiffe://bench.example/server";
/// The load generator's SPIFFE ID, which the policy allows.
pub const CLIENT_ID: &str = "spiffe://bench.example/client";

/// Where the files are.
#[derive(Debug, Clone)]
pub struct BenchPki {
    dir: PathBuf,
}

impl BenchPki {
    /// Writes a fresh set into `dir`: `ca.pem`, `server.pem/.key`, `client.pem/.key`, and the
    /// policy (`policy.json`).
    pub fn create(dir: &Path) -> Result<Self, BenchError> {
        let ca = Ca::generate(
            &TrustDomain::new(TRUST_DOMAIN)?,
            Duration::from_secs(7 * 86400),
        )?;
        let mut bundle = Bundle::new();
        bundle.add(dir.join("ca.pem"), ca.cert_pem(), Secrecy::Public);
        for (name, id, dns) in [
            ("server", SERVER_ID, vec!["localhost".to_owned()]),
            ("client", CLIENT_ID, vec![]),
        ] {
            let mut request = LeafRequest::new(SpiffeId::new(id)?);
            request.dns_names = dns;
            bundle.add_leaf(&dir.join(name), ca.issue(&request)?);
        }
        bundle.write(true)?;
        let pki = Self::open(dir);
        pki.write_policy()?;
        Ok(pki)
    }

    /// The set already written in `dir`.
    pub fn open(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (both sides' truststore).
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The policy of the `mtls-authz` variant, written into the directory if it is not
    /// there yet: the load generator may echo, nobody else anything. Returns its path.
    pub fn write_policy(&self) -> Result<PathBuf, BenchError> {
        let path = self.dir.join("policy.json");
        if !path.exists() {
            let json = serde_json::json!({
                "name": "bench",
                "deny_rules": [{
                    "name": "nobody-else",
                    "source": {"principals": ["spiffe://bench.example/intruder"]},
                }],
                "allow_rules": [{
                    "name": "load-generator-echoes",
                    "source": {"principals": [CLIENT_ID]},
                    "request": {"paths": ["/bench.v1.Echo/Echo"]},
                }],
            });
            // Written aside and renamed, so a server starting meanwhile reads all or none.
            let aside = self
                .dir
                .join(format!(".policy.json.{}", std::process::id()));
            std::fs::write(&aside, json.to_string())?;
            std::fs::rename(&aside, &path)?;
        }
        Ok(path)
    }

    /// Certificate and key of `server` or `client`.
    pub fn keystore(&self, name: &str) -> (PathBuf, PathBuf) {
        let base = self.dir.join(name);
        (leaf_cert(&base), leaf_key(&base))
    }
}
