//! `zt-lab`: the compose lab's one-shot PKI writer and its intruders.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use http::Uri;
use zt_identity::SpiffeId;
use zt_lab::attack::{self, Attack, Target, Verdict};

/// The Docker Compose lab.
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
    /// Run one attack; print a one-line verdict; exit 0 only if it was blocked.
    Attack {
        /// Which attack.
        #[arg(value_enum)]
        attack: Attack,
        /// The server to attack.
        #[arg(long, env = "ZT_LAB_SERVER", default_value = "https://ledger:8443")]
        server: Uri,
        /// The ledger's SPIFFE ID, as legitimate clients require it.
        #[arg(
            long,
            env = "ZT_LAB_SERVER_ID",
            default_value = "spiffe://zt.example/ns/prod/sa/ledger"
        )]
        server_id: SpiffeId,
        /// The attackers' certificates.
        #[arg(long, env = "ZT_LAB_MATERIAL", default_value = "/pki/intruder")]
        material: PathBuf,
        /// A genuine identity's certificate, for attacks made with one.
        #[arg(long, env = "ZT_LAB_CERT")]
        cert: Option<PathBuf>,
        /// Its private key.
        #[arg(long, env = "ZT_LAB_KEY")]
        key: Option<PathBuf>,
        /// Its truststore (for brute-force: the real CA, whose name the rogue CA copies).
        #[arg(long, env = "ZT_LAB_CA", default_value = "/pki/intruder/ca.pem")]
        ca: PathBuf,
        /// brute-force: handshakes to attempt, each with a freshly forged certificate.
        #[arg(long, env = "ZT_LAB_ATTEMPTS", default_value_t = 2000)]
        attempts: usize,
        /// brute-force: handshakes in flight at once.
        #[arg(long, env = "ZT_LAB_CONCURRENCY", default_value_t = zt_lab::brute::Options::default().concurrency)]
        concurrency: usize,
        /// brute-force: handshakes started per second, at most.
        #[arg(long, env = "ZT_LAB_RATE", default_value_t = zt_lab::brute::Options::default().rate)]
        rate: u32,
        /// brute-force: stop here, finished or not (unfinished is inconclusive).
        #[arg(long, env = "ZT_LAB_DEADLINE", default_value = "60s", value_parser = humantime::parse_duration)]
        deadline: Duration,
        /// brute-force, with a genuine identity: how often it calls GetBalance, during the
        /// quiet windows and the attack bursts alike.
        #[arg(long, env = "ZT_LAB_CALL_EVERY", default_value = "2ms", value_parser = humantime::parse_duration)]
        call_every: Duration,
        /// brute-force: bursts the attempts are split into, each after a quiet window.
        #[arg(long, env = "ZT_LAB_ROUNDS", default_value_t = 4)]
        rounds: usize,
    },
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
                // The `expired` certificate lives one second; make sure it has expired.
                std::thread::sleep(Duration::from_secs(2));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("zt-lab: error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Attack {
            attack,
            server,
            server_id,
            material,
            cert,
            key,
            ca,
            attempts,
            concurrency,
            rate,
            deadline,
            call_every,
            rounds,
        } => {
            let name = clap::ValueEnum::to_possible_value(&attack)
                .map_or_else(|| format!("{attack:?}"), |v| v.get_name().to_owned());
            let target = Target {
                server,
                server_id,
                material,
                cert,
                key,
                ca,
                brute_force: zt_lab::brute::Options {
                    attempts,
                    concurrency,
                    rate,
                    deadline,
                    call_every,
                    rounds,
                    ..zt_lab::brute::Options::default()
                },
            };
            match attack::run(attack, &target).await {
                Verdict::Blocked(how) => {
                    println!("BLOCKED  {name}: {how}");
                    ExitCode::SUCCESS
                }
                Verdict::Breach(what) => {
                    println!("BREACH   {name}: {what}");
                    ExitCode::FAILURE
                }
                Verdict::Inconclusive(why) => {
                    println!("UNKNOWN  {name}: {why}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
