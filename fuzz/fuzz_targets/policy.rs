//! The policy compiler (gRFC A43 JSON) and everything that reads a compiled policy: any input
//! is refused with an error or compiles into a policy that can be evaluated, explained,
//! checked and covered without panicking, and the explanation agrees with the decision.
#![no_main]

use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use zt_authz::{Policy, Request};

const METHODS: [&str; 3] = [
    "/ledger.v1.Ledger/Transfer",
    "/ledger.v1.Ledger/GetBalance",
    "/grpc.health.v1.Health/Check",
];

fuzz_target!(|input: &str| {
    let Ok(policy) = Policy::from_json(input) else {
        return;
    };
    let methods: Vec<String> = METHODS.iter().map(|m| (*m).to_owned()).collect();
    let _ = policy.check(&methods);
    let _ = policy.coverage(&methods);
    let mut headers = HeaderMap::new();
    headers.insert("x-fuzz", http::HeaderValue::from_static("1"));
    for path in METHODS.iter().copied().chain(["", "/", "/x/y"]) {
        for headers in [&HeaderMap::new(), &headers] {
            let request = Request {
                path,
                peer: None,
                headers,
            };
            let decision = policy.evaluate(&request);
            assert_eq!(
                policy.explain(&request).decision,
                decision,
                "explain agrees with evaluate"
            );
        }
    }
});
