//! Generated code for the project's gRPC contract (`proto/ledger/v1/ledger.proto`), and for
//! the benchmark harness's echo service (`proto/bench/v1/echo.proto`).
//!
//! Nothing here is written by hand but [`methods`] and [`format_cents`]: change the `.proto`
//! file and rebuild.

/// `ledger.v1`: the Ledger service, its messages, client and server stubs.
#[allow(missing_docs, unreachable_pub, clippy::all, unused_qualifications)]
pub mod ledger {
    /// Version 1 of the contract.
    pub mod v1 {
        tonic::include_proto!("ledger.v1");

        /// The compiled descriptors of `ledger.v1`.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            include_bytes!(concat!(env!("OUT_DIR"), "/ledger_descriptor.bin"));
    }
}

/// `bench.v1`: the payload echo of the benchmark harness (`proto/bench/v1/echo.proto`).
#[allow(missing_docs, unreachable_pub, clippy::all, unused_qualifications)]
pub mod bench {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("bench.v1");
    }
}

/// A `ledger.v1` amount (`amount_cents`, `balance_cents`: integer cents) as people read it:
/// `$12.50`, `-$0.05`, no thousands separator. The ledger's refusals and the payments
/// client's output both write money this way.
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}${}.{:02}", abs / 100, abs % 100)
}

/// Every method path (`/package.Service/Method`) of every service in an encoded
/// `FileDescriptorSet`, in declaration order.
pub fn methods(file_descriptor_set: &[u8]) -> Result<Vec<String>, prost::DecodeError> {
    use prost::Message as _;
    let set = prost_types::FileDescriptorSet::decode(file_descriptor_set)?;
    let mut paths = Vec::new();
    for file in &set.file {
        let package = file.package();
        for service in &file.service {
            let qualified = if package.is_empty() {
                service.name().to_owned()
            } else {
                format!("{package}.{}", service.name())
            };
            for method in &service.method {
                paths.push(format!("/{qualified}/{}", method.name()));
            }
        }
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cents_read_as_money() {
        assert_eq!(super::format_cents(1250), "$12.50");
        assert_eq!(super::format_cents(-5), "-$0.05");
        assert_eq!(super::format_cents(0), "$0.00");
        assert_eq!(super::format_cents(i64::MIN), "-$92233720368547758.08");
    }

    #[test]
    fn lists_the_ledger_methods() {
        assert_eq!(
            super::methods(super::ledger::v1::FILE_DESCRIPTOR_SET).ok(),
            Some(vec![
                "/ledger.v1.Ledger/GetBalance".to_owned(),
                "/ledger.v1.Ledger/Transfer".to_owned(),
                "/ledger.v1.Ledger/ListTransfers".to_owned(),
            ])
        );
    }
}
