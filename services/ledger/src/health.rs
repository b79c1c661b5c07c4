//! `ledger health`: a container healthcheck that goes through the same mutual TLS and policy
//! as every client, so "healthy" means "serving authenticated, authorized RPCs".

use std::time::Duration;

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use zt_tls::{Keystore, MtlsConnector, Truststore};

use crate::config::Config;
use crate::error::Error;

/// Asks the ledger listening on `config.listen`'s port (on loopback) whether it is serving,
/// presenting this ledger's own certificate and requiring the server to prove the same
/// SPIFFE ID.
pub async fn probe(config: &Config) -> Result<bool, Error> {
    let keystore = Keystore::load_with_password(
        &config.cert,
        &config.key,
        config.keystore_password().as_ref(),
    )?;
    // The server to prove is this ledger itself: an unlabelled CA vouches for its domain.
    let own_domain = zt_identity::TrustDomain::new(keystore.spiffe_id().trust_domain())
        .map_err(|e| Error::Usage(e.to_string()))?;
    let truststore = Truststore::load_all(&config.truststore(), Some(&own_domain))?;
    let tls = zt_tls::client_config(&keystore, &truststore, keystore.spiffe_id().clone())?;
    let uri = format!("https://127.0.0.1:{}", config.listen.port())
        .parse()
        .map_err(|e: http::uri::InvalidUri| {
            Error::Health(tonic::Status::invalid_argument(e.to_string()))
        })?;
    let timeout = Duration::from_secs(3);
    let channel = zt_tls::channel(uri, MtlsConnector::new(tls, timeout), timeout);
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(), // the server as a whole
        })
        .await
        .map_err(Error::Health)?;
    Ok(response.into_inner().status() == ServingStatus::Serving)
}
