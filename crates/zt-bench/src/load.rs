//! The load generator: `connections` connections, each carrying `concurrency` RPCs in flight
//! at all times, for a warm-up and then a measured window.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};
use zt_identity::SpiffeId;
use zt_proto::bench::v1::EchoRequest;
use zt_proto::bench::v1::echo_client::EchoClient;
use zt_tls::{Keystore, MtlsConnector, Truststore};

use crate::pki::{BenchPki, SERVER_ID};
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
    /// The server's process, to read its CPU time over the window (Linux `/proc`).
    pub server_pid: Option<u32>,
}

/// What the window measured.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
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
    /// Server CPU time (user + system) per RPC, microseconds, if the server was observed.
    pub server_cpu_us_per_rpc: Option<f64>,
}

/// Connects, warms up, measures, and reports.
pub async fn run(spec: &LoadSpec, pki: &BenchPki) -> Result<LoadReport, BenchError> {
    let mut channels = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections {
        channels.push(connect(spec, pki).await?);
    }
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let payload = vec![0x5a_u8; spec.payload];
    let mut workers = Vec::new();
    for channel in &channels {
        for _ in 0..spec.concurrency {
            let mut client = EchoClient::new(channel.clone())
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX);
            let (measuring, stop, payload) = (measuring.clone(), stop.clone(), payload.clone());
            workers.push(tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0_u64);
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let ok = client
                        .echo(EchoRequest {
                            payload: payload.clone(),
                        })
                        .await
                        .is_ok_and(|r| r.get_ref().payload.len() == payload.len());
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
    let cpu_before = spec.server_pid.and_then(cpu_time);
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(spec.duration).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = spec.server_pid.and_then(cpu_time);
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
    Ok(LoadReport {
        requests,
        errors,
        rps,
        p50_us: percentile(&latencies, 0.50),
        p99_us: percentile(&latencies, 0.99),
        bytes_per_sec: rps * spec.payload as f64,
        server_cpu_us_per_rpc: cpu_before
            .zip(cpu_after)
            .filter(|_| requests > 0)
            .map(|(before, after)| (after - before).as_secs_f64() * 1e6 / requests as f64),
    })
}

async fn connect(spec: &LoadSpec, pki: &BenchPki) -> Result<Channel, BenchError> {
    let timeout = Duration::from_secs(10);
    if spec.variant == Variant::Plain {
        let endpoint = Endpoint::from_shared(format!("http://{}", spec.target))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        return Ok(endpoint
            .tcp_nodelay(true)
            .timeout(timeout)
            .connect()
            .await?);
    }
    let (cert, key) = pki.keystore("client");
    let server_id = SpiffeId::new(SERVER_ID)?;
    let config = zt_tls::client_config(
        &Keystore::load(&cert, &key)?,
        &Truststore::load(&pki.ca())?,
        server_id,
    )?;
    let uri = format!("https://localhost:{}", spec.target.port())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // The channel dials lazily; the warm-up's first RPC makes the connection.
    Ok(zt_tls::channel(
        uri,
        MtlsConnector::new(config, timeout),
        timeout,
    ))
}

fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(rank).map_or(f64::NAN, |v| f64::from(*v))
}

/// User plus system CPU time of process `pid` so far, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}
