//! Generates the Rust types of `proto/` (Tempo's `tempopb` messages and `google.rpc.Status`)
//! with prost. protox compiles the `.proto` files in Rust, so building needs no `protoc`.
//! Tempo's copies of the OTLP packages map onto `opentelemetry-proto`'s types.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/tempopb/tempo.proto",
        "proto/tempopb/common.proto",
        "proto/tempopb/trace.proto",
        "proto/google/rpc/status.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new()
        .extern_path(
            ".tempopb.common.v1",
            "::opentelemetry_proto::tonic::common::v1",
        )
        .extern_path(
            ".tempopb.trace.v1",
            "::opentelemetry_proto::tonic::trace::v1",
        )
        .compile_fds(descriptors)?;
    Ok(())
}
