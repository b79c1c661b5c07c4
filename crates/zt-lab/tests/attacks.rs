//! Every intruder against real ledgers on loopback (the same binaries' code the compose lab
//! runs, without Docker): each must be blocked, for the right reason.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use zt_lab::attack::{Attack, Target, Verdict, run};

const POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../config/ledger-policy.json"
);

async fn serve(dir: &Path, name: &str) -> ledger::Background {
    let file = |f: &str| dir.join(name).join(f);
    let config = ledger::Config::with_files(
        &file(&format!("{name}.pem")),
        &file(&format!("{name}.key")),
        &file("ca-bundle.pem"),
        Path::new(POLICY),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    ledger::Server::load(config)
        .unwrap()
        .spawn(listener)
        .unwrap()
}

fn target(dir: &Path, addr: SocketAddr, identity: Option<&str>) -> Target {
    Target {
        server: format!("https://localhost:{}", addr.port())
            .parse()
            .unwrap(),
        server_id: "spiffe://zt.example/ns/prod/sa/ledger".parse().unwrap(),
        material: dir.join("intruder"),
        cert: identity.map(|n| dir.join(n).join(format!("{n}.pem"))),
        key: identity.map(|n| dir.join(n).join(format!("{n}.key"))),
        ca: dir.join(identity.unwrap_or("intruder")).join("ca.pem"),
    }
}

#[tokio::test]
async fn every_intruder_is_blocked_and_no_handler_runs() {
    let lab = tempfile::tempdir().unwrap();
    zt_lab::pki::write_lab(lab.path(), Duration::from_secs(3600)).unwrap();
    // The `expired` leaf lives 1 s; X.509 times have 1 s resolution and the check is inclusive.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let real = serve(lab.path(), "ledger").await;
    let fake = serve(lab.path(), "impostor").await;
    let (ledger, impostor) = (real.addr, fake.addr);

    let cases = [
        (
            Attack::NoCert,
            target(lab.path(), ledger, None),
            "alert certificate_required",
        ),
        (
            Attack::RogueCa,
            target(lab.path(), ledger, None),
            "alert decrypt_error",
        ),
        (
            Attack::StolenCert,
            target(lab.path(), ledger, None),
            "alert certificate_unknown",
        ),
        (
            Attack::ExpiredCert,
            target(lab.path(), ledger, None),
            "alert certificate_expired",
        ),
        (
            Attack::BearerToken,
            target(lab.path(), ledger, None),
            "alert certificate_required; token with a low-privilege workload's certificate: \
             refused by the authorization layer: PERMISSION_DENIED",
        ),
        (
            Attack::Plaintext,
            target(lab.path(), ledger, None),
            "answered the HTTP/2 preface with a TLS alert",
        ),
        (
            Attack::MaliciousRequest,
            target(lab.path(), ledger, Some("auditor")),
            "refused per method",
        ),
        (
            Attack::SpoofedServer,
            target(lab.path(), impostor, Some("payments")),
            "presented spiffe://zt.example/ns/prod/sa/web",
        ),
    ];
    for (attack, target, why) in cases {
        match run(attack, &target).await {
            Verdict::Blocked(how) => assert!(how.contains(why), "{attack:?}: {how}"),
            other => panic!("{attack:?}: {other:?}"),
        }
    }
    assert_eq!(
        real.service.handled(),
        0,
        "no intruder reached a ledger handler"
    );
    assert_eq!(
        fake.service.handled(),
        0,
        "payments sent the impostor nothing"
    );
}

#[tokio::test]
async fn a_legitimate_identity_is_not_blocked_so_the_verdict_means_something() {
    let lab = tempfile::tempdir().unwrap();
    zt_lab::pki::write_lab(lab.path(), Duration::from_secs(3600)).unwrap();
    let running = serve(lab.path(), "ledger").await;
    let ledger = running.addr;
    // The payments identity may move money: the "malicious request" is then a breach.
    let verdict = run(
        Attack::MaliciousRequest,
        &target(lab.path(), ledger, Some("payments")),
    )
    .await;
    assert!(matches!(verdict, Verdict::Breach(_)), "{verdict:?}");
    // And a target that is down is inconclusive, never "blocked".
    let down = target(lab.path(), "127.0.0.1:1".parse().unwrap(), None);
    assert!(matches!(
        run(Attack::NoCert, &down).await,
        Verdict::Inconclusive(_)
    ));
}
