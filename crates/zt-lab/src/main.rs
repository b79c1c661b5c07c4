//! `zt-lab`: the attack catalogue against any mutual-TLS gRPC endpoint, and the compose lab's
//! one-shot PKI writer.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use http::Uri;
use zt_identity::SpiffeId;
use zt_lab::brute;
use zt_lab::catalogue::{self, Case, Refused, Target};
use zt_tls::BundleSource;

/// The attack catalogue and the Docker Compose lab.
#[derive(Parser)]
#[command(name = "zt-lab", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once, never moved around")]
enum Command {
    /// Write the lab's PKI: one directory per container (see the zt-lab crate docs).
    Pki {
        /// Where to write.
        #[arg(long, default_value = "/pki")]
        out: PathBuf,
        /// Lifetime of the service certificates.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        lifetime: Duration,
    },
    /// Run the attack catalogue against an mTLS gRPC endpoint: one line per case, then a
    /// summary. Exit 0 if every case run was BLOCKED (SKIPPED ones aside), 1 if any was NOT
    /// BLOCKED, 3 if the control call failed or a case was INCONCLUSIVE, 2 on a usage error.
    Attack(Box<AttackArgs>),
}

#[derive(clap::Args)]
struct AttackArgs {
    /// The target: `https://HOST:PORT` or `HOST:PORT`.
    #[arg(long, env = "ZT_ATTACK_TARGET", value_parser = parse_target)]
    target: Uri,
    /// The SPIFFE ID the server must prove to its legitimate clients.
    #[arg(long, env = "ZT_ATTACK_SERVER_ID")]
    server_id: SpiffeId,
    /// The trust bundle legitimate clients use (`[TRUST-DOMAIN=]PATH`, PEM, DER, PKCS#12 or a
    /// SPIFFE bundle).
    #[arg(long, env = "ZT_ATTACK_CA")]
    ca: BundleSource,
    /// A legitimate client's certificate chain: the control call must work with it.
    #[arg(long, env = "ZT_ATTACK_CERT")]
    cert: PathBuf,
    /// Its private key.
    #[arg(long, env = "ZT_ATTACK_KEY")]
    key: PathBuf,
    /// The method the legitimate client calls to prove the target works (any answer but
    /// UNAUTHENTICATED or PERMISSION_DENIED will do), and forgeries then try.
    #[arg(long, env = "ZT_ATTACK_CONTROL", default_value = catalogue::DEFAULT_CONTROL)]
    control: String,
    /// A method an identity must be refused on: `METHOD` (the legitimate keystore) or
    /// `METHOD@CERT,KEY`. Repeat for more.
    #[arg(long, value_name = "METHOD[@CERT,KEY]")]
    refused: Vec<Refused>,
    /// The issuing CA's certificate, in a test environment (with --ca-key): enables expired,
    /// not-yet-valid, wrong-trust-domain, two-uri-sans, ca-as-leaf and server-auth-only, and a
    /// genuine impostor for spoofed-server.
    #[arg(long, env = "ZT_ATTACK_CA_CERT", requires = "ca_key")]
    ca_cert: Option<PathBuf>,
    /// The issuing CA's private key.
    #[arg(long, env = "ZT_ATTACK_CA_KEY", requires = "ca_cert")]
    ca_key: Option<PathBuf>,
    /// A directory of certificates issued beforehand by the target's CA (`expired.pem`/`.key`,
    /// `not-yet-valid`, `wrong-trust-domain`, `two-uri-sans`, `ca-as-leaf`,
    /// `server-auth-only`, `spoofed-server`), used when --ca-key is not given.
    #[arg(long, env = "ZT_ATTACK_ISSUED")]
    issued: Option<PathBuf>,
    /// Run only these cases (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Case>,
    /// Leave these cases out (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    skip: Vec<Case>,
    /// Also write the report as JUnit XML here.
    #[arg(long, env = "ZT_ATTACK_JUNIT")]
    junit: Option<PathBuf>,
    /// How long to wait for any one answer.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    wait: Duration,
    /// brute-force: handshakes, each with a freshly forged certificate.
    #[arg(long, env = "ZT_ATTACK_BRUTE_ATTEMPTS", default_value_t = brute::Options::default().attempts)]
    brute_attempts: usize,
    /// brute-force: handshakes in flight at once.
    #[arg(long, default_value_t = brute::Options::default().concurrency)]
    brute_concurrency: usize,
    /// brute-force: handshakes started per second, at most.
    #[arg(long, default_value_t = brute::Options::default().rate)]
    brute_rate: u32,
    /// brute-force: stop here, finished or not (unfinished is inconclusive).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    brute_deadline: Duration,
    /// brute-force: bursts the attempts are split into, each after a quiet window.
    #[arg(long, default_value_t = brute::Options::default().rounds)]
    brute_rounds: usize,
    /// brute-force: how often the legitimate client calls the control method, quiet and under
    /// attack.
    #[arg(long, default_value = "2ms", value_parser = humantime::parse_duration)]
    brute_call_every: Duration,
    /// brute-force: the most the legitimate client's p99 may grow under attack (a multiple of
    /// the quiet one); 0 does not measure it.
    #[arg(long, env = "ZT_ATTACK_BRUTE_MAX_SLOWDOWN", default_value_t = brute::Options::default().max_slowdown)]
    brute_max_slowdown: f64,
}

/// `HOST:PORT` means `https://HOST:PORT`; a plaintext `http://` target is refused.
fn parse_target(s: &str) -> Result<Uri, String> {
    let full = if s.contains("://") {
        s.to_owned()
    } else {
        format!("https://{s}")
    };
    let uri: Uri = full.parse().map_err(|e| format!("{s}: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!(
            "{s}: the target is an mTLS endpoint: https://HOST:PORT or HOST:PORT"
        ));
    }
    if uri.host().is_none() {
        return Err(format!("{s}: no host"));
    }
    Ok(uri)
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Pki { out, lifetime } => match zt_lab::pki::write_lab(&out, lifetime) {
            Ok(()) => {
                println!(
                    "pki: wrote the lab's keystores and truststores under {}",
                    out.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("zt-lab: error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Attack(args) => attack(*args).await,
    }
}

async fn attack(args: AttackArgs) -> ExitCode {
    let mut target = Target::new(args.target, args.server_id, args.ca, args.cert, args.key);
    target.control = args.control;
    target.refused = args.refused;
    target.issuer = args.ca_cert.zip(args.ca_key);
    target.issued = args.issued;
    target.wait = args.wait;
    if !args.only.is_empty() {
        target.cases = args.only;
    }
    target.cases.retain(|case| !args.skip.contains(case));
    target.brute_force = brute::Options {
        attempts: args.brute_attempts,
        concurrency: args.brute_concurrency,
        rate: args.brute_rate,
        deadline: args.brute_deadline,
        rounds: args.brute_rounds,
        call_every: args.brute_call_every,
        max_slowdown: args.brute_max_slowdown,
        ..brute::Options::default()
    };
    let report = catalogue::run(&target).await;
    println!("{}", report.table());
    if let Some(path) = &args.junit {
        let written = std::fs::File::create(path).and_then(|file| {
            let mut out = std::io::BufWriter::new(file);
            zt_lab::junit::write(&report, &mut out)?;
            std::io::Write::flush(&mut out)
        });
        if let Err(e) = written {
            eprintln!("zt-lab: error: writing {}: {e}", path.display());
            println!("{}", report.summary());
            return ExitCode::from(catalogue::EXIT_INCONCLUSIVE);
        }
    }
    println!("{}", report.summary());
    ExitCode::from(report.exit_code())
}
