//! Compiles `proto/` with a vendored `protoc`, so a fresh clone builds with no system packages.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script binary compiled for one checkout may be reused by
    // another (a worktree sharing the target directory).
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    for (package, file) in [
        ("ledger", "ledger/v1/ledger.proto"),
        ("bench", "bench/v1/echo.proto"),
    ] {
        let proto = root.join(file);
        println!("cargo:rerun-if-changed={}", proto.display());
        let mut config = prost_build::Config::new();
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
        // The descriptors let tools list the served methods (policy check and coverage).
        config.file_descriptor_set_path(out.join(format!("{package}_descriptor.bin")));
        tonic_prost_build::configure().compile_with_config(
            config,
            &[proto],
            std::slice::from_ref(&root),
        )?;
    }
    Ok(())
}
