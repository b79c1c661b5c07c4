//! The certificate catalogue: every kind of bad client certificate, made by the project's CA
//! code (rcgen) *and* by a tool nobody here wrote (`openssl`), presented to a real ledger over
//! a real socket. Each case asserts the refusal (the TLS alert the client receives), the
//! reason the ledger logged and counted, and that no handler ran. A few good certificates
//! from the same tools are accepted, so a refusal means something.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::{PAYMENTS_ID, Pki, TD, config, pki, s_client, start_with};
use rustls::AlertDescription as Alert;
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use zt_proto::ledger::v1 as pb;
use zt_proto::ledger::v1::ledger_client::LedgerClient;
use zt_testkit::{Identity, Logs, config_channel, probe_with, raw_config, svid_params};
use zt_tls::Probe;

/// Makes certificates with the `openssl` command line, signed by a CA given as files.
struct OpenSsl {
    dir: PathBuf,
}

/// One certificate request for [`OpenSsl::issue`].
struct Leaf<'a> {
    name: &'a str,
    /// `openssl x509` extension lines for the `[ext]` section.
    extensions: &'a [&'a str],
    /// `ec` (P-256) or `rsa:BITS`.
    key: &'a str,
    /// Signature digest: `sha256`, `sha1`, ...
    digest: &'a str,
}

impl<'a> Leaf<'a> {
    /// An X509-SVID as the profile wants it, for `uri`, with P-256 and SHA-256.
    fn svid(name: &'a str, extensions: &'a [&'a str]) -> Self {
        Self {
            name,
            extensions,
            key: "ec",
            digest: "sha256",
        }
    }
}

impl OpenSsl {
    fn new(dir: &Path) -> Self {
        let dir = dir.join("openssl");
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    fn run(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("openssl is installed (.ci/run installs it)");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    fn new_key(&self, name: &str, key: &str) -> String {
        let path = self.file(&format!("{name}.key"));
        if let Some(bits) = key.strip_prefix("rsa:") {
            self.run(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                &format!("rsa_keygen_bits:{bits}"),
                "-out",
                &path,
            ]);
        } else {
            self.run(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &path,
            ]);
        }
        path
    }

    /// A self-signed CA for `trust_domain` (its URI SAN binds it to that domain).
    fn root(&self, name: &str, trust_domain: &str) -> (String, String) {
        let key = self.new_key(name, "ec");
        let cert = self.file(&format!("{name}.pem"));
        self.run(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &key,
            "-subj",
            &format!("/O=openssl/CN={name}"),
            "-days",
            "1",
            "-sha256",
            "-out",
            &cert,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            &format!("subjectAltName=URI:spiffe://{trust_domain}"),
        ]);
        (cert, key)
    }

    /// A self-signed certificate with the extension lines `extensions`.
    fn self_signed(&self, name: &str, extensions: &[&str]) -> (String, String) {
        let key = self.new_key(name, "ec");
        let cert = self.file(&format!("{name}.pem"));
        let mut args = vec![
            "req".to_owned(),
            "-x509".into(),
            "-new".into(),
            "-key".into(),
            key.clone(),
            "-subj".into(),
            format!("/O=openssl/CN={name}"),
            "-days".into(),
            "1".into(),
            "-sha256".into(),
            "-out".into(),
            cert.clone(),
        ];
        for line in extensions {
            args.push("-addext".into());
            args.push(line.replace(" = ", "=").replace(", ", ","));
        }
        self.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        (cert, key)
    }

    /// A certificate for `leaf`, signed by `issuer` (certificate, key), valid for a day.
    fn issue(&self, leaf: &Leaf<'_>, issuer: (&str, &str)) -> (String, String) {
        let key = self.new_key(leaf.name, leaf.key);
        let csr = self.file(&format!("{}.csr", leaf.name));
        let cert = self.file(&format!("{}.pem", leaf.name));
        let ext = self.file(&format!("{}.ext", leaf.name));
        let mut lines = String::from("[ext]\n");
        for line in leaf.extensions {
            lines.push_str(line);
            lines.push('\n');
        }
        std::fs::write(&ext, lines).unwrap();
        self.run(&[
            "req",
            "-new",
            "-key",
            &key,
            "-subj",
            &format!("/O=openssl/CN={}", leaf.name),
            "-out",
            &csr,
        ]);
        self.run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            issuer.0,
            "-CAkey",
            issuer.1,
            "-set_serial",
            &format!("0x{:x}", rand_serial(leaf.name)),
            "-days",
            "1",
            &format!("-{}", leaf.digest),
            "-extfile",
            &ext,
            "-extensions",
            "ext",
            "-out",
            &cert,
        ]);
        (cert, key)
    }

    /// An identity presenting `chain` (leaf first) with `key`.
    fn identity(&self, name: &str, chain: &[&str], key: &str) -> Identity {
        let mut pem = String::new();
        for cert in chain {
            pem.push_str(&std::fs::read_to_string(cert).unwrap());
        }
        let cert = self.dir.join(format!("{name}.chain.pem"));
        std::fs::write(&cert, pem).unwrap();
        Identity {
            cert,
            key: PathBuf::from(key),
        }
    }
}

/// A distinct serial per name, so no two certificates of one issuer share one.
fn rand_serial(name: &str) -> u64 {
    use std::hash::{BuildHasher as _, RandomState};
    RandomState::new().hash_one(name) >> 1
}

fn svid_extensions(san: &str) -> Vec<String> {
    vec![
        "basicConstraints = critical, CA:FALSE".into(),
        "keyUsage = critical, digitalSignature".into(),
        "extendedKeyUsage = clientAuth, serverAuth".into(),
        format!("subjectAltName = {san}"),
    ]
}

fn payments_uri() -> String {
    format!("URI:{PAYMENTS_ID}")
}

fn balance() -> pb::GetBalanceRequest {
    pb::GetBalanceRequest {
        account_id: "alice".into(),
    }
}

/// The test PKI's CA as files openssl can sign with.
fn ca_files(p: &Pki) -> (String, String) {
    let key = p.pki.write("ca.key", p.pki.ca().key_pem());
    (
        p.pki.ca_cert().to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    )
}

/// A refused case: what it presents, the alert the client must receive, and the reason the
/// ledger must log (`reason="..."`) and count.
struct Refused {
    what: String,
    /// The client: presents the bad certificate (or none).
    client: Arc<ClientConfig>,
    alert: Alert,
    reason: &'static str,
}

/// A client that presents `chain` with the key of `key_of` without the checks rustls's own
/// builder makes (it parses the leaf and refuses garbage or an unknown critical extension),
/// trusting `ca` for the server.
fn presenting_unchecked(
    chain: Vec<CertificateDer<'static>>,
    key_of: &Identity,
    ca: &Path,
) -> Arc<ClientConfig> {
    let provider = zt_tls::crypto_provider();
    let key = PrivateKeyDer::from_pem_file(&key_of.key).unwrap();
    let signer = provider.key_provider.load_private_key(key).unwrap();
    let certified = rustls::sign::CertifiedKey::new(chain, signer);
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(der.unwrap()).unwrap();
    }
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// Presents each case to a ledger trusting `server_ca`, checks alert, log line, metric and
/// handler count; then checks that every `accepted` identity gets through.
async fn assert_catalogue(
    p: &Pki,
    trusted: &Path,
    cases: Vec<Refused>,
    accepted: &[(&str, Identity)],
) {
    let logs = Logs::capture();
    let mut cfg = config(&p.ledger, trusted);
    // Every case is two refused connections from this one address, more than the per-source
    // failure budget allows; that budget has its own test (zt-lab's brute force).
    cfg.limits.max_failed_handshakes_per_source = u32::MAX;
    let (server, metrics) = start_with(cfg).await;
    let ca = p.pki.ca_cert();
    // Every case runs and every mismatch is reported together, so a failure shows the whole
    // catalogue's state, not only its first surprise.
    let mut wrong = Vec::new();
    for case in &cases {
        let before = logs.text().len();
        let observed = probe_with(server.addr, Arc::clone(&case.client)).await;
        // A client that ignores the alert and sends a request anyway gets nothing either.
        let mut client = LedgerClient::new(config_channel(server.addr, Arc::clone(&case.client)));
        let answered = client.get_balance(balance()).await.is_ok();
        let logged = logs.text()[before..].to_owned();
        let line = logged
            .lines()
            .find(|l| l.contains("zt_tls::refused") && l.contains("refused connection"))
            .unwrap_or("(no refusal logged)")
            .to_owned();
        let reason_ok =
            line.contains(&format!("reason=\"{}\"", case.reason)) && line.contains("peer=");
        if observed != Probe::Refused(case.alert) || !reason_ok || answered {
            wrong.push(format!(
                "{}: expected {:?} and reason \"{}\", got {observed:?}{}; log: {line}",
                case.what,
                case.alert,
                case.reason,
                if answered {
                    ", AND A REQUEST WAS ANSWERED"
                } else {
                    ""
                },
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    assert_eq!(
        server.service.handled(),
        0,
        "a handler ran for a refused peer"
    );
    let counted = metrics.encode();
    for case in &cases {
        assert!(
            counted.contains(&format!(
                "zt_tls_handshake_refusals_total{{reason=\"{}\"}}",
                case.reason
            )),
            "{}: not counted",
            case.what
        );
    }
    for (what, identity) in accepted {
        let config = raw_config(Some(identity), &ca);
        assert_eq!(
            probe_with(server.addr, Arc::clone(&config)).await,
            Probe::Accepted,
            "{what}"
        );
        let mut client = LedgerClient::new(config_channel(server.addr, config));
        client.get_balance(balance()).await.expect(what);
    }
    assert_eq!(server.service.handled(), accepted.len() as u64);
}

/// Certificates the project's CA code signs (rcgen) with each defect.
#[tokio::test]
async fn bad_certificates_from_our_ca_are_refused_with_their_reason() {
    let p = pki();
    let now = time::OffsetDateTime::now_utc();
    let issue = |name: &str, edit: &dyn Fn(&mut rcgen::CertificateParams)| {
        let mut params = svid_params(&[PAYMENTS_ID]);
        edit(&mut params);
        Some(p.pki.issue_params(name, params))
    };
    let expired = issue("expired", &|c| {
        c.not_before = now - time::Duration::hours(2);
        c.not_after = now - time::Duration::hours(1);
    });
    let not_yet = issue("not-yet-valid", &|c| {
        c.not_before = now + time::Duration::hours(1);
        c.not_after = now + time::Duration::hours(2);
    });
    let server_auth_only = issue("server-auth-only", &|c| {
        c.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    });
    let cert_sign = issue("key-cert-sign", &|c| {
        c.key_usages.push(rcgen::KeyUsagePurpose::KeyCertSign);
    });
    let self_signed = Some(
        p.pki
            .self_signed("self-signed", &svid_params(&[PAYMENTS_ID])),
    );
    let ca = p.pki.ca_cert();
    let case = |what: &str, identity: Option<Identity>, alert, reason| Refused {
        what: what.to_owned(),
        client: raw_config(identity.as_ref(), &ca),
        alert,
        reason,
    };
    let mut cases = vec![
        case(
            "no certificate",
            None,
            Alert::CertificateRequired,
            "no_certificate",
        ),
        case("expired", expired, Alert::CertificateExpired, "expired"),
        case(
            "not yet valid",
            not_yet,
            Alert::CertificateExpired,
            "not_yet_valid",
        ),
        // The X509-SVID profile is checked before the chain: these never reach webpki.
        case(
            "serverAuth-only EKU on a client",
            server_auth_only,
            Alert::CertificateUnknown,
            "not_svid",
        ),
        case(
            "keyCertSign on a leaf",
            cert_sign,
            Alert::CertificateUnknown,
            "not_svid",
        ),
        case(
            "self-signed leaf",
            self_signed,
            Alert::UnknownCA,
            "unknown_ca",
        ),
    ];
    // Each SPIFFE ID syntax violation, in an otherwise valid certificate from our CA.
    let long = format!("spiffe://zt.example/{}", "a".repeat(2048));
    for (what, uri) in [
        (
            "uppercase trust domain",
            "spiffe://ZT.example/ns/prod/sa/payments",
        ),
        (
            "percent-encoding",
            "spiffe://zt.example/ns/prod/sa/pay%20ments",
        ),
        ("dot segment", "spiffe://zt.example/ns/./sa/payments"),
        ("dot-dot segment", "spiffe://zt.example/ns/../sa/payments"),
        ("trailing slash", "spiffe://zt.example/ns/prod/sa/payments/"),
        ("query", "spiffe://zt.example/ns/prod/sa/payments?x=1"),
        ("fragment", "spiffe://zt.example/ns/prod/sa/payments#x"),
        ("userinfo", "spiffe://user@zt.example/ns/prod/sa/payments"),
        ("port", "spiffe://zt.example:8443/ns/prod/sa/payments"),
        ("empty path", "spiffe://zt.example"),
        ("over 2048 bytes", long.as_str()),
        ("two URI SANs", ""),
    ] {
        let uris: Vec<&str> = if uri.is_empty() {
            vec![PAYMENTS_ID, "spiffe://zt.example/ns/prod/sa/admin"]
        } else {
            vec![uri]
        };
        let name = what.replace(' ', "-");
        let identity = Some(p.pki.issue_params(&name, svid_params(&uris)));
        cases.push(case(
            &format!("SPIFFE ID: {what}"),
            identity,
            Alert::CertificateUnknown,
            "not_svid",
        ));
    }
    cases.push(case(
        "wrong trust domain",
        Some(p.pki.issue_params(
            "evil",
            svid_params(&["spiffe://evil.example/ns/prod/sa/payments"]),
        )),
        Alert::CertificateUnknown,
        "untrusted_trust_domain",
    ));
    assert_catalogue(
        &p,
        &p.pki.ca_cert(),
        cases,
        &[("payments", p.payments.clone())],
    )
    .await;
}

/// The same defects made by `openssl`, plus what only a second tool can make: chains
/// through intermediates, SHA-1 and RSA-1024, an unknown critical extension, garbage DER.
#[tokio::test]
async fn bad_certificates_made_by_openssl_are_refused_with_their_reason() {
    let p = pki();
    let ssl = OpenSsl::new(p.pki.dir());
    let ours = ca_files(&p);
    let ours = (ours.0.as_str(), ours.1.as_str());
    let uri = payments_uri();
    let svid = svid_extensions(&uri);
    let svid: Vec<&str> = svid.iter().map(String::as_str).collect();

    // A second trust anchor for our domain, made by openssl, with intermediates under it.
    let (root, root_key) = ssl.root("openssl-root", TD);
    let intermediate_ext = [
        "basicConstraints = critical, CA:TRUE",
        "keyUsage = critical, keyCertSign, cRLSign",
    ];
    let mut chain = vec![(root.clone(), root_key.clone())];
    for i in 0..7 {
        let (issuer, issuer_key) = chain.last().unwrap().clone();
        let name = format!("intermediate-{i}");
        chain.push(ssl.issue(
            &Leaf::svid(&name, &intermediate_ext),
            (issuer.as_str(), issuer_key.as_str()),
        ));
    }
    let leaf_under = |depth: usize| {
        let (issuer, issuer_key) = &chain[depth];
        let name = format!("leaf-under-{depth}");
        let (cert, key) = ssl.issue(
            &Leaf::svid(&name, &svid),
            (issuer.as_str(), issuer_key.as_str()),
        );
        let mut presented = vec![cert];
        presented.extend(chain[1..=depth].iter().rev().map(|(c, _)| c.clone()));
        (presented, key)
    };
    let (one_level, one_level_key) = leaf_under(1);
    let with_intermediate = ssl.identity(
        "with-intermediate",
        &one_level.iter().map(String::as_str).collect::<Vec<_>>(),
        &one_level_key,
    );
    let missing_intermediate =
        ssl.identity("missing-intermediate", &[&one_level[0]], &one_level_key);
    let (seven_levels, seven_key) = leaf_under(7);
    let too_long = ssl.identity(
        "too-long",
        &seven_levels.iter().map(String::as_str).collect::<Vec<_>>(),
        &seven_key,
    );

    let single = |name: &str, leaf: Leaf<'_>| {
        let (cert, key) = ssl.issue(&leaf, ours);
        Some(ssl.identity(name, &[&cert], &key))
    };
    let good = single("openssl-good", Leaf::svid("openssl-good", &svid)).unwrap();
    let mut server_auth = svid.clone();
    server_auth[2] = "extendedKeyUsage = serverAuth";
    let mut ca_leaf = svid.clone();
    ca_leaf[0] = "basicConstraints = critical, CA:TRUE";
    ca_leaf[1] = "keyUsage = critical, digitalSignature, keyCertSign";
    let mut critical = svid.clone();
    critical.push("1.3.6.1.4.1.55555.1 = critical, ASN1:UTF8String:must understand");
    let mut uppercase = svid.clone();
    let upper = "subjectAltName = URI:spiffe://ZT.EXAMPLE/ns/prod/sa/payments";
    uppercase[3] = upper;

    let ca = p.pki.ca_cert();
    let case = |what: &str, identity: Option<Identity>, alert, reason| Refused {
        what: format!("openssl: {what}"),
        client: raw_config(identity.as_ref(), &ca),
        alert,
        reason,
    };
    let mut cases = vec![
        // The X509-SVID profile is checked before the chain, as for our CA's certificates.
        case(
            "serverAuth-only EKU",
            single("o-server-auth", Leaf::svid("o-server-auth", &server_auth)),
            Alert::CertificateUnknown,
            "not_svid",
        ),
        case(
            "CA certificate as a leaf",
            single("o-ca-leaf", Leaf::svid("o-ca-leaf", &ca_leaf)),
            Alert::CertificateUnknown,
            "not_svid",
        ),
        case(
            "SHA-1 signature",
            single(
                "o-sha1",
                Leaf {
                    digest: "sha1",
                    ..Leaf::svid("o-sha1", &svid)
                },
            ),
            Alert::DecryptError,
            "bad_certificate",
        ),
        case(
            "uppercase SPIFFE ID",
            single("o-upper", Leaf::svid("o-upper", &uppercase)),
            Alert::CertificateUnknown,
            "not_svid",
        ),
        case(
            "self-signed leaf",
            {
                let (cert, key) = ssl.self_signed("o-self-signed", &svid);
                Some(ssl.identity("o-self-signed", &[&cert], &key))
            },
            Alert::UnknownCA,
            "unknown_ca",
        ),
        case(
            "missing intermediate",
            Some(missing_intermediate),
            Alert::UnknownCA,
            "unknown_ca",
        ),
        case(
            "chain of 7 intermediates",
            Some(too_long),
            Alert::CertificateUnknown,
            "bad_certificate",
        ),
    ];
    let critical = single("o-critical", Leaf::svid("o-critical", &critical)).unwrap();
    cases.push(Refused {
        what: "openssl: unknown critical extension".into(),
        client: presenting_unchecked(
            CertificateDer::pem_file_iter(&critical.cert)
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap(),
            &critical,
            &ca,
        ),
        // The SVID check names it (RFC 5280 4.2) before webpki would refuse it.
        alert: Alert::CertificateUnknown,
        reason: "not_svid",
    });
    // A SEQUENCE header claiming 256 bytes, then text.
    let garbage = b"\x30\x82\x01\x00not a certificate at all".to_vec();
    cases.push(Refused {
        what: "openssl: malformed DER".into(),
        client: presenting_unchecked(vec![CertificateDer::from(garbage)], &p.payments, &ca),
        alert: Alert::CertificateUnknown,
        reason: "malformed_certificate",
    });

    // Trust our CA and the openssl root, both for zt.example.
    let mut bundle = std::fs::read_to_string(p.pki.ca_cert()).unwrap();
    bundle.push_str(&std::fs::read_to_string(&root).unwrap());
    let trusted = p.pki.write("bundle.pem", bundle);
    assert_catalogue(
        &p,
        &trusted,
        cases,
        &[
            ("openssl leaf from our CA", good),
            ("openssl leaf + intermediate", with_intermediate),
        ],
    )
    .await;
}

/// RSA-1024: a rustls client cannot even load such a key (ring refuses under 2048 bits), so
/// openssl presents it. The chain verifies, but the ledger accepts no RSA signature from a
/// key under 2048 bits: the handshake fails and nothing is served.
#[tokio::test]
async fn an_rsa_1024_client_key_is_refused() {
    let p = pki();
    let ssl = OpenSsl::new(p.pki.dir());
    let ours = ca_files(&p);
    let svid = svid_extensions(&payments_uri());
    let svid: Vec<&str> = svid.iter().map(String::as_str).collect();
    let (cert, key) = ssl.issue(
        &Leaf {
            key: "rsa:1024",
            ..Leaf::svid("rsa-1024", &svid)
        },
        (&ours.0, &ours.1),
    );
    let logs = Logs::capture();
    let (server, _metrics) = start_with(config(&p.ledger, &p.pki.ca_cert())).await;
    // Debian's OpenSSL refuses to even load an RSA-1024 key at its default level.
    let args = [
        "-cert",
        &cert,
        "-key",
        &key,
        "-CAfile",
        &ours.0,
        "-cipher",
        "DEFAULT@SECLEVEL=0",
    ];
    let (_, text) = s_client(server.addr, &args).await;
    assert!(
        text.contains("alert decrypt error"),
        "openssl output:\n{text}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logged = logs.text();
    assert!(
        logged.contains("refused connection")
            && logged.contains("reason=\"bad_certificate\"")
            && logged.contains("error=certificate signature does not verify"),
        "the ledger logged the refusal:\n{logged}"
    );
    assert_eq!(server.service.handled(), 0);
}
