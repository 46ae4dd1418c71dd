//! End-to-end tests of the whole product: the real `pmon-server` binary on a temporary
//! data directory, driven through `pmon`, grpcurl and the generated client.
//!
//! The binaries must be built first (`scripts/test` does it); `support::bin` refuses
//! binaries older than the sources rather than testing stale code.

// A panic is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod calibrate;
mod churn;
mod cli;
mod config;
mod evidence;
mod explain;
#[cfg(target_os = "linux")]
mod faults;
mod grpcurl;
mod help;
mod install;
mod limits;
mod metrics;
#[cfg(target_os = "linux")]
mod namespace;
mod other_users;
mod pinned;
mod prometheus;
mod remote;
mod replay;
mod socket;
mod stand_ins;
mod stream;
mod support;
mod tui;
