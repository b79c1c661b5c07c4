//! `zt-ca`: the internal certificate authority on the command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use zt_identity::{SpiffeId, TrustDomain};
use zt_pki::files::{self, Bundle, Secrecy};
use zt_pki::{Ca, Keystore, LeafRequest, Renewal};

/// The internal certificate authority: creates a CA, issues X509-SVIDs, inspects certificates.
#[derive(Parser)]
#[command(name = "zt-ca", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a CA for a trust domain: writes DIR/ca.pem and DIR/ca.key (mode 0600).
    Init {
        /// The trust domain the CA issues for, e.g. zt.example.
        #[arg(long)]
        trust_domain: TrustDomain,
        /// Directory to write into.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// How long the CA is valid (e.g. 365d).
        #[arg(long, default_value = "365d", value_parser = humantime::parse_duration)]
        lifetime: Duration,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Issue a leaf X509-SVID: writes OUT.pem and OUT.key (mode 0600).
    Issue {
        /// The workload's SPIFFE ID, e.g. spiffe://zt.example/ns/prod/sa/ledger.
        #[arg(long)]
        spiffe_id: SpiffeId,
        /// A DNS SAN to add (repeatable), so plain TLS clients can verify a server by name.
        #[arg(long = "dns")]
        dns_names: Vec<String>,
        /// How long the certificate is valid (e.g. 24h, 90m).
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        lifetime: Duration,
        /// The CA certificate.
        #[arg(long, default_value = "certs/ca.pem")]
        ca: PathBuf,
        /// The CA private key.
        #[arg(long, default_value = "certs/ca.key")]
        ca_key: PathBuf,
        /// Output path without extension: writes OUT.pem and OUT.key. Its directory must
        /// exist, unless --mkdir.
        #[arg(long)]
        out: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
        /// Create OUT's directory (and its parents) if missing.
        #[arg(long)]
        mkdir: bool,
    },
    /// Describe certificates in PEM files and say whether each is a valid X509-SVID leaf; or
    /// lint a keystore (`--chain`) or truststore (`--bundle`) the way ledger and payments load
    /// them. Exits 1 if something would be refused.
    Inspect {
        /// PEM files (a file may hold a chain or a bundle).
        #[arg(required_unless_present_any = ["chain", "bundles"])]
        files: Vec<PathBuf>,
        /// A keystore's certificate chain (leaf first): each certificate's verdict, and, with
        /// `--bundle`, whether it chains to a CA of its trust domain.
        #[arg(long)]
        chain: Option<PathBuf>,
        /// Check the chain as a server's (serverAuth) rather than a client's (clientAuth).
        #[arg(long, requires = "chain")]
        server: bool,
        /// Trust bundles, as `--ca` takes them (`[TRUST-DOMAIN=]PATH`, repeatable): what loading
        /// does with each certificate (trusted for which domain and why, left out, refused).
        #[arg(long = "bundle", value_delimiter = ',')]
        bundles: Vec<zt_tls::BundleSource>,
        /// The trust domains configured beside the bundles: with exactly one, a CA that names
        /// none is bound to it, as the binaries do.
        #[arg(long = "trust-domain", value_delimiter = ',')]
        trust_domains: Vec<TrustDomain>,
    },
    /// Revoke certificates: add them to the CA's CRL (created if missing), re-sign it with the
    /// next CRL number, and write it atomically. Without serials or certificates, just re-sign
    /// (to refresh nextUpdate).
    Revoke {
        /// Serial numbers to revoke, hex as `zt-ca inspect` prints them (repeatable).
        #[arg(long = "serial")]
        serials: Vec<String>,
        /// Certificate files whose leaf to revoke (repeatable).
        #[arg(long = "cert")]
        certs: Vec<PathBuf>,
        /// Record the reason as keyCompromise.
        #[arg(long)]
        key_compromise: bool,
        /// The CRL file to extend and rewrite (PEM). Its directory must exist, unless --mkdir.
        #[arg(long, default_value = "certs/ca.crl")]
        crl: PathBuf,
        /// Create the CRL's directory (and its parents) if missing.
        #[arg(long)]
        mkdir: bool,
        /// How long the CRL is current (its nextUpdate).
        #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
        validity: Duration,
        /// The CA certificate.
        #[arg(long, default_value = "certs/ca.pem")]
        ca: PathBuf,
        /// The CA private key.
        #[arg(long, default_value = "certs/ca.key")]
        ca_key: PathBuf,
    },
    /// Renew keystores issued by this CA: a fresh key and a LIFETIME-long certificate for the
    /// same SPIFFE ID and DNS names once a third of the current certificate's validity is
    /// left (two thirds into its life). Each file is replaced atomically, key first, so
    /// services reloading them never see half a keystore. Prints what it did; with --daemon,
    /// keeps renewing.
    Renew {
        /// A keystore to renew, as the path without extension (BASE.pem and BASE.key);
        /// repeatable.
        #[arg(long = "target", required = true)]
        targets: Vec<PathBuf>,
        /// How long each renewed certificate is valid.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        lifetime: Duration,
        /// Renew now, due or not (with --daemon: on the first round only).
        #[arg(long)]
        force: bool,
        /// Keep running: renew each keystore whenever it is due. A failure after the first
        /// round is printed and retried, never fatal.
        #[arg(long)]
        daemon: bool,
        /// With --daemon, look at the files at least this often (they may be replaced by
        /// someone else), and retry a failure after this long.
        #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
        check_every: Duration,
        /// The CA certificate.
        #[arg(long, default_value = "certs/ca.pem")]
        ca: PathBuf,
        /// The CA private key.
        #[arg(long, default_value = "certs/ca.key")]
        ca_key: PathBuf,
    },
    /// Write the whole development set: a CA and certificates for ledger, payments and auditor.
    Dev {
        /// Directory to write into.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// The trust domain.
        #[arg(long, default_value = "zt.example")]
        trust_domain: TrustDomain,
        /// Lifetime of the service certificates.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        lifetime: Duration,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    zt_telemetry::exit_code("zt-ca", run(Cli::parse()).map(|()| true))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init {
            trust_domain,
            dir,
            lifetime,
            force,
        } => {
            let ca = Ca::generate(&trust_domain, lifetime)?;
            report(ca_files(&ca, &dir).write(force)?);
        }
        Command::Issue {
            spiffe_id,
            dns_names,
            lifetime,
            ca,
            ca_key,
            out,
            force,
            mkdir,
        } => {
            let ca = load_ca(&ca, &ca_key)?;
            let request = LeafRequest {
                spiffe_id,
                dns_names,
                lifetime,
            };
            let mut bundle = Bundle::new();
            bundle.create_dirs(mkdir);
            bundle.add_leaf(&out, ca.issue(&request)?);
            report(bundle.write(force)?);
        }
        Command::Inspect {
            files,
            chain,
            server,
            bundles,
            trust_domains,
        } => {
            for path in files {
                let pem = files::read(&path)?;
                println!("{}:", path.display());
                print!("{}", zt_pki::describe_pem(&pem, &path)?);
            }
            let only = match trust_domains.as_slice() {
                [one] => Some(one),
                _ => None,
            };
            let mut refused = 0;
            if !bundles.is_empty() {
                refused += lint_bundles(&bundles, only)?;
            }
            if let Some(chain) = chain {
                let usage = if server {
                    zt_tls::ChainUse::Server
                } else {
                    zt_tls::ChainUse::Client
                };
                refused += lint_chain(&chain, &bundles, usage)?;
            }
            if refused > 0 {
                anyhow::bail!("{refused} problem(s) would refuse this material at load");
            }
        }
        Command::Revoke {
            serials,
            certs,
            key_compromise,
            crl,
            mkdir,
            validity,
            ca,
            ca_key,
        } => {
            let ca = load_ca(&ca, &ca_key)?;
            let mut content = match std::fs::read_to_string(&crl) {
                Ok(pem) => ca.read_crl(&pem, &crl)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => zt_pki::CrlContent::default(),
                Err(e) => return Err(anyhow::anyhow!("{}: {e}", crl.display())),
            };
            let mut new = Vec::new();
            for serial in &serials {
                new.push(zt_pki::Revocation::from_hex(serial, key_compromise)?);
            }
            for cert in &certs {
                new.push(ca.revocation_of(&files::read(cert)?, cert, key_compromise)?);
            }
            for revocation in new {
                if content
                    .revoked
                    .iter()
                    .any(|r| r.serial == revocation.serial)
                {
                    println!("already revoked: {}", revocation.serial_hex());
                } else {
                    println!("revoked: {}", revocation.serial_hex());
                    content.revoked.push(revocation);
                }
            }
            let number = content.number.saturating_add(1);
            let pem = ca.sign_crl(&content.revoked, number, validity)?;
            let mut bundle = Bundle::new();
            bundle.create_dirs(mkdir);
            bundle.add(&crl, pem, Secrecy::Public);
            report(bundle.write(true)?);
            println!(
                "CRL number {number}: {} revoked certificate(s)",
                content.revoked.len()
            );
        }
        Command::Renew {
            targets,
            lifetime,
            force,
            daemon,
            check_every,
            ca,
            ca_key,
        } => {
            let targets: Vec<Keystore> = targets.into_iter().map(Keystore::new).collect();
            if daemon {
                renew_forever(&targets, &ca, &ca_key, lifetime, check_every, force)?;
            } else {
                renew_round(&targets, &load_ca(&ca, &ca_key)?, lifetime, force, true)?;
            }
        }
        Command::Dev {
            dir,
            trust_domain,
            lifetime,
            force,
        } => {
            let ca = Ca::generate(&trust_domain, zt_pki::DEFAULT_CA_LIFETIME)?;
            let mut bundle = ca_files(&ca, &dir);
            for (name, dns) in [
                ("ledger", &["ledger", "localhost"][..]),
                ("payments", &["payments"][..]),
                ("auditor", &["auditor"][..]),
            ] {
                let id = format!("spiffe://{trust_domain}/ns/prod/sa/{name}");
                let request = LeafRequest {
                    spiffe_id: SpiffeId::new(&id).with_context(|| format!("building {id}"))?,
                    dns_names: dns.iter().map(|d| (*d).to_owned()).collect(),
                    lifetime,
                };
                bundle.add_leaf(&dir.join(name), ca.issue(&request)?);
            }
            report(bundle.write(force)?);
        }
    }
    Ok(())
}

/// Renews every target that is due (or all, if `force`), printing what it renewed (and, if
/// `report`, when the others fall due), and returns when the next one falls due. Stops at the
/// first failure.
fn renew_round(
    targets: &[Keystore],
    ca: &Ca,
    lifetime: Duration,
    force: bool,
    report: bool,
) -> anyhow::Result<i64> {
    let now = unix_now();
    let mut next = i64::MAX;
    for target in targets {
        let (current, verb) = match target.renew(ca, lifetime, now, force)? {
            Renewal::Renewed { previous, current } => {
                let verb = format!("renewed (serial {} -> {})", previous.serial, current.serial);
                (current, Some(verb))
            }
            Renewal::NotDue { current } => (current, report.then(|| "not due".to_owned())),
        };
        let due = current.renew_at();
        if let Some(verb) = verb {
            println!(
                "{}: {verb}: {} valid until {}, next renewal at {}",
                target.cert().display(),
                current.spiffe_id,
                when(current.not_after),
                when(due)
            );
        }
        next = next.min(due);
    }
    Ok(next)
}

/// The daemon: a first round (failing is fatal: the flags are wrong), then sleeps until the
/// next renewal is due (or `check_every`, whichever is first) and runs a round. A failed
/// round after the first (a file being replaced, the CA key briefly unreadable) is reported
/// and retried after `check_every`: a renewer that exits takes every future renewal with it.
/// The CA is read again each round, so a rotated CA key is picked up.
///
/// Stops on SIGTERM (`docker stop`) or SIGINT and returns `Ok`: between rounds at once; a
/// round in progress (a few milliseconds of file writes, each file replaced atomically) is
/// finished first. The handlers are installed before the first round.
fn renew_forever(
    targets: &[Keystore],
    ca: &Path,
    ca_key: &Path,
    lifetime: Duration,
    check_every: Duration,
    force: bool,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the daemon's timer and signal handling")?;
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
        let mut next = renew_round(targets, &load_ca(ca, ca_key)?, lifetime, force, true)?;
        let check_every_secs = i64::try_from(check_every.as_secs())
            .unwrap_or(i64::MAX)
            .max(1);
        loop {
            let wait = (next - unix_now()).clamp(1, check_every_secs);
            let signal = tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(wait.unsigned_abs())) => None,
                _ = term.recv() => Some("SIGTERM"),
                _ = int.recv() => Some("SIGINT"),
            };
            if let Some(signal) = signal {
                println!("zt-ca: stopping ({signal}); no renewal was in progress");
                return Ok(());
            }
            next = match load_ca(ca, ca_key)
                .and_then(|ca| renew_round(targets, &ca, lifetime, false, false))
            {
                Ok(next) => next,
                Err(err) => {
                    eprintln!(
                        "zt-ca: error: {}; retrying in {}",
                        zt_telemetry::error_line(err.as_ref()),
                        humantime::format_duration(check_every)
                    );
                    unix_now().saturating_add(check_every_secs)
                }
            };
        }
    })
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `unix` as RFC 3339 UTC, e.g. `2026-11-24T20:21:05Z`.
fn when(unix: i64) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_secs(unix.max(0).unsigned_abs());
    humantime::format_rfc3339_seconds(time).to_string()
}

fn ca_files(ca: &Ca, dir: &Path) -> Bundle {
    let mut bundle = Bundle::new();
    bundle.add(dir.join("ca.pem"), ca.cert_pem(), Secrecy::Public);
    bundle.add(dir.join("ca.key"), ca.key_pem(), Secrecy::Private);
    bundle
}

fn load_ca(cert: &Path, key: &Path) -> anyhow::Result<Ca> {
    Ok(Ca::from_pem(
        &files::read(cert)?,
        &files::read(key)?,
        cert,
        key,
    )?)
}

fn report(written: Vec<PathBuf>) {
    for path in written {
        println!("wrote {}", path.display());
    }
}

/// Prints what loading `bundles` does with each certificate; returns how many would refuse
/// the load (a refused certificate, or no usable CA at all).
fn lint_bundles(
    bundles: &[zt_tls::BundleSource],
    only: Option<&TrustDomain>,
) -> anyhow::Result<usize> {
    use zt_tls::{Binding, CaVerdict, LeftOut};
    let entries = zt_tls::Truststore::examine(bundles, only)?;
    let mut refused = 0;
    for entry in &entries {
        let verdict = match &entry.verdict {
            CaVerdict::Trusted { domain, binding } => match binding {
                Binding::Source => format!("trusted for {domain} (bound by TRUST-DOMAIN=PATH)"),
                Binding::UriSan => format!("trusted for {domain} (named in its URI SAN)"),
                Binding::OnlyDomain => {
                    format!("trusted for {domain} (names no trust domain: bound to the only one)")
                }
            },
            CaVerdict::LeftOut(LeftOut::Expired { not_after }) => {
                format!("LEFT OUT: expired at {}", when(*not_after))
            }
            CaVerdict::LeftOut(LeftOut::NotYetValid { not_before }) => {
                format!("LEFT OUT: not valid before {}", when(*not_before))
            }
            CaVerdict::Refused(reason) => {
                refused += 1;
                format!("REFUSED: {reason}")
            }
        };
        println!(
            "{} certificate {} ({}): {verdict}",
            entry.path.display(),
            entry.index,
            entry.subject
        );
    }
    if !entries
        .iter()
        .any(|e| matches!(e.verdict, CaVerdict::Trusted { .. }))
    {
        println!("no usable CA: the load would fail");
        refused += 1;
    }
    Ok(refused)
}

/// Prints each certificate of a keystore chain with its verdict and, if `bundles` are given,
/// whether the chain verifies against them as a peer would; returns how many problems would
/// refuse it.
fn lint_chain(
    path: &Path,
    bundles: &[zt_tls::BundleSource],
    usage: zt_tls::ChainUse,
) -> anyhow::Result<usize> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let chain = zt_tls::load_certs(path)?;
    let mut refused = 0;
    let mut domain = None;
    for (index, der) in chain.iter().enumerate() {
        let verdict = if index == 0 {
            match zt_identity::inspect_leaf(der) {
                Ok(report) if report.violations.is_empty() => {
                    domain = report.spiffe_id.map(|id| id.trust_domain().to_owned());
                    "valid X509-SVID leaf".to_owned()
                }
                Ok(report) => {
                    refused += 1;
                    let reasons: Vec<String> =
                        report.violations.iter().map(ToString::to_string).collect();
                    format!("REFUSED: not an X509-SVID: {}", reasons.join("; "))
                }
                Err(e) => {
                    refused += 1;
                    format!("REFUSED: {e}")
                }
            }
        } else {
            match X509Certificate::from_der(der) {
                Ok((_, cert)) => match zt_tls::ca_problem(&cert) {
                    None => "usable as an issuer".to_owned(),
                    Some(reason) => {
                        refused += 1;
                        format!("REFUSED as an issuer: {reason}")
                    }
                },
                Err(e) => {
                    refused += 1;
                    format!("REFUSED: malformed certificate: {e}")
                }
            }
        };
        println!("{} certificate {index}: {verdict}", path.display());
    }
    if let (Some(domain), false) = (domain, bundles.is_empty()) {
        let only = TrustDomain::new(&domain)?;
        let truststore = zt_tls::Truststore::load_all(bundles, Some(&only))?;
        match zt_tls::chain_verdict(&chain, &domain, &truststore, usage) {
            Ok(true) => println!("chain: verifies to a trusted CA of {domain}"),
            Ok(false) => println!("chain: the bundles hold no CA of {domain}; not checked"),
            Err(reason) => {
                refused += 1;
                println!("chain: REFUSED: {reason}");
            }
        }
    }
    Ok(refused)
}
