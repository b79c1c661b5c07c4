//! The lab's PKI, laid out for containers.
//!
//! ```text
//! ca/        ca.pem ca.key                      the CA; only the pki container mounts it
//! ledger/    ledger.pem ledger.key ca-bundle.pem trusts zt.example and partner.example CAs
//!            ca.pem                        ours only: the issuer of the database's certificate
//! payments/  payments.pem payments.key ca.pem
//! auditor/   auditor.pem auditor.key ca.pem
//! postgres/  postgres.pem postgres.key ca.pem   the database server (DNS `postgres`); it
//!                                              trusts our CA only for its clients
//! intruder/  what only the lab's CAs can make, for `zt-lab attack --issued /pki/intruder`
//!            (everything else the catalogue mints itself at run time):
//!            expired.pem/.key              ours, expired an hour ago
//!            not-yet-valid.pem/.key        ours, valid from an hour on
//!            wrong-trust-domain.pem/.key   a partner.example workload's (stolen)
//!            two-uri-sans.pem/.key         ours, with a second URI SAN
//!            ca-as-leaf.pem/.key           ours, a CA certificate
//!            server-auth-only.pem/.key     ours, EKU serverAuth only
//!            spoofed-server.pem/.key       a compromised `web` workload's genuine certificate
//!                                          (DNS `ledger`), to pose as the ledger
//! ```
//!
//! The ledger trusts the partner CA on purpose (a federation), so the stolen partner
//! certificate passes chain validation: only the trust-domain check stops it. The defective
//! ones claim payments' SPIFFE ID, the catalogue's legitimate client in the lab.

use std::path::Path;
use std::time::Duration;

use zt_identity::{SpiffeId, TrustDomain};
use zt_pki::files::{Bundle, Secrecy};
use zt_pki::{Ca, IssuedLeaf, LeafRequest};

use crate::Error;
use crate::forge::Defect;

/// The lab's trust domain.
pub const TRUST_DOMAIN: &str = "zt.example";
/// A federated partner's trust domain: its CA is trusted, its workloads are not.
pub const PARTNER_DOMAIN: &str = "partner.example";

/// Writes the whole lab into `out` (see the module docs), replacing what is there.
///
/// # Errors
/// [`Error::Pki`] when a file cannot be written, [`Error::Mint`] or [`Error::Pki`] when a
/// certificate cannot be made.
pub fn write_lab(out: &Path, lifetime: Duration) -> Result<(), Error> {
    let domain = TrustDomain::new(TRUST_DOMAIN)?;
    let partner_domain = TrustDomain::new(PARTNER_DOMAIN)?;
    let ca = Ca::generate(&domain, zt_pki::DEFAULT_CA_LIFETIME)?;
    let partner = Ca::generate(&partner_domain, zt_pki::DEFAULT_CA_LIFETIME)?;
    let federated_bundle = format!("{}{}", ca.cert_pem(), partner.cert_pem());

    let mut files = Bundle::new();
    files.add(out.join("ca/ca.pem"), ca.cert_pem(), Secrecy::Public);
    files.add(out.join("ca/ca.key"), ca.key_pem(), Secrecy::Private);

    let leaf = |issuer: &Ca, id: &str, dns: &[&str], life: Duration| -> Result<_, Error> {
        let mut request = LeafRequest::new(SpiffeId::new(id)?);
        request.dns_names = dns.iter().map(|d| (*d).to_owned()).collect();
        request.lifetime = life;
        Ok(issuer.issue(&request)?)
    };
    let mut keystore = |dir: &str, name: &str, leaf: IssuedLeaf| {
        files.add_leaf(&out.join(dir).join(name), leaf);
    };
    let workload = |name: &str| format!("spiffe://{TRUST_DOMAIN}/ns/prod/sa/{name}");

    keystore(
        "ledger",
        "ledger",
        leaf(&ca, &workload("ledger"), &["ledger", "localhost"], lifetime)?,
    );
    keystore(
        "payments",
        "payments",
        leaf(&ca, &workload("payments"), &["payments"], lifetime)?,
    );
    keystore(
        "auditor",
        "auditor",
        leaf(&ca, &workload("auditor"), &["auditor"], lifetime)?,
    );
    // PostgreSQL, which the ledgers reach as `postgres` and verify by that host name.
    keystore(
        "postgres",
        "postgres",
        leaf(&ca, &workload("postgres"), &["postgres"], lifetime)?,
    );
    // The impostor's certificate is genuine: a compromised `web` workload, with a DNS name that
    // would fool a client that checks host names only.
    keystore(
        "intruder",
        "spoofed-server",
        leaf(
            &ca,
            &workload("web"),
            &["ledger", "impostor", "localhost"],
            lifetime,
        )?,
    );
    let stolen = format!("spiffe://{PARTNER_DOMAIN}/ns/prod/sa/payments");
    keystore(
        "intruder",
        Defect::WrongTrustDomain.name(),
        leaf(&partner, &stolen, &[], lifetime)?,
    );
    let payments = SpiffeId::new(&workload("payments"))?;
    for defect in Defect::ALL {
        if defect != Defect::WrongTrustDomain {
            keystore("intruder", defect.name(), defect.issue(&ca, &payments)?);
        }
    }

    files.add(
        out.join("ledger/ca-bundle.pem"),
        federated_bundle,
        Secrecy::Public,
    );
    for dir in ["payments", "auditor"] {
        files.add(
            out.join(format!("{dir}/ca.pem")),
            ca.cert_pem(),
            Secrecy::Public,
        );
    }
    // The database and its clients trust our CA alone: no federated partner's workload may
    // log in to it, nor pose as it.
    for dir in ["ledger", "postgres"] {
        files.add(
            out.join(format!("{dir}/ca.pem")),
            ca.cert_pem(),
            Secrecy::Public,
        );
    }
    files.write(true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_directory_holds_only_its_own_keys() {
        let dir = tempfile::tempdir().unwrap();
        write_lab(dir.path(), Duration::from_secs(3600)).unwrap();
        let keys_in = |sub: &str| {
            let mut keys: Vec<String> = std::fs::read_dir(dir.path().join(sub))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".key"))
                .collect();
            keys.sort();
            keys
        };
        assert_eq!(keys_in("ca"), ["ca.key"]);
        assert_eq!(keys_in("ledger"), ["ledger.key"]);
        assert_eq!(keys_in("payments"), ["payments.key"]);
        assert_eq!(keys_in("auditor"), ["auditor.key"]);
        assert_eq!(keys_in("postgres"), ["postgres.key"]);
        assert_eq!(
            keys_in("intruder"),
            [
                "ca-as-leaf.key",
                "expired.key",
                "not-yet-valid.key",
                "server-auth-only.key",
                "spoofed-server.key",
                "two-uri-sans.key",
                "wrong-trust-domain.key"
            ]
        );
        // The services load their files exactly as the containers will.
        zt_tls::Keystore::load(
            &dir.path().join("ledger/ledger.pem"),
            &dir.path().join("ledger/ledger.key"),
        )
        .unwrap();
        zt_tls::Truststore::load(&dir.path().join("ledger/ca-bundle.pem")).unwrap();
        zt_tls::Truststore::load(&dir.path().join("payments/ca.pem")).unwrap();
    }
}
