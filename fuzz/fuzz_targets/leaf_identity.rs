//! The certificate-to-identity path a peer's bytes take after the handshake: X.509 parsing,
//! the X509-SVID profile, the SPIFFE ID, the trust-domain check. Any bytes are refused with
//! an error or yield an identity that satisfies what the layer relies on.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use zt_identity::{TrustDomain, TrustedDomains, inspect_leaf};

static DOMAINS: LazyLock<TrustedDomains> = LazyLock::new(|| {
    TrustedDomains::new(["zt.example", "bench.example"].map(|d| {
        TrustDomain::new(d).expect("a valid trust domain")
    }))
});

fuzz_target!(|der: &[u8]| {
    let report = inspect_leaf(der);
    match DOMAINS.identify(Some(der)) {
        Ok(peer) => {
            let report = report.expect("an identified leaf parses");
            assert!(report.violations.is_empty(), "an identity only from a valid SVID");
            assert!(DOMAINS.contains(peer.spiffe_id()), "only trusted domains");
            assert_eq!(report.spiffe_id.as_ref(), Some(peer.spiffe_id()));
        }
        Err(_) => {}
    }
});
