//! A ledger client over mutual TLS, with retries that back off and never hide a refusal.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::Uri;
use tonic::transport::Channel;
use tonic::{Code, Status};
use zt_proto::ledger::v1 as pb;
use zt_proto::ledger::v1::ledger_client::LedgerClient;
use zt_reload::Reloader;
use zt_tls::ClientTls;

use crate::backoff::Backoff;
use crate::config::Config;
use crate::error::Error;

/// The ledger as one client identity sees it: a channel dialled with reloadable TLS material.
///
/// When the material is reloaded (a renewed certificate, a rotated CA bundle), the next RPC
/// opens a new channel, so new RPCs present the new certificate at once; the old connection
/// finishes the RPCs it carries and closes once the last of them drops it.
#[derive(Debug)]
pub struct Ledger {
    tls: Arc<ClientTls>,
    dialer: Dialer,
    /// The channel new RPCs use, and the TLS generation it was dialled with.
    current: Mutex<(u64, Channel)>,
    attempts: u32,
}

/// Where the ledger is and how long to wait for it.
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

impl Ledger {
    /// Loads the keystore and truststore and prepares a lazily connecting channel: nothing is
    /// dialled until the first RPC, and a broken connection is redialled on the next one.
    pub fn connect(config: &Config, cert: &Path, key: &Path) -> Result<Self, Error> {
        let tls = ClientTls::load(
            cert.to_owned(),
            key.to_owned(),
            config.keystore_password(),
            config.truststore(),
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
        })
    }

    /// Our TLS material, to reload it.
    pub fn tls(&self) -> &Arc<ClientTls> {
        &self.tls
    }

    /// Reloads our certificate, key and CA bundle when their files change (or on SIGHUP),
    /// as `name` in the reloader's logs and metrics.
    pub fn watch(&self, reloader: Reloader, name: &'static str) -> Reloader {
        let tls = Arc::clone(&self.tls);
        reloader.watch(name, self.tls.paths(), move || {
            tls.reload().map_err(|e| e.to_string())
        })
    }

    /// The channel for the next RPC: a new one if the TLS material changed since the last.
    fn channel(&self) -> Channel {
        let generation = self.tls.generation();
        // The pair is only ever replaced whole, so a poisoned lock still holds a usable one.
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.0 != generation {
            tracing::info!(
                identity = %self.tls.keystore().spiffe_id(),
                "TLS material reloaded: new RPCs go over a new connection"
            );
            *current = (generation, self.dialer.dial(&self.tls));
        }
        current.1.clone()
    }

    /// Returns an account's balance in cents.
    pub async fn balance(&self, account: &str) -> Result<i64, Error> {
        let request = pb::GetBalanceRequest {
            account_id: account.to_owned(),
        };
        let response = self
            .retry(|mut c| {
                let request = request.clone();
                async move { c.get_balance(request).await }
            })
            .await?;
        Ok(response.balance_cents)
    }

    /// Moves money. Retries reuse the request's idempotency key, so the transfer is applied
    /// exactly once however many attempts it takes.
    pub async fn transfer(
        &self,
        request: pb::TransferRequest,
    ) -> Result<pb::TransferResponse, Error> {
        self.retry(|mut c| {
            let request = request.clone();
            async move { c.transfer(request).await }
        })
        .await
    }

    /// Lists transfers, newest first.
    pub async fn list(
        &self,
        account: Option<String>,
        limit: u32,
    ) -> Result<Vec<pb::TransferRecord>, Error> {
        let request = pb::ListTransfersRequest {
            account_id: account.unwrap_or_default(),
            limit,
        };
        let mut stream = self
            .retry(|mut c| {
                let request = request.clone();
                async move { c.list_transfers(request).await }
            })
            .await?;
        let mut records = Vec::new();
        while let Some(record) = stream.message().await.map_err(Error::Rpc)? {
            records.push(record);
        }
        Ok(records)
    }

    /// Asks the ledger's gRPC health service whether `ledger.v1.Ledger` is serving. One
    /// attempt, no retries: a health check must answer quickly.
    pub async fn health(&self) -> Result<bool, Error> {
        use tonic_health::pb::health_check_response::ServingStatus;
        use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
        let request = HealthCheckRequest {
            service: "ledger.v1.Ledger".into(),
        };
        match HealthClient::new(self.channel()).check(request).await {
            Ok(r) => Ok(r.into_inner().status() == ServingStatus::Serving),
            Err(status) => Err(tls_refusal(&status).unwrap_or(Error::Rpc(status))),
        }
    }

    /// Runs `call` until it succeeds, fails for a reason retrying cannot fix, or the attempts
    /// are used up. Only `UNAVAILABLE` (the ledger could not be reached) is retried; a refused
    /// server identity is reported at once, never retried into silence.
    async fn retry<T, F, Fut>(&self, mut call: F) -> Result<T, Error>
    where
        F: FnMut(LedgerClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut backoff = Backoff::default();
        let mut attempt = 1;
        loop {
            let status = match call(LedgerClient::new(self.channel())).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) => status,
            };
            if let Some(refused) = tls_refusal(&status) {
                return Err(refused);
            }
            if attempt < self.attempts && not_sent(&status) {
                // The connection was being retired (GOAWAY at its maximum age) as this call
                // went out: try again at once on the next connection, as gRPC's transparent
                // retry (gRFC A6) does. Every ledger RPC is safe to repeat (reads, and
                // transfers carrying their idempotency key).
                tracing::debug!(error = %status.message(), "call not taken by a closing connection, retrying");
                attempt += 1;
                continue;
            }
            if status.code() != Code::Unavailable || attempt >= self.attempts {
                return Err(Error::Rpc(status));
            }
            let delay = backoff.next_delay();
            tracing::warn!(
                attempt,
                retry_in = %humantime::format_duration(Duration::from_millis(
                    u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)
                )),
                error = %status.message(),
                "ledger unavailable, retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// Whether `status` is the transport's, for a call a closing connection did not take: the
/// connection went away before it was sent (hyper's "operation was canceled"), or HTTP/2
/// refused its stream after a GOAWAY (tonic reports the h2 error as a status of its own).
/// Neither carries a `grpc-status` from the server.
fn not_sent(status: &Status) -> bool {
    match status.code() {
        Code::Cancelled => status.message() == "operation was canceled",
        Code::Internal | Code::Unavailable => status.message().starts_with("h2 protocol error"),
        _ => false,
    }
}

/// If `status` comes from a failed TLS handshake (the server's certificate or identity was
/// refused, or it refused ours), that failure in words; such failures are not transient.
fn tls_refusal(status: &Status) -> Option<Error> {
    use tokio_rustls::rustls::Error as TlsError;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(status);
    while let Some(err) = source {
        let tls = err.downcast_ref::<TlsError>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<TlsError>())
        });
        if let Some(tls) = tls {
            let failure = zt_tls::describe_tls(tls);
            let (reason, message) = match tls {
                TlsError::InvalidCertificate(_) if failure.reason == "unexpected_server" => {
                    (failure.reason, failure.message)
                }
                TlsError::InvalidCertificate(_) => (
                    failure.reason,
                    format!("the ledger's certificate was refused: {failure}"),
                ),
                TlsError::AlertReceived(alert) => (
                    "peer_alert",
                    format!(
                        "the ledger refused the handshake with the alert {} (our certificate \
                         or identity was not accepted)",
                        zt_tls::alert_name(*alert)
                    ),
                ),
                _ => (failure.reason, failure.message),
            };
            return Some(Error::ServerRefused { reason, message });
        }
        source = err.source();
    }
    None
}
