//! The mutual-TLS gRPC client, as a library: call any tonic service the way payments calls
//! the ledger.
//!
//! From a typed [`ClientConfig`] (binaries map their flags onto it), [`Client::connect`]
//! loads and checks the keystore and truststore, and gives:
//!
//! - [`Client::channel`]: a lazily connecting channel for any generated tonic client, TLS 1.3
//!   mutual TLS, accepting only a server that proves exactly [`ClientConfig::server_id`];
//!   redialled when the TLS material is reloaded ([`Client::watch`]), so new calls present the
//!   new certificate at once; with [`ClientConfig::replicas`], calls go round-robin over the
//!   service's addresses, each pinned to the same identity;
//! - [`Client::retry`]: runs a call, retries at once a call a closing connection did not take,
//!   backs off with jitter ([`Backoff`]) on `UNAVAILABLE` only, and never retries a TLS
//!   refusal;
//! - [`Error`]: every failure as a sentence for the person at the terminal, TLS refusals
//!   classified by a stable reason ([`Error::ServerRefused`]).
//!
//! What stays with each client is what is about it: its calls and their messages.
//!
//! ```no_run
//! use zt_client::{Client, ClientConfig};
//! use zt_proto::ledger::v1::{GetBalanceRequest, ledger_client::LedgerClient};
//!
//! # async fn example() -> Result<(), zt_client::Error> {
//! let config = ClientConfig {
//!     server_name: "the ledger".into(),
//!     ..ClientConfig::new(
//!         "https://ledger.internal:8443".parse().expect("a URI"),
//!         "spiffe://zt.example/ns/prod/sa/ledger".parse().expect("a SPIFFE ID"),
//!         "certs/payments.pem",
//!         "certs/payments.key",
//!         vec!["certs/ca.pem".parse().expect("infallible")],
//!     )
//! };
//! let client = Client::connect(&config)?;
//! let request = GetBalanceRequest { account_id: "alice".into() };
//! let balance = client
//!     .retry(|channel| {
//!         let request = request.clone();
//!         async move { LedgerClient::new(channel).get_balance(request).await }
//!     })
//!     .await?;
//! println!("alice: {} cents", balance.balance_cents);
//! # Ok(())
//! # }
//! ```

mod backoff;
mod client;
mod config;
mod error;

pub use backoff::Backoff;
pub use client::Client;
pub use config::{
    BackoffConfig, ClientConfig, DEFAULT_ATTEMPTS, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT, DEFAULT_SERVER_NAME, DEFAULT_UNAVAILABLE_COOLDOWN,
};
pub use error::Error;
