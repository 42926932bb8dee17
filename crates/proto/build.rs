//! Generates the gRPC contracts from proto/spendsignoff/v1 with a vendored
//! protoc, so a fresh machine needs no hand-installed compiler.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The run-time variable, not `env!`: a build script compiled in one
    // checkout may be reused from a shared target folder by another, and
    // must read the protos of the checkout it runs for.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = ["common", "platform", "ledger", "gateway", "policy", "approval", "executor"].map(|f| root.join(format!("spendsignoff/v1/{f}.proto")));
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    if std::env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("spendsignoff_descriptor.bin"))
        .compile_with_config(config, &files, std::slice::from_ref(&root))?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
