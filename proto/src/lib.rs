//! The pause-monitor contract, shared by the server and every client.
//!
//! ```text
//!             ┌──────────── pmon-proto (this crate) ────────────┐
//!             │ v1: generated gRPC stubs + proto3 JSON (serde)  │
//! pmon-server ┤ config: the config-file schema and validation   ├ pmon, pmon tui
//!             │ paths: XDG layout; endpoint: where to connect   │
//!             └──────────────────────────────────────────────────┘
//! ```
//!
//! Nothing here knows about the engine or storage: clients depend on this crate only.

pub mod config;
pub mod endpoint;
pub mod format;
pub mod paths;
pub mod pin;
pub mod time;
pub mod token;
pub mod when;

#[cfg(test)]
pub(crate) mod fuzz_tests;

/// Generated code for proto package `pmon.v1`: messages, `PauseMonitorClient`,
/// `PauseMonitorServer`, and serde impls that follow the proto3 JSON mapping (the
/// same shape `grpcurl` prints).
pub mod v1 {
    #![allow(clippy::all, clippy::pedantic)]
    #![allow(missing_docs)]
    tonic::include_proto!("pmon.v1");
    include!(concat!(env!("OUT_DIR"), "/pmon.v1.serde.rs"));
}

/// Encoded `FileDescriptorSet` of `proto/`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pmon_descriptor.bin"));
