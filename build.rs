//! Compiles `proto/` into Rust without a system `protoc`.
//!
//! ```text
//! proto/pmon/v1/pmon.proto ──protox──► FileDescriptorSet ──┬─► tonic stubs (client + server)
//!                                                          ├─► serde impls (pbjson, proto3 JSON)
//!                                                          └─► pmon_descriptor.bin (reflection)
//! ```

use std::{env, error::Error, fs, path::PathBuf};

use prost::Message;

const PROTO: &str = "proto/pmon/v1/pmon.proto";

fn main() -> Result<(), Box<dyn Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=proto");

    let fds = protox::compile([PROTO], ["proto"])?;
    let descriptor_bytes = fds.encode_to_vec();
    fs::write(out_dir.join("pmon_descriptor.bin"), &descriptor_bytes)?;

    tonic_prost_build::configure()
        // Timestamp comes from pbjson-types so that it serialises to proto3 JSON (RFC 3339).
        // (prost-build already maps `.google.protobuf` as a whole, hence the full name.)
        .extern_path(".google.protobuf.Timestamp", "::pbjson_types::Timestamp")
        .compile_fds(fds)?;

    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .extern_path(".google.protobuf", "::pbjson_types")
        .build(&[".pmon.v1"])?;
    Ok(())
}
