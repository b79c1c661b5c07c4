//! `zt-bench`: serve one variant, load one server, or run the whole A/B comparison.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use zt_bench::Variant;
use zt_bench::cpu::Source;
use zt_bench::handshake::{HandshakeReport, ProviderFigures};
use zt_bench::load::{Churn, IdleReport, LoadReport, LoadSpec};
use zt_bench::pki::BenchPki;
use zt_bench::quota::CpuQuota;

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
        /// Tokio worker threads (0: a current-thread runtime). Default: one per core this
        /// process may use (one, pinned).
        #[arg(long)]
        workers: Option<usize>,
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
        /// The server's PIDs (comma-separated; a sidecar is two processes), to report their
        /// CPU time per RPC.
        #[arg(long, value_delimiter = ',')]
        server_pid: Vec<u32>,
        /// A new connection (and handshake) for every RPC; `--connections` workers.
        #[arg(long, value_enum)]
        churn: Option<Churn>,
        /// PID of a server under callgrind (collection off): count only the measured window.
        #[arg(long)]
        callgrind: Option<u32>,
        /// Tokio worker threads (0: a current-thread runtime). Default: one per core this
        /// process may use (one, pinned).
        #[arg(long)]
        workers: Option<usize>,
        /// The `cpu.stat` of the server's CPU-quota cgroup, to report its throttled time.
        #[arg(long)]
        throttle_stat: Option<PathBuf>,
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
        /// The "slow core": the share of one core the server gets in the slow-core scenarios
        /// (a CFS quota through a cgroup; see `quota.rs`). 0 leaves those scenarios out.
        #[arg(long, default_value_t = 0.33)]
        slow_core: f64,
        /// nginx for G8 (the sidecar); default: `nginx` on PATH or /usr/sbin/nginx.
        #[arg(long)]
        nginx: Option<PathBuf>,
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
            workers,
        } => runtime(workers)?.block_on(async {
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
            callgrind,
            workers,
            throttle_stat,
        } => {
            raise_fd_limit();
            let mut spec = shape.spec(server.target, server.variant, server_pid, churn);
            spec.callgrind = callgrind;
            spec.throttle_stat = throttle_stat;
            let pki = BenchPki::open(&server.pki);
            let report = runtime(workers)?.block_on(zt_bench::load::run(&spec, &pki))?;
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
            let spec = Shape::default().spec(server.target, server.variant, vec![server_pid], None);
            let pki = BenchPki::open(&server.pki);
            let report = runtime(None)?
                .block_on(zt_bench::load::hold_idle(&spec, &pki, &steps, server_pid))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Cmd::Run {
            reps,
            duration,
            warmup,
            quick,
            python,
            slow_core,
            nginx,
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
            compare(&plan, &python, slow_core, nginx)
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
        server_pids: Vec<u32>,
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
            server_pids,
            churn,
            callgrind: None,
            throttle_stat: None,
        }
    }
}

/// Tokio's multi-thread runtime with `workers` threads (default: one per core this process
/// may use, so one when pinned), or its current-thread runtime for `Some(0)`.
fn runtime(workers: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    match workers {
        Some(0) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
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

/// A server under load: ours in one variant, the Python grpcio one (G5), or nginx
/// terminating mTLS in front of our plaintext variant (G8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Ours(Variant),
    Grpcio,
    Sidecar,
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
            Server::Sidecar => "nginx mTLS sidecar + plain",
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
const SIDECAR: Arm = Arm {
    server: Server::Sidecar,
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
    /// The server (every process of it) runs under the slow-core quota.
    slow: bool,
}

impl Scenario {
    fn title(&self, quota: Option<&CpuQuota>) -> String {
        match (self.slow, quota) {
            (true, Some(q)) => format!(
                "{}, slow core: server at {:.2} core",
                self.name,
                q.fraction()
            ),
            _ => format!("{}, full core", self.name),
        }
    }

    fn speed(&self) -> &'static str {
        if self.slow { "slow core" } else { "full core" }
    }
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

/// What the run could not measure, and why.
#[derive(Default)]
struct Missing {
    grpcio: Option<String>,
    nginx: Option<String>,
    slow_core: Option<String>,
}

fn compare(
    plan: &Plan,
    python: &Path,
    slow_core: f64,
    nginx: Option<PathBuf>,
) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("zt-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    BenchPki::create(&dir)?;
    let pinned = Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut missing = Missing::default();
    let grpcio = Grpcio::find(python)
        .map_err(|why| missing.grpcio = Some(why))
        .ok();
    let nginx = nginx
        .map_or_else(zt_bench::sidecar::find_nginx, Ok)
        .map_err(|why| missing.nginx = Some(why))
        .ok();
    let quota = if slow_core > 0.0 {
        CpuQuota::create(&format!("zt-bench-{}", std::process::id()), slow_core)
            .map_err(|e| missing.slow_core = Some(format!("no CPU quota: {e}")))
            .ok()
    } else {
        missing.slow_core = Some("--slow-core 0".to_owned());
        None
    };
    let bench = Bench {
        pki: BenchPki::open(&dir),
        me: std::env::current_exe()?,
        pinned,
        grpcio: grpcio.as_ref(),
        nginx: nginx.as_deref(),
        quota: quota.as_ref(),
    };
    println!(
        "# zt-bench run: {} repetition(s) x {:?} (warm-up {:?})",
        plan.reps, plan.duration, plan.warmup
    );
    println!(
        "machine: {}; {}; load average before: {}",
        cpu_model(),
        if pinned {
            "server on core 0, load generator on core 1 (taskset)"
        } else {
            "NOT pinned (no taskset)"
        },
        load_average()
    );
    if let Some(q) = &quota {
        println!("slow core: the server gets {}", q.describe());
    }
    println!();

    let mut unary = vec![PLAIN, MTLS, AUTHZ];
    if grpcio.is_some() {
        unary.push(GRPCIO);
    }
    let mut unary_slow = vec![PLAIN, MTLS, AUTHZ];
    if nginx.is_some() {
        unary.push(SIDECAR);
        unary_slow.push(SIDECAR);
    }
    let mut scenarios = vec![
        Scenario {
            name: "unary, 64 B",
            payload: 64,
            connections: 4,
            concurrency: 16,
            arms: unary,
            slow: false,
        },
        Scenario {
            name: "unary, 64 KiB",
            payload: 64 * 1024,
            connections: 4,
            concurrency: 4,
            arms: vec![PLAIN, MTLS, AUTHZ],
            slow: false,
        },
        Scenario {
            name: "connect + 1 RPC + close",
            payload: 64,
            connections: 8,
            concurrency: 1,
            arms: vec![FULL, RESUMED],
            slow: false,
        },
    ];
    if quota.is_some() {
        scenarios.insert(
            1,
            Scenario {
                name: "unary, 64 B",
                payload: 64,
                connections: 4,
                concurrency: 16,
                arms: unary_slow,
                slow: true,
            },
        );
        scenarios.insert(
            3,
            Scenario {
                name: "unary, 64 KiB",
                payload: 64 * 1024,
                connections: 4,
                concurrency: 4,
                arms: vec![PLAIN, MTLS, AUTHZ],
                slow: true,
            },
        );
        scenarios.push(Scenario {
            name: "connect + 1 RPC + close",
            payload: 64,
            connections: 8,
            concurrency: 1,
            arms: vec![FULL, RESUMED],
            slow: true,
        });
    }
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
                let report = bench.load(arm, scenario, plan).with_context(|| {
                    format!("{} / {}", scenario.title(quota.as_ref()), arm.label())
                })?;
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
        render(&results, &handshakes, &idle, &missing, quota.as_ref())
    );
    println!("\nload average after: {}", load_average());
    anyhow::ensure!(failed == 0, "{failed} RPCs failed during the run");
    Ok(())
}

/// `/proc/loadavg`'s first three fields: other work on the machine skews every timing.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Starts servers and load generators, each pinned to its core.
struct Bench<'a> {
    pki: BenchPki,
    me: PathBuf,
    pinned: bool,
    grpcio: Option<&'a Grpcio>,
    nginx: Option<&'a Path>,
    quota: Option<&'a CpuQuota>,
}

/// A running server: its processes (killed when dropped) and the address it serves on.
struct Running {
    processes: Vec<KillOnDrop>,
    target: String,
}

impl Running {
    fn pids(&self) -> String {
        let pids: Vec<String> = self
            .processes
            .iter()
            .map(|p| p.0.id().to_string())
            .collect();
        pids.join(",")
    }
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

    /// Spawns `command` (a server, on core 0), under the slow-core quota if `slow`.
    fn spawn(&self, command: &mut Command, slow: bool) -> anyhow::Result<KillOnDrop> {
        let child = KillOnDrop(command.spawn()?);
        if slow && let Some(quota) = self.quota {
            quota.add(child.0.id())?;
        }
        Ok(child)
    }

    /// Starts `server` on core 0 (under the quota if `slow`).
    fn start(&self, server: Server, slow: bool) -> anyhow::Result<Running> {
        let mut command = match (server, self.grpcio) {
            (Server::Ours(variant), _) => {
                let mut c = self.command("0", &self.me);
                c.args(["serve", "--variant", variant.name(), "--pki"])
                    .arg(self.pki.dir());
                c
            }
            (Server::Grpcio, Some(grpcio)) => {
                let (cert, key) = self.pki.keystore("server");
                let mut c = self.command("0", &grpcio.python);
                c.arg(&grpcio.script)
                    .args(["--listen", "127.0.0.1:0", "--cert"])
                    .arg(cert)
                    .arg("--key")
                    .arg(key)
                    .arg("--ca")
                    .arg(self.pki.ca());
                c
            }
            (Server::Grpcio, None) => anyhow::bail!("no grpcio"),
            (Server::Sidecar, _) => return self.start_sidecar(slow),
        };
        let mut server = self.spawn(command.stdout(Stdio::piped()), slow)?;
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
        Ok(Running {
            processes: vec![server],
            target,
        })
    }

    /// nginx terminating mTLS on core 0, in front of our plaintext server on core 0.
    fn start_sidecar(&self, slow: bool) -> anyhow::Result<Running> {
        let nginx = self.nginx.context("no nginx")?;
        let backend = self.start(Server::Ours(Variant::Plain), slow)?;
        let listen = zt_bench::sidecar::free_port()?;
        let (prefix, conf) = zt_bench::sidecar::write_config(&self.pki, listen, &backend.target)?;
        let mut command = self.command("0", nginx);
        command
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null());
        let proxy = self.spawn(&mut command, slow)?;
        zt_bench::sidecar::wait_listening(listen, Duration::from_secs(5)).with_context(|| {
            let log = std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
            format!("nginx did not start: {log}")
        })?;
        let mut processes = vec![proxy];
        processes.extend(backend.processes);
        Ok(Running {
            processes,
            target: listen.to_string(),
        })
    }

    fn load(&self, arm: Arm, scenario: &Scenario, plan: &Plan) -> anyhow::Result<LoadReport> {
        let server = self.start(arm.server, scenario.slow)?;
        let variant = match arm.server {
            Server::Ours(variant) => variant,
            // Same client as against ours: mutual TLS, the server's SPIFFE ID pinned.
            Server::Grpcio | Server::Sidecar => Variant::Mtls,
        };
        let mut command = self.loader("load", variant, &server);
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
        if scenario.slow
            && let Some(quota) = self.quota
        {
            command.arg("--throttle-stat").arg(quota.stat_file());
        }
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
            .arg(self.pki.dir());
        json_output(&mut command, "handshake benchmark")
    }

    fn idle(&self, variant: Variant, steps: &[usize]) -> anyhow::Result<IdleReport> {
        let server = self.start(Server::Ours(variant), false)?;
        let steps: Vec<String> = steps.iter().map(ToString::to_string).collect();
        let mut command = self.loader("idle", variant, &server);
        command.args(["--steps", &steps.join(",")]);
        json_output(&mut command, "idle connections")
    }

    /// `zt-bench SUBCOMMAND` on core 1 against `server`.
    fn loader(&self, subcommand: &str, variant: Variant, server: &Running) -> Command {
        let mut command = self.command("1", &self.me);
        command
            .args([
                subcommand,
                "--variant",
                variant.name(),
                "--target",
                &server.target,
            ])
            .arg("--pki")
            .arg(self.pki.dir())
            .args(["--server-pid", &server.pids()]);
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

/// A side busier than this share of what it may use sets the pace.
const SATURATED: f64 = 0.90;

/// A side whose threads were runnable but off the CPU for this share of the window (run
/// queue time, `schedstat`) lost its core to other tasks.
const CONTENDED: f64 = 0.15;

/// What one arm's two sides did with their cores over the window (medians).
#[derive(Debug, Clone, Copy)]
struct Sides {
    server_busy: f64,
    /// Run-queue time not explained by the slow core's throttling (which is the point, not
    /// other tasks); `None` on the slow core if the throttled time could not be read.
    server_waited: Option<f64>,
    /// The slow core's throttled time over the window.
    server_throttled: Option<f64>,
    load_busy: f64,
    load_waited: f64,
}

/// Who set the pace of an arm: the side whose CPU was (nearly) all used; or, when neither
/// was, the machine's other tasks if a side spent a good part of the window waiting for
/// its core (see `zt_bench::cpu`), else nobody (latency-bound).
///
/// Why "other tasks" matters (issue 17): on this shared 2-vCPU machine, with other
/// sessions compiling, each side of the 64 B arms was 35-45 % busy *and* 33-46 % waiting
/// for a CPU, about 1.1 ms per wake-up (a CFS slice of whoever held the core; `nice -20`
/// does not shorten it). The same 4 x 16 shape under SCHED_FIFO (wake-ups preempt at once)
/// ran both sides at 89-95 % and 2.5x the RPS: the shape was never latency-bound, the cores
/// were shared. Nor was it lockstep (the server serving a batch while the load generator
/// idles, and back): the two sides' busy fractions summed to 180-190 % there, not <= 100 %.
fn bound(sides: Sides, allowance: f64) -> &'static str {
    let contended =
        sides.load_waited >= CONTENDED || sides.server_waited.is_some_and(|w| w >= CONTENDED);
    match (
        sides.load_busy >= SATURATED,
        sides.server_busy >= SATURATED * allowance,
    ) {
        (true, true) => "both",
        (true, false) => "LOAD GEN",
        (false, true) => "server",
        (false, false) if contended => "other tasks",
        (false, false) => "neither",
    }
}

/// One row of the goals table.
struct Goal {
    name: String,
    measured: f64,
    unit: &'static str,
    target: Target,
    /// Who set the pace of the arms compared.
    note: String,
}

/// A goal's target, written once: it is both printed and checked.
#[derive(Debug, Clone, Copy)]
enum Target {
    AtLeast(f64),
    AtMost(f64),
    /// Reported, no target.
    Reported,
}

impl Target {
    /// Whether `measured` meets the target; `None` for a reported figure.
    fn met(self, measured: f64) -> Option<bool> {
        match self {
            Self::AtLeast(least) => Some(measured >= least),
            Self::AtMost(most) => Some(measured <= most),
            Self::Reported => None,
        }
    }

    fn describe(self, unit: &str) -> String {
        match self {
            Self::AtLeast(least) => format!(">= {least:.2}{unit}"),
            Self::AtMost(most) => format!("<= {most:.2}{unit}"),
            Self::Reported => "(reported)".to_owned(),
        }
    }
}

#[allow(clippy::too_many_lines)]
fn render(
    results: &Results<'_>,
    handshakes: &HandshakeReport,
    idle: &[(Variant, IdleReport)],
    missing: &Missing,
    quota: Option<&CpuQuota>,
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut goals: Vec<Goal> = Vec::new();
    let mut churn_full_rate = None;
    let _ = writeln!(
        out,
        "CPU figures are each side's on-CPU time over the window, every thread, in nanoseconds \
         (`/proc/PID/task/*/schedstat`). busy: that time / the window (1.0 = one core). \
         (waited): time its threads were runnable but not running (summed over threads) / the \
         window: other tasks held the core; on the slow core the quota's throttled time is \
         shown apart and taken out. \
         server CPU: the median of the repetitions, and in brackets the lowest to the highest. \
         server-bound vs baseline: the baseline's server CPU per RPC / this arm's, the RPS \
         ratio a server that sets the pace would show.\n"
    );
    for (scenario, samples) in results {
        let stat = |arm: Arm, f: &dyn Fn(&LoadReport) -> f64| {
            median(
                samples
                    .iter()
                    .filter(|(a, _)| *a == arm)
                    .map(|(_, r)| f(r))
                    .collect(),
            )
        };
        // The lowest and highest of the repetitions: on a shared VM the same binary's CPU per
        // RPC moves by 10 % or more between repetitions, and the reader should see it.
        let spread = |arm: Arm, f: &dyn Fn(&LoadReport) -> f64| {
            let values = samples.iter().filter(|(a, _)| *a == arm).map(|(_, r)| f(r));
            values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            })
        };
        let allowance = match (scenario.slow, quota) {
            (true, Some(q)) => q.fraction(),
            _ => 1.0,
        };
        let sides = |arm: Arm| {
            let waited = stat(arm, &|r| r.server_waited.unwrap_or(f64::NAN));
            let throttled = scenario
                .slow
                .then(|| stat(arm, &|r| r.server_throttled.unwrap_or(f64::NAN)));
            Sides {
                server_busy: stat(arm, &|r| r.server_busy.unwrap_or(f64::NAN)),
                server_waited: match throttled {
                    None => Some(waited),
                    Some(t) if t.is_nan() => None,
                    Some(t) => Some((waited - t).max(0.0)),
                },
                server_throttled: throttled,
                load_busy: stat(arm, &|r| r.load_busy),
                load_waited: stat(arm, &|r| r.load_waited.unwrap_or(f64::NAN)),
            }
        };
        let pace = |arm: Arm| bound(sides(arm), allowance);
        // The RPS ratio a server that sets the pace would show: the inverse ratio of its CPU
        // per RPC (per connection, with churn). Taken from the same runs as the timed ratio.
        let server_cpu = |arm: Arm| stat(arm, &|r| r.server_cpu_us_per_rpc.unwrap_or(f64::NAN));
        let projected = |a: Arm, b: Arm| server_cpu(b) / server_cpu(a);
        let base = scenario.arms[0];
        let (rate, unit) = if base.churn.is_some() {
            ("conn/s", "us/conn")
        } else {
            ("RPS", "us/RPC")
        };
        let _ = writeln!(
            out,
            "## {} ({} connections x {} in flight)\n",
            scenario.title(quota),
            scenario.connections,
            scenario.concurrency
        );
        let _ = writeln!(
            out,
            "| arm | {rate} | MB/s | p50 us | p99 us | server CPU {unit} | server busy (waited) | load gen CPU {unit} | load gen busy (waited) | pace set by | {rate} vs {b} | server-bound {rate} vs {b} (from server CPU) | p50 vs {b} | p99 vs {b} |",
            b = base.label()
        );
        let _ = writeln!(
            out,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        let mut load_bound = Vec::new();
        let mut contended = Vec::new();
        for &arm in &scenario.arms {
            let rps = stat(arm, &|r| r.rps);
            let p50 = stat(arm, &|r| r.p50_us);
            let p99 = stat(arm, &|r| r.p99_us);
            let server_cpu = stat(arm, &|r| r.server_cpu_us_per_rpc.unwrap_or(f64::NAN));
            let parts = if arm.server == Server::Sidecar {
                format!(
                    " (nginx {:.1} + echo {:.1})",
                    stat(arm, &|r| r
                        .server_cpu_parts
                        .first()
                        .copied()
                        .unwrap_or(f64::NAN)),
                    stat(arm, &|r| r
                        .server_cpu_parts
                        .get(1)
                        .copied()
                        .unwrap_or(f64::NAN)),
                )
            } else {
                String::new()
            };
            let (lowest, highest) = spread(arm, &|r| r.server_cpu_us_per_rpc.unwrap_or(f64::NAN));
            let range = if lowest < highest {
                format!(" ({lowest:.1} to {highest:.1})")
            } else {
                String::new()
            };
            let who = pace(arm);
            if who == "LOAD GEN" || who == "both" {
                load_bound.push(arm.label());
            }
            if who == "other tasks" {
                contended.push(arm.label());
            }
            let side = sides(arm);
            let server_waited = match (side.server_waited, side.server_throttled) {
                (Some(w), None) => format!("{:.0} %", w * 100.0),
                (Some(w), Some(t)) => format!("{:.0} %, throttled {:.0} %", w * 100.0, t * 100.0),
                (None, _) => format!(
                    "{:.0} % with throttling",
                    stat(arm, &|r| r.server_waited.unwrap_or(f64::NAN)) * 100.0
                ),
            };
            let _ = writeln!(
                out,
                "| {} | {rps:.0} | {:.1} | {p50:.0} | {p99:.0} | {server_cpu:.1}{range}{parts} | {:.0} % ({server_waited}) | {:.1} | {:.0} % ({:.0} %) | {who} | {:.3}x | {:.3}x | {:.3}x | {:.3}x |",
                arm.label(),
                stat(arm, &|r| r.bytes_per_sec) / 1e6,
                side.server_busy * 100.0,
                stat(arm, &|r| r.load_cpu_us_per_rpc),
                side.load_busy * 100.0,
                side.load_waited * 100.0,
                rps / stat(base, &|r| r.rps),
                projected(arm, base),
                p50 / stat(base, &|r| r.p50_us),
                p99 / stat(base, &|r| r.p99_us),
            );
        }
        let _ = writeln!(out);
        let coarse: Vec<String> = scenario
            .arms
            .iter()
            .filter(|&&arm| {
                samples.iter().any(|(a, r)| {
                    *a == arm
                        && (r.load_cpu_source != Source::Schedstat
                            || r.server_cpu_source.is_some_and(|s| s != Source::Schedstat))
                })
            })
            .map(|arm| arm.label())
            .collect();
        if !coarse.is_empty() {
            let _ = writeln!(
                out,
                "CPU time from clock ticks (10 ms), not nanoseconds, in a repetition of: {} \
                 (a thread exited during the window, or the kernel keeps no `schedstat`).\n",
                coarse.join(", ")
            );
        }
        if !contended.is_empty() {
            let _ = writeln!(
                out,
                "Other tasks held the cores in: {}. Neither side used {:.0} % of what it may \
                 use, and one waited for its core (runnable, not running) for >= {:.0} % of \
                 the window: the timed figures there follow the machine's other load; the \
                 server-bound column does not.\n",
                contended.join(", "),
                SATURATED * 100.0,
                CONTENDED * 100.0,
            );
        }
        if !load_bound.is_empty() {
            let _ = writeln!(
                out,
                "Load generator saturated (>= {:.0} % of its core) in: {}. There the load \
                 generator set the pace, so RPS ratios against those arms understate the \
                 server's cost; the slow-core tables are where the server sets it.\n",
                SATURATED * 100.0,
                load_bound.join(", ")
            );
        }
        let ratio = |a: Arm, b: Arm, f: &dyn Fn(&LoadReport) -> f64| stat(a, f) / stat(b, f);
        let note = |a: Arm, b: Arm| {
            let (pa, pb) = (pace(a), pace(b));
            if pa == pb {
                format!("{}; pace: {pa}", scenario.speed())
            } else {
                format!("{}; pace: {pa} / {pb}", scenario.speed())
            }
        };
        let speed = scenario.speed();
        // The projection's note: where its CPU figures come from, and that it is not timed.
        let from_cpu = |a: Arm, b: Arm| {
            format!(
                "{}; projection: server CPU per {}, {} / {}",
                note(a, b),
                if base.churn.is_some() { "conn" } else { "RPC" },
                b.label(),
                a.label()
            )
        };
        let ratio_goal = |name: String, measured: f64, target: Target, note: String| Goal {
            name,
            measured,
            unit: "x",
            target,
            note,
        };
        // A timed ratio of `a` to `b` and, under the same target, the server-bound projection
        // from the same runs' server CPU.
        let timed_and_projected =
            |name: String, a: Arm, b: Arm, f: &dyn Fn(&LoadReport) -> f64, target: Target| {
                [
                    ratio_goal(name.clone(), ratio(a, b, f), target, note(a, b)),
                    ratio_goal(
                        format!("{name} (from server CPU per RPC)"),
                        projected(a, b),
                        target,
                        from_cpu(a, b),
                    ),
                ]
            };
        let rps = |r: &LoadReport| r.rps;
        if base.churn.is_some() {
            if !scenario.slow {
                churn_full_rate = Some((stat(FULL, &|r| r.rps), note(FULL, FULL)));
            }
            goals.extend(timed_and_projected(
                format!("G4 resumed vs full connections ({speed})"),
                RESUMED,
                FULL,
                &rps,
                Target::AtLeast(2.0),
            ));
        } else if scenario.payload <= 1024 {
            goals.extend(timed_and_projected(
                format!("G1 RPS, mTLS+authz vs plaintext ({speed})"),
                AUTHZ,
                PLAIN,
                &rps,
                Target::AtLeast(0.90),
            ));
            goals.push(ratio_goal(
                format!("G1 p50, mTLS+authz vs plaintext ({speed})"),
                ratio(AUTHZ, PLAIN, &|r| r.p50_us),
                Target::AtMost(1.10),
                note(AUTHZ, PLAIN),
            ));
            goals.push(ratio_goal(
                format!("G1 p99, mTLS+authz vs plaintext ({speed})"),
                ratio(AUTHZ, PLAIN, &|r| r.p99_us),
                Target::AtMost(1.20),
                note(AUTHZ, PLAIN),
            ));
            goals.extend(timed_and_projected(
                format!("G2 RPS, mTLS+authz vs mTLS ({speed})"),
                AUTHZ,
                MTLS,
                &rps,
                Target::AtLeast(0.97),
            ));
            if scenario.arms.contains(&GRPCIO) {
                goals.extend(timed_and_projected(
                    format!("G5 RPS, ours (mTLS+authz) vs grpcio server ({speed})"),
                    AUTHZ,
                    GRPCIO,
                    &rps,
                    Target::AtLeast(5.0),
                ));
            }
            if scenario.arms.contains(&SIDECAR) {
                goals.extend(timed_and_projected(
                    format!("G8 RPS, ours (mTLS+authz) vs nginx sidecar ({speed})"),
                    AUTHZ,
                    SIDECAR,
                    &rps,
                    Target::AtLeast(2.0),
                ));
                goals.push(ratio_goal(
                    format!("G8 p99, ours vs nginx sidecar ({speed})"),
                    ratio(AUTHZ, SIDECAR, &|r| r.p99_us),
                    Target::AtMost(0.5),
                    note(AUTHZ, SIDECAR),
                ));
                goals.push(ratio_goal(
                    format!("G8 server CPU per RPC, ours vs nginx + echo ({speed})"),
                    ratio(AUTHZ, SIDECAR, &|r| {
                        r.server_cpu_us_per_rpc.unwrap_or(f64::NAN)
                    }),
                    Target::Reported,
                    note(AUTHZ, SIDECAR),
                ));
            }
        } else {
            // Same payload in both arms: the throughput ratio is the RPS ratio.
            goals.extend(timed_and_projected(
                format!("G7 64 KiB throughput, mTLS+authz vs plaintext ({speed})"),
                AUTHZ,
                PLAIN,
                &|r| r.bytes_per_sec,
                Target::AtLeast(0.85),
            ));
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
        "Crypto measured in this run ({}): P-256 sign {:.1} us, verify {:.1} us, key exchange \
         (server side) {:.1} us. One side of a P-256 mTLS handshake = key exchange + sign + \
         2 x verify = {:.1} us, so at most {:.0} handshakes/s per core.\n",
        crypto.provider,
        crypto.p256_sign_us,
        crypto.p256_verify_us,
        crypto.kx_us,
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
    render_providers(&mut out, &handshakes.providers);
    let efficiency = crypto.per_side_us() / hs.full_server_us;
    goals.push(Goal {
        name: "G3 in-memory full handshake, crypto limit / server cost".to_owned(),
        measured: efficiency,
        unit: "x",
        target: Target::AtLeast(0.70),
        note: "one core, no sockets".to_owned(),
    });
    if let Some((full_rate, note)) = churn_full_rate {
        // Server and load generator on a core each, each doing one side of every handshake.
        let e2e = full_rate / crypto.limit_per_core();
        goals.push(Goal {
            name: "G3 connect + 1 RPC + close vs the 2-core crypto limit".to_owned(),
            measured: e2e,
            unit: "x",
            target: Target::AtLeast(0.45),
            note,
        });
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
        name: "G6 extra server memory per idle mTLS connection".to_owned(),
        measured: extra,
        unit: " KiB",
        target: Target::AtMost(12.0),
        note: String::new(),
    });

    let _ = writeln!(
        out,
        "## Goals\n\n| goal | measured | target | | where, and who set the pace |\n|---|---|---|---|---|"
    );
    for g in goals {
        let verdict = match g.target.met(g.measured) {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        };
        let _ = writeln!(
            out,
            "| {} | {:.3}{} | {} | {verdict} | {} |",
            g.name,
            g.measured,
            g.unit,
            g.target.describe(if g.unit == "x" { "" } else { g.unit }),
            g.note
        );
    }
    for (goal, why) in [
        ("G5 RPS, ours vs grpcio server", &missing.grpcio),
        ("G8 ours vs nginx sidecar", &missing.nginx),
        ("slow-core figures", &missing.slow_core),
    ] {
        if let Some(why) = why {
            let _ = writeln!(out, "| {goal} | not measured: {why} | | NOT MEASURED | |");
        }
    }
    let _ = writeln!(
        out,
        "\nLines marked (from server CPU per RPC) are projections, not timings: the inverse \
         ratio of the two arms' server CPU per RPC in the same runs, which is the RPS ratio a \
         server that sets the pace would show. CPU per RPC includes the wake-ups and system \
         calls around each batch of RPCs, fewer per RPC when the server is never idle, so \
         they are firmest where the server set the pace (the slow core).\n"
    );
    out
}

/// The provider comparison: every figure of each provider, and its ratio to ring's.
fn render_providers(out: &mut String, providers: &[ProviderFigures]) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "## Crypto providers (one core, in memory, same rustls APIs, stock webpki verifiers)\n"
    );
    let _ = writeln!(
        out,
        "| provider, key exchange | P-256 sign us | P-256 verify us | KX server us | KX client us | full hs server us | full hs client us | resumed server us | resumed client us | 64 B req+resp us | 64 KiB AES-128-GCM us | 64 KiB AES-256-GCM us |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    let Some(base) = providers.first() else {
        return;
    };
    let figures = |p: &ProviderFigures| {
        [
            p.p256_sign_us,
            p.p256_verify_us,
            p.kx_server_us,
            p.kx_client_us,
            p.full_server_us,
            p.full_client_us,
            p.resumed_server_us,
            p.resumed_client_us,
            p.record_64b_us,
            p.aes128_64k_us,
            p.aes256_64k_us,
        ]
    };
    for p in providers {
        let cells: Vec<String> = figures(p)
            .iter()
            .zip(figures(base))
            .map(|(v, b)| {
                if *v < 10.0 {
                    format!("{v:.2} ({:.2}x)", v / b)
                } else {
                    format!("{v:.1} ({:.2}x)", v / b)
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "| {}{} | {} |",
            p.name,
            if p.ours { " (ours)" } else { "" },
            cells.join(" | ")
        );
    }
    let _ = writeln!(
        out,
        "\nIn brackets: the cost relative to {}; below 1 is cheaper. Server us per 64 KiB = one \
         request decrypted and one response encrypted (4 records each way).\n",
        base.name
    );
}
