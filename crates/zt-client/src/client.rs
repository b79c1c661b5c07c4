//! A channel for any tonic client, redialled on reload, and retries that back off and never
//! hide a refusal.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::Uri;
use tonic::transport::Channel;
use tonic::{Code, Status};
use zt_reload::Reloader;
use zt_tls::ClientTls;

use crate::backoff::Backoff;
use crate::config::{BackoffConfig, ClientConfig};
use crate::error::{Error, not_sent, tls_refusal};

/// The server as one client identity sees it: a channel dialled with reloadable TLS material.
///
/// When the material is reloaded (a renewed certificate, a rotated CA bundle), the next call
/// opens a new channel, so new calls present the new certificate at once; the old connection
/// finishes the calls it carries and closes once the last of them drops it.
#[derive(Debug)]
pub struct Client {
    tls: Arc<ClientTls>,
    dialer: Dialer,
    /// The channel new calls use, and the TLS generation it was dialled with.
    current: Mutex<(u64, Channel)>,
    attempts: u32,
    backoff: BackoffConfig,
    server_name: String,
}

/// Where the server is and how long to wait for it.
#[derive(Debug)]
struct Dialer {
    server: Uri,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl Dialer {
    fn dial(&self, tls: &ClientTls) -> Channel {
        zt_tls::channel(
            self.server.clone(),
            tls.connector(self.connect_timeout),
            self.request_timeout,
        )
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
            server: config.server.clone(),
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
        };
        Ok(Self {
            current: Mutex::new((tls.generation(), dialer.dial(&tls))),
            tls: Arc::new(tls),
            dialer,
            attempts: config.attempts.max(1),
            backoff: config.backoff,
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
    /// last. Cheap: clones share the connection.
    pub fn channel(&self) -> Channel {
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
        current.1.clone()
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
    /// - `UNAVAILABLE` (the server could not be reached) is retried after a delay from
    ///   [`ClientConfig::backoff`], with jitter.
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
            let status = match call(self.channel()).await {
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
            if status.code() != Code::Unavailable || attempt >= self.attempts {
                return Err(Error::Rpc {
                    server: self.server_name.clone(),
                    status,
                });
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
