//! `zt-bench`: serve one variant, load one server, or run the whole A/B comparison.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use zt_bench::Variant;
use zt_bench::handshake::HandshakeReport;
use zt_bench::load::{Churn, IdleReport, LoadReport, LoadSpec};
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
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        shape: Shape,
        /// The server's PID, to report its CPU time per RPC.
        #[arg(long)]
        server_pid: Option<u32>,
        /// A new connection (and handshake) for every RPC; `--connections` workers.
        #[arg(long, value_enum)]
        churn: Option<Churn>,
    },
    /// Measure P-256 and X25519 costs and in-memory mTLS handshakes; print one JSON line.
    Handshakes {
        #[arg(long)]
        pki: PathBuf,
        /// Handshakes (and crypto operations) of each kind.
        #[arg(long, default_value_t = 2000)]
        rounds: usize,
    },
    /// Open idle connections up to each of --steps and print the server's memory at each.
    Idle {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        server_pid: u32,
        #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
        steps: Vec<usize>,
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
        /// Python with grpcio, for the grpcio server of G5 (`scripts/interop.sh` makes this
        /// virtualenv); without it G5 is reported as not measured.
        #[arg(long, default_value = "target/interop-venv/bin/python")]
        python: PathBuf,
    },
}

/// Which server a load generator talks to, and how.
#[derive(clap::Args)]
struct ServerArgs {
    #[arg(long)]
    target: std::net::SocketAddr,
    #[arg(long, value_enum)]
    variant: Variant,
    /// Directory with the benchmark PKI.
    #[arg(long)]
    pki: PathBuf,
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
            raise_fd_limit();
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
            server,
            shape,
            server_pid,
            churn,
        } => {
            raise_fd_limit();
            let spec = shape.spec(server.target, server.variant, server_pid, churn);
            let pki = BenchPki::open(&server.pki);
            let report = runtime()?.block_on(zt_bench::load::run(&spec, &pki))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Cmd::Handshakes { pki, rounds } => {
            let report = zt_bench::handshake::measure(&BenchPki::open(&pki), rounds.max(10))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Cmd::Idle {
            server,
            server_pid,
            steps,
        } => {
            raise_fd_limit();
            let spec = Shape::default().spec(server.target, server.variant, Some(server_pid), None);
            let pki = BenchPki::open(&server.pki);
            let report =
                runtime()?.block_on(zt_bench::load::hold_idle(&spec, &pki, &steps, server_pid))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Cmd::Run {
            reps,
            duration,
            warmup,
            quick,
            python,
        } => {
            let plan = if quick {
                Plan {
                    reps: 1,
                    duration: Duration::from_secs(1),
                    warmup: Duration::from_millis(300),
                    rounds: 100,
                    idle_steps: [100, 500],
                }
            } else {
                Plan {
                    reps: reps.max(1),
                    duration,
                    warmup,
                    rounds: 2000,
                    idle_steps: [1000, 5000],
                }
            };
            compare(&plan, &python)
        }
    }
}

/// Thousands of connections need thousands of descriptors: raise the soft limit to the hard
/// one (best effort; a shortfall shows up as failed connections, which fail the run).
fn raise_fd_limit() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            connections: 4,
            concurrency: 16,
            payload: 64,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(5),
        }
    }
}

impl Shape {
    fn spec(
        self,
        target: std::net::SocketAddr,
        variant: Variant,
        server_pid: Option<u32>,
        churn: Option<Churn>,
    ) -> LoadSpec {
        LoadSpec {
            target,
            variant,
            connections: self.connections,
            concurrency: self.concurrency,
            payload: self.payload,
            warmup: self.warmup,
            duration: self.duration,
            server_pid,
            churn,
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// How much of everything to run.
struct Plan {
    reps: usize,
    duration: Duration,
    warmup: Duration,
    /// In-memory handshakes (and crypto operations) of each kind.
    rounds: usize,
    /// Idle connections at which the server's memory is read (G6).
    idle_steps: [usize; 2],
}

/// A server under load: ours in one variant, or the Python grpcio one (G5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Ours(Variant),
    Grpcio,
}

/// One arm of a comparison: a server, and how the load generator connects to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Arm {
    server: Server,
    churn: Option<Churn>,
}

impl Arm {
    const fn ours(variant: Variant) -> Self {
        Self {
            server: Server::Ours(variant),
            churn: None,
        }
    }

    fn label(self) -> String {
        let server = match self.server {
            Server::Ours(variant) => variant.name(),
            Server::Grpcio => "grpcio (Python)",
        };
        match self.churn {
            None => server.to_owned(),
            Some(Churn::Full) => format!("{server}, full handshakes"),
            Some(Churn::Resumed) => format!("{server}, resumed sessions"),
        }
    }
}

const PLAIN: Arm = Arm::ours(Variant::Plain);
const MTLS: Arm = Arm::ours(Variant::Mtls);
const AUTHZ: Arm = Arm::ours(Variant::MtlsAuthz);
const GRPCIO: Arm = Arm {
    server: Server::Grpcio,
    churn: None,
};
const FULL: Arm = Arm {
    server: Server::Ours(Variant::MtlsAuthz),
    churn: Some(Churn::Full),
};
const RESUMED: Arm = Arm {
    server: Server::Ours(Variant::MtlsAuthz),
    churn: Some(Churn::Resumed),
};

/// One comparison: a payload size and a load shape, every arm, the first the baseline.
struct Scenario {
    name: &'static str,
    payload: usize,
    connections: usize,
    concurrency: usize,
    arms: Vec<Arm>,
}

/// Where the Python grpcio echo server is (G5), if this machine can run it.
struct Grpcio {
    python: PathBuf,
    script: PathBuf,
}

impl Grpcio {
    fn find(python: &Path) -> Result<Self, String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let python = if python.is_relative() {
            root.join(python)
        } else {
            python.to_owned()
        };
        let script = root.join("interop/echo_server.py");
        let works = Command::new(&python)
            .args(["-c", "import grpc"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if works && script.is_file() {
            Ok(Self { python, script })
        } else {
            Err(format!(
                "no Python with grpcio at {} (scripts/interop.sh creates it)",
                python.display()
            ))
        }
    }
}

fn compare(plan: &Plan, python: &Path) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("zt-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    BenchPki::create(&dir)?;
    let pinned = Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let grpcio = Grpcio::find(python);
    let bench = Bench {
        dir: dir.clone(),
        me: std::env::current_exe()?,
        pinned,
        grpcio: grpcio.as_ref().ok(),
    };
    println!(
        "# zt-bench run: {} repetition(s) x {:?} (warm-up {:?})",
        plan.reps, plan.duration, plan.warmup
    );
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

    let mut unary = vec![PLAIN, MTLS, AUTHZ];
    if grpcio.is_ok() {
        unary.push(GRPCIO);
    }
    let scenarios = [
        Scenario {
            name: "unary, 64 B",
            payload: 64,
            connections: 4,
            concurrency: 16,
            arms: unary,
        },
        Scenario {
            name: "unary, 64 KiB",
            payload: 64 * 1024,
            connections: 4,
            concurrency: 4,
            arms: vec![PLAIN, MTLS, AUTHZ],
        },
        Scenario {
            name: "connect + 1 RPC + close",
            payload: 64,
            connections: 8,
            concurrency: 1,
            arms: vec![FULL, RESUMED],
        },
    ];
    let mut failed = 0;
    let mut results = Vec::new();
    for scenario in &scenarios {
        let mut samples: Vec<(Arm, LoadReport)> = Vec::new();
        for rep in 0..plan.reps {
            // A B C, then C B A: drift over time does not favour one arm.
            let mut order = scenario.arms.clone();
            if rep % 2 == 1 {
                order.reverse();
            }
            for arm in order {
                let report = bench
                    .load(arm, scenario, plan)
                    .with_context(|| format!("{} / {}", scenario.name, arm.label()))?;
                failed += report.errors;
                samples.push((arm, report));
            }
        }
        results.push((scenario, samples));
    }
    let handshakes = bench
        .handshakes(plan.rounds)
        .context("in-memory handshakes")?;
    let mut idle = Vec::new();
    for variant in [Variant::Plain, Variant::MtlsAuthz] {
        let report = bench
            .idle(variant, &plan.idle_steps)
            .with_context(|| format!("idle connections / {}", variant.name()))?;
        idle.push((variant, report));
    }
    let _ = std::fs::remove_dir_all(&dir);
    print!(
        "{}",
        render(&results, &handshakes, &idle, grpcio.err().as_deref())
    );
    anyhow::ensure!(failed == 0, "{failed} RPCs failed during the run");
    Ok(())
}

/// Starts servers and load generators, each pinned to its core.
struct Bench<'a> {
    dir: PathBuf,
    me: PathBuf,
    pinned: bool,
    grpcio: Option<&'a Grpcio>,
}

impl Bench<'_> {
    fn command(&self, core: &str, program: &Path) -> Command {
        let mut command = if self.pinned {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(core).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.stderr(Stdio::inherit());
        command
    }

    /// Starts `server` on core 0; returns it and the address it listens on.
    fn start(&self, server: Server) -> anyhow::Result<(KillOnDrop, String)> {
        let mut command = match (server, self.grpcio) {
            (Server::Ours(variant), _) => {
                let mut c = self.command("0", &self.me);
                c.args(["serve", "--variant", variant.name(), "--pki"])
                    .arg(&self.dir);
                c
            }
            (Server::Grpcio, Some(grpcio)) => {
                let (cert, key) = BenchPki::open(&self.dir).keystore("server");
                let mut c = self.command("0", &grpcio.python);
                c.arg(&grpcio.script)
                    .args(["--listen", "127.0.0.1:0", "--cert"])
                    .arg(cert)
                    .arg("--key")
                    .arg(key)
                    .arg("--ca")
                    .arg(self.dir.join("ca.pem"));
                c
            }
            (Server::Grpcio, None) => anyhow::bail!("no grpcio"),
        };
        let mut server = KillOnDrop(command.stdout(Stdio::piped()).spawn()?);
        let mut line = String::new();
        let stdout = server.0.stdout.take().context("server stdout")?;
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        // `listening ADDR` (ours) or `listening on ADDR` (the Python server).
        let target = line
            .trim()
            .strip_prefix("listening ")
            .map(|rest| rest.trim_start_matches("on "))
            .context("server did not start")?
            .to_owned();
        Ok((server, target))
    }

    fn load(&self, arm: Arm, scenario: &Scenario, plan: &Plan) -> anyhow::Result<LoadReport> {
        let (server, target) = self.start(arm.server)?;
        let variant = match arm.server {
            Server::Ours(variant) => variant,
            // Same client as against ours: mutual TLS, the server's SPIFFE ID pinned.
            Server::Grpcio => Variant::Mtls,
        };
        let mut command = self.loader("load", variant, &target, &server);
        command
            .args(["--payload", &scenario.payload.to_string()])
            .args(["--connections", &scenario.connections.to_string()])
            .args(["--concurrency", &scenario.concurrency.to_string()])
            .args([
                "--warmup",
                &humantime::format_duration(plan.warmup).to_string(),
            ])
            .args([
                "--duration",
                &humantime::format_duration(plan.duration).to_string(),
            ]);
        match arm.churn {
            Some(Churn::Full) => command.args(["--churn", "full"]),
            Some(Churn::Resumed) => command.args(["--churn", "resumed"]),
            None => &mut command,
        };
        json_output(&mut command, "load generator")
    }

    fn handshakes(&self, rounds: usize) -> anyhow::Result<HandshakeReport> {
        let mut command = self.command("0", &self.me);
        command
            .args(["handshakes", "--rounds", &rounds.to_string(), "--pki"])
            .arg(&self.dir);
        json_output(&mut command, "handshake benchmark")
    }

    fn idle(&self, variant: Variant, steps: &[usize]) -> anyhow::Result<IdleReport> {
        let (server, target) = self.start(Server::Ours(variant))?;
        let steps: Vec<String> = steps.iter().map(ToString::to_string).collect();
        let mut command = self.loader("idle", variant, &target, &server);
        command.args(["--steps", &steps.join(",")]);
        json_output(&mut command, "idle connections")
    }

    /// `zt-bench SUBCOMMAND` on core 1 against `server` at `target`.
    fn loader(
        &self,
        subcommand: &str,
        variant: Variant,
        target: &str,
        server: &KillOnDrop,
    ) -> Command {
        let mut command = self.command("1", &self.me);
        command
            .args([subcommand, "--variant", variant.name(), "--target", target])
            .arg("--pki")
            .arg(&self.dir)
            .args(["--server-pid", &server.0.id().to_string()]);
        command
    }
}

/// Runs `command` to the end and parses the JSON line it printed.
fn json_output<T: serde::de::DeserializeOwned>(
    command: &mut Command,
    what: &str,
) -> anyhow::Result<T> {
    let output = command.output()?;
    anyhow::ensure!(output.status.success(), "{what} failed");
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

type Results<'a> = Vec<(&'a Scenario, Vec<(Arm, LoadReport)>)>;

/// One row of the goals table.
struct Goal {
    name: &'static str,
    measured: f64,
    unit: &'static str,
    target: &'static str,
    met: bool,
}

fn render(
    results: &Results<'_>,
    handshakes: &HandshakeReport,
    idle: &[(Variant, IdleReport)],
    grpcio_missing: Option<&str>,
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut goals = Vec::new();
    let mut goal = |name, measured: f64, target, met: bool| {
        goals.push(Goal {
            name,
            measured,
            unit: "x",
            target,
            met,
        });
    };
    let mut churn = None;
    for (scenario, samples) in results {
        let stat = |arm: Arm, f: fn(&LoadReport) -> f64| {
            median(
                samples
                    .iter()
                    .filter(|(a, _)| *a == arm)
                    .map(|(_, r)| f(r))
                    .collect(),
            )
        };
        let base = scenario.arms[0];
        let (rate, unit) = if base.churn.is_some() {
            ("connections/s", "server CPU us/connection")
        } else {
            ("RPS", "server CPU us/RPC")
        };
        let _ = writeln!(
            out,
            "## {} ({} connections x {} in flight)\n",
            scenario.name, scenario.connections, scenario.concurrency
        );
        let _ = writeln!(
            out,
            "| arm | {rate} | MB/s | p50 us | p99 us | {unit} | {rate} vs {b} | p50 vs {b} | p99 vs {b} |",
            b = base.label()
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
        for &arm in &scenario.arms {
            let rps = stat(arm, |r| r.rps);
            let p50 = stat(arm, |r| r.p50_us);
            let p99 = stat(arm, |r| r.p99_us);
            let _ = writeln!(
                out,
                "| {} | {rps:.0} | {:.1} | {p50:.0} | {p99:.0} | {:.1} | {:.3}x | {:.3}x | {:.3}x |",
                arm.label(),
                stat(arm, |r| r.bytes_per_sec) / 1e6,
                stat(arm, |r| r.server_cpu_us_per_rpc.unwrap_or(f64::NAN)),
                rps / stat(base, |r| r.rps),
                p50 / stat(base, |r| r.p50_us),
                p99 / stat(base, |r| r.p99_us),
            );
        }
        let _ = writeln!(out);
        let ratio = |a: Arm, b: Arm, f: fn(&LoadReport) -> f64| stat(a, f) / stat(b, f);
        if base.churn.is_some() {
            churn = Some((stat(FULL, |r| r.rps), ratio(RESUMED, FULL, |r| r.rps)));
        } else if scenario.payload <= 1024 {
            let rps = ratio(AUTHZ, PLAIN, |r| r.rps);
            goal(
                "G1 RPS, mTLS+authz vs plaintext",
                rps,
                ">= 0.90",
                rps >= 0.90,
            );
            let p50 = ratio(AUTHZ, PLAIN, |r| r.p50_us);
            goal(
                "G1 p50, mTLS+authz vs plaintext",
                p50,
                "<= 1.10",
                p50 <= 1.10,
            );
            let p99 = ratio(AUTHZ, PLAIN, |r| r.p99_us);
            goal(
                "G1 p99, mTLS+authz vs plaintext",
                p99,
                "<= 1.20",
                p99 <= 1.20,
            );
            let layer = ratio(AUTHZ, MTLS, |r| r.rps);
            goal(
                "G2 RPS, mTLS+authz vs mTLS",
                layer,
                ">= 0.97",
                layer >= 0.97,
            );
            if scenario.arms.contains(&GRPCIO) {
                let vs = ratio(AUTHZ, GRPCIO, |r| r.rps);
                goal(
                    "G5 RPS, ours (mTLS+authz) vs grpcio server",
                    vs,
                    ">= 5",
                    vs >= 5.0,
                );
            }
        } else {
            let bytes = ratio(AUTHZ, PLAIN, |r| r.bytes_per_sec);
            goal(
                "G7 64 KiB throughput, mTLS+authz vs plaintext",
                bytes,
                ">= 0.85",
                bytes >= 0.85,
            );
        }
    }

    let crypto = &handshakes.crypto;
    let hs = &handshakes.handshakes;
    let _ = writeln!(
        out,
        "## Handshakes in memory (one core, our rustls configurations)\n"
    );
    let _ = writeln!(
        out,
        "Crypto measured in this run (ring): P-256 sign {:.1} us, verify {:.1} us, X25519 {:.1} us. \
         One side of a P-256 + X25519 mTLS handshake = X25519 + sign + 2 x verify = {:.1} us, \
         so at most {:.0} handshakes/s per core.\n",
        crypto.p256_sign_us,
        crypto.p256_verify_us,
        crypto.x25519_us,
        crypto.per_side_us(),
        crypto.limit_per_core()
    );
    let _ = writeln!(
        out,
        "| handshake | server us | client us | server /s | crypto limit / server cost |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for (name, server, client) in [
        ("full", hs.full_server_us, hs.full_client_us),
        ("resumed", hs.resumed_server_us, hs.resumed_client_us),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {server:.1} | {client:.1} | {:.0} | {:.3} |",
            1e6 / server,
            crypto.per_side_us() / server
        );
    }
    let _ = writeln!(out);
    let efficiency = crypto.per_side_us() / hs.full_server_us;
    goal(
        "G3 in-memory full handshake, crypto limit / server cost",
        efficiency,
        ">= 0.70",
        efficiency >= 0.70,
    );
    if let Some((full_rate, resumed_ratio)) = churn {
        // Server and load generator on a core each, each doing one side of every handshake.
        let e2e = full_rate / crypto.limit_per_core();
        goal(
            "G3 connect + 1 RPC + close vs the 2-core crypto limit",
            e2e,
            ">= 0.45",
            e2e >= 0.45,
        );
        goal(
            "G4 resumed vs full connections (connect + 1 RPC + close)",
            resumed_ratio,
            ">= 2.0",
            resumed_ratio >= 2.0,
        );
    }

    let _ = writeln!(out, "## Idle connections: server resident memory\n");
    let _ = writeln!(
        out,
        "| variant | connections: RSS KiB | KiB per connection |"
    );
    let _ = writeln!(out, "|---|---|---|");
    for (variant, report) in idle {
        let steps: Vec<String> = report
            .steps
            .iter()
            .map(|(n, kib)| format!("{n}: {kib}"))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} |",
            variant.name(),
            steps.join(", "),
            report.kib_per_connection()
        );
    }
    let _ = writeln!(out);
    let per_conn = |v: Variant| {
        idle.iter()
            .find(|(variant, _)| *variant == v)
            .map_or(f64::NAN, |(_, r)| r.kib_per_connection())
    };
    let extra = per_conn(Variant::MtlsAuthz) - per_conn(Variant::Plain);
    goals.push(Goal {
        name: "G6 extra server memory per idle mTLS connection",
        measured: extra,
        unit: " KiB",
        target: "<= 12 KiB",
        met: extra <= 12.0,
    });

    let _ = writeln!(
        out,
        "## Goals\n\n| goal | measured | target | |\n|---|---|---|---|"
    );
    for g in goals {
        let _ = writeln!(
            out,
            "| {} | {:.3}{} | {} | {} |",
            g.name,
            g.measured,
            g.unit,
            g.target,
            if g.met { "met" } else { "MISSED" }
        );
    }
    if let Some(why) = grpcio_missing {
        let _ = writeln!(
            out,
            "| G5 RPS, ours vs grpcio server | not measured: {why} | >= 5 | NOT MEASURED |"
        );
    }
    out
}
