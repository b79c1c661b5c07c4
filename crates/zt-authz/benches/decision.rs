//! The cost of one authorization decision: the demo policy, and policies of 1,000 rules where
//! the deciding rule is the last one or none matches (a full scan in a naive evaluator).
//! Issue 6, goal G2: at most 1 µs with 1,000 rules.
//!
//! `cargo bench -p zt-authz --bench decision`
#![allow(missing_docs, clippy::unwrap_used, reason = "benchmark harness")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use rcgen::{CertificateParams, KeyPair, SanType};
use zt_authz::{Decision, Policy, Request};
use zt_identity::{PeerIdentity, TrustDomain, TrustedDomains};

fn peer(id: &str) -> PeerIdentity {
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(id.try_into().unwrap())];
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let der = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
    TrustedDomains::new([TrustDomain::new("zt.example").unwrap()])
        .identify(Some(der.der()))
        .unwrap()
}

/// `n` allow rules, one workload each, over two read methods; one deny rule first.
fn large_policy(n: usize) -> Policy {
    let allow: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "name": format!("svc-{i}"),
                "source": {"principals": [format!("spiffe://zt.example/ns/prod/sa/svc-{i}")]},
                "request": {"paths": ["/ledger.v1.Ledger/GetBalance", "/ledger.v1.Ledger/ListTransfers"]},
            })
        })
        .collect();
    let doc = serde_json::json!({
        "name": "large",
        "deny_rules": [{
            "name": "no-transfers-for-auditor",
            "source": {"principals": ["spiffe://zt.example/ns/prod/sa/auditor"]},
            "request": {"paths": ["/ledger.v1.Ledger/Transfer"]},
        }],
        "allow_rules": allow,
    });
    Policy::from_json(&doc.to_string()).unwrap()
}

fn bench(c: &mut Criterion) {
    let headers = HeaderMap::new();
    let demo = Policy::from_json(include_str!("../../../config/ledger-policy.json")).unwrap();
    let payments = peer("spiffe://zt.example/ns/prod/sa/payments");
    let last = peer("spiffe://zt.example/ns/prod/sa/svc-999");
    let stranger = peer("spiffe://zt.example/ns/prod/sa/stranger");
    let large = large_policy(1000);

    let mut group = c.benchmark_group("decision");
    let cases = [
        (
            "demo policy, allow",
            &demo,
            &payments,
            "/ledger.v1.Ledger/Transfer",
        ),
        (
            "1000 rules, last rule allows",
            &large,
            &last,
            "/ledger.v1.Ledger/GetBalance",
        ),
        (
            "1000 rules, default deny",
            &large,
            &stranger,
            "/ledger.v1.Ledger/GetBalance",
        ),
    ];
    for (name, policy, peer, path) in cases {
        let request = Request {
            path,
            peer: Some(peer),
            headers: &headers,
        };
        assert_ne!(policy.evaluate(&request), Decision::Deny { rule: "" });
        group.bench_function(name, |b| {
            b.iter(|| black_box(policy.evaluate(black_box(&request))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
