//! The layer as a tower service, without TLS or sockets: each request carries a constructed
//! identity (a [`PeerInfo`] holding a `PeerIdentity` derived from a certificate minted in
//! memory), and a counting inner service shows whether a handler ran. Allow, deny (rule and
//! default), unauthenticated, shadow, every A59 audit condition, in-flight counting for
//! streamed responses, replaced policies and metric labels. (What needs a process, such as
//! signals and exit codes, is tested by the binaries' own tests.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt as _;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use tower::{Layer as _, ServiceExt as _};
use zt_authz::Policy;
use zt_authz_layer::{AuditRecord, AuditSink, AuthzLayer, PeerInfo, PolicyHandle};
use zt_identity::{IdentityError, PeerIdentity, SpiffeId, TrustDomain, TrustedDomains};
use zt_pki::{Ca, LeafRequest};

const PAYMENTS: &str = "spiffe://zt.example/ns/prod/sa/payments";
const AUDITOR: &str = "spiffe://zt.example/ns/prod/sa/auditor";
const STRANGER: &str = "spiffe://zt.example/ns/dev/sa/stranger";
const TRANSFER: &str = "/ledger.v1.Ledger/Transfer";
const GET_BALANCE: &str = "/ledger.v1.Ledger/GetBalance";

/// Payments may call the whole ledger; the auditor too, except that a deny rule keeps it
/// from moving money (deny before allow); nobody else is named.
fn ledger_policy(audit_condition: Option<&str>) -> Policy {
    let audit = audit_condition.map_or(String::new(), |condition| {
        format!(
            r#","audit_logging_options":{{"audit_condition":"{condition}",
                "audit_loggers":[{{"name":"stdout_logger","config":{{}}}}]}}"#
        )
    });
    Policy::from_json(&format!(
        r#"{{"name":"ledger",
            "deny_rules":[{{"name":"auditor-never-moves-money",
                "source":{{"principals":["{AUDITOR}"]}},
                "request":{{"paths":["{TRANSFER}"]}}}}],
            "allow_rules":[
              {{"name":"payments-all","source":{{"principals":["{PAYMENTS}"]}},
                "request":{{"paths":["/ledger.v1.Ledger/*"]}}}},
              {{"name":"auditor-ledger","source":{{"principals":["{AUDITOR}"]}},
                "request":{{"paths":["/ledger.v1.Ledger/*"]}}}}]{audit}}}"#
    ))
    .unwrap()
}

fn policy(json: &str) -> Policy {
    Policy::from_json(json).unwrap()
}

/// An identity as a transport would have derived it at the handshake: from a certificate the
/// project's CA issued (in memory), through the same X509-SVID checks.
fn identity(spiffe_id: &str) -> Arc<PeerIdentity> {
    let domain = TrustDomain::new("zt.example").unwrap();
    let ca = Ca::generate(&domain, Duration::from_secs(24 * 3600)).unwrap();
    let mut request = LeafRequest::new(SpiffeId::new(spiffe_id).unwrap());
    request.lifetime = Duration::from_secs(3600);
    let leaf = ca.issue(&request).unwrap();
    let der = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
    Arc::new(
        TrustedDomains::new([domain])
            .identify(Some(der.as_ref()))
            .unwrap(),
    )
}

/// The connection information of a transport that is not TLS: what it says is what the layer
/// gets.
#[derive(Debug, Clone)]
struct TestPeer {
    identity: Result<Arc<PeerIdentity>, IdentityError>,
    addr: SocketAddr,
}

impl TestPeer {
    fn verified(spiffe_id: &str) -> Self {
        Self::failed_with(Ok(identity(spiffe_id)))
    }

    fn failed_with(identity: Result<Arc<PeerIdentity>, IdentityError>) -> Self {
        Self {
            identity,
            addr: "192.0.2.7:40000".parse().unwrap(),
        }
    }
}

impl PeerInfo for TestPeer {
    fn peer(&self) -> Result<Arc<PeerIdentity>, IdentityError> {
        self.identity.clone()
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        Some(self.addr)
    }
}

/// What the handler saw of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Handled {
    method: String,
    peer: Option<String>,
    /// The peer address of the transport's connection information, still there.
    transport: Option<SocketAddr>,
    /// How many values the request's extensions held.
    extensions: usize,
}

/// A response body of a few messages, read one frame per poll; empty by default (the
/// layer's refusals are trailers-only).
#[derive(Debug, Default)]
struct Messages(VecDeque<Bytes>);

impl Body for Messages {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

/// An authorized service around a handler that records every call it gets and answers with
/// `messages` messages.
struct Harness {
    layer: AuthzLayer<TestPeer>,
    metrics: zt_telemetry::Metrics,
    handled: Arc<Mutex<Vec<Handled>>>,
    audited: Arc<Collected>,
}

#[derive(Debug, Default)]
struct Collected(Mutex<Vec<(String, String, String, bool)>>);

impl AuditSink for Collected {
    fn record(&self, record: &AuditRecord<'_>) {
        self.0.lock().unwrap().push((
            record.rpc_method.to_owned(),
            record.principal.to_owned(),
            record.matched_rule.to_owned(),
            record.authorized,
        ));
    }
}

impl Harness {
    fn new(policy: Policy) -> Self {
        Self::with_handle(PolicyHandle::new(policy))
    }

    fn with_handle(policy: PolicyHandle) -> Self {
        let metrics = zt_telemetry::Metrics::new();
        let audited = Arc::new(Collected::default());
        let layer = AuthzLayer::<TestPeer>::new(policy)
            .with_metrics(&metrics)
            .with_audit_sink(Arc::clone(&audited) as Arc<dyn AuditSink>)
            .with_known_methods([TRANSFER.to_owned(), GET_BALANCE.to_owned()]);
        Self {
            layer,
            metrics,
            handled: Arc::default(),
            audited,
        }
    }

    fn shadowed(mut self, shadow: Policy) -> Self {
        self.layer = self.layer.with_shadow(PolicyHandle::new(shadow));
        self
    }

    /// Sends one request for `method` over `peer` (or with no connection information at all),
    /// and returns the response with its body (of `messages` messages) unread.
    async fn call_streaming(
        &self,
        peer: Option<TestPeer>,
        method: &str,
        messages: usize,
    ) -> http::Response<zt_authz_layer::ResponseBody<Messages>> {
        let handled = Arc::clone(&self.handled);
        let handler = tower::service_fn(move |req: http::Request<()>| {
            handled.lock().unwrap().push(Handled {
                method: req.uri().path().to_owned(),
                peer: req
                    .extensions()
                    .get::<Arc<PeerIdentity>>()
                    .map(|p| p.spiffe_id().to_string()),
                transport: req.extensions().get::<TestPeer>().map(|p| p.addr),
                extensions: req.extensions().len(),
            });
            let body = Messages((0..messages).map(|_| Bytes::from_static(b"msg")).collect());
            async move { Ok::<_, std::convert::Infallible>(http::Response::new(body)) }
        });
        let mut request = http::Request::builder().uri(method).body(()).unwrap();
        if let Some(peer) = peer {
            request.extensions_mut().insert(peer);
        }
        self.layer.layer(handler).oneshot(request).await.unwrap()
    }

    /// Sends one request and returns its `grpc-status` (`None`: the handler answered).
    async fn call(&self, peer: Option<TestPeer>, method: &str) -> Option<String> {
        let response = self.call_streaming(peer, method, 1).await;
        grpc_status(&response)
    }

    fn handled(&self) -> Vec<Handled> {
        self.handled.lock().unwrap().clone()
    }

    fn audited(&self) -> Vec<(String, String, String, bool)> {
        self.audited.0.lock().unwrap().clone()
    }

    /// The value of one series, if it exists.
    fn series(&self, name_and_labels: &str) -> Option<u64> {
        self.metrics.encode().lines().find_map(|line| {
            let value = line.strip_prefix(name_and_labels)?.strip_prefix(' ')?;
            value.parse().ok()
        })
    }

    fn decisions(&self, rule: &str, decision: &str, mode: &str, method: &str) -> Option<u64> {
        self.series(&format!(
            "zt_authz_decisions_total{{policy=\"ledger\",rule=\"{rule}\",\
             decision=\"{decision}\",mode=\"{mode}\",method=\"{method}\"}}"
        ))
    }

    fn in_flight(&self) -> Option<u64> {
        self.series("zt_rpcs_in_flight")
    }
}

fn grpc_status<B>(response: &http::Response<B>) -> Option<String> {
    response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned())
}

fn grpc_message<B>(response: &http::Response<B>) -> String {
    let raw = response.headers()["grpc-message"].to_str().unwrap();
    percent_decode(raw)
}

/// gRPC percent-encodes `grpc-message`; the tests read it as sent.
fn percent_decode(raw: &str) -> String {
    let mut out = Vec::new();
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex: String = [bytes.next().unwrap(), bytes.next().unwrap()]
                .iter()
                .map(|&c| c as char)
                .collect();
            out.push(u8::from_str_radix(&hex, 16).unwrap());
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn an_allowed_call_reaches_the_handler_with_the_identity_and_is_counted() {
    let h = Harness::new(ledger_policy(None));

    assert_eq!(
        h.call(Some(TestPeer::verified(PAYMENTS)), TRANSFER).await,
        None
    );

    let handled = h.handled();
    assert_eq!(handled.len(), 1);
    assert_eq!(handled[0].method, TRANSFER);
    assert_eq!(
        handled[0].peer.as_deref(),
        Some(PAYMENTS),
        "Arc<PeerIdentity> inserted"
    );
    assert_eq!(
        handled[0].transport,
        Some("192.0.2.7:40000".parse().unwrap()),
        "the transport's connection information reaches the handler"
    );
    assert_eq!(
        handled[0].extensions, 2,
        "the layer adds exactly one value (the identity) to what the transport put there"
    );
    assert_eq!(
        h.decisions("payments-all", "allow", "enforce", TRANSFER),
        Some(1)
    );
}

#[tokio::test]
async fn a_deny_rule_wins_over_a_matching_allow_rule_and_no_handler_runs() {
    let h = Harness::new(ledger_policy(None));

    // The auditor's allow rule covers the whole ledger: reads go through...
    assert_eq!(
        h.call(Some(TestPeer::verified(AUDITOR)), GET_BALANCE).await,
        None
    );
    // ...but the deny rule is evaluated first, so moving money is refused.
    let response = h
        .call_streaming(Some(TestPeer::verified(AUDITOR)), TRANSFER, 1)
        .await;

    assert_eq!(
        grpc_status(&response).as_deref(),
        Some("7"),
        "PERMISSION_DENIED"
    );
    assert_eq!(
        grpc_message(&response),
        format!("{AUDITOR} may not call {TRANSFER}")
    );
    let handled: Vec<String> = h.handled().into_iter().map(|c| c.method).collect();
    assert_eq!(
        handled,
        [GET_BALANCE],
        "the refused call never reached a handler"
    );
    assert_eq!(
        h.decisions("auditor-never-moves-money", "deny", "enforce", TRANSFER),
        Some(1)
    );
    assert_eq!(
        h.decisions("auditor-ledger", "allow", "enforce", TRANSFER),
        None,
        "the allow rule did not decide"
    );
}

#[tokio::test]
async fn a_peer_no_rule_names_is_refused_by_the_default_deny() {
    let h = Harness::new(ledger_policy(None));

    assert_eq!(
        h.call(Some(TestPeer::verified(STRANGER)), GET_BALANCE)
            .await
            .as_deref(),
        Some("7")
    );

    assert!(h.handled().is_empty(), "no handler ran");
    assert_eq!(
        h.decisions("<default deny>", "deny", "enforce", GET_BALANCE),
        Some(1)
    );
}

#[tokio::test]
async fn without_a_valid_identity_the_call_is_unauthenticated_whatever_the_policy_says() {
    // A rule without a source matches every authenticated peer; it must not let in a caller
    // that has no identity.
    let h = Harness::new(policy(
        r#"{"name":"ledger","allow_rules":[{"name":"everyone"}],
            "audit_logging_options":{"audit_condition":"ON_DENY",
              "audit_loggers":[{"name":"stdout_logger","config":{}}]}}"#,
    ));
    let cases = [
        (None, "no_certificate"),
        (
            Some(TestPeer::failed_with(Err(IdentityError::Expired {
                not_after: 1_700_000_000,
            }))),
            "expired",
        ),
        (
            Some(TestPeer::failed_with(Err(IdentityError::Revoked {
                serial: "1f".to_owned(),
            }))),
            "revoked",
        ),
        (
            Some(TestPeer::failed_with(Err(IdentityError::UntrustedDomain(
                "partner.example".to_owned(),
            )))),
            "untrusted_trust_domain",
        ),
    ];

    for (peer, reason) in cases {
        let response = h.call_streaming(peer, TRANSFER, 1).await;
        assert_eq!(grpc_status(&response).as_deref(), Some("16"), "{reason}");
        assert_eq!(
            grpc_message(&response),
            "a valid client certificate (X509-SVID) is required"
        );
        assert_eq!(
            h.series(&format!(
                "zt_authz_unauthenticated_total{{reason=\"{reason}\"}}"
            )),
            Some(1),
            "{reason}"
        );
    }

    assert!(h.handled().is_empty(), "no handler ran");
    assert_eq!(
        h.decisions("everyone", "allow", "enforce", TRANSFER),
        None,
        "the policy was never consulted"
    );
    // Audited as refusals with no principal (A59: the peer is unknown).
    let audited = h.audited();
    assert_eq!(audited.len(), 4);
    assert!(
        audited
            .iter()
            .all(|(method, principal, rule, authorized)| method == TRANSFER
                && principal.is_empty()
                && rule.is_empty()
                && !authorized),
        "{audited:?}"
    );
}

#[tokio::test]
async fn a_shadow_policy_is_counted_but_never_enforced() {
    let deny_all = policy(
        r#"{"name":"ledger","allow_rules":[{"name":"nobody",
            "source":{"principals":["spiffe://nobody.example/none"]}}]}"#,
    );
    let h = Harness::new(ledger_policy(None)).shadowed(deny_all);

    assert_eq!(
        h.call(Some(TestPeer::verified(PAYMENTS)), TRANSFER).await,
        None
    );
    assert_eq!(h.handled().len(), 1, "the enforced policy allowed it");
    assert_eq!(
        h.decisions("<default deny>", "deny", "shadow", TRANSFER),
        Some(1)
    );
    assert_eq!(
        h.decisions("payments-all", "allow", "enforce", TRANSFER),
        Some(1)
    );

    // The other way round: a shadow that would allow everyone lets nobody in.
    let allow_all = policy(r#"{"name":"ledger","allow_rules":[{"name":"everyone"}]}"#);
    let h = Harness::new(ledger_policy(None)).shadowed(allow_all);
    assert_eq!(
        h.call(Some(TestPeer::verified(STRANGER)), TRANSFER)
            .await
            .as_deref(),
        Some("7")
    );
    assert!(h.handled().is_empty());
    assert_eq!(
        h.decisions("everyone", "allow", "shadow", TRANSFER),
        Some(1)
    );
}

#[tokio::test]
async fn audit_lines_follow_each_a59_condition() {
    // (condition, audited allow?, audited deny?)
    let conditions = [
        ("NONE", false, false),
        ("ON_DENY", false, true),
        ("ON_ALLOW", true, false),
        ("ON_DENY_AND_ALLOW", true, true),
    ];
    for (condition, on_allow, on_deny) in conditions {
        let h = Harness::new(ledger_policy(Some(condition)));

        h.call(Some(TestPeer::verified(PAYMENTS)), TRANSFER).await;
        h.call(Some(TestPeer::verified(AUDITOR)), TRANSFER).await;

        let mut expected = Vec::new();
        if on_allow {
            expected.push((
                TRANSFER.to_owned(),
                PAYMENTS.to_owned(),
                "payments-all".to_owned(),
                true,
            ));
        }
        if on_deny {
            expected.push((
                TRANSFER.to_owned(),
                AUDITOR.to_owned(),
                "auditor-never-moves-money".to_owned(),
                false,
            ));
        }
        assert_eq!(h.audited(), expected, "{condition}");
    }

    // The default deny is audited with an empty matched rule (A59).
    let h = Harness::new(ledger_policy(Some("ON_DENY")));
    h.call(Some(TestPeer::verified(STRANGER)), TRANSFER).await;
    assert_eq!(
        h.audited(),
        [(
            TRANSFER.to_owned(),
            STRANGER.to_owned(),
            String::new(),
            false
        )]
    );
}

#[tokio::test]
async fn a_streamed_response_is_in_flight_until_its_body_ends_and_refusals_never_are() {
    let h = Harness::new(ledger_policy(None));
    assert_eq!(h.in_flight(), Some(0));

    let mut response = h
        .call_streaming(Some(TestPeer::verified(PAYMENTS)), GET_BALANCE, 3)
        .await;
    let body = response.body_mut();
    for read in 1..=3 {
        assert_eq!(h.in_flight(), Some(1), "before message {read}");
        assert!(body.frame().await.unwrap().unwrap().is_data());
    }
    assert!(body.frame().await.is_none(), "the stream ended");
    assert_eq!(h.in_flight(), Some(0));

    // A stream abandoned half-way (the client went away) is no longer in flight either.
    let response = h
        .call_streaming(Some(TestPeer::verified(PAYMENTS)), GET_BALANCE, 3)
        .await;
    assert_eq!(h.in_flight(), Some(1));
    drop(response);
    assert_eq!(h.in_flight(), Some(0));

    // Refused calls are never counted as in flight.
    let refused = h
        .call_streaming(Some(TestPeer::verified(STRANGER)), GET_BALANCE, 3)
        .await;
    assert_eq!(grpc_status(&refused).as_deref(), Some("7"));
    assert_eq!(h.in_flight(), Some(0));
}

#[tokio::test]
async fn a_replaced_policy_decides_from_the_next_request_on() {
    let handle = PolicyHandle::new(ledger_policy(None));
    let h = Harness::with_handle(handle.clone());
    assert_eq!(
        h.call(Some(TestPeer::verified(PAYMENTS)), TRANSFER).await,
        None
    );

    handle.replace(policy(
        r#"{"name":"ledger","allow_rules":[{"name":"reads-only",
            "request":{"paths":["/ledger.v1.Ledger/GetBalance"]}}]}"#,
    ));

    assert_eq!(
        h.call(Some(TestPeer::verified(PAYMENTS)), TRANSFER)
            .await
            .as_deref(),
        Some("7")
    );
    assert_eq!(
        h.call(Some(TestPeer::verified(PAYMENTS)), GET_BALANCE)
            .await,
        None
    );
    assert_eq!(h.handled().len(), 2);
}

#[tokio::test]
async fn methods_the_server_does_not_serve_are_labelled_other() {
    let h = Harness::new(ledger_policy(None));
    for n in 0..5 {
        let invented = format!("/ledger.v1.Ledger/Invented{n}");
        // Allowed by payments' wildcard; the label must not be the invented path.
        assert_eq!(
            h.call(Some(TestPeer::verified(PAYMENTS)), &invented).await,
            None
        );
    }
    assert_eq!(
        h.decisions("payments-all", "allow", "enforce", "other"),
        Some(5)
    );
    assert!(!h.metrics.encode().contains("Invented"));
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
    let layer = AuthzLayer::<TestPeer>::new(PolicyHandle::new(policy))
        .with_metrics(&metrics)
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
    for line in [
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
        assert!(text.contains(&line), "{line} in\n{text}");
    }
    // A rule that cannot decide a method has no series for it.
    assert!(!text.contains(&series("health", "allow", "/ledger.v1.Ledger/Transfer")));
}
