//! The attack catalogue: every intrusion this project defends against, tried for real against
//! any mutual-TLS gRPC endpoint, each judged BLOCKED, NOT BLOCKED, INCONCLUSIVE or SKIPPED.
//!
//! A run starts with a **control** call: the legitimate keystore calls `--control` (gRPC
//! health's `Check` unless told otherwise). Any answer but `UNAUTHENTICATED` or
//! `PERMISSION_DENIED` (`OK`, but also `INVALID_ARGUMENT` or `UNIMPLEMENTED`: a handler or the
//! router answered, so the caller got past authorization) proves the target works. Otherwise
//! no attack is run (every case is SKIPPED and the run is inconclusive), because a refusal by
//! a target that refuses everything proves nothing; only `plaintext-h2` is still tried, to
//! tell a plaintext server for what it is.
//!
//! Each attack is then BLOCKED only for the right reason: a TLS alert from the target, or
//! `UNAUTHENTICATED` / `PERMISSION_DENIED` to a call. Any other gRPC status means the call got
//! past authorization (the handler may have run): NOT BLOCKED. No answer at all, or a
//! connection closed without an alert, is INCONCLUSIVE. A case that cannot be tried with what
//! was given (it needs the issuing CA's key) is SKIPPED, with the reason.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Uri;
use rustls::ClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use zt_identity::SpiffeId;
use zt_pki::{Ca, IssuedLeaf};
use zt_tls::{BundleSource, ClientTls, MtlsConnector, Probe};

use crate::Error;
use crate::forge::{self, Defect};
use crate::grpc::{self, Answer};

/// gRPC health's `Check`: the default control method (every server built on `zt-server`
/// serves it, behind the same policy).
pub const DEFAULT_CONTROL: &str = "/grpc.health.v1.Health/Check";

/// What a stolen bearer token and password look like in the `bearer-token` case.
const TOKENS: [(&str, &str); 3] = [
    (
        "authorization",
        "Bearer eyJhbGciOiJIUzI1NiJ9.c3RvbGVu.dG9rZW4",
    ),
    ("x-api-key", "stolen-api-key"),
    ("x-password", "admin:hunter2"),
];

/// One attack of the catalogue, by its stable name ([`Case::name`]); what each tries is
/// [`Case::description`], which `zt-lab attack --help` lists.
#[allow(
    missing_docs,
    reason = "each case is described once, in Case::description"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Case {
    NoClientCert,
    SelfSigned,
    RogueCa,
    RogueCaSameName,
    /// A certificate from a CA the target trusts, with this defect: named, described and
    /// minted by [`Defect`].
    Certificate(Defect),
    PlaintextH2,
    PlaintextHttp1,
    TlsHttp1,
    Tls12,
    BearerToken,
    MaliciousRequest,
    SpoofedServer,
    BruteForce,
}

impl Case {
    /// Every case, in the order a run tries them (the derived `Ord`). A unit test checks that
    /// every [`Defect`] is here.
    pub const ALL: [Self; 18] = [
        Self::NoClientCert,
        Self::SelfSigned,
        Self::RogueCa,
        Self::RogueCaSameName,
        Self::Certificate(Defect::Expired),
        Self::Certificate(Defect::NotYetValid),
        Self::Certificate(Defect::WrongTrustDomain),
        Self::Certificate(Defect::TwoUriSans),
        Self::Certificate(Defect::CaAsLeaf),
        Self::Certificate(Defect::ServerAuthOnly),
        Self::PlaintextH2,
        Self::PlaintextHttp1,
        Self::TlsHttp1,
        Self::Tls12,
        Self::BearerToken,
        Self::MaliciousRequest,
        Self::SpoofedServer,
        Self::BruteForce,
    ];

    /// The case's stable name (as `--only` and `--skip` take it, and as JUnit names it).
    pub fn name(self) -> &'static str {
        match self {
            Self::NoClientCert => "no-client-cert",
            Self::SelfSigned => "self-signed",
            Self::RogueCa => "rogue-ca",
            Self::RogueCaSameName => "rogue-ca-same-name",
            Self::Certificate(defect) => defect.name(),
            Self::PlaintextH2 => "plaintext-h2",
            Self::PlaintextHttp1 => "plaintext-http1",
            Self::TlsHttp1 => "tls-http1",
            Self::Tls12 => "tls12",
            Self::BearerToken => "bearer-token",
            Self::MaliciousRequest => "malicious-request",
            Self::SpoofedServer => "spoofed-server",
            Self::BruteForce => "brute-force",
        }
    }

    /// What the case tries, as `zt-lab attack --help` lists it.
    pub fn description(self) -> &'static str {
        match self {
            Self::NoClientCert => "TLS without a client certificate (an unauthenticated caller)",
            Self::SelfSigned => {
                "A self-signed certificate claiming the legitimate client's SPIFFE ID"
            }
            Self::RogueCa => {
                "A certificate from a rogue CA of our own naming, claiming the legitimate \
                 client's ID"
            }
            Self::RogueCaSameName => {
                "The same from a rogue CA copying the real CA's subject name and key identifier"
            }
            Self::Certificate(defect) => defect.description(),
            Self::PlaintextH2 => {
                "The HTTP/2 preface in clear text, then a plaintext (h2c) gRPC call if it is \
                 answered"
            }
            Self::PlaintextHttp1 => "A gRPC request as plaintext HTTP/1.1",
            Self::TlsHttp1 => {
                "TLS offering only ALPN `http/1.1`, with the legitimate keystore, then an \
                 HTTP/1.1 request"
            }
            Self::Tls12 => "TLS 1.2 only, with the legitimate keystore",
            Self::BearerToken => {
                "A bearer token, API key and password in metadata, without a certificate; and \
                 with the first `--refused` identity on its refused method"
            }
            Self::MaliciousRequest => {
                "Each `--refused` method, called as the identity that must be refused on it"
            }
            Self::SpoofedServer => {
                "The client side: the legitimate client configuration (zt-client, as the \
                 target's own clients would use it) pointed at an impostor server; it must \
                 refuse it"
            }
            Self::BruteForce => {
                "Thousands of handshakes, each with a freshly forged certificate, while the \
                 legitimate client's calls are timed (see [`crate::brute`]). Runs last: a \
                 target that closes its door to an address after repeated failures would \
                 refuse later cases without judging them"
            }
        }
    }
}

/// `--only` and `--skip` take [`Case::name`]s; `--help` lists each with its
/// [`Case::description`].
impl clap::ValueEnum for Case {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()).help(self.description()))
    }
}

/// A method that an identity must be refused on: `METHOD` (as the legitimate keystore) or
/// `METHOD@CERT,KEY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The method's path, `/package.Service/Method`.
    pub method: String,
    /// The identity's certificate and key; `None`: the legitimate keystore's.
    pub keystore: Option<(PathBuf, PathBuf)>,
}

impl std::str::FromStr for Refused {
    type Err = String;

    /// `METHOD` or `METHOD@CERT,KEY`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (method, keystore) = match s.split_once('@') {
            None => (s, None),
            Some((method, files)) => {
                let (cert, key) = files.split_once(',').ok_or_else(|| {
                    format!("{s}: expected METHOD@CERT,KEY (a comma between the two files)")
                })?;
                (method, Some((PathBuf::from(cert), PathBuf::from(key))))
            }
        };
        if !method.starts_with('/') || method[1..].split('/').count() != 2 {
            return Err(format!(
                "{method}: expected a gRPC method path, /package.Service/Method"
            ));
        }
        Ok(Self {
            method: method.to_owned(),
            keystore,
        })
    }
}

/// The endpoint under test and what the catalogue may use against it.
#[derive(Debug, Clone)]
pub struct Target {
    /// `https://HOST:PORT` (https is implied; the scheme only says where to connect).
    pub server: Uri,
    /// The SPIFFE ID the server must prove to its legitimate clients.
    pub server_id: SpiffeId,
    /// The trust bundle legitimate clients use (`[TRUST-DOMAIN=]PATH`).
    pub bundle: BundleSource,
    /// The legitimate client's certificate chain (PEM or DER).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The control method the legitimate keystore calls ([`DEFAULT_CONTROL`]).
    pub control: String,
    /// Methods that given identities must be refused on (the `malicious-request` case).
    pub refused: Vec<Refused>,
    /// The issuing CA's certificate and key, in a test environment: enables the cases of
    /// [`Defect`], and an impostor with a genuine certificate in `spoofed-server`.
    pub issuer: Option<(PathBuf, PathBuf)>,
    /// A directory of pre-issued hostile certificates (`expired.pem`/`.key`, ...,
    /// `spoofed-server.pem`/`.key`), used where [`Self::issuer`] is not given.
    pub issued: Option<PathBuf>,
    /// The cases to run (all of [`Case::ALL`] by default).
    pub cases: Vec<Case>,
    /// How long to wait for any one answer (connect, handshake, call).
    pub wait: Duration,
    /// How hard `brute-force` tries.
    pub brute_force: crate::brute::Options,
}

impl Target {
    /// A target with every case, the [`DEFAULT_CONTROL`], no refused methods, no issuing CA,
    /// a 5 s wait and the default brute force.
    pub fn new(
        server: Uri,
        server_id: SpiffeId,
        bundle: BundleSource,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        Self {
            server,
            server_id,
            bundle,
            cert: cert.into(),
            key: key.into(),
            control: DEFAULT_CONTROL.to_owned(),
            refused: Vec::new(),
            issuer: None,
            issued: None,
            cases: Case::ALL.to_vec(),
            wait: Duration::from_secs(5),
            brute_force: crate::brute::Options::default(),
        }
    }
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Refused by the target's defence, and how (the alert or status seen).
    Blocked(String),
    /// The attack got through, and how.
    NotBlocked(String),
    /// Tried, but nothing can be concluded (no answer, a close without an alert).
    Inconclusive(String),
    /// Not tried: it needs material that was not given, or the control call failed.
    Skipped(String),
}

impl Verdict {
    /// `BLOCKED`, `NOT BLOCKED`, `INCONCLUSIVE` or `SKIPPED`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Blocked(_) => "BLOCKED",
            Self::NotBlocked(_) => "NOT BLOCKED",
            Self::Inconclusive(_) => "INCONCLUSIVE",
            Self::Skipped(_) => "SKIPPED",
        }
    }

    /// What was seen, in words.
    pub fn detail(&self) -> &str {
        match self {
            Self::Blocked(s) | Self::NotBlocked(s) | Self::Inconclusive(s) | Self::Skipped(s) => s,
        }
    }
}

/// One case's result.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The case.
    pub case: Case,
    /// Its name in reports: the case's, or `malicious-request METHOD as ID`.
    pub name: String,
    /// The verdict.
    pub verdict: Verdict,
    /// How long it took.
    pub took: Duration,
}

/// A whole run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The target, as given.
    pub target: String,
    /// The control call: `Ok(what it answered)` if the target works, `Err(why not)`.
    pub control: Result<String, String>,
    /// Every selected case, in order.
    pub findings: Vec<Finding>,
    /// How long the whole run took.
    pub took: Duration,
}

/// The process exit code when every case run was blocked (skipped ones aside).
pub const EXIT_BLOCKED: u8 = 0;
/// The exit code when any case was NOT BLOCKED.
pub const EXIT_NOT_BLOCKED: u8 = 1;
/// The exit code when nothing was NOT BLOCKED but the control call failed or a case was
/// INCONCLUSIVE (2 is left to usage errors).
pub const EXIT_INCONCLUSIVE: u8 = 3;

impl Report {
    /// Cases with this label.
    pub fn count(&self, label: &str) -> usize {
        self.findings
            .iter()
            .filter(|f| f.verdict.label() == label)
            .count()
    }

    /// [`EXIT_NOT_BLOCKED`] if anything got through; else [`EXIT_INCONCLUSIVE`] if the control
    /// failed or any case was inconclusive; else [`EXIT_BLOCKED`]. SKIPPED cases (material not
    /// given) do not change it.
    pub fn exit_code(&self) -> u8 {
        if self.count("NOT BLOCKED") > 0 {
            EXIT_NOT_BLOCKED
        } else if self.control.is_err() || self.count("INCONCLUSIVE") > 0 {
            EXIT_INCONCLUSIVE
        } else {
            EXIT_BLOCKED
        }
    }

    /// One line: `zt-lab attack TARGET: 17 cases: 15 BLOCKED, 0 NOT BLOCKED, 0 INCONCLUSIVE,
    /// 2 SKIPPED in 9.1 s: PASS`.
    pub fn summary(&self) -> String {
        let verdict = match self.exit_code() {
            EXIT_BLOCKED => "PASS",
            EXIT_NOT_BLOCKED => "FAIL",
            _ if self.control.is_err() => "INCONCLUSIVE (the control call failed)",
            _ => "INCONCLUSIVE",
        };
        format!(
            "zt-lab attack {}: {} cases: {} BLOCKED, {} NOT BLOCKED, {} INCONCLUSIVE, {} SKIPPED \
             in {:.1} s: {verdict}",
            self.target,
            self.findings.len(),
            self.count("BLOCKED"),
            self.count("NOT BLOCKED"),
            self.count("INCONCLUSIVE"),
            self.count("SKIPPED"),
            self.took.as_secs_f64()
        )
    }

    /// One line per case, `LABEL  NAME  DETAIL`, the control first.
    pub fn table(&self) -> String {
        let width = self
            .findings
            .iter()
            .map(|f| f.name.len())
            .max()
            .unwrap_or(0)
            .max("control".len());
        let mut lines = vec![match &self.control {
            Ok(how) => format!("{:<12}  {:<width$}  {how}", "WORKS", "control"),
            Err(why) => format!("{:<12}  {:<width$}  {why}", "FAILED", "control"),
        }];
        for f in &self.findings {
            lines.push(format!(
                "{:<12}  {:<width$}  {}",
                f.verdict.label(),
                f.name,
                f.verdict.detail()
            ));
        }
        lines.join("\n")
    }
}

/// The target with its material loaded: what every case works from.
pub(crate) struct Armed {
    pub(crate) target: Target,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The legitimate client's TLS: its keystore, and a verifier pinning the server's ID.
    pub(crate) legit: Arc<ClientTls>,
    /// The SPIFFE ID in the legitimate keystore, which forgeries claim.
    pub(crate) client_id: SpiffeId,
    /// The first certificate of the bundle (a rogue CA copies its name).
    pub(crate) real_ca: Option<CertificateDer<'static>>,
    /// The issuing CA, when given.
    pub(crate) issuer: Option<Ca>,
}

impl std::fmt::Debug for Armed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Armed")
            .field("target", &self.target)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Armed {
    /// Loads the legitimate keystore, the bundle and the issuing CA.
    ///
    /// # Errors
    /// [`Error::Identity`] if the keystore or bundle cannot be used, [`Error::File`] or
    /// [`Error::Pki`] for the issuing CA, [`Error::Target`] for an address without a host.
    pub(crate) fn load(target: &Target) -> Result<Self, Error> {
        let host = target
            .server
            .host()
            .ok_or_else(|| Error::Target(format!("{}: no host", target.server)))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = target.server.port_u16().unwrap_or(443);
        let legit = ClientTls::load(
            target.cert.clone(),
            target.key.clone(),
            None,
            vec![target.bundle.clone()],
            target.server_id.clone(),
        )?;
        let client_id = legit.keystore().spiffe_id().clone();
        let real_ca = zt_tls::load_certs(&target.bundle.path)
            .ok()
            .and_then(|certs| certs.into_iter().next());
        let issuer = match &target.issuer {
            None => None,
            Some((cert, key)) => Some(Ca::from_pem(
                &zt_pki::files::read(cert)?,
                &zt_pki::files::read(key)?,
                cert,
                key,
            )?),
        };
        Ok(Self {
            target: target.clone(),
            host,
            port,
            legit: Arc::new(legit),
            client_id,
            real_ca,
            issuer,
        })
    }

    fn wait(&self) -> Duration {
        self.target.wait
    }

    /// A channel as the legitimate client.
    pub(crate) fn legit_channel(&self) -> tonic::transport::Channel {
        zt_tls::channel(
            self.target.server.clone(),
            self.legit.connector(self.wait()),
            self.wait(),
        )
    }
}

/// Runs the selected cases against `target` and judges each. Never fails: a target that
/// cannot be loaded or reached makes the control fail and every case SKIPPED (but a
/// `plaintext-h2` that got through).
pub async fn run(target: &Target) -> Report {
    let started = Instant::now();
    let mut cases = target.cases.clone();
    cases.sort_unstable();
    cases.dedup();
    let armed = match Armed::load(target) {
        Ok(armed) => armed,
        Err(e) => {
            return not_run(
                target,
                &cases,
                format!("could not load the material: {e}"),
                started,
            );
        }
    };
    let control = control(&armed).await;
    if let Err(why) = &control {
        let mut report = not_run(target, &cases, why.clone(), started);
        // A plaintext-only server fails the control call over TLS: say what it is.
        if let Some(finding) = report
            .findings
            .iter_mut()
            .find(|f| f.case == Case::PlaintextH2)
        {
            let begun = Instant::now();
            let verdict = plaintext_h2(&armed).await;
            if matches!(verdict, Verdict::NotBlocked(_)) {
                finding.verdict = verdict;
                finding.took = begun.elapsed();
            }
        }
        return report;
    }
    let mut findings = Vec::new();
    for case in cases {
        let begun = Instant::now();
        for (name, verdict) in try_case(&armed, case).await {
            findings.push(Finding {
                case,
                name,
                verdict,
                took: begun.elapsed(),
            });
        }
    }
    Report {
        target: target.server.to_string(),
        control,
        findings,
        took: started.elapsed(),
    }
}

fn not_run(target: &Target, cases: &[Case], why: String, started: Instant) -> Report {
    let findings = cases
        .iter()
        .map(|&case| Finding {
            case,
            name: case.name().to_owned(),
            verdict: Verdict::Skipped(format!("not run: the control call failed ({why})")),
            took: Duration::ZERO,
        })
        .collect();
    Report {
        target: target.server.to_string(),
        control: Err(why),
        findings,
        took: started.elapsed(),
    }
}

/// The control call: does the target answer the legitimate keystore at all?
async fn control(a: &Armed) -> Result<String, String> {
    let method = &a.target.control;
    let answer = grpc::call(a.legit_channel(), method, &[], a.wait()).await;
    if answer.got_through() {
        Ok(format!(
            "{method} as {} answered {answer}: the target works",
            a.client_id
        ))
    } else if answer.refused() {
        Err(format!(
            "{method} as {} was refused ({answer}): give a keystore the target accepts and a \
             --control method it may call",
            a.client_id
        ))
    } else {
        Err(format!("{method} as {}: {answer}", a.client_id))
    }
}

async fn try_case(a: &Armed, case: Case) -> Vec<(String, Verdict)> {
    let one = |verdict| vec![(case.name().to_owned(), verdict)];
    let claim = &a.client_id;
    match case {
        Case::NoClientCert => one(handshake_then_call(a, None, &[]).await),
        Case::SelfSigned => one(with_forged(a, forge::self_signed(claim), &[]).await),
        Case::RogueCa => one(with_forged(a, forge::rogue_ca(claim, None), &[]).await),
        Case::RogueCaSameName => one(match &a.real_ca {
            Some(real) => with_forged(a, forge::rogue_ca(claim, Some(real)), &[]).await,
            None => Verdict::Skipped(format!(
                "no certificate could be read from {} to copy its name",
                a.target.bundle.path.display()
            )),
        }),
        Case::Certificate(defect) => one(match material(a, defect) {
            Ok(Some(leaf)) => with_forged(a, Ok(leaf), &[]).await,
            Ok(None) => Verdict::Skipped(needs_issuer(defect)),
            Err(e) => Verdict::Inconclusive(format!("could not prepare the attack: {e}")),
        }),
        Case::PlaintextH2 => one(plaintext_h2(a).await),
        Case::PlaintextHttp1 => one(plaintext_http1(a).await),
        Case::TlsHttp1 => one(tls_http1(a).await),
        Case::Tls12 => one(tls12(a).await),
        Case::BearerToken => one(bearer_token(a).await),
        Case::MaliciousRequest => malicious_requests(a).await,
        Case::SpoofedServer => one(crate::spoof::spoofed_server(a).await),
        Case::BruteForce => one(crate::brute::run(a, &a.target.brute_force).await),
    }
}

/// A certificate with `defect` from a trusted CA: minted with the issuing CA, or read from
/// the pre-issued directory; `None` when neither is there.
fn material(a: &Armed, defect: Defect) -> Result<Option<IssuedLeaf>, Error> {
    if let Some(ca) = &a.issuer {
        return defect.issue(ca, &a.client_id).map(Some);
    }
    match &a.target.issued {
        Some(dir) => read_issued(dir, defect.name()),
        None => Ok(None),
    }
}

/// `DIR/NAME.pem` and `DIR/NAME.key`, if the certificate is there.
pub(crate) fn read_issued(dir: &std::path::Path, name: &str) -> Result<Option<IssuedLeaf>, Error> {
    let cert = dir.join(format!("{name}.pem"));
    if !cert.exists() {
        return Ok(None);
    }
    let key = dir.join(format!("{name}.key"));
    Ok(Some(IssuedLeaf {
        cert_pem: zt_pki::files::read(&cert)?,
        key_pem: zt_pki::files::read(&key)?,
    }))
}

/// Why a [`Defect`] case was skipped: what it would prove, and why a bundle is not enough.
fn needs_issuer(defect: Defect) -> String {
    format!(
        "needs --ca-cert/--ca-key (or {}.pem in --issued): to prove {}, the certificate \
         must chain to a CA the target trusts; made by any other CA it would be refused for \
         its CA first, proving nothing more than rogue-ca",
        defect.name(),
        defect.proves()
    )
}

/// Presents `leaf` (trusting any server), and judges as [`handshake_then_call`].
async fn with_forged(a: &Armed, leaf: Result<IssuedLeaf, Error>, meta: &[(&str, &str)]) -> Verdict {
    let identity = match leaf.and_then(|leaf| certified(&leaf)) {
        Ok(identity) => identity,
        Err(e) => return Verdict::Inconclusive(format!("could not prepare the attack: {e}")),
    };
    handshake_then_call(a, Some(identity), meta).await
}

/// Handshakes presenting `identity` (or nothing) and waits for the target's verdict before
/// sending a byte: a TLS alert is BLOCKED. Only if the handshake is accepted is the control
/// method called (with `meta`), and then its answer decides.
async fn handshake_then_call(
    a: &Armed,
    identity: Option<Arc<CertifiedKey>>,
    meta: &[(&str, &str)],
) -> Verdict {
    let config = match attacker_config(identity, Versions::Tls13, &[b"h2"]) {
        Ok(config) => config,
        Err(e) => return Verdict::Inconclusive(format!("could not prepare the attack: {e}")),
    };
    match zt_tls::probe(&a.host, a.port, Arc::clone(&config), a.wait()).await {
        Err(e) => Verdict::Inconclusive(format!("no verdict from the target: {e}")),
        Ok(Probe::Refused(alert)) => Verdict::Blocked(format!(
            "refused during the TLS handshake with alert {}",
            zt_tls::alert_name(alert)
        )),
        Ok(Probe::Closed) => Verdict::Inconclusive(
            "the connection closed during the handshake without a TLS alert".into(),
        ),
        Ok(Probe::Accepted) => {
            let channel = zt_tls::channel(
                a.target.server.clone(),
                MtlsConnector::new(config, a.wait()),
                a.wait(),
            );
            let answer = grpc::call(channel, &a.target.control, meta, a.wait()).await;
            judge_call(&a.target.control, &answer, "the handshake was accepted")
        }
    }
}

/// BLOCKED for `UNAUTHENTICATED`/`PERMISSION_DENIED`; NOT BLOCKED for any other status;
/// INCONCLUSIVE without a gRPC answer.
fn judge_call(method: &str, answer: &Answer, context: &str) -> Verdict {
    if answer.refused() {
        Verdict::Blocked(format!(
            "{context}, but {method} was refused by the authorization layer: {answer}"
        ))
    } else if answer.got_through() {
        Verdict::NotBlocked(format!(
            "{context}, and {method} answered {answer}: the call got past authorization (a \
             handler may have run)"
        ))
    } else {
        Verdict::Inconclusive(format!("{context}, then {method}: {answer}"))
    }
}

/// A stolen token, key or password without a certificate; then (with `--refused`) alongside
/// the first refused identity's certificate, on its refused method: metadata must grant
/// nothing.
async fn bearer_token(a: &Armed) -> Verdict {
    let anonymous = match handshake_then_call(a, None, &TOKENS).await {
        Verdict::Blocked(how) => how,
        other => return other,
    };
    let Some(first) = a.target.refused.first() else {
        return Verdict::Blocked(format!(
            "without a certificate: {anonymous} (no --refused identity to replay the tokens with)"
        ));
    };
    match refused_call(a, first, &TOKENS).await {
        Ok((id, Verdict::Blocked(how))) => Verdict::Blocked(format!(
            "without a certificate: {anonymous}; as {id} on {}: {how}",
            first.method
        )),
        Ok((_, other)) => other,
        Err(e) => Verdict::Inconclusive(format!("could not load the identity: {e}")),
    }
}

async fn malicious_requests(a: &Armed) -> Vec<(String, Verdict)> {
    if a.target.refused.is_empty() {
        return vec![(
            Case::MaliciousRequest.name().to_owned(),
            Verdict::Skipped(
                "no --refused METHOD[@CERT,KEY] given: nothing to check per method".into(),
            ),
        )];
    }
    let mut out = Vec::new();
    for refused in &a.target.refused {
        let (name, verdict) = match refused_call(a, refused, &[]).await {
            Ok((id, verdict)) => (
                format!("malicious-request {} as {id}", refused.method),
                verdict,
            ),
            Err(e) => (
                format!("malicious-request {}", refused.method),
                Verdict::Inconclusive(format!("could not load the identity: {e}")),
            ),
        };
        out.push((name, verdict));
    }
    out
}

/// Calls `refused.method` as its identity (verifying the server), with `meta`.
async fn refused_call(
    a: &Armed,
    refused: &Refused,
    meta: &[(&str, &str)],
) -> Result<(SpiffeId, Verdict), Error> {
    let (tls, id) = match &refused.keystore {
        None => (Arc::clone(&a.legit), a.client_id.clone()),
        Some((cert, key)) => {
            let tls = ClientTls::load(
                cert.clone(),
                key.clone(),
                None,
                vec![a.target.bundle.clone()],
                a.target.server_id.clone(),
            )?;
            let id = tls.keystore().spiffe_id().clone();
            (Arc::new(tls), id)
        }
    };
    let channel = zt_tls::channel(a.target.server.clone(), tls.connector(a.wait()), a.wait());
    let answer = grpc::call(channel, &refused.method, meta, a.wait()).await;
    let verdict = match &answer {
        Answer::Transport(why) => Verdict::Inconclusive(format!(
            "{id} could not call at all ({why}): the per-method check needs an identity the \
             target accepts at the handshake"
        )),
        _ => judge_call(&refused.method, &answer, &format!("authenticated as {id}")),
    };
    Ok((id, verdict))
}

/// The HTTP/2 connection preface and an empty SETTINGS frame, in clear text.
async fn plaintext_h2(a: &Armed) -> Verdict {
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let reply = match exchange(a, &hello, 9).await {
        Ok(reply) => reply,
        Err(verdict) => return verdict,
    };
    match reply.as_slice() {
        [] => Verdict::Blocked("no plaintext listener: the port closed without answering".into()),
        [0x15, 0x03, ..] => Verdict::Blocked(
            "no plaintext listener: the port answered the HTTP/2 preface with a TLS alert record"
                .into(),
        ),
        [_, _, _, 0x04, ..] => {
            // It speaks HTTP/2 in clear text; does gRPC get past authorization that way?
            let uri = format!("http://{}:{}", a.host, a.port);
            let channel = match tonic::transport::Endpoint::from_shared(uri) {
                Ok(endpoint) => endpoint.timeout(a.wait()).connect_lazy(),
                Err(e) => return Verdict::Inconclusive(format!("bad address: {e}")),
            };
            let answer = grpc::call(channel, &a.target.control, &[], a.wait()).await;
            match judge_call(
                &a.target.control,
                &answer,
                "the port speaks plaintext HTTP/2 (it answered the preface with SETTINGS)",
            ) {
                Verdict::Inconclusive(how) => Verdict::NotBlocked(how),
                other => other,
            }
        }
        other => Verdict::Inconclusive(format!("unexpected answer: {}", hex(other))),
    }
}

/// A gRPC request as plaintext HTTP/1.1.
async fn plaintext_http1(a: &Armed) -> Verdict {
    let request = http1_request(&a.host, &a.target.control);
    match exchange(a, &request, usize::MAX).await {
        Ok(reply) => judge_http1(&reply, "in clear text"),
        Err(verdict) => verdict,
    }
}

/// TLS with the legitimate keystore offering only ALPN `http/1.1`, then an HTTP/1.1 request.
async fn tls_http1(a: &Armed) -> Verdict {
    let identity = a.legit.keystore().certified_key();
    let config = match attacker_config(Some(identity), Versions::Tls13, &[b"http/1.1"]) {
        Ok(config) => config,
        Err(e) => return Verdict::Inconclusive(format!("could not prepare the attack: {e}")),
    };
    let Ok(name) = ServerName::try_from(a.host.clone()) else {
        return Verdict::Inconclusive(format!("{}: not a host name", a.host));
    };
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect((a.host.as_str(), a.port)).await?;
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        let alpn = tls
            .get_ref()
            .1
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        tls.write_all(&http1_request(&a.host, &a.target.control))
            .await?;
        let mut reply = Vec::new();
        let mut chunk = [0u8; 4096];
        while reply.len() < 16 * 1024 {
            match tls.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => reply.extend_from_slice(&chunk[..n]),
                Err(e) if reply.is_empty() => return Err(e),
                Err(_) => break,
            }
            if reply.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        Ok::<_, std::io::Error>((alpn, reply))
    };
    match tokio::time::timeout(a.wait(), attempt).await {
        Err(_) => Verdict::Inconclusive(format!(
            "no answer within {}",
            humantime::format_duration(a.wait())
        )),
        Ok(Err(e)) => match alert_of(&e) {
            Some(alert) => Verdict::Blocked(format!(
                "refused during the TLS handshake with alert {alert}"
            )),
            None => Verdict::Inconclusive(format!("{e}")),
        },
        Ok(Ok((alpn, reply))) => judge_http1(
            &reply,
            &format!(
                "over TLS (ALPN {})",
                alpn.as_deref().unwrap_or("none negotiated")
            ),
        ),
    }
}

/// TLS 1.2 only, with the legitimate keystore: a TLS 1.3-only target refuses the ClientHello.
async fn tls12(a: &Armed) -> Verdict {
    let identity = a.legit.keystore().certified_key();
    let config = match attacker_config(Some(identity), Versions::Tls12, &[b"h2"]) {
        Ok(config) => config,
        Err(e) => return Verdict::Inconclusive(format!("could not prepare the attack: {e}")),
    };
    match zt_tls::probe(&a.host, a.port, config, a.wait()).await {
        Err(e) => Verdict::Inconclusive(format!("no verdict from the target: {e}")),
        Ok(Probe::Refused(alert)) => Verdict::Blocked(format!(
            "a TLS 1.2-only ClientHello was refused with alert {}",
            zt_tls::alert_name(alert)
        )),
        Ok(Probe::Closed) => Verdict::Inconclusive(
            "the connection closed during the TLS 1.2 handshake without an alert".into(),
        ),
        Ok(Probe::Accepted) => Verdict::NotBlocked(
            "the target completed a TLS 1.2 handshake (with the legitimate keystore) and spoke \
             HTTP/2 over it"
                .into(),
        ),
    }
}

/// Sends `bytes` in clear text; reads until `enough` bytes, the end of an HTTP header, close
/// or the wait. `Err` carries the verdict when there was no exchange at all.
async fn exchange(a: &Armed, bytes: &[u8], enough: usize) -> Result<Vec<u8>, Verdict> {
    let attempt = async {
        let mut tcp = tokio::net::TcpStream::connect((a.host.as_str(), a.port)).await?;
        tcp.write_all(bytes).await?;
        let mut reply = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let read = tokio::time::timeout(a.wait(), tcp.read(&mut chunk)).await;
            match read {
                Ok(Ok(0)) | Err(_) => break,
                Ok(Ok(n)) => reply.extend_from_slice(&chunk[..n]),
                // A reset after an alert: what was read is the answer.
                Ok(Err(e))
                    if reply.is_empty() && e.kind() != std::io::ErrorKind::ConnectionReset =>
                {
                    return Err(e);
                }
                Ok(Err(_)) => break,
            }
            if reply.len() >= enough
                || reply.len() >= 16 * 1024
                || reply.windows(4).any(|w| w == b"\r\n\r\n")
            {
                break;
            }
        }
        Ok::<_, std::io::Error>(reply)
    };
    match tokio::time::timeout(a.wait() * 2, attempt).await {
        Err(_) => Err(Verdict::Inconclusive(format!(
            "no answer within {}",
            humantime::format_duration(a.wait() * 2)
        ))),
        Ok(Err(e)) => Err(Verdict::Inconclusive(format!(
            "target unreachable: {}:{}: {e}",
            a.host, a.port
        ))),
        Ok(Ok(reply)) => Ok(reply),
    }
}

fn http1_request(host: &str, method: &str) -> Vec<u8> {
    let mut request = format!(
        "POST {method} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/grpc\r\nTE: \
         trailers\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(&[0, 0, 0, 0, 0]);
    request
}

/// Judges the answer to an HTTP/1.1 gRPC request sent `how`.
fn judge_http1(reply: &[u8], how: &str) -> Verdict {
    if reply.is_empty() {
        return Verdict::Blocked(format!(
            "an HTTP/1.1 request {how} got no answer: the connection closed"
        ));
    }
    if let [0x15, 0x03, ..] = reply {
        return Verdict::Blocked(format!(
            "an HTTP/1.1 request {how} was answered with a TLS alert record"
        ));
    }
    let Some(head) = reply.strip_prefix(b"HTTP/1.") else {
        // An HTTP/2 frame header: SETTINGS (4) or GOAWAY (7) on stream 0.
        if reply.len() >= 9 && matches!(reply[3], 0x04 | 0x07) && reply[5..9] == [0, 0, 0, 0] {
            return Verdict::Blocked(format!(
                "an HTTP/1.1 request {how} was answered in HTTP/2 frames: no HTTP/1.1 spoken"
            ));
        }
        return Verdict::Inconclusive(format!(
            "an HTTP/1.1 request {how}: unexpected answer {}",
            hex(reply)
        ));
    };
    let text = String::from_utf8_lossy(head);
    let status: u16 = text
        .get(2..5)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let grpc_status = text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("grpc-status")
            .then(|| value.trim().to_owned())
    });
    let seen = match &grpc_status {
        Some(code) => format!("HTTP {status} with grpc-status {code}"),
        None => format!("HTTP {status}"),
    };
    match grpc_status.as_deref() {
        Some("16" | "7") => Verdict::Blocked(format!(
            "an HTTP/1.1 request {how} reached gRPC but was refused by the authorization layer: \
             {seen}"
        )),
        Some(_) => Verdict::NotBlocked(format!(
            "an HTTP/1.1 request {how} was served by gRPC: {seen}"
        )),
        None if (200..300).contains(&status) => {
            Verdict::NotBlocked(format!("an HTTP/1.1 request {how} was served: {seen}"))
        }
        None => Verdict::Blocked(format!(
            "an HTTP/1.1 request {how} was answered {seen} with no gRPC: nothing served"
        )),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The TLS alert a failed handshake or read received, by name.
fn alert_of(err: &std::io::Error) -> Option<String> {
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(alert)) => Some(zt_tls::alert_name(*alert)),
        _ => None,
    }
}

/// A leaf's PEM as a key ready to present.
pub(crate) fn certified(leaf: &IssuedLeaf) -> Result<Arc<CertifiedKey>, Error> {
    let bad = |what: &str, e: rustls_pki_types::pem::Error| Error::Target(format!("{what}: {e}"));
    let chain = CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("a forged certificate", e))?;
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes())
        .map_err(|e| bad("a forged key", e))?;
    let signer = zt_tls::crypto_provider()
        .key_provider
        .load_private_key(key)?;
    Ok(Arc::new(CertifiedKey::new(chain, signer)))
}

/// Which TLS versions an attacker offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Versions {
    /// TLS 1.3 only, with the project's crypto provider.
    Tls13,
    /// TLS 1.2 only, with aws-lc-rs's default provider (its TLS 1.2 suites).
    Tls12,
}

/// An attacker's client configuration: presents `identity` as is (no consistency checks) or
/// nothing, offers `alpn`, and trusts any server (attackers do not verify).
pub(crate) fn attacker_config(
    identity: Option<Arc<CertifiedKey>>,
    versions: Versions,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, Error> {
    let (provider, version) = match versions {
        Versions::Tls13 => (zt_tls::crypto_provider(), &rustls::version::TLS13),
        Versions::Tls12 => (
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            &rustls::version::TLS12,
        ),
    };
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[version])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustAnything(provider)));
    let mut config = match identity {
        Some(identity) => {
            builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(identity)))
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// An attacker does not care who the server is.
#[derive(Debug)]
pub(crate) struct TrustAnything(pub(crate) Arc<CryptoProvider>);

impl ServerCertVerifier for TrustAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_defect_is_a_case_and_all_is_in_run_order() {
        for defect in Defect::ALL {
            assert!(
                Case::ALL.contains(&Case::Certificate(defect)),
                "{} is missing from Case::ALL",
                defect.name()
            );
        }
        assert!(
            Case::ALL.is_sorted(),
            "Case::ALL follows the declaration order"
        );
        let mut names: Vec<&str> = Case::ALL.iter().map(|case| case.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Case::ALL.len(), "case names are unique");
    }
}
