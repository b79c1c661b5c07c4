//! The attack catalogue against real servers on loopback: the ledger (every case blocked, no
//! handler ran), the compose lab's layout (the same, from pre-issued material), a deliberately
//! weak server (exactly the cases it lets through are NOT BLOCKED, and the exit code fails),
//! and a target that is down (inconclusive, never blocked).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use zt_identity::SpiffeId;
use zt_lab::brute::{Forgery, Options, Outcome};
use zt_lab::catalogue::{self, Case, Report, Target, Verdict};
use zt_lab::forge::Defect;
use zt_pki::{Ca, LeafRequest};

const POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../config/ledger-policy.json"
);
const LEDGER: &str = "spiffe://zt.example/ns/prod/sa/ledger";
const TRANSFER: &str = "/ledger.v1.Ledger/Transfer";

/// A CA and keystores made now: `DIR/ca.pem`, `DIR/ca.key`, `DIR/NAME.pem`, `DIR/NAME.key`.
fn pki(dir: &Path, leaves: &[(&str, &str)]) {
    let ca = Ca::generate(
        &zt_identity::TrustDomain::new("zt.example").unwrap(),
        Duration::from_secs(24 * 3600),
    )
    .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(dir.join("ca.key"), ca.key_pem()).unwrap();
    for (name, id) in leaves {
        let mut request = LeafRequest::new(SpiffeId::new(id).unwrap());
        request.dns_names = vec!["localhost".into()];
        request.lifetime = Duration::from_secs(3600);
        let leaf = ca.issue(&request).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), leaf.cert_pem).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), leaf.key_pem).unwrap();
    }
}

fn ledger_pki(dir: &Path) {
    pki(
        dir,
        &[
            ("ledger", LEDGER),
            ("payments", "spiffe://zt.example/ns/prod/sa/payments"),
            ("auditor", "spiffe://zt.example/ns/prod/sa/auditor"),
        ],
    );
}

/// A ledger on loopback with this keystore and bundle, and the real policy.
async fn ledger(cert: &Path, key: &Path, bundle: &Path) -> ledger::Background {
    let config = ledger::Config::with_files(cert, key, bundle, Path::new(POLICY));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    ledger::Server::load(config)
        .unwrap()
        .spawn(listener)
        .unwrap()
}

/// The target as `payments` sees it, with the auditor refused on Transfer.
fn target(addr: SocketAddr, bundle: &Path, dir: &Path, auditor: &Path) -> Target {
    let mut target = Target::new(
        format!("https://localhost:{}", addr.port())
            .parse()
            .unwrap(),
        LEDGER.parse().unwrap(),
        bundle.into(),
        dir.join("payments.pem"),
        dir.join("payments.key"),
    );
    target.refused = vec![
        format!(
            "{TRANSFER}@{},{}",
            auditor.join("auditor.pem").display(),
            auditor.join("auditor.key").display()
        )
        .parse()
        .unwrap(),
    ];
    // Enough to see every forgery refused; the brute-force test below runs thousands and
    // times the legitimate client.
    target.brute_force = Options {
        attempts: 100,
        max_slowdown: 0.0,
        ..Options::default()
    };
    target
}

fn names(report: &Report, label: &str) -> BTreeSet<String> {
    report
        .findings
        .iter()
        .filter(|f| f.verdict.label() == label)
        .map(|f| f.case.name().to_owned())
        .collect()
}

fn detail(report: &Report, case: Case) -> String {
    report
        .findings
        .iter()
        .find(|f| f.case == case)
        .map(|f| f.verdict.detail().to_owned())
        .unwrap_or_default()
}

/// The ledger, with the issuing CA given (a test environment): every case of the catalogue
/// runs, each is refused with the alert or status its defect calls for, and no ledger handler
/// ran for any of them.
#[tokio::test]
async fn the_ledger_blocks_every_case_and_no_handler_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ledger_pki(d);
    let running = ledger(
        &d.join("ledger.pem"),
        &d.join("ledger.key"),
        &d.join("ca.pem"),
    )
    .await;
    let mut target = target(running.addr, &d.join("ca.pem"), d, d);
    target.issuer = Some((d.join("ca.pem"), d.join("ca.key")));

    let report = catalogue::run(&target).await;
    println!("{}\n{}", report.table(), report.summary());
    assert!(report.control.is_ok(), "{:?}", report.control);
    assert_eq!(report.findings.len(), Case::ALL.len());
    for finding in &report.findings {
        assert!(
            matches!(finding.verdict, Verdict::Blocked(_)),
            "{}: {:?}",
            finding.name,
            finding.verdict
        );
    }
    let expected = [
        (Case::NoClientCert, "alert certificate_required"),
        (Case::SelfSigned, "alert unknown_ca"),
        (Case::RogueCaSameName, "alert decrypt_error"),
        (
            Case::Certificate(Defect::Expired),
            "alert certificate_expired",
        ),
        (
            Case::Certificate(Defect::NotYetValid),
            "alert certificate_expired",
        ),
        (
            Case::Certificate(Defect::WrongTrustDomain),
            "alert certificate_unknown",
        ),
        (
            Case::Certificate(Defect::TwoUriSans),
            "alert certificate_unknown",
        ),
        (
            Case::Certificate(Defect::CaAsLeaf),
            "alert certificate_unknown",
        ),
        (
            Case::Certificate(Defect::ServerAuthOnly),
            "alert certificate_unknown",
        ),
        (Case::PlaintextH2, "TLS alert record"),
        (Case::TlsHttp1, "alert no_application_protocol"),
        (Case::Tls12, "alert protocol_version"),
        (Case::BearerToken, "PERMISSION_DENIED"),
        (Case::MaliciousRequest, "PERMISSION_DENIED"),
        (
            Case::SpoofedServer,
            "server presented spiffe://zt.example/ns/zt-attack/sa/impostor",
        ),
        (Case::BruteForce, "100 forged client certificates"),
    ];
    for (case, seen) in expected {
        let how = detail(&report, case);
        assert!(how.contains(seen), "{}: {how}", case.name());
    }
    assert_eq!(report.exit_code(), catalogue::EXIT_BLOCKED);
    assert!(report.summary().ends_with(": PASS"), "{}", report.summary());
    // The control is gRPC health (not a ledger handler): no ledger handler ran at all.
    assert_eq!(running.service.handled(), 0, "a ledger handler ran");
}

/// The compose lab's layout: no CA key, the defective certificates issued beforehand by the
/// lab's `pki` (the stolen one by a federated partner's CA that the ledger trusts), the
/// impostor a compromised workload's genuine certificate. Every case runs and is blocked.
#[tokio::test]
async fn the_lab_layout_runs_every_case_from_pre_issued_material() {
    let lab = tempfile::tempdir().unwrap();
    let l = lab.path();
    zt_lab::pki::write_lab(l, Duration::from_secs(3600)).unwrap();
    let running = ledger(
        &l.join("ledger/ledger.pem"),
        &l.join("ledger/ledger.key"),
        &l.join("ledger/ca-bundle.pem"),
    )
    .await;
    let mut target = target(
        running.addr,
        &l.join("payments/ca.pem"),
        &l.join("payments"),
        &l.join("auditor"),
    );
    target.issued = Some(l.join("intruder"));

    let report = catalogue::run(&target).await;
    println!("{}\n{}", report.table(), report.summary());
    assert_eq!(
        names(&report, "BLOCKED").len(),
        Case::ALL.len(),
        "{}",
        report.table()
    );
    assert!(
        detail(&report, Case::Certificate(Defect::WrongTrustDomain))
            .contains("alert certificate_unknown")
    );
    assert!(
        detail(&report, Case::SpoofedServer)
            .contains("server presented spiffe://zt.example/ns/prod/sa/web"),
        "{}",
        detail(&report, Case::SpoofedServer)
    );
    assert_eq!(report.exit_code(), catalogue::EXIT_BLOCKED);
    assert_eq!(running.service.handled(), 0, "a ledger handler ran");
}

/// Without the CA key or pre-issued material the six cases that need a trusted CA are
/// SKIPPED with the reason (and do not fail the run); the rest run and are blocked.
#[tokio::test]
async fn with_only_a_bundle_the_cases_needing_the_ca_are_skipped_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ledger_pki(d);
    let running = ledger(
        &d.join("ledger.pem"),
        &d.join("ledger.key"),
        &d.join("ca.pem"),
    )
    .await;
    let mut target = target(running.addr, &d.join("ca.pem"), d, d);
    target.cases.retain(|c| *c != Case::BruteForce);

    let report = catalogue::run(&target).await;
    let skipped: BTreeSet<_> = [
        "expired",
        "not-yet-valid",
        "wrong-trust-domain",
        "two-uri-sans",
        "ca-as-leaf",
        "server-auth-only",
    ]
    .map(String::from)
    .into();
    assert_eq!(names(&report, "SKIPPED"), skipped, "{}", report.table());
    assert!(
        detail(&report, Case::Certificate(Defect::Expired)).contains("needs --ca-cert/--ca-key")
    );
    assert_eq!(names(&report, "BLOCKED").len(), Case::ALL.len() - 1 - 6);
    assert!(
        detail(&report, Case::SpoofedServer).contains("proves the chain check only"),
        "{}",
        detail(&report, Case::SpoofedServer)
    );
    assert_eq!(report.exit_code(), catalogue::EXIT_BLOCKED);
    assert_eq!(running.service.handled(), 0);
}

/// A deliberately weak server: TLS 1.2 and 1.3, any client certificate or none accepted, and
/// plaintext HTTP/2 on the same port; gRPC health with no authorization at all. The catalogue
/// reports exactly what it lets through as NOT BLOCKED, fails the exit code, and says so in
/// JUnit.
#[tokio::test]
async fn a_weak_server_is_caught_case_by_case_and_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pki(
        d,
        &[
            ("weak", "spiffe://zt.example/ns/demo/sa/weak"),
            ("payments", "spiffe://zt.example/ns/prod/sa/payments"),
        ],
    );
    let addr = weak_server(&d.join("weak.pem"), &d.join("weak.key"), false).await;
    let mut target = Target::new(
        format!("https://localhost:{}", addr.port())
            .parse()
            .unwrap(),
        "spiffe://zt.example/ns/demo/sa/weak".parse().unwrap(),
        d.join("ca.pem").as_path().into(),
        d.join("payments.pem"),
        d.join("payments.key"),
    );
    target.issuer = Some((d.join("ca.pem"), d.join("ca.key")));
    target.refused = vec!["/weak.v1.Admin/Delete".parse().unwrap()];
    target.brute_force = Options {
        attempts: 50,
        max_slowdown: 0.0,
        ..Options::default()
    };

    let report = catalogue::run(&target).await;
    println!("{}\n{}", report.table(), report.summary());
    assert!(report.control.is_ok(), "{:?}", report.control);
    let blocked: BTreeSet<_> = ["plaintext-http1", "tls-http1", "spoofed-server"]
        .map(String::from)
        .into();
    let through: BTreeSet<String> = Case::ALL
        .iter()
        .map(|c| c.name().to_owned())
        .filter(|n| !blocked.contains(n))
        .collect();
    assert_eq!(names(&report, "NOT BLOCKED"), through, "{}", report.table());
    assert_eq!(names(&report, "BLOCKED"), blocked, "{}", report.table());
    // The unauthorized method reached the server (its router answered): not blocked.
    assert!(detail(&report, Case::MaliciousRequest).contains("UNIMPLEMENTED"));
    assert!(detail(&report, Case::PlaintextH2).contains("plaintext HTTP/2"));
    assert!(
        detail(&report, Case::BruteForce).contains("50 of 50 forged certificates were accepted")
    );
    assert_eq!(report.exit_code(), catalogue::EXIT_NOT_BLOCKED);
    assert!(
        report.summary().contains(" 15 NOT BLOCKED, "),
        "{}",
        report.summary()
    );
    assert!(report.summary().ends_with(": FAIL"));

    let mut xml = Vec::new();
    zt_lab::junit::write(&report, &mut xml).unwrap();
    let xml = String::from_utf8(xml).unwrap();
    assert!(
        xml.contains(r#"tests="19" failures="15" errors="0" skipped="0""#),
        "{xml}"
    );
    assert_eq!(xml.matches("<testcase ").count(), 19);
    assert_eq!(xml.matches("<failure ").count(), 15);
    assert!(xml.contains(r#"name="malicious-request /weak.v1.Admin/Delete as spiffe://zt.example/ns/prod/sa/payments""#));
}

/// A server that speaks only plaintext HTTP/2: the control call over TLS fails, so no attack
/// over TLS can be judged, but the run says what the server is (plaintext-h2 NOT BLOCKED) and
/// fails with exit 1.
#[tokio::test]
async fn a_plaintext_only_server_is_reported_as_such_and_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pki(
        d,
        &[
            ("weak", "spiffe://zt.example/ns/demo/sa/weak"),
            ("payments", "spiffe://zt.example/ns/prod/sa/payments"),
        ],
    );
    let addr = weak_server(&d.join("weak.pem"), &d.join("weak.key"), true).await;
    let target = Target::new(
        format!("https://localhost:{}", addr.port())
            .parse()
            .unwrap(),
        "spiffe://zt.example/ns/demo/sa/weak".parse().unwrap(),
        d.join("ca.pem").as_path().into(),
        d.join("payments.pem"),
        d.join("payments.key"),
    );
    let report = catalogue::run(&target).await;
    println!("{}\n{}", report.table(), report.summary());
    assert!(report.control.is_err());
    assert_eq!(
        names(&report, "NOT BLOCKED"),
        BTreeSet::from(["plaintext-h2".to_owned()])
    );
    assert_eq!(names(&report, "SKIPPED").len(), Case::ALL.len() - 1);
    assert!(detail(&report, Case::PlaintextH2).contains("answered OK"));
    assert_eq!(report.exit_code(), catalogue::EXIT_NOT_BLOCKED);
}

/// A target that is down: the control call fails, no attack runs, the run is INCONCLUSIVE
/// (exit 3), and JUnit reports an error on `control`; never BLOCKED.
#[tokio::test]
async fn a_target_that_is_down_is_inconclusive_never_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ledger_pki(d);
    let target = target("127.0.0.1:1".parse().unwrap(), &d.join("ca.pem"), d, d);
    let report = catalogue::run(&target).await;
    assert!(report.control.is_err());
    assert_eq!(names(&report, "SKIPPED").len(), Case::ALL.len());
    assert_eq!(report.exit_code(), catalogue::EXIT_INCONCLUSIVE);
    let mut xml = Vec::new();
    zt_lab::junit::write(&report, &mut xml).unwrap();
    let xml = String::from_utf8(xml).unwrap();
    assert!(xml.contains(r#"failures="0" errors="1""#), "{xml}");
    assert!(xml.contains("<error "), "{xml}");
}

/// Brute force: 2,000 handshakes, each with a freshly forged certificate (self-signed and
/// rogue-CA ones claiming payments' SPIFFE ID, random ones), 8 at a time, while payments calls
/// `GetBalance` every 2 ms from its own thread. Every forgery is refused during the handshake
/// or at the door, counted by reason by the ledger, no handler runs for any, and every one of
/// payments' calls gets past authorization; its p99 under attack stays within 2x of the
/// quiet one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brute_force_every_forgery_refused_and_counted_no_handler_payments_unhurt() {
    let lab = tempfile::tempdir().unwrap();
    let l = lab.path();
    zt_lab::pki::write_lab(l, Duration::from_secs(3600)).unwrap();
    let running = Isolated::serve(l);
    let metrics = &running.metrics;
    let mut target = target(
        running.addr,
        &l.join("payments/ca.pem"),
        &l.join("payments"),
        &l.join("auditor"),
    );
    // A ledger method as the control, so that payments' own calls run a handler and can be
    // counted. 250 a second rather than the lab's 400: in a debug build, in one process, the
    // attacker's own TLS work weighs more on the two cores the server and payments share.
    target.control = "/ledger.v1.Ledger/GetBalance".into();
    let options = Options {
        rate: 250,
        ..Options::default()
    };
    let report = zt_lab::brute::attack(&target, &options).await.unwrap();
    println!("{}", report.verdict().detail());
    assert_eq!(report.tried(), 2000, "{:?}", report.tally);

    // Each forgery was refused with the alert its defect calls for, until this address had
    // failed its burst of handshakes; from then on at the door, before any TLS.
    let alert = |forgery| match forgery {
        Forgery::SelfSigned => "unknown_ca",
        Forgery::RogueCa => "decrypt_error",
        _ => "certificate_unknown",
    };
    let mut alerted = 0;
    for ((forgery, outcome), n) in &report.tally {
        match outcome {
            Outcome::Refused(seen) => {
                assert_eq!(seen, alert(*forgery), "{forgery:?}");
                alerted += n;
            }
            Outcome::Closed => {}
            other => panic!("{forgery:?}: {other:?} {n} times: {:?}", report.tally),
        }
    }
    // And the ledger counted each by its reason: the handshakes it judged, and the rest.
    let counted = metrics.encode();
    let count = |reason: &str| -> usize {
        let prefix = format!("zt_tls_handshake_refusals_total{{reason=\"{reason}\"}} ");
        counted
            .lines()
            .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
            .unwrap_or(0)
    };
    let judged: usize = [
        "unknown_ca",
        "bad_certificate",
        "untrusted_trust_domain",
        "not_svid",
        "malformed_certificate",
    ]
    .into_iter()
    .map(count)
    .sum();
    assert_eq!(judged, alerted, "{counted}");
    assert_eq!(judged + count("source_failure_limit"), 2000, "{counted}");
    assert!(
        (32..2000).contains(&judged),
        "the burst was judged, then the door closed: {judged} judged"
    );
    // Handlers ran for payments' own calls (one to connect, then the quiet and the attacked
    // ones), never for a forgery.
    let quiet = report.quiet.as_ref().unwrap();
    let attacked = report.under_attack.as_ref().unwrap();
    assert_eq!((quiet.failed, attacked.failed), (0, 0));
    assert_eq!(
        running.service.handled(),
        1 + (quiet.samples.len() + attacked.samples.len()) as u64,
        "a handler ran for something other than payments' own calls"
    );
    let (q, a, ratio) = report.slowdown().unwrap();
    println!(
        "brute force: {} handshakes in {:?} (minted in {:?}); payments p99 {q:?} quiet, {a:?} \
         under attack ({ratio:.2}x) over {} and {} calls",
        report.tried(),
        report.attack_took,
        report.minted_in,
        quiet.samples.len(),
        attacked.samples.len()
    );
    assert!(
        ratio <= 2.0,
        "payments' p99 under the flood {ratio:.2}x the quiet one"
    );
}

/// A ledger on a runtime of its own (2 workers) in its own thread, as in its own process: the
/// attacker's tasks on the test's runtime neither queue behind the ledger's nor it behind
/// theirs (they still share the CPU, as containers on one host do).
struct Isolated {
    addr: SocketAddr,
    service: ledger::LedgerService,
    metrics: zt_telemetry::Metrics,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Isolated {
    fn serve(lab: &Path) -> Self {
        let dir: PathBuf = lab.join("ledger");
        let (started, ready) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let config = ledger::Config::with_files(
                    &dir.join("ledger.pem"),
                    &dir.join("ledger.key"),
                    &dir.join("ca-bundle.pem"),
                    Path::new(POLICY),
                );
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let server = ledger::Server::load(config).unwrap();
                let metrics = server.metrics().clone();
                let running = server.spawn(listener).unwrap();
                started
                    .send((running.addr, running.service.clone(), metrics))
                    .unwrap();
                let _ = stopped.await;
                drop(running);
            });
        });
        let (addr, service, metrics) = ready.recv().unwrap();
        Self {
            addr,
            service,
            metrics,
            _stop: stop,
        }
    }
}

// ---- the weak server ------------------------------------------------------------------------

/// Serves gRPC health on loopback with every mistake the catalogue looks for; returns its
/// address. A connection whose first byte is a TLS handshake record gets TLS (1.2 or 1.3, any
/// client certificate or none, ALPN h2); any other, or every one if `plaintext_only`, gets
/// plaintext HTTP/2.
async fn weak_server(cert: &Path, key: &Path, plaintext_only: bool) -> SocketAddr {
    let chain = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(Arc::new(AnyClient(provider)))
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (connections, incoming) = tokio::sync::mpsc::channel::<std::io::Result<Conn>>(64);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, connections) = (acceptor.clone(), connections.clone());
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                if tcp.peek(&mut first).await.unwrap_or(0) == 0 {
                    return;
                }
                let conn = if first[0] == 0x16 && !plaintext_only {
                    match acceptor.accept(tcp).await {
                        Ok(tls) => Conn::Tls(Box::new(tls)),
                        Err(_) => return,
                    }
                } else {
                    Conn::Plain(tcp)
                };
                let _ = connections.send(Ok(conn)).await;
            });
        }
    });
    let (_reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::ReceiverStream::new(incoming)),
    );
    addr
}

/// Accepts any client certificate, or none, and any signature.
#[derive(Debug)]
struct AnyClient(Arc<rustls::crypto::CryptoProvider>);

impl ClientCertVerifier for AnyClient {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }
}

/// A weak server's connection: TLS or plaintext.
enum Conn {
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Plain(TcpStream),
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
            Conn::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
            Conn::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
            Conn::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
            Conn::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
        }
    }
}
