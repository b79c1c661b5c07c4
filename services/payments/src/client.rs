//! The ledger's calls, over the library's mutual-TLS client (`zt_client`): its retries back
//! off and never hide a refusal.

use std::path::Path;
use std::sync::Arc;

use zt_client::Client;
use zt_proto::ledger::v1 as pb;
use zt_proto::ledger::v1::ledger_client::LedgerClient;
use zt_reload::Reloader;
use zt_tls::ClientTls;

use crate::config::Config;
use crate::error::Error;

/// The ledger as one client identity sees it: a [`zt_client::Client`] with the ledger's
/// calls.
///
/// When the TLS material is reloaded (a renewed certificate, a rotated CA bundle), the next
/// RPC opens a new channel, so new RPCs present the new certificate at once; the old
/// connection finishes the RPCs it carries and closes once the last of them drops it.
#[derive(Debug)]
pub struct Ledger {
    client: Client,
}

impl Ledger {
    /// Loads the keystore (`cert`, `key`) and the truststore of `config`, and prepares a
    /// lazily connecting channel: nothing is dialled until the first RPC, and a broken
    /// connection is redialled on the next one.
    pub fn connect(config: &Config, cert: &Path, key: &Path) -> Result<Self, Error> {
        Ok(Self {
            client: Client::connect(&config.client_config(cert, key))?,
        })
    }

    /// Our TLS material, to reload it.
    pub fn tls(&self) -> &Arc<ClientTls> {
        self.client.tls()
    }

    /// Reloads our certificate, key and CA bundle when their files change (or on SIGHUP),
    /// as `name` in the reloader's logs and metrics.
    pub fn watch(&self, reloader: Reloader, name: &'static str) -> Reloader {
        self.client.watch(reloader, name)
    }

    /// Returns an account's balance in cents.
    pub async fn balance(&self, account: &str) -> Result<i64, Error> {
        let request = pb::GetBalanceRequest {
            account_id: account.to_owned(),
        };
        let response = self
            .client
            .retry(|channel| {
                let request = request.clone();
                async move { LedgerClient::new(channel).get_balance(request).await }
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
        self.client
            .retry(|channel| {
                let request = request.clone();
                async move { LedgerClient::new(channel).transfer(request).await }
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
            .client
            .retry(|channel| {
                let request = request.clone();
                async move { LedgerClient::new(channel).list_transfers(request).await }
            })
            .await?;
        let mut records = Vec::new();
        while let Some(record) = stream
            .message()
            .await
            .map_err(|status| self.client.error(status))?
        {
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
        match HealthClient::new(self.client.channel())
            .check(request)
            .await
        {
            Ok(r) => Ok(r.into_inner().status() == ServingStatus::Serving),
            Err(status) => Err(self.client.error(status)),
        }
    }
}
