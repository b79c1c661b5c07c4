//! G8: the sidecar a user would pick instead of in-process mTLS: nginx terminating mutual TLS
//! (TLS 1.3 only, client certificate required and verified against the same CA) and passing
//! every RPC with `grpc_pass` to the plaintext echo server on loopback.
//!
//! nginx runs as one process (`master_process off`, one worker's worth of work), so its CPU
//! time is that process's; the backend is our `plain` variant, so the pair does exactly the
//! work of our `mtls-authz` server minus authorization, split over two processes and two
//! HTTP/2 hops. Upstream connections are kept alive (`keepalive`), and request limits per
//! connection are raised so neither hop reconnects during a run: nginx as a user would tune it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::BenchError;
use crate::pki::BenchPki;

/// The nginx binary to use: `nginx` on `PATH` or in `/usr/sbin` (Debian's), if installed.
pub fn find_nginx() -> Result<PathBuf, String> {
    let candidates = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|p| p.is_file())
        .ok_or_else(|| "no nginx (apt-get install nginx-light)".to_owned())
}

/// A loopback port free right now (for nginx, which cannot report the port it got).
pub fn free_port() -> Result<SocketAddr, BenchError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Waits until something accepts TCP connections on `addr`, up to `timeout`.
pub fn wait_listening(addr: SocketAddr, timeout: Duration) -> Result<(), BenchError> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BenchError::Io(std::io::Error::other(format!(
        "nothing listening on {addr} after {timeout:?}"
    ))))
}

/// Writes `DIR/nginx-PORT/nginx.conf`: mutual TLS 1.3 on `listen` with the benchmark
/// server's certificate and CA, `grpc_pass` to the plaintext echo server at `backend`.
/// Returns the directory (nginx's prefix) and the configuration file.
pub fn write_config(
    pki: &BenchPki,
    listen: SocketAddr,
    backend: &str,
) -> Result<(PathBuf, PathBuf), BenchError> {
    let prefix = pki.dir().join(format!("nginx-{}", listen.port()));
    std::fs::create_dir_all(&prefix)?;
    let (cert, key) = pki.keystore("server");
    let ca = pki.ca();
    let path = |p: &Path| p.display().to_string();
    let p = path(&prefix);
    let conf = format!(
        "# zt-bench G8: nginx terminating mutual TLS in front of a plaintext gRPC server.
daemon off;
master_process off;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {p}/body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    upstream echo {{
        server {backend};
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }}
    server {{
        listen {listen} ssl http2;
        ssl_protocols TLSv1.3;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        ssl_verify_depth 2;
        location / {{
            grpc_pass grpc://echo;
        }}
    }}
}}
",
        cert = path(&cert),
        key = path(&key),
        ca = path(&ca),
    );
    let file = prefix.join("nginx.conf");
    std::fs::write(&file, conf)?;
    Ok((prefix, file))
}
