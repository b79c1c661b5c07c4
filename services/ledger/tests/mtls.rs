//! The ledger over real sockets: who gets in, who is refused, and proof that refused callers
//! never reached a handler.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

mod common;

use common::{AUDITOR_ID, LEDGER_ID, PAYMENTS_ID, TD, pki, s_client, start};
use tonic::Code;
use zt_proto::ledger::v1 as pb;
use zt_proto::ledger::v1::ledger_client::LedgerClient;
use zt_testkit::{Identity, TestPki, mtls_channel, probe, raw_channel, svid_params};
use zt_tls::Probe;

/// A ledger of this test's PKI, and a client calling it as `caller`.
async fn ledger_and_client(
    p: &common::Pki,
    caller: &Identity,
) -> (ledger::Background, LedgerClient<tonic::transport::Channel>) {
    let server = start(&p.ledger, &p.pki.ca_cert()).await;
    let client = LedgerClient::new(mtls_channel(
        server.addr,
        caller,
        &p.pki.ca_cert(),
        LEDGER_ID,
    ));
    (server, client)
}

fn transfer(key: &str, amount_cents: i64) -> pb::TransferRequest {
    pb::TransferRequest {
        idempotency_key: key.into(),
        from_account: "alice".into(),
        to_account: "bob".into(),
        amount_cents,
        memo: "test".into(),
    }
}

fn balance(account: &str) -> pb::GetBalanceRequest {
    pb::GetBalanceRequest {
        account_id: account.into(),
    }
}

#[tokio::test]
async fn payments_moves_money_and_the_handler_sees_its_identity() {
    let p = pki();
    let (server, mut client) = ledger_and_client(&p, &p.payments).await;

    let moved = client
        .transfer(transfer("k-1", 250))
        .await
        .unwrap()
        .into_inner();
    let record = moved.transfer.unwrap();
    assert!(!moved.replayed);
    assert_eq!(
        record.initiated_by, PAYMENTS_ID,
        "handler read the verified identity"
    );

    let again = client
        .transfer(transfer("k-1", 250))
        .await
        .unwrap()
        .into_inner();
    assert!(again.replayed, "same idempotency key: applied once");

    let alice = client
        .get_balance(balance("alice"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(alice.balance_cents, 100_000_00 - 250);

    let mut stream = client
        .list_transfers(pb::ListTransfersRequest {
            account_id: "alice".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let listed = stream.message().await.unwrap().unwrap();
    assert_eq!(listed.transfer_id, record.transfer_id);
    assert!(stream.message().await.unwrap().is_none());
    assert_eq!(server.service.handled(), 4);
}

#[tokio::test]
async fn ledger_errors_carry_proper_codes() {
    let p = pki();
    let (_server, mut client) = ledger_and_client(&p, &p.payments).await;
    let code =
        |r: Result<tonic::Response<pb::TransferResponse>, tonic::Status>| r.unwrap_err().code();

    assert_eq!(
        client
            .get_balance(balance("nobody"))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        code(client.transfer(transfer("k-a", 0)).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(client.transfer(transfer("k-b", -1)).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(client.transfer(transfer("k-c", 100_000_01)).await),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(client.transfer(transfer("", 1)).await),
        Code::InvalidArgument
    );
    assert_eq!(
        client
            .get_balance(balance("alice"))
            .await
            .unwrap()
            .into_inner()
            .balance_cents,
        100_000_00
    );
}

/// What a refused caller reads is text: account ids and keys in quotes, amounts as money,
/// and nothing of Rust's debug formatting (escaped quotes, `Some(...)`, struct braces).
#[tokio::test]
async fn refusals_reach_the_caller_as_text() {
    let p = pki();
    let (_server, mut client) = ledger_and_client(&p, &p.payments).await;
    let from_nobody = pb::TransferRequest {
        from_account: "nobody".into(),
        ..transfer("k-nobody", 1)
    };
    let mut refusals = vec![
        (
            client.transfer(from_nobody).await.unwrap_err(),
            Code::NotFound,
            "unknown account 'nobody'",
        ),
        (
            client.get_balance(balance("nobody")).await.unwrap_err(),
            Code::NotFound,
            "unknown account 'nobody'",
        ),
        (
            client
                .list_transfers(pb::ListTransfersRequest {
                    account_id: "nobody".into(),
                    limit: 1,
                })
                .await
                .unwrap_err(),
            Code::NotFound,
            "unknown account 'nobody'",
        ),
        (
            client
                .transfer(transfer("k-much", 100_000_01))
                .await
                .unwrap_err(),
            Code::FailedPrecondition,
            "insufficient funds in 'alice': balance $100000.00, requested $100000.01",
        ),
        (
            client.transfer(transfer("k-none", 0)).await.unwrap_err(),
            Code::InvalidArgument,
            "amount must be between $0.01 and $10000000.00, got $0.00",
        ),
    ];
    client.transfer(transfer("k-once", 1)).await.unwrap();
    refusals.push((
        client.transfer(transfer("k-once", 2)).await.unwrap_err(),
        Code::FailedPrecondition,
        "idempotency key 'k-once' was already used for a different transfer",
    ));
    for (status, code, message) in refusals {
        assert_eq!(status.code(), code, "{status}");
        assert_eq!(status.message(), message);
        for artefact in ["\"", "\\", "Some(", "{"] {
            assert!(!status.message().contains(artefact), "{status}");
        }
    }
}

#[tokio::test]
async fn auditor_may_read_but_its_transfer_is_denied_before_the_handler() {
    let p = pki();
    let (server, mut auditor) = ledger_and_client(&p, &p.auditor).await;

    auditor
        .get_balance(balance("bob"))
        .await
        .expect("auditor may read");
    let handled = server.service.handled();

    let denied = auditor
        .transfer(transfer("k-evil", 1_000))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        denied.message().contains(AUDITOR_ID),
        "{}",
        denied.message()
    );
    assert_eq!(
        server.service.handled(),
        handled,
        "the Transfer handler never ran"
    );

    let bob = auditor
        .get_balance(balance("bob"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bob.balance_cents, 50_000_00, "no money moved");
}

#[tokio::test]
async fn an_identity_the_policy_does_not_name_gets_nothing() {
    let p = pki();
    let stranger = p
        .pki
        .issue("stranger", "spiffe://zt.example/ns/prod/sa/stranger", &[]);
    let (server, mut client) = ledger_and_client(&p, &stranger).await;
    let err = client.get_balance(balance("alice")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "default deny");
    assert_eq!(server.service.handled(), 0);
}

/// Each of these peers must be refused during the handshake, with the alert that says why,
/// and no handler may run. A legitimate call afterwards proves the server survived them all.
#[tokio::test]
async fn hostile_peers_are_refused_at_the_handshake_and_no_handler_runs() {
    let p = pki();
    let server = start(&p.ledger, &p.pki.ca_cert()).await;
    let ca = p.pki.ca_cert();

    // A rogue CA that copies our CA's name: webpki finds our CA by name and the signature
    // check fails. And an unrelated CA, whose issuer nobody here knows.
    let rogue = p.pki.impersonating();
    let rogue_payments = rogue.issue("rogue-payments", PAYMENTS_ID, &[]);
    let foreign = TestPki::new("other.example");
    let foreign_payments = foreign.issue_params("foreign-payments", svid_params(&[PAYMENTS_ID]));

    let mut expired = svid_params(&[PAYMENTS_ID]);
    expired.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    expired.not_after = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let expired = p.pki.issue_params("expired", expired);

    let two_uris = p.pki.issue_params(
        "two-uris",
        svid_params(&[PAYMENTS_ID, "spiffe://zt.example/ns/prod/sa/admin"]),
    );

    let mut ca_leaf = svid_params(&[PAYMENTS_ID]);
    ca_leaf.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_leaf.key_usages.push(rcgen::KeyUsagePurpose::KeyCertSign);
    let ca_leaf = p.pki.issue_params("ca-as-leaf", ca_leaf);

    // Our own CA signed it, but for another trust domain: a stolen or misissued identity.
    let foreign_domain = p.pki.issue_params(
        "foreign",
        svid_params(&["spiffe://evil.example/ns/prod/sa/payments"]),
    );

    use rustls::AlertDescription as Alert;
    let cases = [
        ("no client certificate", None, Alert::CertificateRequired),
        (
            "certificate from a rogue CA copying our CA's name",
            Some(&rogue_payments),
            Alert::DecryptError,
        ),
        (
            "certificate from an unknown CA",
            Some(&foreign_payments),
            Alert::UnknownCA,
        ),
        (
            "expired certificate",
            Some(&expired),
            Alert::CertificateExpired,
        ),
        ("two URI SANs", Some(&two_uris), Alert::CertificateUnknown),
        (
            "CA certificate used as a leaf",
            Some(&ca_leaf),
            Alert::CertificateUnknown,
        ),
        (
            "wrong trust domain",
            Some(&foreign_domain),
            Alert::CertificateUnknown,
        ),
    ];
    for (what, identity, alert) in cases {
        assert_eq!(
            probe(server.addr, identity, &ca).await,
            Probe::Refused(alert),
            "{what}"
        );
        // And a peer that ignores the alert and sends a request anyway gets nothing either.
        let mut client = LedgerClient::new(raw_channel(server.addr, identity, &ca));
        client.get_balance(balance("alice")).await.expect_err(what);
        assert_eq!(server.service.handled(), 0, "{what}: a handler ran");
    }

    let mut legit = LedgerClient::new(mtls_channel(server.addr, &p.payments, &ca, LEDGER_ID));
    legit
        .get_balance(balance("alice"))
        .await
        .expect("server still serves legitimate peers");
    assert_eq!(server.service.handled(), 1);
}

/// A federated partner's CA is trusted for the partner's trust domain only: it cannot mint
/// our identities, however valid its signature.
#[tokio::test]
async fn a_partner_ca_cannot_vouch_for_our_trust_domain() {
    let p = pki();
    let partner = TestPki::new("partner.example");
    let bundle = p.pki.write(
        "federated-bundle.pem",
        std::fs::read_to_string(p.pki.ca_cert()).unwrap()
            + &std::fs::read_to_string(partner.ca_cert()).unwrap(),
    );
    let mut config = ledger::Config::with_files(
        &p.ledger.cert,
        &p.ledger.key,
        &bundle,
        common::demo_policy(),
    );
    config.trust_domains = vec![
        zt_identity::TrustDomain::new(TD).unwrap(),
        zt_identity::TrustDomain::new("partner.example").unwrap(),
    ];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = ledger::Server::load(config)
        .unwrap()
        .spawn(listener)
        .unwrap();

    // The partner CA signs a perfectly formed SVID claiming to be our payments service (the
    // project's CA refuses to; a compromised or careless partner CA would not).
    let forged = partner.issue_params("forged-payments", svid_params(&[PAYMENTS_ID]));
    assert_eq!(
        probe(server.addr, Some(&forged), &bundle).await,
        Probe::Refused(rustls::AlertDescription::UnknownCA)
    );
    let mut client = LedgerClient::new(raw_channel(server.addr, Some(&forged), &bundle));
    client
        .transfer(transfer("forged", 1))
        .await
        .expect_err("forged identity moved money");

    // Its own workloads do get in, and then meet the policy, which names none of them.
    let partner_app = partner.issue("partner-app", "spiffe://partner.example/app", &[]);
    assert_eq!(
        probe(server.addr, Some(&partner_app), &bundle).await,
        Probe::Accepted
    );
    let mut client = LedgerClient::new(raw_channel(server.addr, Some(&partner_app), &bundle));
    let status = client.get_balance(balance("alice")).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(server.service.handled(), 0);
}

/// A connection can outlive its certificate: once the certificate expires, the next request on the open connection is
/// refused as unauthenticated and reaches no handler.
#[tokio::test]
async fn a_certificate_that_expires_mid_connection_stops_working() {
    let p = pki();
    let server = start(&p.ledger, &p.pki.ca_cert()).await;
    let mut short = svid_params(&[PAYMENTS_ID]);
    short.not_after = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let short = p.pki.issue_params("short-lived", short);
    let mut client = LedgerClient::new(raw_channel(server.addr, Some(&short), &p.pki.ca_cert()));

    client.get_balance(balance("alice")).await.unwrap();
    assert_eq!(server.service.handled(), 1);

    // X.509 times have one-second resolution: wait until notAfter is safely in the past.
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let status = client.get_balance(balance("alice")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(server.service.handled(), 1, "no handler ran after expiry");
}

/// A plaintext HTTP/2 client gets no HTTP/2 at all: the server answers its connection
/// preface with a TLS alert record and closes, and no handler runs.
#[tokio::test]
async fn plaintext_http2_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let p = pki();
    let server = start(&p.ledger, &p.pki.ca_cert()).await;

    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tcp.read_to_end(&mut reply),
    )
    .await
    .expect("the server closes the connection")
    .unwrap();
    assert_eq!(
        reply.get(..2),
        Some(&[0x15, 0x03][..]),
        "expected a TLS alert record, got {reply:02x?}"
    );

    // tonic's own plaintext client fails too.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .timeout(std::time::Duration::from_secs(5))
        .connect_lazy();
    let err = LedgerClient::new(channel)
        .get_balance(balance("alice"))
        .await
        .unwrap_err();
    assert_ne!(err.code(), Code::Ok);
    assert_eq!(server.service.handled(), 0);
}

#[tokio::test]
async fn openssl_s_client_without_a_certificate_is_refused() {
    let p = pki();
    let server = start(&p.ledger, &p.pki.ca_cert()).await;
    let ca = p.pki.ca_cert();
    let (succeeded, text) = s_client(server.addr, &["-CAfile", &ca.to_string_lossy()]).await;
    assert!(
        text.contains("certificate required"),
        "openssl output:\n{text}"
    );
    assert!(!succeeded);
    assert_eq!(server.service.handled(), 0);
}

#[tokio::test]
async fn health_service_answers_over_mtls() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let p = pki();
    let server = start(&p.ledger, &p.pki.ca_cert()).await;
    let mut health = HealthClient::new(mtls_channel(
        server.addr,
        &p.auditor,
        &p.pki.ca_cert(),
        LEDGER_ID,
    ));
    let status = health
        .check(HealthCheckRequest {
            service: "ledger.v1.Ledger".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status(), ServingStatus::Serving);

    // No certificate: refused like any other RPC.
    let mut anonymous = HealthClient::new(raw_channel(server.addr, None, &p.pki.ca_cert()));
    assert!(
        anonymous
            .check(HealthCheckRequest::default())
            .await
            .is_err()
    );
}
