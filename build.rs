//! Compiles the Secrets Store CSI Driver provider proto (`proto/csi-provider.proto`) with
//! protox (pure Rust, no `protoc`) and generates the tonic server and a transport-agnostic
//! client (the integration tests drive the provider through it over the Unix socket).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/csi-provider.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
