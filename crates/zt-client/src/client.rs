//! A channel for any tonic client, redialled on reload, and retries that back off and never
//! hide a refusal.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use http::Uri;
use tonic::transport::Channel;
use tonic::{Code, Status};
use zt_reload::Reloader;
use zt_tls::ClientTls;

use crate::backoff::Backoff;
use crate::config::{BackoffConfig, ClientConfig};
use crate::error::{Error, broken_connection, not_sent, tls_refusal};

/// The server as one client identity sees it: a channel per address of the service, dialled
/// with reloadable TLS material.
///
/// When the material is reloaded (a renewed certificate, a rotated CA bundle), the next call
/// opens new channels, so new calls present the new certificate at once; the old connections
/// finish the calls they carry and close once the last of them drops them.
#[derive(Debug)]
pub struct Client {
    tls: Arc<ClientTls>,
    dialer: Dialer,
    /// The channels new calls use, one per address, and the TLS generation they were
    /// dialled with.
    current: Mutex<(u64, Arc<[Channel]>)>,
    /// Until when each address is passed over, after answering `UNAVAILABLE`.
    cooling: Mutex<Vec<Option<Instant>>>,
    /// The round-robin position.
    next: AtomicUsize,
    attempts: u32,
    backoff: BackoffConfig,
    cooldown: Duration,
    server_name: String,
}

/// Where the service is and how long to wait for it.
#[derive(Debug)]
struct Dialer {
    /// The configured server first, then its replicas.
    addresses: Vec<Uri>,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl Dialer {
    fn dial(&self, tls: &ClientTls) -> Arc<[Channel]> {
        self.addresses
            .iter()
            .map(|address| {
                zt_tls::channel(
                    address.clone(),
                    tls.connector(self.connect_timeout),
                    self.request_timeout,
                )
            })
            .collect()
    }
}

impl Client {
    /// Loads the keystore and truststore of `config` and prepares a lazily connecting
    /// channel: nothing is dialled until the first call, and a broken connection is
    /// redialled on the next one.
    ///
    /// # Errors
    /// [`Error::Tls`] when a file cannot be read or used (our chain does not verify against
    /// the truststore, no CA for the server's trust domain, ...): one line naming the file.
    pub fn connect(config: &ClientConfig) -> Result<Self, Error> {
        let tls = ClientTls::load(
            config.cert.clone(),
            config.key.clone(),
            config.keystore_password.clone(),
            config.bundles.clone(),
            config.server_id.clone(),
        )?;
        let dialer = Dialer {
            addresses: std::iter::once(&config.server)
                .chain(&config.replicas)
                .cloned()
                .collect(),
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
        };
        Ok(Self {
            current: Mutex::new((tls.generation(), dialer.dial(&tls))),
            cooling: Mutex::new(vec![None; dialer.addresses.len()]),
            next: AtomicUsize::new(0),
            tls: Arc::new(tls),
            dialer,
            attempts: config.attempts.max(1),
            backoff: config.backoff,
            cooldown: config.unavailable_cooldown,
            server_name: config.server_name.clone(),
        })
    }

    /// Our TLS material: its [`generation`](ClientTls::generation) counts reloads, and
    /// [`reload`](ClientTls::reload) reads the files again.
    pub fn tls(&self) -> &Arc<ClientTls> {
        &self.tls
    }

    /// Reloads our certificate, key and CA bundles when their files change (or on SIGHUP),
    /// as `name` in the reloader's logs and metrics. A failed reload keeps the last good
    /// material. Returns the reloader, to watch more files or to `spawn` it.
    pub fn watch(&self, reloader: Reloader, name: &'static str) -> Reloader {
        let tls = Arc::clone(&self.tls);
        reloader.watch(name, self.tls.paths(), move || {
            tls.reload().map_err(Into::into)
        })
    }

    /// The channel for the next call, for any generated tonic client
    /// (`FooClient::new(client.channel())`): a new one if the TLS material changed since the
    /// last; with [`ClientConfig::replicas`], the next address's in turn, passing over those
    /// that answered `UNAVAILABLE` lately while another has not. Cheap: clones share the
    /// connection.
    pub fn channel(&self) -> Channel {
        self.pick().1
    }

    /// The next address (its index) and its channel.
    fn pick(&self) -> (usize, Channel) {
        let channels = self.channels();
        let count = channels.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let cooling = self.cooling.lock().unwrap_or_else(PoisonError::into_inner);
        let index = (0..count)
            .map(|offset| (start + offset) % count)
            .find(|&i| cooling[i].is_none_or(|until| until <= now))
            .unwrap_or(start % count);
        (index, channels[index].clone())
    }

    /// The channels of the current TLS material, redialled if it changed.
    fn channels(&self) -> Arc<[Channel]> {
        let generation = self.tls.generation();
        // The pair is only ever replaced whole, so a poisoned lock still holds a usable one.
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.0 != generation {
            tracing::info!(
                identity = %self.tls.keystore().spiffe_id(),
                "TLS material reloaded: new calls go over a new connection"
            );
            *current = (generation, self.dialer.dial(&self.tls));
        }
        Arc::clone(&current.1)
    }

    /// Passes over address `index` for the cooldown; whether another address is available
    /// now.
    fn cool(&self, index: usize) -> bool {
        let now = Instant::now();
        let mut cooling = self.cooling.lock().unwrap_or_else(PoisonError::into_inner);
        cooling[index] = Some(now + self.cooldown);
        cooling
            .iter()
            .any(|until| until.is_none_or(|until| until <= now))
    }

    /// Classifies the `status` of a call made on [`Self::channel`] without [`Self::retry`]
    /// (a health check, a stream's later message): see [`Error::from_status`].
    pub fn error(&self, status: Status) -> Error {
        Error::from_status(status, &self.server_name)
    }

    /// Runs `call` on a fresh [`Self::channel`] until it succeeds, fails for a reason retrying
    /// cannot fix, or [`ClientConfig::attempts`] are used up, and returns the response's
    /// message.
    ///
    /// - A call a closing connection did not take (the server retiring it with GOAWAY at its
    ///   maximum age as the call went out) is retried at once, as gRPC's transparent retry
    ///   (gRFC A6) does.
    /// - `UNAVAILABLE` (the server could not be reached), or a connection that broke while the
    ///   call was out (a status our transport made, not the server's), is retried at once on
    ///   another address
    ///   of the service if one has not answered `UNAVAILABLE` lately
    ///   ([`ClientConfig::replicas`]), else after a delay from [`ClientConfig::backoff`], with
    ///   jitter.
    /// - Anything else is returned at once; a refused TLS handshake is never retried into
    ///   silence.
    ///
    /// Every call given here must be safe to repeat: a read, or a write carrying an
    /// idempotency key.
    ///
    /// # Errors
    /// [`Error::ServerRefused`] for a failed TLS handshake, else [`Error::Rpc`] with the last
    /// attempt's status.
    pub async fn retry<T, F, Fut>(&self, mut call: F) -> Result<T, Error>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut backoff = Backoff::from(self.backoff);
        let mut attempt = 1;
        loop {
            let (address, channel) = self.pick();
            let status = match call(channel).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) => status,
            };
            if let Some(refused) = tls_refusal(&status, &self.server_name) {
                return Err(refused);
            }
            if attempt < self.attempts && not_sent(&status) {
                // The connection was being retired (GOAWAY at its maximum age) as this call
                // went out: try again at once on the next connection, as gRPC's transparent
                // retry (gRFC A6) does. The caller promised every call is safe to repeat.
                tracing::debug!(error = %status.message(), "call not taken by a closing connection, retrying");
                attempt += 1;
                continue;
            }
            let retriable = status.code() == Code::Unavailable || broken_connection(&status);
            if !retriable || attempt >= self.attempts {
                return Err(Error::Rpc {
                    server: self.server_name.clone(),
                    status,
                });
            }
            if self.cool(address) {
                tracing::info!(
                    address = %self.dialer.addresses[address],
                    error = %status.message(),
                    server = %self.server_name,
                    "address unavailable, retrying on another"
                );
                attempt += 1;
                continue;
            }
            let delay = backoff.next_delay();
            tracing::warn!(
                attempt,
                retry_in = %humantime::format_duration(Duration::from_millis(
                    u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)
                )),
                error = %status.message(),
                server = %self.server_name,
                "server unavailable, retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}
