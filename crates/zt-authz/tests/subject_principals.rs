//! Raw principals match the subject as grpc-go writes it (Go's `pkix.Name.String()`), so a
//! grpc-go policy naming a subject decides the same here. Certificates are made with the
//! openssl CLI, as an operator would make them; without `openssl` on PATH the test says so on
//! stderr and passes (CI installs it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use http::HeaderMap;
use zt_authz::{Decision, Policy, Request};
use zt_identity::{PeerIdentity, TrustDomain, TrustedDomains};

/// A scratch directory removed on drop (this crate has no tempfile dependency).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("zt-authz-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl_available() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: `openssl` is not on PATH, so the certificate cannot be made");
    }
    found
}

/// An X509-SVID for `spiffe://zt.example/ns/prod/sa/legacy-batch` made by `openssl req -x509
/// -subj SUBJ`, read as the server reads a verified peer.
fn openssl_peer(dir: &Path, subj: &str) -> PeerIdentity {
    let config = dir.join("svid.cnf");
    std::fs::write(
        &config,
        "[req]\ndistinguished_name = dn\nx509_extensions = svid\n[dn]\n[svid]\n\
         subjectAltName = URI:spiffe://zt.example/ns/prod/sa/legacy-batch\n\
         keyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth, clientAuth\n\
         basicConstraints = critical, CA:FALSE\n",
    )
    .unwrap();
    let der = dir.join("peer.der");
    let output = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-outform", "DER", "-subj", subj])
        .arg("-keyout")
        .arg(dir.join("peer.key"))
        .arg("-config")
        .arg(&config)
        .arg("-out")
        .arg(&der)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    TrustedDomains::new([TrustDomain::new("zt.example").unwrap()])
        .identify(Some(&std::fs::read(der).unwrap()))
        .unwrap()
}

fn policy_denying(principal: &str) -> Policy {
    Policy::from_json(&format!(
        r#"{{
  "name": "ledger",
  "deny_rules": [
    {{"name": "no-legacy-batch", "source": {{"principals": ["{principal}"]}},
     "request": {{"paths": ["/ledger.v1.Ledger/*"]}}}}
  ],
  "allow_rules": [
    {{"name": "any-workload", "source": {{"principals": ["spiffe://zt.example/*"]}}}}
  ]
}}"#
    ))
    .unwrap()
}

fn decide<'p>(policy: &'p Policy, peer: &PeerIdentity) -> Decision<'p> {
    policy.evaluate(&Request {
        path: "/ledger.v1.Ledger/Transfer",
        peer: Some(peer),
        headers: &HeaderMap::new(),
    })
}

/// The issue's example: `-subj /CN=legacy-batch/O=bughunt` and the deny principal grpc-go's
/// rendering of it, `CN=legacy-batch,O=bughunt`. Reversing the certificate's RDNs (RFC 4514,
/// what this project used to match) gives `O=bughunt,CN=legacy-batch` and let the peer in.
#[test]
fn a_deny_principal_in_grpc_gos_subject_form_denies() {
    if !openssl_available() {
        return;
    }
    let scratch = Scratch::new("subject");
    let peer = openssl_peer(&scratch.0, "/CN=legacy-batch/O=bughunt");
    assert_eq!(peer.subject(), "CN=legacy-batch,O=bughunt");

    let grpc_go = policy_denying("CN=legacy-batch,O=bughunt");
    assert_eq!(
        decide(&grpc_go, &peer),
        Decision::Deny {
            rule: "no-legacy-batch"
        }
    );
    let rfc_4514 = policy_denying("O=bughunt,CN=legacy-batch");
    assert_eq!(
        decide(&rfc_4514, &peer),
        Decision::Allow {
            rule: "any-workload"
        },
        "not grpc-go's text: matches nothing"
    );
    // Patterns see the same text: a prefix on the CN matches, one on the O does not.
    assert!(!decide(&policy_denying("CN=legacy-*"), &peer).is_allowed());
    assert!(decide(&policy_denying("O=bughunt*"), &peer).is_allowed());

    // Go orders by type, so the certificate's own order does not matter.
    let reordered = openssl_peer(&scratch.0, "/O=bughunt/CN=legacy-batch");
    assert_eq!(reordered.subject(), "CN=legacy-batch,O=bughunt");
    assert!(!decide(&grpc_go, &reordered).is_allowed());
}
