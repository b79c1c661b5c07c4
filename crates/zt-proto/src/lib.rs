//! Generated code for the project's gRPC contract (`proto/ledger/v1/ledger.proto`).
//!
//! Nothing here is written by hand: change the `.proto` file and rebuild.

/// `ledger.v1`: the Ledger service, its messages, client and server stubs.
#[allow(missing_docs, unreachable_pub, clippy::all, unused_qualifications)]
pub mod ledger {
    /// Version 1 of the contract.
    pub mod v1 {
        tonic::include_proto!("ledger.v1");
    }
}
