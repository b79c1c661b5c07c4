//! Command-line flags (each with an environment variable) and the limits they set.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zt_identity::TrustDomain;
use zt_telemetry::LogFormat;
use zt_tls::BundleSource;

use crate::error::Error;
use crate::store::{ClientTls, DatabaseUrl};

/// Where the binary keeps its books unless told otherwise: a SQLite file in the working
/// directory (created with its `-wal` and `-shm` companions on first start).
pub const DEFAULT_DATABASE: &str = "sqlite://ledger.db";

/// Everything the ledger needs to start. Paths default to the development set in `certs/`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "ledger",
    version,
    about = "The ledger: a gRPC server holding money, mTLS only."
)]
pub struct Config {
    /// Address to listen on (TLS only: there is no plaintext listener).
    #[arg(long, env = "LEDGER_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Keystore: this server's certificate chain (PEM, leaf first).
    #[arg(long, env = "LEDGER_CERT", default_value = "certs/ledger.pem")]
    pub cert: PathBuf,
    /// Keystore: this server's private key (PEM).
    #[arg(long, env = "LEDGER_KEY", default_value = "certs/ledger.key")]
    pub key: PathBuf,
    /// Truststore: CA bundles (PEM, one or more CAs each), repeat or comma-separate. A client
    /// chain is checked only against the CAs of the trust domain its SPIFFE ID names: each CA
    /// names its domain in a `spiffe://` URI SAN, or bind a file as `TRUST-DOMAIN=PATH`.
    #[arg(
        long,
        env = "LEDGER_CA",
        value_delimiter = ',',
        default_value = "certs/ca.pem"
    )]
    pub ca: Vec<BundleSource>,
    /// The password of a PKCS#12 `--cert` keystore, read from this file; or set
    /// `LEDGER_KEYSTORE_PASSWORD` (never a flag).
    #[arg(long, env = "LEDGER_KEYSTORE_PASSWORD_FILE")]
    pub keystore_password_file: Option<PathBuf>,
    /// The password of PKCS#12 `--ca` truststores, read from this file; or set
    /// `LEDGER_TRUSTSTORE_PASSWORD` (never a flag).
    #[arg(long, env = "LEDGER_TRUSTSTORE_PASSWORD_FILE")]
    pub truststore_password_file: Option<PathBuf>,
    /// Certificate revocation lists (PEM or DER); one in a trusted CA's name must verify with
    /// its key, others (an intermediate's) are checked against each client chain. Repeat or
    /// comma-separate. Checked at every handshake and, for open connections, every request.
    #[arg(long = "crl", env = "LEDGER_CRL", value_delimiter = ',')]
    pub crls: Vec<PathBuf>,
    /// Authorization policy (gRFC A43 JSON).
    #[arg(
        long,
        env = "LEDGER_POLICY",
        default_value = "config/ledger-policy.json"
    )]
    pub policy: PathBuf,
    /// A second policy evaluated alongside the enforced one: its decisions are logged
    /// (`zt_authz::shadow`) and counted (`mode="shadow"`), never enforced.
    #[arg(long, env = "LEDGER_SHADOW_POLICY")]
    pub shadow_policy: Option<PathBuf>,
    /// Refuse a policy in which `policy check` finds errors (a path naming no served method,
    /// a rule that can never match...): at startup the ledger exits with one line naming the
    /// file and the finding; at a reload the last good policy stays (logged and counted as a
    /// failed reload). Without it, every finding is logged as a warning and the policy is used.
    #[arg(
        long,
        env = "LEDGER_STRICT_POLICY",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub strict_policy: bool,
    /// Serve Prometheus metrics over plain HTTP at this address (`GET /metrics`).
    #[arg(long, env = "LEDGER_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// How often to check the certificate, key, CA, CRL and policy files for changes (SIGHUP
    /// reloads at once).
    #[arg(long, env = "LEDGER_RELOAD_INTERVAL", default_value = duration(zt_server::DEFAULT_RELOAD_INTERVAL), value_parser = humantime::parse_duration)]
    pub reload_interval: Duration,
    /// Trust domains clients may come from (repeat the flag, or comma-separate).
    #[arg(
        long = "trust-domain",
        env = "LEDGER_TRUST_DOMAIN",
        value_delimiter = ',',
        default_value = "zt.example"
    )]
    pub trust_domains: Vec<TrustDomain>,
    /// The store of record: `sqlite://PATH` (relative to the working directory; the file is
    /// created if missing), `sqlite:///ABSOLUTE/PATH`, `sqlite::memory:` (nothing survives
    /// the process), or `postgres://ROLE@HOST:PORT/DATABASE`, reached over mutual TLS with
    /// this server's own --cert/--key and verified (`verify-full`: the CA of --database-ca,
    /// the URL's host name in the server's certificate). Migrations are applied at startup;
    /// until the database answers, the ledger waits with backoff and accepts no connection.
    #[arg(long, env = "LEDGER_DATABASE", default_value = DEFAULT_DATABASE)]
    pub database: DatabaseUrl,
    /// CA certificates (PEM) trusted to issue the PostgreSQL server's certificate. Default:
    /// the first --ca file.
    #[arg(long, env = "LEDGER_DATABASE_CA")]
    pub database_ca: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "LEDGER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Resource limits.
    #[command(flatten)]
    pub limits: Limits,
    /// Without a subcommand, serve.
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Config {
    /// The password of a PKCS#12 keystore: `--keystore-password-file`, else
    /// `LEDGER_KEYSTORE_PASSWORD`.
    pub fn keystore_password(&self) -> Option<zt_tls::Password> {
        zt_tls::Password::from_file_or_env(
            self.keystore_password_file.as_deref(),
            "LEDGER_KEYSTORE_PASSWORD",
        )
    }

    /// The CA bundles of `--ca`, each with the truststore password in case it is PKCS#12.
    pub fn truststore(&self) -> Vec<BundleSource> {
        let password = zt_tls::Password::from_file_or_env(
            self.truststore_password_file.as_deref(),
            "LEDGER_TRUSTSTORE_PASSWORD",
        );
        self.ca
            .iter()
            .map(|bundle| BundleSource {
                password: password.clone(),
                ..bundle.clone()
            })
            .collect()
    }

    /// The library's configuration these flags describe: the TLS files with their passwords
    /// and trust domains, the policies, reload, metrics and every limit.
    pub fn server_config(&self) -> zt_server::ServerConfig {
        zt_server::ServerConfig {
            name: "ledger".to_owned(),
            tls: zt_tls::ServerFiles {
                cert: self.cert.clone(),
                key: self.key.clone(),
                keystore_password: self.keystore_password(),
                bundles: self.truststore(),
                crls: self.crls.clone(),
                domains: zt_identity::TrustedDomains::new(self.trust_domains.iter().cloned()),
            },
            policy: self.policy.clone(),
            shadow_policy: self.shadow_policy.clone(),
            strict_policy: self.strict_policy,
            reload_interval: self.reload_interval,
            metrics_listen: self.metrics_listen,
            limits: self.limits.server_limits(),
        }
    }

    /// The files the ledger authenticates to PostgreSQL with: its own keystore and
    /// --database-ca (else the first --ca).
    ///
    /// # Errors
    /// [`Error::Usage`] when the database is PostgreSQL and the keystore is a PKCS#12 file
    /// (the database driver reads PEM files) or no CA file is given.
    pub fn database_tls(&self) -> Result<ClientTls, Error> {
        let ca = self
            .database_ca
            .clone()
            .or_else(|| self.ca.first().map(|bundle| bundle.path.clone()));
        let tls = ClientTls {
            cert: self.cert.clone(),
            key: self.key.clone(),
            ca: ca.clone().unwrap_or_default(),
        };
        if matches!(self.database, DatabaseUrl::Postgres(_)) {
            if ca.is_none() {
                return Err(Error::Usage(
                    "a PostgreSQL --database needs --database-ca or --ca".to_owned(),
                ));
            }
            if self.keystore_password_file.is_some()
                || std::env::var_os("LEDGER_KEYSTORE_PASSWORD").is_some()
            {
                return Err(Error::Usage(
                    "a PostgreSQL --database needs the keystore as PEM --cert and --key files \
                     (not PKCS#12)"
                        .to_owned(),
                ));
            }
        }
        Ok(tls)
    }

    /// A configuration with every default but the four files, as if given on the command
    /// line, and an in-memory SQLite database (`sqlite::memory:`), so that ledgers embedded
    /// side by side share no books and leave no file. For embedding the ledger (tests, other
    /// tools) without spelling out flags; set [`Config::database`] to keep the books.
    pub fn with_files(cert: &Path, key: &Path, ca: &Path, policy: &Path) -> Self {
        <Self as clap::Parser>::parse_from([
            "ledger".as_ref(),
            "--cert".as_ref(),
            cert.as_os_str(),
            "--key".as_ref(),
            key.as_os_str(),
            "--ca".as_ref(),
            ca.as_os_str(),
            "--policy".as_ref(),
            policy.as_os_str(),
            "--database".as_ref(),
            "sqlite::memory:".as_ref(),
        ] as [&std::ffi::OsStr; 11])
    }
}

/// What the binary does besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Probe a running ledger's gRPC health service over mutual TLS, with this ledger's own
    /// identity, at the --listen port on 127.0.0.1; exit 0 if it is serving. For container
    /// healthchecks (scratch images have no shell or curl).
    Health,
    /// Check, explain and cover the authorization policy, offline: for people and for CI.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

/// `ledger policy ...`: static analysis of a policy against the methods the ledger serves.
/// Each exits non-zero when it finds a problem, so it can gate a CI job.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum PolicyCommand {
    /// Parse the policy and report rules that can never match or are shadowed, paths naming
    /// methods that are not served, and principals wider than they look. Exits 1 on errors
    /// (and on warnings with --strict).
    Check {
        /// The policy file (default: the server's --policy).
        file: Option<PathBuf>,
        /// Fail on warnings too.
        #[arg(long)]
        strict: bool,
        /// Check against the methods of these descriptor sets (`protoc --descriptor_set_out`)
        /// instead of the ledger's own services.
        #[arg(long = "descriptor-set")]
        descriptor_sets: Vec<PathBuf>,
    },
    /// For every served method (health included): who may call it, or which deny rule closes
    /// it. Exits 1 if a method is neither allowed to anyone nor explicitly closed.
    Coverage {
        /// The policy file (default: the server's --policy).
        file: Option<PathBuf>,
        /// Cover the methods of these descriptor sets instead of the ledger's own services.
        #[arg(long = "descriptor-set")]
        descriptor_sets: Vec<PathBuf>,
    },
    /// The decision for a caller presenting CERT and calling METHOD, and the rules that made
    /// it. The certificate is read as the server would after the handshake (SPIFFE ID, trust
    /// domain from --trust-domain), but its chain is not verified here.
    Explain {
        /// The policy file (default: the server's --policy).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The caller's certificate (PEM, leaf first).
        #[arg(long)]
        cert: PathBuf,
        /// The full gRPC method path, e.g. /ledger.v1.Ledger/Transfer.
        #[arg(long, value_parser = parse_method)]
        method: String,
        /// A request header, as NAME=VALUE (repeatable), for rules that match headers.
        #[arg(long = "header", value_parser = parse_header)]
        headers: Vec<(String, String)>,
        /// Exit 1 unless the decision is this one (for CI: "the auditor can never transfer").
        #[arg(long, value_enum)]
        expect: Option<Expected>,
    },
}

/// The decision `policy explain --expect` asserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Expected {
    /// The call is allowed.
    Allow,
    /// The call is refused (denied by a rule, by default, or unauthenticated).
    Deny,
}

/// A gRPC method path, `/package.Service/Method`: anything else can only ever be denied by
/// default, so `explain` refuses it as a usage error instead of explaining that. A bare method
/// name the ledger serves gets its full path suggested.
fn parse_method(text: &str) -> Result<String, String> {
    let well_formed = text
        .strip_prefix('/')
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(service, method)| {
            !service.is_empty()
                && !method.is_empty()
                && !method.contains('/')
                && !text.contains(char::is_whitespace)
        });
    if well_formed {
        return Ok(text.to_owned());
    }
    let suggestion = crate::server::served_methods()
        .into_iter()
        .find(|m| m.rsplit('/').next() == Some(text.trim_start_matches('/')))
        .map(|m| format!(" (did you mean {m}?)"))
        .unwrap_or_default();
    Err(format!(
        "not a gRPC method path: write /package.Service/Method, e.g. \
         /ledger.v1.Ledger/Transfer{suggestion}"
    ))
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("'{text}' is not NAME=VALUE"))
}

/// The default of a duration flag, as humantime writes it ("10s"), from the library's
/// default so that it is written once.
fn duration(value: Duration) -> String {
    humantime::format_duration(value).to_string()
}

/// The library's limits, where each default is written.
fn defaults() -> zt_server::Limits {
    zt_server::Limits::default()
}

/// Bounds on everything a peer can hold: the flags of [`zt_server::Limits`] (whose defaults
/// they show) and the ledger's message size. The HTTP/2 reset caps and flow-control windows
/// have no flag: they stay at the library's defaults.
#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    /// Time a client has to finish the TLS handshake.
    #[arg(long, env = "LEDGER_HANDSHAKE_TIMEOUT", default_value = duration(defaults().handshake_timeout), value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,
    /// Time a client has to send its whole ClientHello; a socket that has not is closed
    /// (`client_hello_timeout`) without ever holding a handshake slot.
    #[arg(long, env = "LEDGER_CLIENT_HELLO_TIMEOUT", default_value = duration(defaults().client_hello_timeout), value_parser = humantime::parse_duration)]
    pub client_hello_timeout: Duration,
    /// Most connections short of a finished handshake (silent ones included); beyond it new
    /// sockets are refused at once (`pending_limit`).
    #[arg(long, env = "LEDGER_MAX_PENDING", default_value_t = defaults().max_pending)]
    pub max_pending: usize,
    /// Most connections short of a finished handshake from one IP address; beyond it that
    /// address's new sockets are refused at once (`source_pending_limit`).
    #[arg(long, env = "LEDGER_MAX_PENDING_PER_SOURCE", default_value_t = defaults().max_pending_per_source)]
    pub max_pending_per_source: usize,
    /// Most TLS handshakes in progress at once, counted from the ClientHello; further
    /// clients wait for a slot within their handshake timeout.
    #[arg(long, env = "LEDGER_MAX_HANDSHAKES", default_value_t = defaults().max_handshakes)]
    pub max_handshakes: usize,
    /// Most established (authenticated) connections; beyond it new ones are refused.
    #[arg(long, env = "LEDGER_MAX_CONNECTIONS", default_value_t = defaults().max_connections)]
    pub max_connections: usize,
    /// Failed authentications one IP address may have in a burst before its new connections
    /// are refused at the door (`source_failure_limit`); raise it behind a TCP proxy.
    #[arg(long, env = "LEDGER_MAX_FAILED_HANDSHAKES_PER_SOURCE", default_value_t = defaults().max_failed_handshakes_per_source)]
    pub max_failed_handshakes_per_source: u32,
    /// How often an address past that burst gets one more try.
    #[arg(long, env = "LEDGER_FAILED_HANDSHAKE_REFILL", default_value = duration(defaults().failed_handshake_refill), value_parser = humantime::parse_duration)]
    pub failed_handshake_refill: Duration,
    /// Most concurrent HTTP/2 streams (RPCs) per connection.
    #[arg(long, env = "LEDGER_MAX_CONCURRENT_STREAMS", default_value_t = defaults().max_concurrent_streams)]
    pub max_concurrent_streams: u32,
    /// Largest request header block (metadata), bytes.
    #[arg(long, env = "LEDGER_MAX_HEADER_LIST_SIZE", default_value_t = defaults().max_header_list_size)]
    pub max_header_list_size: u32,
    /// Largest gRPC message accepted or sent, bytes.
    #[arg(long, env = "LEDGER_MAX_MESSAGE_SIZE", default_value_t = zt_server::DEFAULT_MAX_MESSAGE_SIZE)]
    pub max_message_size: usize,
    /// Deadline for each RPC, whatever the client asks.
    #[arg(long, env = "LEDGER_REQUEST_TIMEOUT", default_value = duration(defaults().request_timeout), value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// HTTP/2 PING interval, to find dead peers.
    #[arg(long, env = "LEDGER_KEEPALIVE_INTERVAL", default_value = duration(defaults().keepalive_interval), value_parser = humantime::parse_duration)]
    pub keepalive_interval: Duration,
    /// How long a PING may go unanswered before the connection is closed.
    #[arg(long, env = "LEDGER_KEEPALIVE_TIMEOUT", default_value = duration(defaults().keepalive_timeout), value_parser = humantime::parse_duration)]
    pub keepalive_timeout: Duration,
    /// Close connections (gracefully) after this long, so clients re-handshake and pick up
    /// rotated certificates. Default: one hour, or half the server certificate's remaining
    /// lifetime if that is shorter.
    #[arg(long, env = "LEDGER_MAX_CONNECTION_AGE", value_parser = humantime::parse_duration)]
    pub max_connection_age: Option<Duration>,
    /// On shutdown, how long in-flight RPCs may take to finish.
    #[arg(long, env = "LEDGER_DRAIN_TIMEOUT", default_value = duration(defaults().drain_timeout), value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
}

impl Limits {
    /// The library's limits these flags set; the rest at their defaults.
    pub fn server_limits(&self) -> zt_server::Limits {
        zt_server::Limits {
            handshake_timeout: self.handshake_timeout,
            client_hello_timeout: self.client_hello_timeout,
            max_pending: self.max_pending,
            max_pending_per_source: self.max_pending_per_source,
            max_handshakes: self.max_handshakes,
            max_connections: self.max_connections,
            max_failed_handshakes_per_source: self.max_failed_handshakes_per_source,
            failed_handshake_refill: self.failed_handshake_refill,
            max_concurrent_streams: self.max_concurrent_streams,
            max_header_list_size: self.max_header_list_size,
            request_timeout: self.request_timeout,
            keepalive_interval: self.keepalive_interval,
            keepalive_timeout: self.keepalive_timeout,
            max_connection_age: self.max_connection_age,
            drain_timeout: self.drain_timeout,
            ..zt_server::Limits::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Config {
        Config::with_files(
            Path::new("cert.pem"),
            Path::new("cert.key"),
            Path::new("ca.pem"),
            Path::new("policy.json"),
        )
    }

    #[test]
    fn flag_defaults_are_the_librarys() {
        let config = defaults();
        assert_eq!(config.limits.server_limits(), zt_server::Limits::default());
        assert_eq!(
            config.limits.max_message_size,
            zt_server::DEFAULT_MAX_MESSAGE_SIZE
        );
        let server = config.server_config();
        assert_eq!(server.reload_interval, zt_server::DEFAULT_RELOAD_INTERVAL);
        assert_eq!(server.limits, zt_server::Limits::default());
        assert_eq!(server.name, "ledger");
        assert!(!server.strict_policy);
        assert_eq!(server.shadow_policy, None);
        assert_eq!(server.metrics_listen, None);
        assert_eq!(config.database, DatabaseUrl::memory());
        let binary = <Config as clap::Parser>::parse_from(["ledger"]);
        assert_eq!(binary.database.as_str(), DEFAULT_DATABASE);
    }

    #[test]
    fn every_flag_reaches_the_server_configuration() {
        let mut config = defaults();
        config.limits.max_connections = 3;
        config.limits.max_connection_age = Some(Duration::from_secs(7));
        config.limits.drain_timeout = Duration::from_secs(1);
        config.strict_policy = true;
        config.reload_interval = Duration::from_millis(100);
        let server = config.server_config();
        assert_eq!(server.limits.max_connections, 3);
        assert_eq!(
            server.limits.max_connection_age,
            Some(Duration::from_secs(7))
        );
        assert_eq!(server.limits.drain_timeout, Duration::from_secs(1));
        assert!(server.strict_policy);
        assert_eq!(server.reload_interval, Duration::from_millis(100));
        assert_eq!(server.tls.cert, Path::new("cert.pem"));
        assert_eq!(server.policy, Path::new("policy.json"));
        assert_eq!(
            server.tls.domains.domains(),
            [TrustDomain::new("zt.example").unwrap()]
        );
    }
}
