//! Command-line flags (each with an environment variable) and subcommands.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use zt_identity::SpiffeId;
use zt_telemetry::LogFormat;

/// How to reach the ledger and prove who we are.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "payments",
    version,
    about = "Moves money through the ledger, over mutual TLS."
)]
pub struct Config {
    /// The ledger's address: `https://HOST:PORT`, or `HOST:PORT` (https is implied: this
    /// client speaks only mutual TLS, so `http://` is refused). The port defaults to 443.
    /// Several addresses (repeated, or comma-separated) are replicas of one ledger, each of
    /// which must prove `--server-id`: calls go round-robin over them, and a call one of them
    /// could not take (restarting) is retried at once on another.
    #[arg(
        long,
        env = "PAYMENTS_SERVER",
        default_value = "https://localhost:8443",
        value_parser = parse_server,
        value_delimiter = ','
    )]
    pub server: Vec<Uri>,
    /// The SPIFFE ID the ledger must prove. A server with any other identity is refused, even
    /// with a valid certificate from our CA.
    #[arg(
        long,
        env = "PAYMENTS_SERVER_ID",
        default_value = "spiffe://zt.example/ns/prod/sa/ledger"
    )]
    pub server_id: SpiffeId,
    /// Keystore: our certificate chain (PEM, leaf first), or a PKCS#12 keystore holding the
    /// key too (then `--key` is not read; see `--keystore-password-file`).
    #[arg(long, env = "PAYMENTS_CERT", default_value = "certs/payments.pem")]
    pub cert: PathBuf,
    /// Keystore: our private key (PEM).
    #[arg(long, env = "PAYMENTS_KEY", default_value = "certs/payments.key")]
    pub key: PathBuf,
    /// Truststore: CA bundles the ledger's certificate must chain to, repeat or
    /// comma-separate, as for `ledger --ca`. A CA that names no trust domain in a `spiffe://`
    /// URI SAN is bound to the trust domain of `--server-id`; `TRUST-DOMAIN=PATH` binds a file.
    #[arg(
        long,
        env = "PAYMENTS_CA",
        value_delimiter = ',',
        default_value = "certs/ca.pem"
    )]
    pub ca: Vec<zt_tls::BundleSource>,
    /// The password of a PKCS#12 `--cert` keystore, read from this file; or set
    /// `PAYMENTS_KEYSTORE_PASSWORD` (never a flag).
    #[arg(long, env = "PAYMENTS_KEYSTORE_PASSWORD_FILE")]
    pub keystore_password_file: Option<PathBuf>,
    /// The password of PKCS#12 `--ca` truststores, read from this file; or set
    /// `PAYMENTS_TRUSTSTORE_PASSWORD` (never a flag).
    #[arg(long, env = "PAYMENTS_TRUSTSTORE_PASSWORD_FILE")]
    pub truststore_password_file: Option<PathBuf>,
    /// Time allowed for TCP connect plus TLS handshake.
    #[arg(long, env = "PAYMENTS_CONNECT_TIMEOUT", default_value = duration(zt_client::DEFAULT_CONNECT_TIMEOUT), value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// Deadline for each RPC.
    #[arg(long, env = "PAYMENTS_REQUEST_TIMEOUT", default_value = duration(zt_client::DEFAULT_REQUEST_TIMEOUT), value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Attempts per RPC when the ledger is unreachable (with exponential backoff between them).
    #[arg(long, env = "PAYMENTS_ATTEMPTS", default_value_t = zt_client::DEFAULT_ATTEMPTS)]
    pub attempts: u32,
    /// How often to check our certificate, key and CA bundle for changes (long-running
    /// `demo --repeat-every` only; SIGHUP reloads at once).
    #[arg(long, env = "PAYMENTS_RELOAD_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub reload_interval: Duration,
    /// Serve Prometheus metrics (reloads) at http://ADDRESS/metrics (long-running
    /// `demo --repeat-every` only).
    #[arg(long, env = "PAYMENTS_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Log format.
    #[arg(long, env = "PAYMENTS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The client's subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Print an account's balance.
    Balance {
        /// The account.
        account: String,
    },
    /// Move money between accounts.
    Transfer {
        /// Account to debit.
        #[arg(long)]
        from: String,
        /// Account to credit.
        #[arg(long)]
        to: String,
        /// Amount in currency units, at most two decimals (e.g. 12.50).
        #[arg(long, value_parser = parse_amount)]
        amount: i64,
        /// Free text.
        #[arg(long, default_value = "")]
        memo: String,
        /// Idempotency key; a fresh UUID by default. Reuse it to retry safely.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// List transfers, newest first.
    List {
        /// Only transfers touching this account.
        #[arg(long)]
        account: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Tell the Zero Trust story: an allowed transfer, a balance check, and the auditor's
    /// refused transfer. Exits non-zero unless every outcome is the expected one.
    Demo {
        /// Whose part to play: both (needs both keys, for a local run), or only the identity
        /// given by --cert/--key (a container holding only its own key).
        #[arg(long, value_enum, default_value_t = Role::Both)]
        role: Role,
        /// The auditor's certificate, for `--role both`.
        #[arg(
            long,
            env = "PAYMENTS_AUDITOR_CERT",
            default_value = "certs/auditor.pem"
        )]
        auditor_cert: PathBuf,
        /// The auditor's private key, for `--role both`.
        #[arg(
            long,
            env = "PAYMENTS_AUDITOR_KEY",
            default_value = "certs/auditor.key"
        )]
        auditor_key: PathBuf,
        /// After the story, keep going every DURATION (payments: a small transfer; auditor: a
        /// read and a refused transfer) until stopped. Without it, exit after the story.
        #[arg(long, env = "PAYMENTS_REPEAT_EVERY", value_parser = humantime::parse_duration)]
        repeat_every: Option<Duration>,
    },
    /// Check the ledger's health over mutual TLS with our identity; exit 0 if it is serving.
    Health,
}

impl Config {
    /// The password of a PKCS#12 keystore: `--keystore-password-file`, else
    /// `PAYMENTS_KEYSTORE_PASSWORD`.
    pub fn keystore_password(&self) -> Option<zt_tls::Password> {
        zt_tls::Password::from_file_or_env(
            self.keystore_password_file.as_deref(),
            "PAYMENTS_KEYSTORE_PASSWORD",
        )
    }

    /// The library's configuration for calling the ledger as the identity in `cert`/`key`
    /// (the payments identity's `--cert`/`--key`, or the auditor's): the ledger's address and
    /// SPIFFE ID, the truststore, the timeouts and attempts of these flags, the library's
    /// backoff, and the ledger named "the ledger" in every error message.
    pub fn client_config(&self, cert: &Path, key: &Path) -> zt_client::ClientConfig {
        zt_client::ClientConfig {
            server_name: "the ledger".to_owned(),
            keystore_password: self.keystore_password(),
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            attempts: self.attempts,
            replicas: self.server.iter().skip(1).cloned().collect(),
            ..zt_client::ClientConfig::new(
                self.server.first().cloned().unwrap_or_default(),
                self.server_id.clone(),
                cert,
                key,
                self.truststore(),
            )
        }
    }

    /// The CA bundles of `--ca`, each with the truststore password in case it is PKCS#12.
    pub fn truststore(&self) -> Vec<zt_tls::BundleSource> {
        let password = zt_tls::Password::from_file_or_env(
            self.truststore_password_file.as_deref(),
            "PAYMENTS_TRUSTSTORE_PASSWORD",
        );
        self.ca
            .iter()
            .map(|bundle| zt_tls::BundleSource {
                password: password.clone(),
                ..bundle.clone()
            })
            .collect()
    }
}

/// The default of a duration flag, as humantime writes it ("10s"), from the library's
/// default so that it is written once.
fn duration(value: Duration) -> String {
    humantime::format_duration(value).to_string()
}

/// Which identity plays which part of the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Both identities (`--cert` is payments, `--auditor-cert` the auditor).
    Both,
    /// The payments identity only.
    Payments,
    /// The auditor identity only (given with `--cert`/`--key`).
    Auditor,
}

/// Parses `--server`: `https://HOST[:PORT]` or `HOST[:PORT]`, into `https://HOST:PORT` (port
/// 443 unless given). There is no plaintext, so `http://` (and any other scheme) is refused
/// here, in one line, rather than failing later as a transport error.
pub fn parse_server(text: &str) -> Result<Uri, String> {
    const FORMS: &str = "use https://HOST:PORT or HOST:PORT";
    let rest = match text.split_once("://") {
        None => text,
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => rest,
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") => {
            return Err(format!(
                "http:// is plaintext, and the ledger speaks only mutual TLS: {FORMS}"
            ));
        }
        Some((scheme, _)) => return Err(format!("unsupported scheme \"{scheme}://\": {FORMS}")),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() {
        return Err(format!("no host: {FORMS}"));
    }
    if authority.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "only a host and a port are allowed, not a path, query or user: {FORMS}"
        ));
    }
    let uri: Uri = format!("https://{authority}")
        .parse()
        .map_err(|e| format!("not a host and port ({e}): {FORMS}"))?;
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("no host: {FORMS}"))?;
    let port = uri.port_u16().unwrap_or(443);
    format!("https://{host}:{port}")
        .parse()
        .map_err(|e| format!("not a host and port ({e}): {FORMS}"))
}

/// Parses `12`, `12.5` or `12.50` into cents. No floating point: money is exact.
pub fn parse_amount(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not an amount like 12.50");
    let (units, fraction) = text.split_once('.').unwrap_or((text, ""));
    if units.is_empty() || !units.bytes().all(|b| b.is_ascii_digit()) || fraction.len() > 2 {
        return Err(bad());
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) || (text.contains('.') && fraction.is_empty())
    {
        return Err(bad());
    }
    let units: i64 = units.parse().map_err(|_| bad())?;
    let cents: i64 = format!("{fraction:0<2}").parse().map_err(|_| bad())?;
    units
        .checked_mul(100)
        .and_then(|u| u.checked_add(cents))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zt_proto::format_cents;

    #[test]
    fn amounts_parse_exactly() {
        for (text, cents) in [
            ("12", 1200),
            ("12.5", 1250),
            ("12.50", 1250),
            ("0.01", 1),
            ("0", 0),
        ] {
            assert_eq!(parse_amount(text), Ok(cents), "{text}");
        }
        for bad in [
            "",
            "-1",
            "1.234",
            "1.",
            ".5",
            "1e3",
            "12,50",
            "99999999999999999999",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(format_cents(1250), "$12.50");
        assert_eq!(format_cents(-5), "-$0.05");
    }

    #[test]
    fn flag_defaults_are_the_librarys() {
        use clap::Parser as _;
        let config = Config::try_parse_from(["payments", "health"]).unwrap();
        let client = config.client_config(&config.cert, &config.key);
        let library = zt_client::ClientConfig::new(
            config.server[0].clone(),
            config.server_id.clone(),
            "cert",
            "key",
            Vec::new(),
        );
        assert_eq!(client.connect_timeout, library.connect_timeout);
        assert_eq!(client.request_timeout, library.request_timeout);
        assert_eq!(client.attempts, library.attempts);
        assert_eq!(client.backoff, library.backoff);
        assert_eq!(client.connect_timeout, zt_client::DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(client.request_timeout, zt_client::DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(client.attempts, zt_client::DEFAULT_ATTEMPTS);
        assert_eq!(client.backoff, zt_client::BackoffConfig::default());
        assert_eq!(client.server_name, "the ledger");
        assert_eq!(client.cert, config.cert);
        assert_eq!(client.bundles, config.truststore());
    }

    #[test]
    fn several_servers_are_replicas_of_one_ledger() {
        use clap::Parser as _;
        let config = Config::try_parse_from([
            "payments",
            "--server",
            "ledger-1:8443,ledger-2:8443",
            "--server",
            "https://ledger-3:8443",
            "health",
        ])
        .unwrap();
        let client = config.client_config(&config.cert, &config.key);
        assert_eq!(client.server.to_string(), "https://ledger-1:8443/");
        let replicas: Vec<String> = client.replicas.iter().map(ToString::to_string).collect();
        assert_eq!(
            replicas,
            ["https://ledger-2:8443/", "https://ledger-3:8443/"]
        );
        // One address: no replicas.
        let config = Config::try_parse_from(["payments", "health"]).unwrap();
        assert!(
            config
                .client_config(&config.cert, &config.key)
                .replicas
                .is_empty()
        );
    }

    #[test]
    fn server_addresses_are_https_host_and_port() {
        for (text, uri) in [
            ("localhost:18443", "https://localhost:18443/"),
            ("https://ledger:8443", "https://ledger:8443/"),
            ("HTTPS://ledger:8443/", "https://ledger:8443/"),
            ("ledger", "https://ledger:443/"),
            ("[::1]:8443", "https://[::1]:8443/"),
        ] {
            assert_eq!(
                parse_server(text).map(|u| u.to_string()),
                Ok(uri.to_owned()),
                "{text}"
            );
        }
        for (text, error) in [
            (
                "http://localhost:8443",
                "http:// is plaintext, and the ledger speaks only mutual TLS: use \
                 https://HOST:PORT or HOST:PORT",
            ),
            (
                "ftp://localhost:21",
                "unsupported scheme \"ftp://\": use https://HOST:PORT or HOST:PORT",
            ),
            (
                "https://localhost:8443/ledger",
                "only a host and a port are allowed, not a path, query or user: use \
                 https://HOST:PORT or HOST:PORT",
            ),
            ("https://", "no host: use https://HOST:PORT or HOST:PORT"),
        ] {
            assert_eq!(parse_server(text).unwrap_err(), error, "{text}");
        }
    }
}
