//! Bring your own PKI, the server side: the `ledger` binary started with certificates, keys,
//! CA bundles and CRLs made by tools nobody on this project wrote (the `openssl` command line
//! and Python `cryptography`, through `interop/foreign_pki.py`; never zt-ca or rcgen), as
//! step-ca, cert-manager, Vault or a hand-run OpenSSL CA hand them to users.
//!
//! Each test says what the user brings and what must happen, and asserts the exact outcome:
//! a transfer accepted, or the process exiting non-zero before it listens with one error
//! line naming the file and the problem. The client side (the `payments` binary given the
//! same material) is `services/payments/tests/foreign_pki.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

mod common;

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{config, demo_policy, eventually, ledger_binary, start_with};
use tonic::Code;
use zt_proto::ledger::v1 as pb;
use zt_proto::ledger::v1::ledger_client::LedgerClient;
use zt_testkit::{ForeignPki, Identity, atomic_write, probe, raw_channel};
use zt_tls::Probe;

/// Where the generator keeps the RSA keys it is slow to make, shared by every test binary.
const KEY_CACHE: &str = env!("CARGO_TARGET_TMPDIR");

/// The INFO line (target `zt_reload`) of a CA bound to the only trust domain configured.
const BOUND: &str = "INFO zt_reload: CA names no trust domain (no spiffe:// URI SAN): bound to \
                     zt.example, the only trust domain configured";

fn generate(scenarios: &[&str]) -> ForeignPki {
    ForeignPki::generate(KEY_CACHE, scenarios)
}

/// A `ledger` binary that is listening; its stderr is collected line by line. Dropping it
/// kills the process.
struct Running {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Spawns `command` (from [`ledger_binary`]) and waits until it listens; panics with its
    /// log if it exits first.
    fn start(mut command: Command) -> Self {
        let mut child = command.spawn().unwrap();
        let log = collect_stderr(&mut child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let listening = log
                .lock()
                .unwrap()
                .iter()
                .find(|line| line.contains("listening (mTLS only)"))
                .and_then(|line| line.split("address=").nth(1))
                .map(|addr| addr.trim().parse().unwrap());
            if let Some(addr) = listening {
                return Self { child, addr, log };
            }
            if let Some(status) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "ledger exited ({status}):\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
            assert!(Instant::now() < deadline, "ledger not listening after 15 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every line logged so far.
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The lines logged so far that contain every one of `parts`.
    fn lines_with(&self, parts: &[&str]) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|line| parts.iter().all(|part| line.contains(part)))
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the child's stderr into a shared list of lines, on a thread of its own.
fn collect_stderr(child: &mut Child) -> Arc<Mutex<Vec<String>>> {
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    log
}

/// Runs `command` to its end (killing it after 15 s) and returns its status and stderr.
fn finish(mut command: Command) -> (ExitStatus, String) {
    let mut child = command.spawn().unwrap();
    let log = collect_stderr(&mut child);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!(
                "still running after 15 s:\n{}",
                log.lock().unwrap().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(50)); // the reader drains the closed pipe
    let text = log.lock().unwrap().join("\n");
    (status, text)
}

/// Runs a ledger that must refuse its configuration: it exits non-zero, never listened, and
/// printed exactly one error line, which is returned.
fn refused_at_startup(what: &str, command: Command) -> String {
    let (status, stderr) = finish(command);
    assert!(!status.success(), "{what}: exited 0:\n{stderr}");
    assert!(
        !stderr.contains("listening"),
        "{what}: listened despite the bad material:\n{stderr}"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{what}: want one error line:\n{stderr}");
    errors[0].to_owned()
}

/// The ledger binary with this keystore and `--ca` (a path, or `TRUST-DOMAIN=PATH`).
fn ledger(server: &Identity, ca: impl AsRef<Path>) -> Command {
    ledger_binary(&server.cert, &server.key, ca.as_ref(), demo_policy())
}

/// `TRUST-DOMAIN=PATH`, as `--ca` takes it.
fn bound(domain: &str, path: &Path) -> PathBuf {
    PathBuf::from(format!("{domain}={}", path.display()))
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

fn transfer_request(key: &str) -> pb::TransferRequest {
    pb::TransferRequest {
        idempotency_key: key.into(),
        from_account: "alice".into(),
        to_account: "bob".into(),
        amount_cents: 100,
        memo: "foreign PKI".into(),
    }
}

/// Moves $1.00 from alice to bob as `client`, which verifies the ledger's chain to `ca` (and
/// nothing else: the client side is payments' suite). Panics unless the transfer is applied.
async fn transfer(addr: SocketAddr, client: &Identity, ca: &Path, what: &str) {
    let mut ledger = LedgerClient::new(raw_channel(addr, Some(client), ca));
    static SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let key = format!(
        "foreign-pki-{}",
        SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let response = ledger
        .transfer(transfer_request(&key))
        .await
        .unwrap_or_else(|status| panic!("{what}: transfer refused: {status:?}"))
        .into_inner();
    let record = response.transfer.expect("the applied transfer");
    assert_eq!(
        (record.amount_cents, record.initiated_by.as_str()),
        (100, common::PAYMENTS_ID),
        "{what}"
    );
    assert!(!response.replayed, "{what}");
}

/// Item 1. The user brings a CA with no `spiffe://` URI SAN (`openssl req -x509`, as step-ca,
/// cert-manager and Vault CAs are) and leaves it signed (openssl). With one `--trust-domain`
/// the ledger binds the CA to it, says so in one INFO line naming the file, and a client of
/// that CA transfers. With two trust domains it cannot tell which one the CA vouches for: it
/// exits before listening with one line naming the file and certificate. Bound explicitly
/// (`--ca zt.example=ca.pem`) it serves `zt.example`, and both domains beside a partner's CA
/// (`--ca zt.example=ca.pem,partner.example=partner-ca.pem`); alone it cannot serve two
/// trust domains, since each needs a CA.
#[tokio::test(flavor = "multi_thread")]
async fn a_ca_without_a_spiffe_uri_san_is_bound_to_the_only_trust_domain() {
    let pki = generate(&["unlabelled"]);
    let ca = pki.path("unlabelled", "ca.pem");
    let server = pki.identity("unlabelled", "ledger");
    let client = pki.identity("unlabelled", "payments");

    let mut one = ledger(&server, &ca);
    one.args(["--trust-domain", "zt.example"]);
    let one = Running::start(one);
    let bound_lines = one.lines_with(&[BOUND]);
    assert_eq!(bound_lines.len(), 1, "{:#?}", one.log());
    assert!(
        bound_lines[0].contains(&format!("file={} certificate=0 ", shown(&ca)))
            && bound_lines[0].ends_with("trust_domain=zt.example"),
        "{}",
        bound_lines[0]
    );
    transfer(one.addr, &client, &ca, "one trust domain").await;

    let mut two = ledger(&server, &ca);
    two.args(["--trust-domain", "zt.example,partner.example"]);
    let line = refused_at_startup("two trust domains", two);
    assert_eq!(
        line,
        format!(
            "ledger: error: {}: certificate 0: cannot tell which trust domain this CA vouches \
             for: it has no spiffe:// URI SAN and several trust domains are configured; bind \
             the file as TRUST-DOMAIN=PATH",
            shown(&ca)
        )
    );

    // Bound explicitly, the CA serves one trust domain or, beside a partner's CA, two.
    let partner = pki.path("unlabelled", "partner-ca.pem");
    let both = format!(
        "{},{}",
        bound("zt.example", &ca).display(),
        bound("partner.example", &partner).display()
    );
    for (domains, bundles) in [
        ("zt.example", bound("zt.example", &ca)),
        ("zt.example,partner.example", PathBuf::from(&both)),
    ] {
        let mut explicit = ledger(&server, &bundles);
        explicit.args(["--trust-domain", domains]);
        let explicit = Running::start(explicit);
        assert!(
            explicit
                .lines_with(&["CA names no trust domain"])
                .is_empty(),
            "an explicit binding is not logged as a guess: {:#?}",
            explicit.log()
        );
        transfer(explicit.addr, &client, &ca, domains).await;
    }
    // Every trust domain clients may come from needs a CA: zt.example=ca.pem alone does not
    // serve two, and the line names the bundle and the domain without one.
    let mut alone = ledger(&server, bound("zt.example", &ca));
    alone.args(["--trust-domain", "zt.example,partner.example"]);
    assert_eq!(
        refused_at_startup("zt.example=ca.pem for two trust domains", alone),
        format!(
            "ledger: error: {}: no usable CA vouches for trust domain partner.example, which \
             clients may come from; add its CA (bound as partner.example=PATH if it names no \
             trust domain) or stop accepting the domain",
            ca.display()
        )
    );
}

/// Item 6. The user writes the trust domain as SPIFFE tools print it: `spiffe://zt.example`
/// or a workload's ID in it (`spiffe://zt.example/ns/prod/sa/x`, as go-spiffe's
/// `TrustDomainFromString` reads it). Both mean `zt.example`: the openssl CA without a URI SAN
/// is bound to `zt.example` and a client of it transfers. A trust domain of 256 bytes (SPIFFE
/// allows 255) is a usage error (exit 2) naming `--trust-domain`, before anything is read.
#[tokio::test(flavor = "multi_thread")]
async fn trust_domains_written_as_spiffe_ids_mean_their_domain() {
    let pki = generate(&["unlabelled"]);
    let ca = pki.path("unlabelled", "ca.pem");
    let server = pki.identity("unlabelled", "ledger");
    let client = pki.identity("unlabelled", "payments");
    for form in ["spiffe://zt.example", "spiffe://zt.example/ns/prod/sa/x"] {
        let mut command = ledger(&server, &ca);
        command.args(["--trust-domain", form]);
        let running = Running::start(command);
        assert_eq!(
            running.lines_with(&[BOUND]).len(),
            1,
            "{form}: {:#?}",
            running.log()
        );
        let configured = running.lines_with(&["ledger configured", "trust_domains=zt.example "]);
        assert_eq!(configured.len(), 1, "{form}: {:#?}", running.log());
        transfer(running.addr, &client, &ca, form).await;
    }

    let too_long = format!("{}.example", "a".repeat(256 - ".example".len()));
    assert_eq!(too_long.len(), 256);
    let mut command = ledger(&server, &ca);
    command.args(["--trust-domain", &too_long]);
    let (status, stderr) = finish(command);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.lines().next().unwrap(),
        format!(
            "error: invalid value '{too_long}' for '--trust-domain <TRUST_DOMAINS>': trust \
             domain longer than 255 bytes"
        )
    );
}

/// Item 2, OpenSSL trust settings. The user's bundle holds a plain CA and a second CA written
/// by `openssl x509 -trustout -addtrust clientAuth` (a `BEGIN TRUSTED CERTIFICATE` block);
/// all openssl-made. The second CA is not dropped: its client transfers, as does the first
/// CA's. The same CA written with `-addreject clientAuth` cannot be honoured by a reader that
/// ignores trust settings, so that bundle is refused at startup naming the file and block.
#[tokio::test(flavor = "multi_thread")]
async fn trusted_certificate_blocks_are_read_and_rejecting_ones_refused() {
    let pki = generate(&["trusted"]);
    let server = pki.identity("trusted", "a-ledger");
    let server_ca = pki.path("trusted", "ca-a.pem");
    let bundle = pki.path("trusted", "bundle-client-auth.pem");
    let running = Running::start(ledger(&server, &bundle));
    for name in ["b-payments", "a-payments"] {
        let client = pki.identity("trusted", name);
        transfer(running.addr, &client, &server_ca, name).await;
    }

    let rejecting = pki.path("trusted", "bundle-reject-client-auth.pem");
    let second_begin = 1 + std::fs::read_to_string(&server_ca).unwrap().lines().count();
    let line = refused_at_startup("-addreject clientAuth", ledger(&server, &rejecting));
    assert_eq!(
        line,
        format!(
            "ledger: error: {}: PEM block 2 (TRUSTED CERTIFICATE, line {second_begin}): OpenSSL \
             trust settings reject some uses of this certificate, which this reader cannot \
             honour; export it without them (openssl x509 -in FILE -out PLAIN)",
            shown(&rejecting)
        )
    );
}

/// Item 2, files glued by `cat` (Python `cryptography` made every certificate; the first file
/// of each pair lacks its final newline, so `END` and the next `BEGIN` share a line):
/// - a CA bundle `cat ca-a.pem ca-b.pem`: a client of the second CA transfers (and of the
///   first);
/// - a keystore `cat leaf.pem intermediate.pem`: a client trusting only the root verifies
///   the ledger through the intermediate and transfers;
/// - a bundle with a damaged character in its second block: refused at startup with one line
///   naming the file, the block, its line and the character's line and column.
#[tokio::test(flavor = "multi_thread")]
async fn files_glued_by_cat_keep_every_block_and_a_damaged_one_is_named() {
    let pki = generate(&["glued"]);
    let (ca_a, ca_b) = (pki.path("glued", "ca-a.pem"), pki.path("glued", "ca-b.pem"));
    assert!(!std::fs::read(&ca_a).unwrap().ends_with(b"\n"));
    let bundle = pki.cat("glued", "bundle.pem", &[&ca_a, &ca_b]);
    assert!(
        std::fs::read_to_string(&bundle)
            .unwrap()
            .contains("-----END CERTIFICATE----------BEGIN CERTIFICATE-----")
    );
    let running = Running::start(ledger(&pki.identity("glued", "a-ledger"), &bundle));
    for name in ["b-payments", "a-payments"] {
        transfer(running.addr, &pki.identity("glued", name), &ca_a, name).await;
    }

    let leaf = pki.path("glued", "chained-ledger.pem");
    let keystore = pki.cat(
        "glued",
        "keystore.pem",
        &[&leaf, &pki.path("glued", "intermediate.pem")],
    );
    let chained = Identity {
        cert: keystore,
        key: pki.path("glued", "chained-ledger.key"),
    };
    let root = pki.path("glued", "root.pem");
    let running = Running::start(ledger(&chained, &root));
    let client = pki.identity("glued", "root-payments");
    transfer(running.addr, &client, &root, "leaf + intermediate").await;

    // Block 2 begins where ca-a.pem ends (same line); damage the third line of its body.
    let text = std::fs::read_to_string(&bundle).unwrap();
    let begin_line = std::fs::read_to_string(&ca_a).unwrap().lines().count();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let damaged_line = begin_line + 3;
    lines[damaged_line - 1].replace_range(4..5, "!");
    let damaged = pki.write("glued", "damaged.pem", lines.join("\n") + "\n");
    let line = refused_at_startup(
        "damaged block",
        ledger(&pki.identity("glued", "a-ledger"), &damaged),
    );
    assert_eq!(
        line,
        format!(
            "ledger: error: {}: PEM block 2 (CERTIFICATE, line {begin_line}): line \
             {damaged_line}, column 5: '!' is not a base64 character",
            shown(&damaged)
        )
    );
}

/// Item 3. The user brings material this build can never verify with (Python `cryptography`
/// made it all): a CA with a URI name constraint, and keystores `leaf + intermediate` whose intermediate is `CA:FALSE` or lacks
/// keyCertSign. Each is refused at startup, before listening, with one line naming the file
/// and the certificate, instead of failing every handshake later.
#[test]
fn material_that_can_never_verify_is_refused_at_startup() {
    let pki = generate(&["unusable"]);
    let file = |name: &str| pki.path("unusable", name);
    for case in zt_testkit::UNUSABLE {
        let keystore = pki.identity(
            "unusable",
            &format!("ledger{}", case.keystore_suffix.unwrap_or("")),
        );
        let ca = file(case.ca);
        let (what, problem) = (case.what, case.problem);
        let named = if case.keystore_suffix.is_some() {
            &keystore.cert
        } else {
            &ca
        };
        let line = refused_at_startup(what, ledger(&keystore, &ca));
        assert_eq!(
            line,
            format!("ledger: error: {}: {problem}", shown(named)),
            "{what}"
        );
    }
}

/// Item 3, what changed with aws-lc-rs: a CA self-signed with ecdsa-with-SHA512 and a P-521 CA
/// (Python `cryptography`), which ring could not verify and the ledger refused at startup, are
/// now usable: beside the good CA in the `--ca` bundle, the ledger starts with no warning or
/// error and a client of the good CA transfers.
#[tokio::test(flavor = "multi_thread")]
async fn sha512_and_p521_cas_are_accepted() {
    let pki = generate(&["unusable"]);
    let good = pki.path("unusable", "ca.pem");
    let mut files = vec![good.clone()];
    files.extend(
        zt_testkit::USABLE_SINCE_AWS_LC
            .iter()
            .map(|name| pki.path("unusable", name)),
    );
    let bundle = pki.cat(
        "unusable",
        "bundle-aws-lc.pem",
        &files.iter().map(|f| f.as_path()).collect::<Vec<_>>(),
    );
    let running = Running::start(ledger(&pki.identity("unusable", "ledger"), &bundle));
    assert!(
        running.lines_with(&["WARN"]).is_empty() && running.lines_with(&["ERROR"]).is_empty(),
        "{:#?}",
        running.log()
    );
    let client = pki.identity("unusable", "payments");
    transfer(
        running.addr,
        &client,
        &good,
        "with the SHA-512 and P-521 CAs trusted",
    )
    .await;
}

/// Item 3, at reload. A running ledger (`--reload-interval 200ms`) trusting a good CA has its
/// `--ca` file replaced (atomic rename) by a CA with a URI name constraint (Python
/// `cryptography`). It keeps the last good truststore: a new client of the good CA still
/// transfers, and it logs one error line naming the file and the certificate.
#[tokio::test(flavor = "multi_thread")]
async fn a_ca_that_can_never_verify_at_reload_changes_nothing() {
    let pki = generate(&["unusable"]);
    let trusted = pki.write(
        "unusable",
        "trusted.pem",
        std::fs::read(pki.path("unusable", "ca.pem")).unwrap(),
    );
    let mut command = ledger(&pki.identity("unusable", "ledger"), &trusted);
    command.args(["--reload-interval", "200ms"]);
    let running = Running::start(command);
    let client = pki.identity("unusable", "payments");
    let good = pki.path("unusable", "ca.pem");
    transfer(running.addr, &client, &good, "before the reload").await;

    atomic_write(
        &trusted,
        std::fs::read(pki.path("unusable", "ca-uri-constraint.pem")).unwrap(),
    );
    let file = shown(&trusted);
    eventually("the failed reload is logged", async || {
        !running.lines_with(&["ERROR", &file]).is_empty()
    })
    .await;
    // Several polls later, still one line: a file that stays broken is reported once.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let errors = running.lines_with(&["ERROR"]);
    assert_eq!(errors.len(), 1, "{:#?}", running.log());
    assert!(
        errors[0].contains("zt_reload")
            && errors[0].contains(&format!(
                "{file}: certificate 0: it has a URI name constraint"
            )),
        "{}",
        errors[0]
    );
    transfer(running.addr, &client, &good, "after the failed reload").await;
}

/// Item 4. The user's bundle still holds a CA that expired yesterday beside its successor
/// (Python `cryptography`, dates in the past). The expired one is left out with one WARN line
/// naming the file and the certificate, the ledger serves, and a client of the current CA
/// transfers. A bundle of only expired CAs is refused at startup: `no usable CA`.
#[tokio::test(flavor = "multi_thread")]
async fn an_expired_ca_in_the_bundle_is_left_out_with_a_warning() {
    let pki = generate(&["expired"]);
    let file = |name: &str| pki.path("expired", name);
    let server = pki.identity("expired", "ledger");
    let current = file("ca-current.pem");
    let bundle = pki.cat(
        "expired",
        "bundle.pem",
        &[&file("ca-expired.pem"), &current],
    );
    let running = Running::start(ledger(&server, &bundle));
    let warnings = running.lines_with(&["WARN"]);
    assert_eq!(warnings.len(), 1, "{:#?}", running.log());
    let prefix = format!(
        "WARN zt_reload: {}: certificate 0 (CN=ca-expired,O=python-cryptography): CA expired at ",
        shown(&bundle)
    );
    assert!(
        warnings[0].contains(&prefix)
            && warnings[0].ends_with("Z; left out of the truststore reason=\"expired\""),
        "{}",
        warnings[0]
    );
    transfer(
        running.addr,
        &pki.identity("expired", "payments"),
        &current,
        "current CA",
    )
    .await;

    let only_expired = pki.cat(
        "expired",
        "only-expired.pem",
        &[&file("ca-expired.pem"), &file("ca-expired-2.pem")],
    );
    let line = refused_at_startup("only expired CAs", ledger(&server, &only_expired));
    assert_eq!(
        line,
        format!(
            "ledger: error: {}: no usable CA: every CA is expired or not yet valid",
            shown(&only_expired)
        )
    );
}

/// Item 5. The user runs an OpenSSL CA (`openssl ca`): root -> intermediate -> payments leaf,
/// and publishes the root's CRL (`openssl ca -gencrl`, empty at first). A client connects
/// through the intermediate and transfers; then the root revokes the intermediate
/// (`openssl ca -revoke`, `-gencrl`) and the new CRL is renamed over the configured one. The
/// next RPC on the same open connection is `UNAUTHENTICATED` and no handler runs; new
/// handshakes are refused as revoked.
#[tokio::test]
async fn revoking_an_intermediate_cuts_an_open_connection() {
    let pki = generate(&["revocation"]);
    let file = |name: &str| pki.path("revocation", name);
    let root = file("root.pem");
    let crl = pki.write(
        "revocation",
        "live.crl",
        std::fs::read(file("root.crl")).unwrap(),
    );
    let mut cfg = config(&pki.identity("revocation", "ledger"), &root);
    cfg.crls = vec![crl.clone()];
    cfg.reload_interval = Duration::from_millis(100);
    let (server, metrics) = start_with(cfg).await;
    let client = pki.identity("revocation", "payments");

    let mut open = LedgerClient::new(raw_channel(server.addr, Some(&client), &root));
    open.transfer(transfer_request("before"))
        .await
        .expect("not revoked yet");
    assert_eq!(server.service.handled(), 1);

    atomic_write(
        &crl,
        std::fs::read(file("root-revoking-intermediate.crl")).unwrap(),
    );
    eventually("new handshakes are refused as revoked", async || {
        probe(server.addr, Some(&client), &root).await
            == Probe::Refused(rustls::AlertDescription::CertificateRevoked)
    })
    .await;

    let status = open.transfer(transfer_request("after")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(
        server.service.handled(),
        1,
        "no handler ran for the revoked chain"
    );
    eventually("the open connection is closed", async || {
        metrics
            .encode()
            .contains("zt_revoked_connections_closed_total 1")
    })
    .await;
}

/// Item 7. Keys and algorithms users have: RSA 2048, 3072 and 4096, P-256, P-384 and Ed25519,
/// each as a CA's key and as the leaves' key, in each encoding its tools write: PKCS#8
/// (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) and PKCS#1 (`RSA PRIVATE KEY`). Half the cases
/// are made by Python `cryptography`, half by openssl (`KEY_CASES` in the generator names the
/// maker of each). For each case a ledger serves with the case's key and a client presenting
/// the case's key transfers.
#[tokio::test(flavor = "multi_thread")]
async fn every_key_algorithm_and_encoding_serves_and_is_accepted() {
    let pki = generate(&["keys"]);
    let cases = std::fs::read_to_string(pki.path("keys", "cases")).unwrap();
    let cases: Vec<(String, String, String)> = cases
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            (
                fields[0].to_owned(),
                fields[1].to_owned(),
                fields[4].to_owned(),
            )
        })
        .collect();
    assert_eq!(cases.len(), 8);
    for (_, _, encoding) in &cases {
        assert!(["pkcs8", "sec1", "pkcs1"].contains(&encoding.as_str()));
    }
    let label = |encoding: &str| match encoding {
        "pkcs8" => "-----BEGIN PRIVATE KEY-----",
        "sec1" => "-----BEGIN EC PRIVATE KEY-----",
        _ => "-----BEGIN RSA PRIVATE KEY-----",
    };
    // Every ledger starts at once; each is then checked in turn.
    let running: Vec<(String, Running, Identity, PathBuf)> = cases
        .iter()
        .map(|(case, _, encoding)| {
            let scenario = format!("keys/{case}");
            let server = pki.identity(&scenario, "ledger");
            let client = pki.identity(&scenario, "payments");
            for key in [&server.key, &client.key] {
                assert!(
                    std::fs::read_to_string(key)
                        .unwrap()
                        .starts_with(label(encoding)),
                    "{case}: {}",
                    key.display()
                );
            }
            let ca = pki.path(&scenario, "ca.pem");
            let mut command = ledger(&server, &ca);
            command.args(["--trust-domain", "zt.example"]);
            let child = command;
            (case.clone(), Running::start(child), client, ca)
        })
        .collect();
    for (case, ledger, client, ca) in &running {
        transfer(ledger.addr, client, ca, case).await;
        assert!(
            ledger.lines_with(&["ERROR"]).is_empty(),
            "{case}: {:#?}",
            ledger.log()
        );
    }
}

/// Item 7, encrypted keys. The user's key is encrypted (openssl made both): PKCS#8
/// (`openssl pkey -aes256`: `ENCRYPTED PRIVATE KEY`) or legacy PEM (`openssl ec -aes256`:
/// `Proc-Type: 4,ENCRYPTED`). The ledger cannot ask for a passphrase: it exits before
/// listening with one line naming the key file and saying encrypted keys are not supported.
#[test]
fn encrypted_keys_are_refused_as_encrypted() {
    let pki = generate(&["encrypted"]);
    let ca = pki.path("encrypted", "ca.pem");
    let cert = pki.path("encrypted", "ledger.pem");
    for (form, label) in [
        ("pkcs8", "ENCRYPTED PRIVATE KEY"),
        ("legacy", "EC PRIVATE KEY"),
    ] {
        let key = pki.path("encrypted", &format!("ledger-{form}-encrypted.key"));
        let server = Identity {
            cert: cert.clone(),
            key: key.clone(),
        };
        let line = refused_at_startup(form, ledger(&server, &ca));
        assert_eq!(
            line,
            format!(
                "ledger: error: {}: PEM block 1 ({label}, line 1): encrypted private keys are \
                 not supported; decrypt it (openssl pkey -in KEY -out PLAIN) and protect the \
                 file with permissions instead",
                shown(&key)
            ),
            "{form}"
        );
    }
}

/// The source article's keystore and truststore as Java users hold them: the ledger's key and
/// chain in a PKCS#12 keystore made by `openssl pkcs12 -export`, the CA in a PKCS#12
/// truststore made by the JDK's `keytool`, each password in a file. The ledger serves with
/// them and a client of the CA transfers; a wrong password is one line naming the file.
#[tokio::test(flavor = "multi_thread")]
async fn pkcs12_keystore_and_truststore_as_java_users_hold_them() {
    let pki = generate(&["unlabelled"]);
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let server = pki.identity("unlabelled", "ledger");
    let ca = pki.path("unlabelled", "ca.pem");
    std::fs::write(path("password"), "correct horse\n").unwrap();
    let run = |program: &str, args: &[&str]| {
        let out = Command::new(program)
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{program} is installed (.ci/run installs a JDK): {e}"));
        assert!(out.status.success(), "{program} {args:?}: {out:?}");
    };
    let (cert, key, ca_str) = (shown(&server.cert), shown(&server.key), shown(&ca));
    run(
        "openssl",
        &[
            "pkcs12",
            "-export",
            "-in",
            &cert,
            "-inkey",
            &key,
            "-certfile",
            &ca_str,
            "-name",
            "ledger",
            "-passout",
            "file:password",
            "-out",
            "ledger.p12",
        ],
    );
    run(
        "keytool",
        &[
            "-importcert",
            "-noprompt",
            "-alias",
            "ca",
            "-file",
            &ca_str,
            "-storetype",
            "PKCS12",
            "-keystore",
            "trust.p12",
            "-storepass:file",
            "password",
        ],
    );
    let p12 = |password: &str| {
        let mut command = ledger_binary(
            &path("ledger.p12"),
            Path::new("/nonexistent/ledger.key"),
            &path("trust.p12"),
            demo_policy(),
        );
        command.args(["--keystore-password-file", password]);
        command.args(["--truststore-password-file", password]);
        command
    };
    let running = Running::start(p12(path("password").to_str().unwrap()));
    let client = pki.identity("unlabelled", "payments");
    transfer(running.addr, &client, &ca, "PKCS#12 stores").await;
    drop(running);

    std::fs::write(path("wrong"), "battery staple\n").unwrap();
    assert_eq!(
        refused_at_startup("a wrong password", p12(path("wrong").to_str().unwrap())),
        format!(
            "ledger: error: {}: wrong password (the file's integrity check does not verify with it)",
            shown(&path("ledger.p12"))
        )
    );
}
