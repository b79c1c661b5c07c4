//! The file layouts certificate tools write, rotated the way each tool rotates them, under
//! load: cert-manager's csi-driver-spiffe (a kubelet-style `..data` volume holding `tls.crt`,
//! `tls.key`, `ca.crt`) and SPIRE's spiffe-helper (`svid.pem`, `svid_key.pem`,
//! `svid_bundle.pem`, each rewritten in place). The README's "Certificates from elsewhere"
//! gives the flags these tests use.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{LEDGER_ID, config, eventually, pki, start_with};
use zt_proto::ledger::v1 as pb;
use zt_proto::ledger::v1::ledger_client::LedgerClient;
use zt_testkit::{kubelet_swap, mtls_channel, server_serial};

const FAST_RELOAD: Duration = Duration::from_millis(100);

/// Calls GetBalance on one open connection 300 times, 5 ms apart; returns how many failed.
fn load(
    addr: std::net::SocketAddr,
    client: &zt_testkit::Identity,
    ca: &Path,
) -> tokio::task::JoinHandle<usize> {
    let channel = mtls_channel(addr, client, ca, LEDGER_ID);
    tokio::spawn(async move {
        let mut client = LedgerClient::new(channel);
        let mut failures = 0;
        for _ in 0..300 {
            let request = pb::GetBalanceRequest {
                account_id: "alice".into(),
            };
            if client.get_balance(request).await.is_err() {
                failures += 1;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        failures
    })
}

/// csi-driver-spiffe mounts `tls.crt`, `tls.key` and `ca.crt` through a `..data` symlink and
/// renews by publishing a new timestamped directory and swapping the link, as the kubelet
/// does for Secrets: `ledger --cert $DIR/tls.crt --key $DIR/tls.key --ca $DIR/ca.crt`.
#[tokio::test]
async fn cert_manager_csi_driver_spiffe_volume_rotates_without_a_failed_rpc() {
    let p = pki();
    let volume = tempfile::tempdir().unwrap();
    let dir = volume.path();
    let ca_pem = std::fs::read(p.pki.ca_cert()).unwrap();
    kubelet_swap(
        dir,
        "2026_11_30_10_00_00.1",
        &[
            ("tls.crt", &std::fs::read(&p.ledger.cert).unwrap()),
            ("tls.key", &std::fs::read(&p.ledger.key).unwrap()),
            ("ca.crt", &ca_pem),
        ],
    );
    let mut cfg = ledger::Config::with_files(
        &dir.join("tls.crt"),
        &dir.join("tls.key"),
        &dir.join("ca.crt"),
        common::demo_policy(),
    );
    cfg.reload_interval = FAST_RELOAD;
    let (server, metrics) = start_with(cfg).await;
    let ca = p.pki.ca_cert();
    let before = server_serial(server.addr, &p.payments, &ca).await;

    let calls = load(server.addr, &p.payments, &ca);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let renewed = p.pki.issue("ledger-renewed", LEDGER_ID, &["localhost"]);
    kubelet_swap(
        dir,
        "2026_11_30_10_40_00.2",
        &[
            ("tls.crt", &std::fs::read(&renewed.cert).unwrap()),
            ("tls.key", &std::fs::read(&renewed.key).unwrap()),
            ("ca.crt", &ca_pem),
        ],
    );
    eventually("the renewed certificate is served", async || {
        server_serial(server.addr, &p.payments, &ca).await != before
    })
    .await;
    assert_eq!(calls.await.unwrap(), 0, "RPCs failed during the rotation");
    assert!(
        !metrics.encode().contains("result=\"error\""),
        "no failed reload"
    );
}

/// spiffe-helper writes `svid.pem` (leaf and intermediates), `svid_key.pem` and
/// `svid_bundle.pem` in place, one after the other (truncate and write, not a rename):
/// `ledger --cert $DIR/svid.pem --key $DIR/svid_key.pem --ca $DIR/svid_bundle.pem`. The
/// reloader waits for the files to settle and reads the new pair; nothing fails meanwhile.
#[tokio::test]
async fn spire_spiffe_helper_files_rewritten_in_place_rotate_without_a_failed_rpc() {
    let p = pki();
    let files = tempfile::tempdir().unwrap();
    let (svid, key, bundle) = (
        files.path().join("svid.pem"),
        files.path().join("svid_key.pem"),
        files.path().join("svid_bundle.pem"),
    );
    std::fs::copy(&p.ledger.cert, &svid).unwrap();
    std::fs::copy(&p.ledger.key, &key).unwrap();
    std::fs::copy(p.pki.ca_cert(), &bundle).unwrap();
    let mut cfg = config(&p.ledger, &bundle);
    cfg.cert = svid.clone();
    cfg.key = key.clone();
    cfg.reload_interval = FAST_RELOAD;
    let (server, _metrics) = start_with(cfg).await;
    let ca = p.pki.ca_cert();
    let before = server_serial(server.addr, &p.payments, &ca).await;

    let calls = load(server.addr, &p.payments, &ca);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let renewed = p.pki.issue("ledger-renewed", LEDGER_ID, &["localhost"]);
    // As spiffe-helper does: the certificate, then the key, then the bundle, each in place.
    std::fs::write(&svid, std::fs::read(&renewed.cert).unwrap()).unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    std::fs::write(&key, std::fs::read(&renewed.key).unwrap()).unwrap();
    std::fs::write(&bundle, std::fs::read(p.pki.ca_cert()).unwrap()).unwrap();
    eventually("the renewed certificate is served", async || {
        server_serial(server.addr, &p.payments, &ca).await != before
    })
    .await;
    assert_eq!(calls.await.unwrap(), 0, "RPCs failed during the rotation");
    // The payments identity still works over a fresh connection with the new server cert.
    let mut client = LedgerClient::new(mtls_channel(server.addr, &p.payments, &ca, LEDGER_ID));
    client
        .get_balance(pb::GetBalanceRequest {
            account_id: "alice".into(),
        })
        .await
        .expect("served after the rotation");
}
