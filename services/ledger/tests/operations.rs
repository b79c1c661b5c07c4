//! Operations on a live ledger: certificate rotation, CA rotation, revocation, broken files at
//! reload, audit lines, shadow decisions and metrics. Real sockets, real files, real reloads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

mod common;

use std::time::Duration;

use common::{LEDGER_ID, PAYMENTS_ID, TD, config, eventually, pki, start_with};
use tonic::Code;
use zt_proto::ledger::v1 as pb;
use zt_proto::ledger::v1::ledger_client::LedgerClient;
use zt_testkit::{TestPki, atomic_write, mtls_channel, probe, raw_channel, server_serial};
use zt_tls::Probe;

const FAST_RELOAD: Duration = Duration::from_millis(100);

fn balance() -> pb::GetBalanceRequest {
    pb::GetBalanceRequest {
        account_id: "alice".into(),
    }
}

/// The server's certificate is replaced (atomic rename) while a client keeps calling on an
/// open connection: not one RPC fails, and new handshakes see the new certificate.
#[tokio::test]
async fn server_certificate_rotates_under_load_without_a_failed_rpc() {
    let p = pki();
    let ca = p.pki.ca_cert();
    let mut cfg = config(&p.ledger, &ca);
    cfg.reload_interval = FAST_RELOAD;
    let (server, _) = start_with(cfg).await;
    let before = server_serial(server.addr, &p.payments, &ca).await;

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
    assert_eq!(server.service.handled(), 300);
}

/// A broken file at reload changes nothing: the ledger keeps serving with the last good
/// material, says why, and counts the failure.
#[tokio::test]
async fn a_broken_certificate_at_reload_keeps_the_last_good_one() {
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
}

/// CA rotation in three steps, each a reload of the server's trust bundle: old, old+new, new.
#[tokio::test]
async fn ca_rotation_in_three_steps() {
    let p = pki();
    let old_ca = p.pki.ca_cert();
    let next = TestPki::new(TD);
    let next_payments = next.issue("payments-next-ca", PAYMENTS_ID, &[]);
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
    cfg.reload_interval = FAST_RELOAD;
    let (server, _) = start_with(cfg).await;
    let state = async |who| probe(server.addr, Some(who), &old_ca).await;

    assert_eq!(state(&p.payments).await, Probe::Accepted, "step 1: old");
    assert_eq!(
        state(&next_payments).await,
        Probe::Refused(rustls::AlertDescription::DecryptError),
        "step 1: the new CA is not trusted yet"
    );

    atomic_write(&bundle, &both);
    eventually("step 2: old + new", async || {
        state(&next_payments).await == Probe::Accepted
    })
    .await;
    assert_eq!(
        state(&p.payments).await,
        Probe::Accepted,
        "step 2: old still trusted"
    );

    atomic_write(&bundle, std::fs::read(next.ca_cert()).unwrap());
    eventually("step 3: new only", async || {
        state(&p.payments).await != Probe::Accepted
    })
    .await;
    assert_eq!(
        state(&next_payments).await,
        Probe::Accepted,
        "step 3: new trusted"
    );
}

/// Revocation: once the CRL lists a client, its handshakes fail with `certificate_revoked`,
/// and an already open connection gets UNAUTHENTICATED on its next RPC and is then closed.
#[tokio::test]
async fn a_revoked_client_is_refused_and_its_open_connection_is_cut() {
    let p = pki();
    let ca = p.pki.ca_cert();
    let crl = p.pki.write(
        "ca.crl",
        p.pki
            .ca()
            .sign_crl(&[], 1, Duration::from_secs(3600))
            .unwrap(),
    );
    let mut cfg = config(&p.ledger, &ca);
    cfg.crls = vec![crl.clone()];
    cfg.reload_interval = FAST_RELOAD;
    let (server, metrics) = start_with(cfg).await;

    let mut open = LedgerClient::new(raw_channel(server.addr, Some(&p.payments), &ca));
    open.get_balance(balance()).await.expect("not revoked yet");
    assert_eq!(server.service.handled(), 1);

    let serial = zt_pki::leaf_serial(
        &std::fs::read_to_string(&p.payments.cert).unwrap(),
        &p.payments.cert,
    )
    .unwrap();
    let revoked = zt_pki::Revocation::from_hex(&serial, true).unwrap();
    atomic_write(
        &crl,
        p.pki
            .ca()
            .sign_crl(&[revoked], 2, Duration::from_secs(3600))
            .unwrap(),
    );
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
