//! `zt-bench`: serve one variant, load one server, or run the whole A/B comparison.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use zt_bench::Variant;
use zt_bench::load::{LoadReport, LoadSpec};
use zt_bench::pki::BenchPki;

#[derive(Parser)]
#[command(
    name = "zt-bench",
    version,
    about = "mTLS + authorization against plaintext, measured in the same run"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the echo service in one variant; prints `listening ADDR` once ready.
    Serve {
        #[arg(long, value_enum)]
        variant: Variant,
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// Directory with the benchmark PKI (made by `run`, or `pki`).
        #[arg(long)]
        pki: PathBuf,
    },
    /// Write a fresh benchmark PKI into DIR.
    Pki {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Load one server and print the report as one JSON line.
    Load {
        #[arg(long)]
        target: std::net::SocketAddr,
        #[arg(long, value_enum)]
        variant: Variant,
        #[arg(long)]
        pki: PathBuf,
        #[command(flatten)]
        shape: Shape,
        /// The server's PID, to report its CPU time per RPC.
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// Every variant, alternating, pinned to separate cores; prints medians and ratios.
    Run {
        /// Repetitions of each variant (alternating order); medians are reported.
        #[arg(long, default_value_t = 5)]
        reps: usize,
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        duration: Duration,
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        warmup: Duration,
        /// A smoke run: one repetition of one second each (for CI; figures are not meaningful).
        #[arg(long)]
        quick: bool,
    },
}

#[derive(clap::Args, Clone, Copy)]
struct Shape {
    #[arg(long, default_value_t = 4)]
    connections: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[arg(long, default_value_t = 64)]
    payload: usize,
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
}

fn main() -> std::process::ExitCode {
    zt_telemetry::exit_code("zt-bench", run(Cli::parse()).map(|()| true))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Serve {
            variant,
            listen,
            pki,
        } => runtime()?.block_on(async {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            println!("listening {}", listener.local_addr()?);
            zt_bench::server::serve(variant, listener, &BenchPki::open(&pki)).await?;
            Ok(())
        }),
        Cmd::Pki { dir } => {
            BenchPki::create(&dir)?;
            Ok(())
        }
        Cmd::Load {
            target,
            variant,
            pki,
            shape,
            server_pid,
        } => {
            let spec = LoadSpec {
                target,
                variant,
                connections: shape.connections,
                concurrency: shape.concurrency,
                payload: shape.payload,
                warmup: shape.warmup,
                duration: shape.duration,
                server_pid,
            };
            let report = runtime()?.block_on(zt_bench::load::run(&spec, &BenchPki::open(&pki)))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Cmd::Run {
            reps,
            duration,
            warmup,
            quick,
        } => {
            let (reps, duration, warmup) = if quick {
                (1, Duration::from_secs(1), Duration::from_millis(300))
            } else {
                (reps.max(1), duration, warmup)
            };
            compare(reps, duration, warmup)
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// One comparison: a payload size and a load shape, every variant.
struct Scenario {
    name: &'static str,
    payload: usize,
    connections: usize,
    concurrency: usize,
}

const SCENARIOS: [Scenario; 2] = [
    Scenario {
        name: "unary, 64 B",
        payload: 64,
        connections: 4,
        concurrency: 16,
    },
    Scenario {
        name: "unary, 64 KiB",
        payload: 64 * 1024,
        connections: 4,
        concurrency: 4,
    },
];

fn compare(reps: usize, duration: Duration, warmup: Duration) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("zt-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    BenchPki::create(&dir)?;
    let pinned = Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    println!("# zt-bench run: {reps} repetition(s) x {duration:?} (warm-up {warmup:?})");
    println!(
        "machine: {}; {}",
        cpu_model(),
        if pinned {
            "server on core 0, load generator on core 1 (taskset)"
        } else {
            "NOT pinned (no taskset)"
        }
    );
    println!();
    let mut failed = 0;
    let mut results = Vec::new();
    for scenario in &SCENARIOS {
        let mut samples: Vec<(Variant, LoadReport)> = Vec::new();
        for rep in 0..reps {
            // A B C, then C B A: drift over time does not favour one variant.
            let mut order = Variant::ALL.to_vec();
            if rep % 2 == 1 {
                order.reverse();
            }
            for variant in order {
                let report = measure(&dir, variant, scenario, duration, warmup, pinned)
                    .with_context(|| format!("{} / {}", scenario.name, variant.name()))?;
                failed += report.errors;
                samples.push((variant, report));
            }
        }
        results.push((scenario, samples));
    }
    let _ = std::fs::remove_dir_all(&dir);
    print!("{}", render(&results));
    anyhow::ensure!(failed == 0, "{failed} RPCs failed during the run");
    Ok(())
}

fn measure(
    dir: &Path,
    variant: Variant,
    scenario: &Scenario,
    duration: Duration,
    warmup: Duration,
    pinned: bool,
) -> anyhow::Result<LoadReport> {
    let me = std::env::current_exe()?;
    let command = |core: &str| {
        let mut command = if pinned {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(core).arg(&me);
            c
        } else {
            Command::new(&me)
        };
        command.stderr(Stdio::inherit());
        command
    };
    let mut server = KillOnDrop(
        command("0")
            .args(["serve", "--variant", variant.name(), "--pki"])
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let mut line = String::new();
    let stdout = server.0.stdout.take().context("server stdout")?;
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let target = line
        .trim()
        .strip_prefix("listening ")
        .context("server did not start")?
        .to_owned();
    let output = command("1")
        .args([
            "load",
            "--variant",
            variant.name(),
            "--target",
            &target,
            "--pki",
        ])
        .arg(dir)
        .args(["--server-pid", &server.0.id().to_string()])
        .args(["--payload", &scenario.payload.to_string()])
        .args(["--connections", &scenario.connections.to_string()])
        .args(["--concurrency", &scenario.concurrency.to_string()])
        .args(["--warmup", &humantime::format_duration(warmup).to_string()])
        .args([
            "--duration",
            &humantime::format_duration(duration).to_string(),
        ])
        .output()?;
    anyhow::ensure!(output.status.success(), "load generator failed");
    Ok(serde_json::from_slice(&output.stdout)?)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cpu_model() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{model}, {cores} cores")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

type Results<'a> = Vec<(&'a Scenario, Vec<(Variant, LoadReport)>)>;

fn render(results: &Results<'_>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut goals = Vec::new();
    for (scenario, samples) in results {
        let _ = writeln!(
            out,
            "## {} ({} connections x {} in flight)\n",
            scenario.name, scenario.connections, scenario.concurrency
        );
        let _ = writeln!(
            out,
            "| variant | RPS | MB/s | p50 us | p99 us | server CPU us/RPC | RPS vs plain | p50 vs plain | p99 vs plain |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
        let stat = |variant: Variant, f: fn(&LoadReport) -> f64| {
            median(
                samples
                    .iter()
                    .filter(|(v, _)| *v == variant)
                    .map(|(_, r)| f(r))
                    .collect(),
            )
        };
        let base = |f| stat(Variant::Plain, f);
        for variant in Variant::ALL {
            let rps = stat(variant, |r| r.rps);
            let p50 = stat(variant, |r| r.p50_us);
            let p99 = stat(variant, |r| r.p99_us);
            let _ = writeln!(
                out,
                "| {} | {rps:.0} | {:.1} | {p50:.0} | {p99:.0} | {:.1} | {:.3}x | {:.3}x | {:.3}x |",
                variant.name(),
                stat(variant, |r| r.bytes_per_sec) / 1e6,
                stat(variant, |r| r.server_cpu_us_per_rpc.unwrap_or(f64::NAN)),
                rps / base(|r| r.rps),
                p50 / base(|r| r.p50_us),
                p99 / base(|r| r.p99_us),
            );
        }
        let _ = writeln!(out);
        let ratio = |a: Variant, b: Variant, f: fn(&LoadReport) -> f64| stat(a, f) / stat(b, f);
        let (authz, mtls, plain) = (Variant::MtlsAuthz, Variant::Mtls, Variant::Plain);
        if scenario.payload <= 1024 {
            goals.push((
                "G1 RPS, mTLS+authz vs plaintext",
                ratio(authz, plain, |r| r.rps),
                ">= 0.90",
                ratio(authz, plain, |r| r.rps) >= 0.90,
            ));
            goals.push((
                "G1 p50, mTLS+authz vs plaintext",
                ratio(authz, plain, |r| r.p50_us),
                "<= 1.10",
                ratio(authz, plain, |r| r.p50_us) <= 1.10,
            ));
            goals.push((
                "G1 p99, mTLS+authz vs plaintext",
                ratio(authz, plain, |r| r.p99_us),
                "<= 1.20",
                ratio(authz, plain, |r| r.p99_us) <= 1.20,
            ));
            goals.push((
                "G2 RPS, mTLS+authz vs mTLS",
                ratio(authz, mtls, |r| r.rps),
                ">= 0.97",
                ratio(authz, mtls, |r| r.rps) >= 0.97,
            ));
        } else {
            goals.push((
                "G7 64 KiB throughput, mTLS+authz vs plaintext",
                ratio(authz, plain, |r| r.bytes_per_sec),
                ">= 0.85",
                ratio(authz, plain, |r| r.bytes_per_sec) >= 0.85,
            ));
        }
    }
    let _ = writeln!(
        out,
        "## Goals\n\n| goal | measured | target | |\n|---|---|---|---|"
    );
    for (goal, value, target, met) in goals {
        let _ = writeln!(
            out,
            "| {goal} | {value:.3}x | {target} | {} |",
            if met { "met" } else { "MISSED" }
        );
    }
    out
}
