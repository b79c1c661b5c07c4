//! The load generator: `connections` connections, each carrying `concurrency` RPCs in flight
//! at all times, for a warm-up and then a measured window. Or, with [`Churn`], `connections`
//! workers each looping connect, one RPC, close (handshake rate). Or [`hold_idle`]: many idle
//! connections, to weigh the server's memory per connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};
use zt_identity::SpiffeId;
use zt_proto::bench::v1::EchoRequest;
use zt_proto::bench::v1::echo_client::EchoClient;
use zt_tls::{Keystore, MtlsConnector, Truststore};

use crate::cpu::{Snapshot, Source, Usage};
use crate::pki::{BenchPki, SERVER_ID};
use crate::quota::throttled_time;
use crate::{BenchError, Variant};

/// What load to apply.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The server.
    pub target: SocketAddr,
    /// How to reach it.
    pub variant: Variant,
    /// Separate connections (each its own TLS session).
    pub connections: usize,
    /// RPCs in flight on each connection.
    pub concurrency: usize,
    /// Bytes of payload per request (echoed back).
    pub payload: usize,
    /// Load before measuring: connections are made and caches warmed.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// The server's processes (a sidecar is two), to read their CPU time over the window
    /// (Linux `/proc`). Empty: the server's CPU is not reported.
    pub server_pids: Vec<u32>,
    /// A new connection for every RPC, instead of long-lived ones.
    pub churn: Option<Churn>,
    /// A server running under valgrind's callgrind with collection off: collection is
    /// switched on for exactly the measured window (`callgrind_control -i on|off PID`), so its
    /// instruction count divided by the RPCs reported is the cost per RPC, no handshake or
    /// warm-up included (`scripts/bench-profile.sh`).
    pub callgrind: Option<u32>,
    /// The slow core's `cpu.stat`: the window's throttled time is read from it, so that
    /// the server's run-queue time can be told apart from the quota's throttling.
    pub throttle_stat: Option<std::path::PathBuf>,
}

/// How a churning worker reconnects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Churn {
    /// A full handshake every time (the client keeps no sessions).
    Full,
    /// Resume the previous connection's TLS session (ticket from the last handshake).
    Resumed,
}

/// What the window measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LoadReport {
    /// RPCs completed in the window.
    pub requests: u64,
    /// RPCs that failed in the window.
    pub errors: u64,
    /// RPCs per second.
    pub rps: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Payload bytes echoed per second, each way.
    pub bytes_per_sec: f64,
    /// Server CPU time (on-CPU, every thread; see [`crate::cpu`]) per RPC, microseconds, if
    /// the server was observed: the sum over its processes.
    pub server_cpu_us_per_rpc: Option<f64>,
    /// The same for each server process, in the order given (a sidecar: proxy, then backend).
    pub server_cpu_parts: Vec<f64>,
    /// Server CPU time over the window divided by the window: 1.0 is one core fully busy.
    pub server_busy: Option<f64>,
    /// Where the server's CPU figures come from (the least precise of its processes).
    pub server_cpu_source: Option<Source>,
    /// Times a server thread was put on a CPU, per RPC: 1 / this is how many RPCs one
    /// wake-up of the server handles (its batch).
    pub server_runs_per_rpc: Option<f64>,
    /// Time the server's threads were runnable but not running (another task held the core,
    /// or the quota had throttled it), summed over its threads, divided by the window.
    pub server_waited: Option<f64>,
    /// Time the slow core's quota held the server back, divided by the window.
    pub server_throttled: Option<f64>,
    /// The load generator's own CPU time (every thread) per RPC, microseconds.
    pub load_cpu_us_per_rpc: f64,
    /// The load generator's CPU time over the window divided by the window (it is pinned to
    /// one core, so near 1.0 means it, not the server, set the pace).
    pub load_busy: f64,
    /// Where the load generator's CPU figures come from.
    pub load_cpu_source: Source,
    /// Times a load generator thread was put on a CPU, per RPC.
    pub load_runs_per_rpc: Option<f64>,
    /// Time the load generator's threads were runnable but not running, summed over its
    /// threads, divided by the window.
    pub load_waited: Option<f64>,
    /// Tokio worker threads of the load generator's runtime.
    pub load_workers: usize,
}

/// Connects, warms up, measures, and reports.
pub async fn run(spec: &LoadSpec, pki: &BenchPki) -> Result<LoadReport, BenchError> {
    let dialer = Dialer::new(spec, pki)?;
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let payload = vec![0x5a_u8; spec.payload];
    let mut workers = Vec::new();
    for _ in 0..spec.connections {
        // Long-lived: one channel shared by `concurrency` workers. Churn: one worker per
        // "connection", each dialling anew for every RPC.
        let channel = match spec.churn {
            None => Some(dialer.connect().await?),
            Some(_) => None,
        };
        let per_connection = if spec.churn.is_some() {
            1
        } else {
            spec.concurrency
        };
        for _ in 0..per_connection {
            let (measuring, stop, payload) = (measuring.clone(), stop.clone(), payload.clone());
            let (channel, dialer) = (channel.clone(), dialer.clone());
            workers.push(tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0_u64);
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let ok = match &channel {
                        Some(channel) => echo(channel.clone(), &payload).await,
                        None => match dialer.connect().await {
                            Ok(fresh) => echo(fresh, &payload).await,
                            Err(_) => false,
                        },
                    };
                    if measuring.load(Ordering::Relaxed) {
                        if ok {
                            let micros = started.elapsed().as_micros();
                            latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                        } else {
                            errors += 1;
                        }
                    }
                }
                (latencies, errors)
            }));
        }
    }
    tokio::time::sleep(spec.warmup).await;
    let me = std::process::id();
    let server_before = Snapshot::take_all(&spec.server_pids);
    let load_before = Snapshot::take(me);
    let throttled = || spec.throttle_stat.as_deref().and_then(throttled_time);
    let throttled_before = throttled();
    if let Some(pid) = spec.callgrind {
        callgrind_control(pid, "on")?;
    }
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(spec.duration).await;
    measuring.store(false, Ordering::Relaxed);
    if let Some(pid) = spec.callgrind {
        callgrind_control(pid, "off")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let load_after = Snapshot::take(me);
    let server_after = Snapshot::take_all(&spec.server_pids);
    let throttled_after = throttled();
    stop.store(true, Ordering::Relaxed);

    let (mut latencies, mut errors) = (Vec::new(), 0);
    for worker in workers {
        // A worker that panicked is a harness bug: count it rather than hide it.
        match worker.await {
            Ok((l, e)) => {
                latencies.extend(l);
                errors += e;
            }
            Err(_) => errors += 1,
        }
    }
    latencies.sort_unstable();
    let requests = latencies.len() as u64;
    let rps = requests as f64 / elapsed;
    let per_rpc = |cpu: Duration| cpu.as_secs_f64() * 1e6 / requests.max(1) as f64;
    let runs_per_rpc = |runs: u64| runs as f64 / requests.max(1) as f64;
    let server_parts: Option<Vec<Usage>> = server_before
        .zip(server_after)
        .map(|(b, a)| b.iter().zip(&a).map(|(b, a)| b.usage_until(a)).collect());
    let parts = server_parts.as_deref().unwrap_or_default();
    let server = (!parts.is_empty()).then(|| Usage {
        cpu: parts.iter().map(|u| u.cpu).sum(),
        waited: parts.iter().map(|u| u.waited).sum(),
        runs: parts.iter().map(|u| u.runs).sum(),
        exited: parts.iter().map(|u| u.exited).sum(),
        source: parts
            .iter()
            .map(|u| u.source)
            .max()
            .unwrap_or(Source::Ticks),
    });
    let load = load_before
        .zip(load_after)
        .map(|(b, a)| b.usage_until(&a))
        .unwrap_or(Usage {
            cpu: Duration::ZERO,
            waited: None,
            runs: None,
            exited: 0,
            source: Source::Ticks,
        });
    Ok(LoadReport {
        requests,
        errors,
        rps,
        p50_us: percentile(&latencies, 0.50),
        p99_us: percentile(&latencies, 0.99),
        bytes_per_sec: rps * spec.payload as f64,
        server_cpu_us_per_rpc: server.filter(|_| requests > 0).map(|u| per_rpc(u.cpu)),
        server_cpu_parts: parts.iter().map(|u| per_rpc(u.cpu)).collect(),
        server_busy: server.map(|u| u.cpu.as_secs_f64() / elapsed),
        server_cpu_source: server.map(|u| u.source),
        server_runs_per_rpc: server.and_then(|u| u.runs).map(runs_per_rpc),
        server_waited: server
            .and_then(|u| u.waited)
            .map(|w| w.as_secs_f64() / elapsed),
        server_throttled: throttled_before
            .zip(throttled_after)
            .map(|(b, a)| a.saturating_sub(b).as_secs_f64() / elapsed),
        load_cpu_us_per_rpc: per_rpc(load.cpu),
        load_busy: load.cpu.as_secs_f64() / elapsed,
        load_cpu_source: load.source,
        load_runs_per_rpc: load.runs.map(runs_per_rpc),
        load_waited: load.waited.map(|w| w.as_secs_f64() / elapsed),
        load_workers: tokio::runtime::Handle::current().metrics().num_workers(),
    })
}

/// Switches callgrind's collection in process `pid` `on` or `off`.
fn callgrind_control(pid: u32, state: &str) -> Result<(), BenchError> {
    let status = std::process::Command::new("callgrind_control")
        .args(["-i", state, &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(BenchError::Io(std::io::Error::other(format!(
            "callgrind_control -i {state} {pid} failed"
        ))))
    }
}

/// One echo RPC; true if it came back whole.
async fn echo(channel: Channel, payload: &[u8]) -> bool {
    let mut client = EchoClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    client
        .echo(EchoRequest {
            payload: payload.to_vec(),
        })
        .await
        .is_ok_and(|r| r.get_ref().payload.len() == payload.len())
}

/// What [`hold_idle`] saw: the server's resident memory with each number of idle connections.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IdleReport {
    /// `(connections open, server VmRSS in KiB)`, in the order they were reached.
    pub steps: Vec<(usize, u64)>,
}

impl IdleReport {
    /// KiB of server memory per extra idle connection, between the first and the last step.
    pub fn kib_per_connection(&self) -> f64 {
        match (self.steps.first(), self.steps.last()) {
            (Some(&(n1, r1)), Some(&(n2, r2))) if n2 > n1 => {
                (r2 as f64 - r1 as f64) / (n2 - n1) as f64
            }
            _ => f64::NAN,
        }
    }
}

/// Opens connections up to each of `steps` (each makes one RPC, then stays open and idle) and
/// records the server's resident memory at each step, once it has settled.
pub async fn hold_idle(
    spec: &LoadSpec,
    pki: &BenchPki,
    steps: &[usize],
    server_pid: u32,
) -> Result<IdleReport, BenchError> {
    let dialer = Dialer::new(spec, pki)?;
    let payload = vec![0x5a_u8; spec.payload];
    let mut open = Vec::new();
    let mut report = IdleReport { steps: Vec::new() };
    for &target in steps {
        while open.len() < target {
            // Dial in batches, so the server's handshake cap is never what is measured.
            let batch = (target - open.len()).min(64);
            let dialled = futures_join(&dialer, &payload, batch).await?;
            open.extend(dialled);
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let rss = resident_kib(server_pid).ok_or_else(|| {
            std::io::Error::other(format!("cannot read /proc/{server_pid}/status"))
        })?;
        report.steps.push((open.len(), rss));
    }
    drop(open);
    Ok(report)
}

async fn futures_join(
    dialer: &Dialer,
    payload: &[u8],
    n: usize,
) -> Result<Vec<Channel>, BenchError> {
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (dialer, payload) = (dialer.clone(), payload.to_vec());
        tasks.push(tokio::spawn(async move {
            let channel = dialer.connect().await?;
            if echo(channel.clone(), &payload).await {
                Ok(channel)
            } else {
                Err(BenchError::Io(std::io::Error::other(
                    "an idle connection's RPC failed",
                )))
            }
        }));
    }
    let mut channels = Vec::with_capacity(n);
    for task in tasks {
        channels.push(task.await.map_err(std::io::Error::other)??);
    }
    Ok(channels)
}

/// Resident memory of process `pid`, KiB (`VmRSS` in `/proc/PID/status`).
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Makes connections to the target the way the variant needs: h2c, or mutual TLS with the
/// load generator's identity and the server's SPIFFE ID pinned.
#[derive(Clone)]
struct Dialer {
    endpoint: Endpoint,
    /// `None` for plaintext.
    tls: Option<MtlsConnector>,
}

impl Dialer {
    fn new(spec: &LoadSpec, pki: &BenchPki) -> Result<Self, BenchError> {
        let timeout = Duration::from_secs(10);
        if spec.variant == Variant::Plain {
            let endpoint = Endpoint::from_shared(format!("http://{}", spec.target))?
                .tcp_nodelay(true)
                .timeout(timeout);
            return Ok(Self {
                endpoint,
                tls: None,
            });
        }
        let (cert, key) = pki.keystore("client");
        let mut config = zt_tls::client_config(
            &Keystore::load(&cert, &key)?,
            &Truststore::load(&pki.ca())?,
            SpiffeId::new(SERVER_ID)?,
        )?;
        if spec.churn == Some(Churn::Full) {
            let mut full = (*config).clone();
            full.resumption = rustls::client::Resumption::disabled();
            config = Arc::new(full);
        }
        // The connector does TLS (and checks the server's SPIFFE ID); the name is for SNI.
        let endpoint = Endpoint::from_shared(format!("https://localhost:{}", spec.target.port()))?
            .timeout(timeout);
        Ok(Self {
            endpoint,
            tls: Some(MtlsConnector::new(config, timeout)),
        })
    }

    /// A new connection (TCP, and the TLS handshake unless plaintext), ready for RPCs.
    async fn connect(&self) -> Result<Channel, BenchError> {
        Ok(match &self.tls {
            None => self.endpoint.connect().await?,
            Some(tls) => self.endpoint.connect_with_connector(tls.clone()).await?,
        })
    }
}

fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(rank).map_or(f64::NAN, |v| f64::from(*v))
}
