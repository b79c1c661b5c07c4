//! The example's generated code (`proto/greeter/v1/greeter.proto`); the example itself is the
//! two binaries, `greeter-server` and `greeter-client`.

/// `greeter.v1`: the Greeter service, its messages, client and server stubs.
#[allow(missing_docs, unreachable_pub, clippy::all, unused_qualifications)]
pub mod v1 {
    tonic::include_proto!("greeter.v1");

    /// The compiled descriptors of `greeter.v1`.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/greeter_descriptor.bin"));
}
