//! Calls the Greeter through the project's mTLS client: the server must prove its SPIFFE ID,
//! a refusal is printed as a sentence, and the exit code says which it was.
//!
//! ```sh
//! greeter-client --cert certs/caller.pem --key certs/caller.key --ca certs/ca.pem \
//!     --server https://127.0.0.1:8443 --method hello --name world
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use greeter::v1::greeter_client::GreeterClient;
use greeter::v1::{AdminRequest, HelloRequest};
use zt_client::{Client, ClientConfig};
use zt_identity::SpiffeId;
use zt_tls::BundleSource;

/// Calls the Greeter over mutual TLS.
#[derive(Debug, Parser)]
struct Args {
    /// Our certificate chain (PEM, leaf first).
    #[arg(long, env = "GREETER_CLIENT_CERT")]
    cert: PathBuf,
    /// Our private key (PEM).
    #[arg(long, env = "GREETER_CLIENT_KEY")]
    key: PathBuf,
    /// A CA bundle the server's certificate may chain to (`[TRUST-DOMAIN=]PATH`; repeatable).
    #[arg(long, env = "GREETER_CLIENT_CA", required = true)]
    ca: Vec<BundleSource>,
    /// The server's address.
    #[arg(long, default_value = "https://127.0.0.1:8443")]
    server: http::Uri,
    /// The SPIFFE ID the server must prove.
    #[arg(long, default_value = "spiffe://zt.example/ns/demo/sa/greeter")]
    server_id: SpiffeId,
    /// The call to make.
    #[arg(long, value_enum, default_value_t = Method::Hello)]
    method: Method,
    /// Who to greet.
    #[arg(long, default_value = "world")]
    name: String,
}

/// The Greeter's calls.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Method {
    /// `/greeter.v1.Greeter/Hello`.
    Hello,
    /// `/greeter.v1.Greeter/Admin`.
    Admin,
}

#[tokio::main]
async fn main() -> ExitCode {
    match call(Args::parse()).await {
        Ok(message) => println!("{message}"),
        Err(err) => {
            eprintln!("greeter-client: {err}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Makes the call (retried only while the server is unavailable) and returns the reply.
async fn call(args: Args) -> Result<String, zt_client::Error> {
    let mut config = ClientConfig::new(args.server, args.server_id, args.cert, args.key, args.ca);
    config.server_name = "the greeter".to_owned();
    let client = Client::connect(&config)?;
    let (method, name) = (args.method, args.name);
    client
        .retry(|channel| {
            let mut greeter = GreeterClient::new(channel);
            let hello = HelloRequest { name: name.clone() };
            async move {
                Ok(tonic::Response::new(match method {
                    Method::Hello => greeter.hello(hello).await?.into_inner().message,
                    Method::Admin => greeter.admin(AdminRequest {}).await?.into_inner().message,
                }))
            }
        })
        .await
}
