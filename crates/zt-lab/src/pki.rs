//! The lab's PKI, laid out for containers.
//!
//! ```text
//! ca/        ca.pem ca.key                      the CA; only the pki container mounts it
//! ledger/    ledger.pem ledger.key ca-bundle.pem trusts zt.example and partner.example CAs
//! payments/  payments.pem payments.key ca.pem
//! auditor/   auditor.pem auditor.key ca.pem
//! impostor/  impostor.pem impostor.key ca-bundle.pem   a compromised `web` workload's real
//!                                                       certificate, used to pose as the ledger
//! intruder/  rogue.pem/.key    from a rogue CA that copies our CA's name
//!            stolen.pem/.key   a partner.example workload's certificate (stolen)
//!            expired.pem/.key  ours, already expired
//!            insider.pem/.key  a genuine but low-privilege `web` workload (to replay tokens)
//! ```
//!
//! The ledger trusts the partner CA on purpose (a federation), so the stolen partner
//! certificate passes chain validation: only the trust-domain check stops it.

use std::path::Path;
use std::time::Duration;

use zt_identity::{SpiffeId, TrustDomain};
use zt_pki::files::{Bundle, Secrecy};
use zt_pki::{Ca, IssuedLeaf, LeafRequest, PkiError};

/// The lab's trust domain.
pub const TRUST_DOMAIN: &str = "zt.example";
/// A federated partner's trust domain: its CA is trusted, its workloads are not.
pub const PARTNER_DOMAIN: &str = "partner.example";

/// Writes the whole lab into `out` (see the module docs), replacing what is there.
pub fn write_lab(out: &Path, lifetime: Duration) -> Result<(), PkiError> {
    let domain = TrustDomain::new(TRUST_DOMAIN)?;
    let partner_domain = TrustDomain::new(PARTNER_DOMAIN)?;
    let ca = Ca::generate(&domain, zt_pki::DEFAULT_CA_LIFETIME)?;
    let partner = Ca::generate(&partner_domain, zt_pki::DEFAULT_CA_LIFETIME)?;
    let rogue = Ca::generate_named(&domain, zt_pki::DEFAULT_CA_LIFETIME, ca.common_name())?;
    let federated_bundle = format!("{}{}", ca.cert_pem(), partner.cert_pem());

    let mut files = Bundle::new();
    files.add(out.join("ca/ca.pem"), ca.cert_pem(), Secrecy::Public);
    files.add(out.join("ca/ca.key"), ca.key_pem(), Secrecy::Private);

    let leaf = |issuer: &Ca, id: &str, dns: &[&str], life: Duration| {
        let mut request = LeafRequest::new(SpiffeId::new(id)?);
        request.dns_names = dns.iter().map(|d| (*d).to_owned()).collect();
        request.lifetime = life;
        issuer.issue(&request)
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
    // The impostor's certificate is genuine: a compromised `web` workload, with a DNS name that
    // would fool a client that checks host names only.
    keystore(
        "impostor",
        "impostor",
        leaf(
            &ca,
            &workload("web"),
            &["ledger", "impostor", "localhost"],
            lifetime,
        )?,
    );
    keystore(
        "intruder",
        "rogue",
        leaf(&rogue, &workload("payments"), &[], lifetime)?,
    );
    let stolen = format!("spiffe://{PARTNER_DOMAIN}/ns/prod/sa/payments");
    keystore(
        "intruder",
        "stolen",
        leaf(&partner, &stolen, &[], lifetime)?,
    );
    keystore(
        "intruder",
        "insider",
        leaf(&ca, &workload("web"), &[], lifetime)?,
    );
    keystore(
        "intruder",
        "expired",
        leaf(&ca, &workload("payments"), &[], Duration::from_secs(1))?,
    );

    files.add(
        out.join("ledger/ca-bundle.pem"),
        federated_bundle.clone(),
        Secrecy::Public,
    );
    files.add(
        out.join("impostor/ca-bundle.pem"),
        federated_bundle,
        Secrecy::Public,
    );
    for dir in ["payments", "auditor", "intruder"] {
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
        assert_eq!(keys_in("impostor"), ["impostor.key"]);
        assert_eq!(
            keys_in("intruder"),
            ["expired.key", "insider.key", "rogue.key", "stolen.key"]
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
