//! Operations on a live ledger: certificate and CA rotation, policy reload, revocation, broken
//! files at reload, session resumption. Real sockets, real files, real reloads. (Audit lines,
//! shadow decisions and the metrics endpoint are the binary's, in `process.rs`.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

mod common;

use std::time::Duration;

use common::{AUDITOR_ID, LEDGER_ID, PAYMENTS_ID, Pki, TD, config, eventually, pki, start_with};
use rustls::pki_types::pem::PemObject as _;
use tonic::Code;
use zt_proto::ledger::v1 as pb;
use zt_proto::ledger::v1::ledger_client::LedgerClient;
use zt_testkit::{
    TestPki, atomic_write, config_channel, kubelet_swap, mtls_channel, mtls_config, probe,
    raw_channel, server_serial, svid_params,
};
use zt_tls::Probe;

const FAST_RELOAD: Duration = Duration::from_millis(100);

fn balance() -> pb::GetBalanceRequest {
    pb::GetBalanceRequest {
        account_id: "alice".into(),
    }
}

/// The server's certificate is replaced (atomic rename) while a client keeps calling on an
/// open connection and reads a server stream opened before the swap: not one RPC fails, the
/// stream runs to its end, and new handshakes see the new certificate.
#[tokio::test]
async fn server_certificate_rotates_under_load_without_a_failed_rpc() {
    const RECORDS: usize = 50;
    let p = pki();
    let ca = p.pki.ca_cert();
    let mut cfg = config(&p.ledger, &ca);
    cfg.reload_interval = FAST_RELOAD;
    let (server, metrics) = start_with(cfg).await;
    let before = server_serial(server.addr, &p.payments, &ca).await;

    // A 1 KiB receive window: the server can send only a few records ahead of the reader, so
    // the stream is still being sent when the certificate changes.
    let narrow = tonic::transport::Endpoint::from_shared(format!(
        "https://localhost:{}",
        server.addr.port()
    ))
    .unwrap()
    .initial_stream_window_size(1024)
    .connect_with_connector_lazy(zt_tls::MtlsConnector::new(
        mtls_config(&p.payments, &ca, LEDGER_ID),
        Duration::from_secs(5),
    ));
    let mut streaming = LedgerClient::new(narrow);
    for n in 0..RECORDS {
        streaming.transfer(transfer(&n.to_string())).await.unwrap();
    }
    let mut records = streaming
        .list_transfers(pb::ListTransfersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        records.message().await.unwrap().is_some(),
        "the stream has begun"
    );
    assert!(
        metrics.encode().contains("zt_rpcs_in_flight 1"),
        "a stream is in flight until its end:\n{}",
        metrics.encode()
    );

    let load = {
        let channel = mtls_channel(server.addr, &p.payments, &ca, LEDGER_ID);
        tokio::spawn(async move {
            let mut client = LedgerClient::new(channel);
            let mut failures = 0;
            for _ in 0..300 {
                if client.get_balance(balance()).await.is_err() {
                    failures += 1;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            failures
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let renewed = p.pki.issue("ledger-renewed", LEDGER_ID, &["localhost"]);
    atomic_write(&p.ledger.key, std::fs::read(&renewed.key).unwrap());
    atomic_write(&p.ledger.cert, std::fs::read(&renewed.cert).unwrap());

    eventually(
        "new handshakes present the renewed certificate",
        async || server_serial(server.addr, &p.payments, &ca).await != before,
    )
    .await;
    assert_eq!(load.await.unwrap(), 0, "RPCs failed during the rotation");
    let mut rest = 0;
    while records
        .message()
        .await
        .expect("the stream outlives the rotation")
        .is_some()
    {
        rest += 1;
    }
    assert_eq!(rest, RECORDS - 1, "every record arrived");
    assert_eq!(server.service.handled(), RECORDS as u64 + 1 + 300);
    let not_after = zt_identity::inspect_leaf(
        &rustls::pki_types::CertificateDer::from_pem_file(&renewed.cert).unwrap(),
    )
    .unwrap()
    .not_after;
    let expiry = format!(
        "zt_certificate_expiry_timestamp_seconds{{kind=\"own\",subject=\"{LEDGER_ID}\"}} {not_after}"
    );
    assert!(
        metrics.encode().contains(&expiry),
        "the expiry metric follows the rotation: {expiry}\n{}",
        metrics.encode()
    );
}

/// A policy is published the way Kubernetes updates a mounted ConfigMap (a `..data` symlink
/// swap): the next RPC on an already open connection is decided by it. Then a broken policy
/// is published: the ledger keeps deciding by the last good one, and counts the failure.
#[tokio::test]
async fn a_policy_swapped_like_a_configmap_decides_the_next_rpc_and_a_broken_one_changes_nothing() {
    let p = pki();
    let ca = p.pki.ca_cert();
    let mounted = p.pki.dir().join("policy");
    let shipped = std::fs::read(common::demo_policy()).unwrap();
    kubelet_swap(&mounted, "1", &[("ledger-policy.json", &shipped)]);
    let mut cfg = config(&p.ledger, &ca);
    cfg.policy = mounted.join("ledger-policy.json");
    cfg.reload_interval = FAST_RELOAD;
    let (server, metrics) = start_with(cfg.clone()).await;

    let mut auditor = LedgerClient::new(mtls_channel(server.addr, &p.auditor, &ca, LEDGER_ID));
    let mut payments = LedgerClient::new(mtls_channel(server.addr, &p.payments, &ca, LEDGER_ID));
    auditor
        .get_balance(balance())
        .await
        .expect("the auditor may read");

    // The auditor's read access is withdrawn.
    let mut policy: serde_json::Value = serde_json::from_slice(&shipped).unwrap();
    policy["allow_rules"]
        .as_array_mut()
        .unwrap()
        .retain(|rule| rule["name"] != "auditor-read-only");
    let withdrawn = serde_json::to_vec(&policy).unwrap();
    kubelet_swap(&mounted, "2", &[("ledger-policy.json", &withdrawn)]);
    eventually("the new policy decides", async || {
        auditor
            .get_balance(balance())
            .await
            .is_err_and(|status| status.code() == Code::PermissionDenied)
    })
    .await;
    let handled = server.service.handled();

    kubelet_swap(
        &mounted,
        "3",
        &[("ledger-policy.json", b"{\"name\": \"ledger\", ")],
    );
    let failed = format!(
        "zt_reloads_total{{file=\"{}\",result=\"error\"}} 1",
        cfg.policy.display()
    );
    eventually("the broken policy is counted", async || {
        metrics.encode().contains(&failed)
    })
    .await;
    let status = auditor.get_balance(balance()).await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "still the last good policy"
    );
    assert_eq!(
        server.service.handled(),
        handled,
        "no handler ran for a denied call"
    );
    payments
        .get_balance(balance())
        .await
        .expect("payments is still allowed");
}

/// A broken file at reload changes nothing: the ledger keeps serving with the last good
/// material, says why, and counts the failure.
#[tokio::test]
async fn a_broken_certificate_at_reload_keeps_the_last_good_one() {
    let logs = zt_testkit::Logs::capture();
    let p = pki();
    let ca = p.pki.ca_cert();
    let mut cfg = config(&p.ledger, &ca);
    cfg.reload_interval = FAST_RELOAD;
    let (server, metrics) = start_with(cfg).await;
    let before = server_serial(server.addr, &p.payments, &ca).await;

    atomic_write(&p.ledger.cert, "-----BEGIN CERTIFICATE-----\ntruncated\n");
    let failed = format!(
        "zt_reloads_total{{file=\"{}\",result=\"error\"}} 1",
        p.ledger.cert.display()
    );
    eventually("the failed reload is counted", async || {
        metrics.encode().contains(&failed)
    })
    .await;

    assert_eq!(server_serial(server.addr, &p.payments, &ca).await, before);
    let mut client = LedgerClient::new(mtls_channel(server.addr, &p.payments, &ca, LEDGER_ID));
    client.get_balance(balance()).await.expect("still serving");
    let (text, file) = (logs.text(), p.ledger.cert.display().to_string());
    let failures: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("reload failed") && line.contains(&file))
        .collect();
    assert_eq!(failures.len(), 1, "one line naming the file: {text}");
    assert!(failures[0].contains("ERROR"), "{}", failures[0]);
}

/// A CA made the way a rotated-out CA looks: valid once, expired an hour ago.
fn expired_ca(pki: &TestPki) -> std::path::PathBuf {
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    params.subject_alt_names = vec![rcgen::SanType::URI(
        format!("spiffe://{TD}").try_into().unwrap(),
    )];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "zt.example old root CA");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(30);
    params.not_after = now - time::Duration::hours(1);
    let cert = params
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    pki.write("expired-ca.pem", cert.pem())
}

/// The reported example: the bundle holds the old CA, now expired, beside the new one. The
/// expired CA is left out with a warning and counted, instead of failing every load: the
/// ledger starts, serves clients of the new CA, and takes its renewed certificate at reload.
#[tokio::test]
async fn an_expired_ca_in_the_bundle_is_left_out_and_renewal_still_lands() {
    let logs = zt_testkit::Logs::capture();
    let p = pki();
    let expired = expired_ca(&p.pki);
    let bundle = p.pki.write(
        "bundle.pem",
        [
            std::fs::read(&expired).unwrap(),
            std::fs::read(p.pki.ca_cert()).unwrap(),
        ]
        .concat(),
    );
    let mut cfg = config(&p.ledger, &bundle);
    cfg.reload_interval = FAST_RELOAD;
    let (server, metrics) = start_with(cfg).await;
    let counted = metrics.encode();
    assert!(
        counted.contains("zt_trust_bundle_cas_left_out{reason=\"expired\"} 1")
            && counted.contains("zt_trust_bundle_cas_left_out{reason=\"not_yet_valid\"} 0"),
        "{counted}"
    );
    let warned = logs.text();
    assert!(
        warned.lines().any(|line| line.contains("WARN")
            && line.contains(&*bundle.display().to_string())
            && line.contains("certificate 0")
            && line.contains("CA expired at")
            && line.contains("left out of the truststore")),
        "{warned}"
    );
    let mut client = LedgerClient::new(mtls_channel(server.addr, &p.payments, &bundle, LEDGER_ID));
    client
        .get_balance(balance())
        .await
        .expect("a client of the new CA is served");

    // Renewal: the new certificate is read although the bundle still holds the expired CA.
    let before = server_serial(server.addr, &p.payments, &bundle).await;
    let renewed = p.pki.issue("ledger-renewed", LEDGER_ID, &["localhost"]);
    atomic_write(&p.ledger.key, std::fs::read(&renewed.key).unwrap());
    atomic_write(&p.ledger.cert, std::fs::read(&renewed.cert).unwrap());
    eventually("the renewed certificate is served", async || {
        server_serial(server.addr, &p.payments, &bundle).await != before
    })
    .await;
    assert!(
        !metrics.encode().contains("result=\"error\""),
        "no failed reload"
    );
}

/// CA rotation in three steps, each a reload of the server's trust bundle: old, old+new, new.
/// Each CA publishes a CRL, both configured from the start (`--crl` twice): the new CA's list
/// revokes its stolen certificate as soon as that CA is trusted without touching its other
/// clients, and the old CA's list, still configured at the end, does not block the last
/// reload. Under load: a client of the old CA keeps calling on its open connection throughout,
/// and not one of its RPCs fails (a reload changes what new handshakes accept, never what an
/// open connection proved).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_rotation_in_three_steps() {
    use rustls::AlertDescription::{CertificateRevoked, UnknownCA};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let p = pki();
    let old_ca = p.pki.ca_cert();
    let next = TestPki::new(TD);
    let next_payments = next.issue("payments-next-ca", PAYMENTS_ID, &[]);
    let next_stolen = next.issue("payments-stolen", PAYMENTS_ID, &[]);
    let stolen_serial = zt_pki::leaf_serial(
        &std::fs::read_to_string(&next_stolen.cert).unwrap(),
        &next_stolen.cert,
    )
    .unwrap();
    let old_crl = write_crl(&p.pki, "old.crl", &[]);
    let stolen = zt_pki::Revocation::from_hex(&stolen_serial, true).unwrap();
    let next_crl = write_crl(&next, "next.crl", &[stolen]);
    let bundle = p
        .pki
        .write("trust-bundle.pem", std::fs::read(&old_ca).unwrap());
    let both = [
        std::fs::read(&old_ca).unwrap(),
        std::fs::read(next.ca_cert()).unwrap(),
    ]
    .concat();
    // The probing client trusts the server (old CA) whatever the step.
    let mut cfg = config(&p.ledger, &bundle);
    cfg.crls = vec![old_crl, next_crl];
    cfg.reload_interval = FAST_RELOAD;
    let (server, metrics) = start_with(cfg).await;
    let state = async |who| probe(server.addr, Some(who), &old_ca).await;
    let steps = async |step: &str, [old, new, stolen]: [Probe; 3]| {
        assert_eq!(state(&p.payments).await, old, "{step}: old CA's client");
        assert_eq!(state(&next_payments).await, new, "{step}: new CA's client");
        assert_eq!(
            state(&next_stolen).await,
            stolen,
            "{step}: new CA's revoked client"
        );
    };

    let mut open = LedgerClient::new(raw_channel(server.addr, Some(&p.payments), &old_ca));
    open.get_balance(balance())
        .await
        .expect("connected before the rotation");
    let (stop, calls, failures) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let load = tokio::spawn({
        let (stop, calls, failures) = (stop.clone(), calls.clone(), failures.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                if open.get_balance(balance()).await.is_err() {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                calls.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    let refused = Probe::Refused;
    steps(
        "step 1: old",
        [Probe::Accepted, refused(UnknownCA), refused(UnknownCA)],
    )
    .await;

    atomic_write(&bundle, &both);
    eventually("step 2: old + new", async || {
        state(&next_payments).await == Probe::Accepted
    })
    .await;
    steps(
        "step 2: old + new",
        [
            Probe::Accepted,
            Probe::Accepted,
            refused(CertificateRevoked),
        ],
    )
    .await;

    atomic_write(&bundle, std::fs::read(next.ca_cert()).unwrap());
    eventually("step 3: new only", async || {
        state(&p.payments).await == refused(UnknownCA)
    })
    .await;
    steps(
        "step 3: new",
        [
            refused(UnknownCA),
            Probe::Accepted,
            refused(CertificateRevoked),
        ],
    )
    .await;
    let text = metrics.encode();
    assert!(
        !text.contains("result=\"error\""),
        "no reload failed:\n{text}"
    );

    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let calls = calls.load(Ordering::Relaxed);
    assert!(
        calls > 10,
        "the load ran through the rotation ({calls} RPCs)"
    );
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "no RPC on the open connection failed ({calls} made)"
    );
}

/// CRLs that cannot be authenticated stop the ledger at startup, naming the file and why: a
/// CRL in our CA's name signed by another key (a forgery), and a CRL in a name two trusted CAs
/// with different keys share (webpki finds a CRL's CA by name alone, so the list of one would
/// be checked against the other's certificates). The same CA listed twice is one CA.
#[test]
fn crls_that_cannot_be_authenticated_are_refused_at_startup() {
    let p = pki();
    let forged = p.pki.impersonating();
    let bundle = |name: &str, cas: [&TestPki; 2]| {
        let pems = cas.map(|ca| std::fs::read(ca.ca_cert()).unwrap());
        p.pki.write(name, pems.concat())
    };
    let load = |ca: &std::path::Path, crl: &std::path::Path| {
        let mut cfg = config(&p.ledger, ca);
        cfg.crls = vec![crl.to_owned()];
        ledger::Server::load(cfg)
            .map(drop)
            .map_err(|e| e.to_string())
    };
    let ours = write_crl(&p.pki, "ca.crl", &[]);
    let forgery = write_crl(&forged, "forged.crl", &[]);

    let error = load(&p.pki.ca_cert(), &forgery).unwrap_err();
    assert!(error.contains(&forgery.display().to_string()), "{error}");
    assert!(error.contains("signature does not verify"), "{error}");

    let same_name = bundle("same-name.pem", [&p.pki, &forged]);
    let error = load(&same_name, &ours).unwrap_err();
    assert!(error.contains(&ours.display().to_string()), "{error}");
    assert!(
        error.contains("2 trusted CAs with different keys are named"),
        "{error}"
    );

    let twice = bundle("twice.pem", [&p.pki, &p.pki]);
    load(&twice, &ours).expect("one CA listed twice is one CA");
}

/// Writes `name` into `pki`'s directory: its CA's CRL (number 1) listing `revoked`.
fn write_crl(pki: &TestPki, name: &str, revoked: &[zt_pki::Revocation]) -> std::path::PathBuf {
    let crl = pki.ca().sign_crl(revoked, 1, Duration::from_secs(3600));
    pki.write(name, crl.unwrap())
}

/// A ledger with reloads every 100 ms and one CRL, `ca.crl` in the test PKI, empty for now.
async fn start_with_crl(p: &Pki) -> (ledger::Background, zt_telemetry::Metrics) {
    let crl = write_crl(&p.pki, "ca.crl", &[]);
    let mut cfg = config(&p.ledger, &p.pki.ca_cert());
    cfg.crls = vec![crl];
    cfg.reload_interval = FAST_RELOAD;
    start_with(cfg).await
}

/// Replaces the CRL of [`start_with_crl`] with one that revokes payments' certificate.
fn revoke_payments(p: &Pki) {
    let serial = zt_pki::leaf_serial(
        &std::fs::read_to_string(&p.payments.cert).unwrap(),
        &p.payments.cert,
    )
    .unwrap();
    let revoked = zt_pki::Revocation::from_hex(&serial, true).unwrap();
    let crl = p
        .pki
        .ca()
        .sign_crl(&[revoked], 2, Duration::from_secs(3600))
        .unwrap();
    atomic_write(&p.pki.dir().join("ca.crl"), crl);
}

/// Revocation: once the CRL lists a client, its handshakes fail with `certificate_revoked`,
/// and an already open connection gets UNAUTHENTICATED on its next RPC and is then closed.
#[tokio::test]
async fn a_revoked_client_is_refused_and_its_open_connection_is_cut() {
    let p = pki();
    let ca = p.pki.ca_cert();
    let (server, metrics) = start_with_crl(&p).await;

    let mut open = LedgerClient::new(raw_channel(server.addr, Some(&p.payments), &ca));
    open.get_balance(balance()).await.expect("not revoked yet");
    assert_eq!(server.service.handled(), 1);

    revoke_payments(&p);
    eventually("new handshakes are refused as revoked", async || {
        probe(server.addr, Some(&p.payments), &ca).await
            == Probe::Refused(rustls::AlertDescription::CertificateRevoked)
    })
    .await;

    let status = open.get_balance(balance()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    eventually("the open connection is closed", async || {
        metrics
            .encode()
            .contains("zt_revoked_connections_closed_total 1")
    })
    .await;
    // The old connection is gone: the channel has to redial, and that handshake is refused
    // (a transport error, not the layer's UNAUTHENTICATED on a surviving connection).
    tokio::time::sleep(Duration::from_millis(400)).await;
    let status = open.get_balance(balance()).await.unwrap_err();
    assert!(
        format!("{status:?}").contains("received fatal alert: CertificateRevoked"),
        "{status:?}"
    );
    assert_eq!(
        server.service.handled(),
        1,
        "no handler ran for the revoked peer"
    );
    assert!(
        metrics
            .encode()
            .contains("zt_tls_handshake_refusals_total{reason=\"revoked\"}"),
        "refusals by reason"
    );
}

fn transfer(key: &str) -> pb::TransferRequest {
    pb::TransferRequest {
        idempotency_key: key.into(),
        from_account: "alice".into(),
        to_account: "bob".into(),
        amount_cents: 100,
        memo: "resumption".into(),
    }
}

/// How many handshakes of `kind` (`full` or `resumed`) the server completed.
fn handshakes(metrics: &zt_telemetry::Metrics, kind: &str) -> u64 {
    let prefix = format!("zt_tls_handshakes_total{{kind=\"{kind}\"}} ");
    metrics
        .encode()
        .lines()
        .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or(0)
}

/// TLS session resumption skips the certificate exchange, but not authentication: a resumed
/// connection carries the identity verified when the session was made, the handler sees the
/// same caller, and the policy decides the same way (allowed for payments, denied for the
/// auditor, before any handler).
#[tokio::test]
async fn a_resumed_connection_has_the_same_identity_and_decisions() {
    let p = pki();
    let ca = p.pki.ca_cert();
    let (server, metrics) = start_with(config(&p.ledger, &ca)).await;
    // One client configuration per identity: its session cache carries the ticket.
    let payments = mtls_config(&p.payments, &ca, LEDGER_ID);
    let auditor = mtls_config(&p.auditor, &ca, LEDGER_ID);

    let mut clients = Vec::new();
    for round in ["full", "resumed"] {
        // A new channel is a new TCP connection and a new handshake.
        let mut pay = LedgerClient::new(config_channel(server.addr, payments.clone()));
        pay.transfer(transfer(round))
            .await
            .expect("payments may transfer");
        let mut aud = LedgerClient::new(config_channel(server.addr, auditor.clone()));
        let status = aud.transfer(transfer(round)).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{round}: {status:?}");
        assert!(status.message().contains(AUDITOR_ID), "{status:?}");
        assert_eq!(handshakes(&metrics, round), 2, "two {round} handshakes");
        clients.push(pay);
    }
    assert_eq!(handshakes(&metrics, "full"), 2, "the second round resumed");
    assert_eq!(server.service.handled(), 2, "only payments' transfers ran");

    let mut on_resumed = clients.pop().unwrap();
    let mut records = on_resumed
        .list_transfers(pb::ListTransfersRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut callers = Vec::new();
    while let Some(record) = records.message().await.unwrap() {
        callers.push((record.idempotency_key, record.initiated_by));
    }
    callers.sort();
    assert_eq!(
        callers,
        [
            ("full".to_owned(), PAYMENTS_ID.to_owned()),
            ("resumed".to_owned(), PAYMENTS_ID.to_owned())
        ],
        "the handler saw the same caller on the full and the resumed connection"
    );
}

/// A revocation (a CRL reload) empties the session store: a client holding a session ticket
/// from before cannot resume around the new CRL, its full handshake is refused as revoked.
#[tokio::test]
async fn a_session_from_before_a_revocation_does_not_resume() {
    let p = pki();
    let ca = p.pki.ca_cert();
    let (server, metrics) = start_with_crl(&p).await;
    let payments = mtls_config(&p.payments, &ca, LEDGER_ID);
    LedgerClient::new(config_channel(server.addr, payments.clone()))
        .get_balance(balance())
        .await
        .expect("not revoked yet");
    // The control: without a revocation, the ticket resumes.
    LedgerClient::new(config_channel(server.addr, payments.clone()))
        .get_balance(balance())
        .await
        .unwrap();
    assert_eq!(handshakes(&metrics, "resumed"), 1, "the session resumes");

    revoke_payments(&p);
    eventually("the CRL is reloaded", async || {
        probe(server.addr, Some(&p.payments), &ca).await
            == Probe::Refused(rustls::AlertDescription::CertificateRevoked)
    })
    .await;

    let status = LedgerClient::new(config_channel(server.addr, payments))
        .get_balance(balance())
        .await
        .unwrap_err();
    assert!(
        format!("{status:?}").contains("received fatal alert: CertificateRevoked"),
        "{status:?}"
    );
    assert_eq!(handshakes(&metrics, "resumed"), 1, "nothing resumed after");
    assert_eq!(
        server.service.handled(),
        2,
        "no handler ran for the revoked peer"
    );
}

/// rustls does not check a resumed session's certificate dates; the accept loop does. A
/// session made while the client certificate was valid cannot be resumed once it expired:
/// the connection is refused right after the handshake (`expired`), before any request.
#[tokio::test]
async fn an_expired_certificate_cannot_resume_its_session() {
    let p = pki();
    let ca = p.pki.ca_cert();
    let (server, metrics) = start_with(config(&p.ledger, &ca)).await;
    let mut short = svid_params(&[PAYMENTS_ID]);
    short.not_after = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let short = p.pki.issue_params("short-lived", short);
    let client = mtls_config(&short, &ca, LEDGER_ID);
    LedgerClient::new(config_channel(server.addr, client.clone()))
        .get_balance(balance())
        .await
        .expect("valid for two more seconds");

    // X.509 times have one-second resolution: wait until notAfter is safely in the past.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let status = LedgerClient::new(config_channel(server.addr, client))
        .get_balance(balance())
        .await
        .unwrap_err();
    // Refused by the accept loop (the connection closes), not by the authorization layer on
    // an accepted connection (which would answer UNAUTHENTICATED).
    assert_ne!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(handshakes(&metrics, "resumed"), 0);
    assert!(
        metrics
            .encode()
            .contains("zt_tls_handshake_refusals_total{reason=\"expired\"} 1"),
        "{}",
        metrics.encode()
    );
    assert_eq!(server.service.handled(), 1, "no handler ran after expiry");
}
