//! Compiles `proto/` with a vendored `protoc`, as zt-proto does: no system packages needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let proto = root.join("greeter/v1/greeter.proto");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={}", proto.display());
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // The descriptors list the served methods (metric labels and the policy check).
    config.file_descriptor_set_path(out.join("greeter_descriptor.bin"));
    tonic_prost_build::configure().compile_with_config(config, &[proto], &[root])?;
    Ok(())
}
