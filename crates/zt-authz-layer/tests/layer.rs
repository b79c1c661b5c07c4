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
