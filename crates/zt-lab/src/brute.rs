//! Brute force (rapid trial and error, the source article's sixth attack): thousands of TLS
//! handshakes, each presenting a freshly forged client certificate on a fresh key, through a
//! bounded pool of connections and under a deadline. Meanwhile the legitimate keystore keeps
//! calling the control method, and its latency is compared with a quiet baseline taken in the
//! same run: a defence that refuses every forgery but starves real clients has not stopped
//! the attack.
//!
//! The forgeries take turns ([`Forgery`]): a self-signed certificate claiming the legitimate
//! client's SPIFFE ID, one from a rogue CA that copies the real CA's name and key identifier, a
//! self-signed one for a random trust domain, one with no SPIFFE ID at all, and random bytes
//! dressed as DER. Every one is minted before the attack starts (ECDSA P-256 key generation
//! and signing take well under a millisecond each, so minting 2,000 takes about a second
//! unoptimised and a fraction of that in release builds; done up front it neither slows the
//! attack nor shows up in the latency measured under it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng as _;
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tonic::transport::Channel;
use zt_tls::{ClientTls, Probe};

use crate::Error;
use crate::catalogue::{Armed, TrustAnything, Verdict};
use crate::forge::{serial, svid};

/// How hard to try.
#[derive(Debug, Clone)]
pub struct Options {
    /// Handshakes to attempt, each with a certificate of its own.
    pub attempts: usize,
    /// Handshakes in flight at once.
    pub concurrency: usize,
    /// Handshakes started per second, at most: thousands in a bounded time, paced so that
    /// the comparison measures the server's defence rather than the attacker's own use of
    /// the CPU it shares with the server and the genuine client on one host.
    pub rate: u32,
    /// The attack stops here, finished or not (unfinished is inconclusive).
    pub deadline: Duration,
    /// Bursts the attempts are split into, each after a quiet window.
    pub rounds: usize,
    /// Calls in the quiet baseline of the genuine identity, over all quiet windows.
    pub quiet_calls: usize,
    /// The genuine identity calls once per this interval (a steady client, not a second flood).
    pub call_every: Duration,
    /// The most the genuine identity's p99 may grow under attack, as a multiple of the quiet
    /// one; `0`: the legitimate client's latency is not measured.
    pub max_slowdown: f64,
    /// Growth of the p99 that is never counted as a slowdown, however large the ratio: a
    /// quiet p99 of about a millisecond doubles from scheduling noise alone on a shared
    /// host, while a flood that starves real clients costs them tens of milliseconds or
    /// failed calls. Default 5 ms.
    pub slowdown_floor: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            attempts: 2000,
            concurrency: 8,
            rate: 400,
            deadline: Duration::from_secs(60),
            rounds: 4,
            quiet_calls: 1000,
            call_every: Duration::from_millis(2),
            max_slowdown: 2.0,
            slowdown_floor: Duration::from_millis(5),
        }
    }
}

/// One kind of forged client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Forgery {
    /// Self-signed, claiming the legitimate client's SPIFFE ID, otherwise a perfect X509-SVID.
    SelfSigned,
    /// Claiming the legitimate client's SPIFFE ID, signed by a rogue CA that copies the real CA's name and
    /// key identifier (only the signature can tell).
    RogueCa,
    /// Self-signed, for a random SPIFFE ID in a random trust domain.
    RandomDomain,
    /// Self-signed, a random host name and no SPIFFE ID.
    NoSpiffeId,
    /// Random bytes in a DER SEQUENCE, on a fresh key.
    Garbage,
}

impl Forgery {
    /// Every kind, in the order they take turns.
    pub const ALL: [Self; 5] = [
        Self::SelfSigned,
        Self::RogueCa,
        Self::RandomDomain,
        Self::NoSpiffeId,
        Self::Garbage,
    ];

    /// A short stable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::SelfSigned => "self-signed",
            Self::RogueCa => "rogue-ca",
            Self::RandomDomain => "random-domain",
            Self::NoSpiffeId => "no-spiffe-id",
            Self::Garbage => "garbage",
        }
    }
}

/// How one handshake ended, as the attacker saw it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Refused with this TLS alert.
    Refused(String),
    /// The server completed the handshake and started talking: the forgery got in.
    Accepted,
    /// Closed without an alert: refused at the door (the server hung up before any TLS,
    /// as it does to an address whose handshakes keep failing).
    Closed,
    /// No verdict: connect failed, or no answer in time.
    Failed(String),
}

/// Latencies of the genuine identity's calls in one phase.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    /// Each successful call's latency, sorted.
    pub samples: Vec<Duration>,
    /// Calls that failed.
    pub failed: usize,
    /// The first failure, in words.
    pub first_failure: Option<String>,
}

impl Latencies {
    fn merge(&mut self, other: Self) {
        self.samples.extend(other.samples);
        self.samples.sort_unstable();
        self.failed += other.failed;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }

    /// The 99th percentile of the successful calls (nearest rank).
    pub fn p99(&self) -> Option<Duration> {
        let rank = (self.samples.len() * 99).div_ceil(100);
        self.samples.get(rank.checked_sub(1)?).copied()
    }
}

/// What happened, with everything the verdict rests on.
#[derive(Debug, Clone)]
pub struct Report {
    /// The method the legitimate client called.
    pub control: String,
    /// The options it ran with.
    pub options: Options,
    /// How long minting every certificate took.
    pub minted_in: Duration,
    /// How long the handshakes took, first to last.
    pub attack_took: Duration,
    /// Handshakes by forgery and outcome.
    pub tally: BTreeMap<(Forgery, Outcome), usize>,
    /// The genuine identity's calls before the attack (none without a genuine identity).
    pub quiet: Option<Latencies>,
    /// The genuine identity's calls during the attack.
    pub under_attack: Option<Latencies>,
}

impl Report {
    /// Handshakes attempted.
    pub fn tried(&self) -> usize {
        self.tally.values().sum()
    }

    /// Handshakes with this outcome.
    pub fn count(&self, outcome: impl Fn(&Outcome) -> bool) -> usize {
        self.tally
            .iter()
            .filter(|((_, o), _)| outcome(o))
            .map(|(_, n)| n)
            .sum()
    }

    /// Handshakes of this forgery.
    pub fn of(&self, forgery: Forgery) -> usize {
        self.tally
            .iter()
            .filter(|((f, _), _)| *f == forgery)
            .map(|(_, n)| n)
            .sum()
    }

    /// The p99s quiet and under attack, and their ratio, when measured.
    pub fn slowdown(&self) -> Option<(Duration, Duration, f64)> {
        let quiet = self.quiet.as_ref()?.p99()?;
        let attacked = self.under_attack.as_ref()?.p99()?;
        Some((
            quiet,
            attacked,
            attacked.as_secs_f64() / quiet.as_secs_f64().max(1e-9),
        ))
    }

    /// Blocked only if every handshake was refused (with a TLS alert, or closed at the door
    /// before any TLS), all of them within the
    /// deadline, and (when measured) the genuine identity's calls all succeeded under attack
    /// with a p99 within [`Options::max_slowdown`] of the quiet one.
    pub fn verdict(&self) -> Verdict {
        let tried = self.tried();
        let accepted = self.count(|o| *o == Outcome::Accepted);
        if accepted > 0 {
            return Verdict::NotBlocked(format!(
                "{accepted} of {tried} forged certificates were accepted: {}",
                self.by_forgery()
            ));
        }
        let refused = self.count(|o| matches!(o, Outcome::Refused(_) | Outcome::Closed));
        if refused < tried {
            return Verdict::Inconclusive(format!(
                "{} of {tried} handshakes got no answer: {}",
                tried - refused,
                self.by_forgery()
            ));
        }
        if tried < self.options.attempts {
            return Verdict::Inconclusive(format!(
                "only {tried} of {} handshakes within the {} deadline",
                self.options.attempts,
                humantime::format_duration(self.options.deadline)
            ));
        }
        let mut how = format!(
            "{tried} forged client certificates, each on a fresh P-256 key (minted in {}), in {} \
             ({:.0}/s, {} at a time, paced at {}/s): every one refused, during the TLS handshake or, once \
             this address had failed too often, at the door: {}",
            seconds(self.minted_in),
            seconds(self.attack_took),
            tried as f64 / self.attack_took.as_secs_f64().max(1e-9),
            self.options.concurrency,
            self.options.rate,
            self.by_forgery()
        );
        let (Some(quiet), Some(attacked)) = (&self.quiet, &self.under_attack) else {
            how.push_str("; the legitimate client's latency not measured");
            return Verdict::Blocked(how);
        };
        if quiet.failed > 0 {
            return Verdict::Inconclusive(format!(
                "the legitimate client's own calls failed before the attack: {}",
                quiet.first_failure.as_deref().unwrap_or("?")
            ));
        }
        if attacked.failed > 0 {
            return Verdict::NotBlocked(format!(
                "{how}; but the flood starved the legitimate client: {} of {} of its own calls \
                 failed ({})",
                attacked.failed,
                attacked.failed + attacked.samples.len(),
                attacked.first_failure.as_deref().unwrap_or("?")
            ));
        }
        let Some((q, a, ratio)) = self.slowdown() else {
            return Verdict::Inconclusive(
                "the legitimate client made no call during the attack".into(),
            );
        };
        let _ = write!(
            how,
            "; the legitimate client's {} p99 {} quiet, {} under attack ({ratio:.2}x, limit \
             {}x beyond {} more; {} and {} calls, none failed)",
            self.control,
            millis(q),
            millis(a),
            self.options.max_slowdown,
            millis(self.options.slowdown_floor),
            quiet.samples.len(),
            attacked.samples.len()
        );
        if ratio > self.options.max_slowdown && a > q + self.options.slowdown_floor {
            return Verdict::NotBlocked(format!(
                "{how}: the flood slowed the legitimate client down"
            ));
        }
        Verdict::Blocked(how)
    }

    /// `self-signed 400 unknown_ca, rogue-ca 400 decrypt_error, ...`.
    fn by_forgery(&self) -> String {
        let mut parts = Vec::new();
        for ((forgery, outcome), n) in &self.tally {
            let outcome = match outcome {
                Outcome::Refused(alert) => alert.clone(),
                Outcome::Accepted => "ACCEPTED".into(),
                Outcome::Closed => "closed at the door".into(),
                Outcome::Failed(why) => format!("no verdict ({why})"),
            };
            parts.push(format!("{} {n} {outcome}", forgery.name()));
        }
        parts.join(", ")
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Runs the attack against `target` (with its legitimate keystore as the client whose latency
/// is watched, unless [`Options::max_slowdown`] is 0) and judges it.
pub(crate) async fn run(target: &Armed, options: &Options) -> Verdict {
    match attack_armed(target, options).await {
        Ok(report) => report.verdict(),
        Err(e) => Verdict::Inconclusive(format!("could not run the attack: {e}")),
    }
}

/// Runs the attack against `target` with `options` (not `target.brute_force`) and reports
/// what happened, without judging.
///
/// # Errors
/// [`Error`] when the target's material cannot be loaded or the attack cannot be prepared
/// (never for a refusal: that is in the report).
pub async fn attack(target: &crate::catalogue::Target, options: &Options) -> Result<Report, Error> {
    attack_armed(&Armed::load(target)?, options).await
}

async fn attack_armed(target: &Armed, options: &Options) -> Result<Report, Error> {
    let real_ca = target.real_ca.clone().ok_or_else(|| {
        Error::Target(format!(
            "no CA certificate could be read from {} (the rogue CA copies its name)",
            target.target.bundle.path.display()
        ))
    })?;
    let payments = target.client_id.to_string();
    let genuine = if options.max_slowdown > 0.0 {
        Some(Caller::spawn(target, options)?)
    } else {
        None
    };
    if let Some(caller) = &genuine {
        // The connection is made (and its handshake paid for) before anything is timed.
        caller.warm_up().await?;
    }

    let started = Instant::now();
    let attempts = options.attempts;
    let forged = tokio::task::spawn_blocking(move || {
        let provider = zt_tls::crypto_provider();
        let verifier: Arc<dyn ServerCertVerifier> = Arc::new(TrustAnything(Arc::clone(&provider)));
        (0..attempts)
            .map(|i| {
                let kind = Forgery::ALL[i % Forgery::ALL.len()];
                mint(kind, &payments, &real_ca, &provider, &verifier).map(|c| (kind, c))
            })
            .collect::<Result<Vec<_>, Error>>()
    })
    .await??;
    let minted_in = started.elapsed();

    // Quiet windows and attack bursts take turns, so both see the same background (other
    // work on the host comes and goes): the comparison is between the two, not between two
    // moments.
    let (host, port) = (target.host.clone(), target.port);
    let deadline = tokio::time::Instant::now() + options.deadline;
    let rounds = options.rounds.clamp(1, attempts.max(1));
    let mut forged = forged.into_iter();
    let (mut quiet, mut under_attack) = (Latencies::default(), Latencies::default());
    let (mut tally, mut attack_took) = (BTreeMap::new(), Duration::ZERO);
    for round in 0..rounds {
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        if let Some(caller) = &genuine {
            let count = share(options.quiet_calls, rounds, round);
            quiet.merge(caller.calls(Some(count), Arc::default())?.await?);
        }
        let batch: Vec<_> = forged
            .by_ref()
            .take(share(attempts, rounds, round))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = match &genuine {
            Some(caller) => Some(caller.calls(None, Arc::clone(&stop))?),
            None => None,
        };
        let started = Instant::now();
        let queue = Arc::new(Mutex::new(batch.into_iter()));
        // The next moment a handshake may start, shared by the workers: the pace.
        let pace = Duration::from_secs_f64(1.0 / f64::from(options.rate.max(1)));
        let next_start = Arc::new(Mutex::new(tokio::time::Instant::now()));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..options.concurrency.max(1) {
            let (queue, host) = (Arc::clone(&queue), host.clone());
            let next_start = Arc::clone(&next_start);
            workers.spawn(async move {
                let mut seen = Vec::new();
                while tokio::time::Instant::now() < deadline {
                    // The locks are held only to take the next certificate and start time.
                    let next = queue.lock().ok().and_then(|mut q| q.next());
                    let Some((kind, config)) = next else { break };
                    let start = next_start.lock().ok().map(|mut at| {
                        let start = (*at).max(tokio::time::Instant::now());
                        *at = start + pace;
                        start
                    });
                    if let Some(start) = start {
                        tokio::time::sleep_until(start).await;
                    }
                    let outcome = tokio::time::timeout(
                        Duration::from_secs(5),
                        zt_tls::probe(&host, port, config, Duration::from_secs(3)),
                    )
                    .await;
                    seen.push((kind, judge(outcome)));
                }
                seen
            });
        }
        while let Some(seen) = workers.join_next().await {
            for key in seen? {
                *tally.entry(key).or_insert(0) += 1;
            }
        }
        attack_took += started.elapsed();
        stop.store(true, Ordering::Release);
        if let Some(done) = watcher {
            under_attack.merge(done.await?);
        }
    }
    let measured = genuine.is_some();
    Ok(Report {
        control: target.target.control.clone(),
        options: options.clone(),
        minted_in,
        attack_took,
        tally,
        quiet: measured.then_some(quiet),
        under_attack: measured.then_some(under_attack),
    })
}

/// The genuine client, in a thread and on a runtime of its own, as if in its own process: its
/// calls never wait behind the attacker's tasks (they still share the CPU, as processes on
/// one host do).
struct Caller {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
}

enum Job {
    Warm(tokio::sync::oneshot::Sender<Result<(), String>>),
    Calls {
        count: Option<usize>,
        stop: Arc<AtomicBool>,
        done: tokio::sync::oneshot::Sender<Latencies>,
    },
}

impl Caller {
    fn spawn(target: &Armed, options: &Options) -> Result<Self, Error> {
        let options = options.clone();
        let legit: Arc<ClientTls> = Arc::clone(&target.legit);
        let server = target.target.server.clone();
        let wait = target.target.wait;
        let method = target.target.control.clone();
        let (jobs, mut queue) = tokio::sync::mpsc::unbounded_channel();
        let (ready, started) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready.send(Err(Error::Caller(e.to_string())));
                    return;
                }
            };
            runtime.block_on(async move {
                // The channel's connection task lives on this runtime.
                let channel = zt_tls::channel(server, legit.connector(wait), wait);
                let _ = ready.send(Ok(()));
                while let Some(job) = queue.recv().await {
                    match job {
                        Job::Warm(done) => {
                            let _ = done.send(call(&channel, &method, wait).await);
                        }
                        Job::Calls { count, stop, done } => {
                            let calls = calls(&channel, &method, wait, &options, count, &stop);
                            let _ = done.send(calls.await);
                        }
                    }
                }
            });
        });
        started.recv().map_err(|e| Error::Caller(e.to_string()))??;
        Ok(Self { jobs })
    }

    async fn warm_up(&self) -> Result<(), Error> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        self.send(Job::Warm(done))?;
        outcome
            .await
            .map_err(|e| Error::Caller(e.to_string()))?
            .map_err(Error::Baseline)
    }

    /// Starts `count` calls (or calls until `stop`); the receiver gets their latencies.
    fn calls(
        &self,
        count: Option<usize>,
        stop: Arc<AtomicBool>,
    ) -> Result<impl Future<Output = Result<Latencies, Error>> + use<>, Error> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        self.send(Job::Calls { count, stop, done })?;
        Ok(async move { outcome.await.map_err(|e| Error::Caller(e.to_string())) })
    }

    fn send(&self, job: Job) -> Result<(), Error> {
        self.jobs
            .send(job)
            .map_err(|_| Error::Caller("it ended".into()))
    }
}

/// Round `round`'s share of `total` split over `rounds`.
fn share(total: usize, rounds: usize, round: usize) -> usize {
    total / rounds + usize::from(round < total % rounds)
}

fn judge(outcome: Result<std::io::Result<Probe>, tokio::time::error::Elapsed>) -> Outcome {
    match outcome {
        Ok(Ok(Probe::Refused(alert))) => Outcome::Refused(zt_tls::alert_name(alert)),
        Ok(Ok(Probe::Accepted)) => Outcome::Accepted,
        Ok(Ok(Probe::Closed)) => Outcome::Closed,
        Ok(Err(e)) => Outcome::Failed(e.kind().to_string()),
        Err(_) => Outcome::Failed("no verdict in time".into()),
    }
}

/// The genuine identity's steady calls: `count` of them, or until `stop`.
async fn calls(
    channel: &Channel,
    method: &str,
    wait: Duration,
    options: &Options,
    count: Option<usize>,
    stop: &AtomicBool,
) -> Latencies {
    let mut latencies = Latencies::default();
    let mut tick = tokio::time::interval(options.call_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut made = 0;
    while count.is_none_or(|n| made < n) && !stop.load(Ordering::Acquire) {
        tick.tick().await;
        let started = Instant::now();
        match call(channel, method, wait).await {
            Ok(()) => latencies.samples.push(started.elapsed()),
            Err(failure) => {
                latencies.failed += 1;
                latencies.first_failure.get_or_insert(failure);
            }
        }
        made += 1;
    }
    latencies.samples.sort_unstable();
    latencies
}

/// One call of the control method as the legitimate client: `Err` in words unless it got
/// past authorization.
async fn call(channel: &Channel, method: &str, wait: Duration) -> Result<(), String> {
    let answer = crate::grpc::call(channel.clone(), method, &[], wait).await;
    if answer.got_through() {
        Ok(())
    } else {
        Err(answer.to_string())
    }
}

/// One forged certificate of `kind` on a fresh key, ready to present: a client configuration
/// that sends it as is (no consistency checks) and trusts any server.
fn mint(
    kind: Forgery,
    payments: &str,
    real_ca: &CertificateDer<'static>,
    provider: &Arc<CryptoProvider>,
    verifier: &Arc<dyn ServerCertVerifier>,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut rng = rand::rng();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let random = |rng: &mut rand::rngs::ThreadRng| format!("{:016x}", rng.random::<u64>());
    let der: Vec<u8> = match kind {
        Forgery::SelfSigned => svid(payments)?.self_signed(&key)?.der().to_vec(),
        Forgery::RogueCa => {
            let rogue =
                Issuer::from_ca_cert_der(real_ca, KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?)?;
            let mut params = svid(payments)?;
            params.use_authority_key_identifier_extension = true;
            params.signed_by(&key, &rogue)?.der().to_vec()
        }
        Forgery::RandomDomain => {
            let id = format!(
                "spiffe://{}.example/ns/{}/sa/{}",
                random(&mut rng),
                random(&mut rng),
                random(&mut rng)
            );
            svid(&id)?.self_signed(&key)?.der().to_vec()
        }
        Forgery::NoSpiffeId => {
            let host = format!("{}.example", random(&mut rng));
            let mut params = CertificateParams::new(vec![host.clone()])?;
            params.distinguished_name.push(DnType::CommonName, host);
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            params.serial_number = Some(serial(&mut rng));
            params.self_signed(&key)?.der().to_vec()
        }
        Forgery::Garbage => {
            let len: u16 = rng.random_range(200..800);
            let mut der = vec![0x30, 0x82];
            der.extend_from_slice(&len.to_be_bytes());
            der.extend((0..len).map(|_| rng.random::<u8>()));
            der
        }
    };
    let signer = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            key.serialize_der(),
        )))?;
    let certified = CertifiedKey::new(vec![CertificateDer::from(der)], signer);
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(verifier))
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}
