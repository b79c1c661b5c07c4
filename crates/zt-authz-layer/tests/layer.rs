//! The layer without TLS: a request that arrives without a verified connection is refused
//! with UNAUTHENTICATED and the inner service is never called. (Allow and deny decisions on
//! real connections are tested end to end in the ledger's tests.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tower::{Layer, ServiceExt};
use zt_authz::Policy;
use zt_authz_layer::AuthzLayer;
use zt_identity::{TrustDomain, TrustedDomains};

#[tokio::test]
async fn no_verified_connection_means_unauthenticated_and_no_inner_call() {
    // Even a policy whose empty rule matches everyone cannot let an anonymous caller in.
    let policy =
        Policy::from_json(r#"{"name":"open","allow_rules":[{"name":"everyone"}]}"#).unwrap();
    let layer = AuthzLayer::new(
        zt_authz_layer::PolicyHandle::new(policy),
        TrustedDomains::new([TrustDomain::new("zt.example").unwrap()]),
    );

    let calls = Arc::new(AtomicUsize::new(0));
    let inner = {
        let calls = Arc::clone(&calls);
        tower::service_fn(move |_req: http::Request<()>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Ok::<_, std::convert::Infallible>(http::Response::new(String::from("handled")))
            }
        })
    };
    let request = http::Request::builder()
        .uri("/ledger.v1.Ledger/GetBalance")
        .body(())
        .unwrap();
    let response = layer.layer(inner).oneshot(request).await.unwrap();

    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(response.headers()["grpc-status"], "16", "UNAUTHENTICATED");
    assert!(response.body().get_ref().is_empty());
}

/// Every decision series the policy can produce exists at 0 before any request, so an alert
/// on its increase sees the first one; `other` methods and the unauthenticated reasons too.
#[test]
fn known_series_exist_at_zero_before_any_request() {
    let policy = Policy::from_json(
        r#"{"name":"ledger",
            "deny_rules":[{"name":"auditor-never-moves-money",
                "source":{"principals":["spiffe://zt.example/ns/prod/sa/auditor"]},
                "request":{"paths":["/ledger.v1.Ledger/Transfer"]}}],
            "allow_rules":[{"name":"payments-all",
                "source":{"principals":["spiffe://zt.example/ns/prod/sa/payments"]},
                "request":{"paths":["/ledger.v1.Ledger/*"]}},
              {"name":"health",
                "source":{"principals":["spiffe://zt.example/*"]},
                "request":{"paths":["/grpc.health.v1.Health/Check"]}}]}"#,
    )
    .unwrap();
    let metrics = zt_telemetry::Metrics::new();
    let layer = AuthzLayer::new(
        zt_authz_layer::PolicyHandle::new(policy),
        TrustedDomains::new([TrustDomain::new("zt.example").unwrap()]),
    )
    .with_metrics(metrics.clone())
    .with_known_methods([
        "/ledger.v1.Ledger/Transfer".to_owned(),
        "/grpc.health.v1.Health/Check".to_owned(),
    ]);
    layer.register_series();
    let text = metrics.encode();
    let series = |rule: &str, decision: &str, method: &str| {
        format!(
            "zt_authz_decisions_total{{policy=\"ledger\",rule=\"{rule}\",decision=\"{decision}\",\
             mode=\"enforce\",method=\"{method}\"}} 0"
        )
    };
    for expected in [
        series("payments-all", "allow", "/ledger.v1.Ledger/Transfer"),
        series(
            "auditor-never-moves-money",
            "deny",
            "/ledger.v1.Ledger/Transfer",
        ),
        series("<default deny>", "deny", "/ledger.v1.Ledger/Transfer"),
        series("health", "allow", "/grpc.health.v1.Health/Check"),
        series("<default deny>", "deny", "/grpc.health.v1.Health/Check"),
        series("<default deny>", "deny", "other"),
        "zt_authz_unauthenticated_total{reason=\"revoked\"} 0".to_owned(),
        "zt_authz_unauthenticated_total{reason=\"no_certificate\"} 0".to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected}\nin\n{text}");
    }
    // An allow rule is registered only on the methods it reaches.
    assert!(!text.contains(&series("health", "allow", "/ledger.v1.Ledger/Transfer")));
}
