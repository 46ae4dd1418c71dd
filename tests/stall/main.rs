//! The stall lab: real stalls with a known culprit, made on this machine, and a check
//! of what the real `pmon-server` names for each, read back with the real `pmon`.
//!
//! ```text
//! scenario ─► fresh pmon-server (0.2 s sampling) ─► warm-up samples ─► hogs freeze the machine
//!          ─► pause event(s) recorded ─► lab: longest one's first culprit == expected?
//! ```
//!
//! Every test here starves the machine, so every one is ignored by a plain `cargo test`
//! and needs root; run them one at a time, after the other tests:
//! `cargo test --test stall -- --ignored --test-threads=1` (as `scripts/test` does), or
//! `scripts/stall-lab`, which prints the table. Each test prints one `LAB|…` row.

// The stalls are made with Linux tools (chrt, the cgroup-v1 memory controller).
#![cfg(target_os = "linux")]
// A panic is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod cgroup;
mod fleet;
mod hogs;
mod lab;
mod scenarios;
mod server;

/// One ignored test per scenario, named like it (`rt_starvation` is `rt-starvation`).
macro_rules! scenarios {
    ($($test:ident => $name:literal,)*) => {$(
        #[test]
        #[ignore = "makes a real stall: needs root (chrt, kill -STOP, cgroups) and starves the machine; run one at a time by scripts/test and scripts/stall-lab"]
        fn $test() {
            lab::run($name, scenarios::$test);
        }
    )*};
}

scenarios! {
    rt_starvation => "rt-starvation",
    server_stopped => "server-stopped",
    culprit_exits => "culprit-exits",
    decoy => "decoy",
    fork_tree => "fork-tree",
    memory_cgroup => "memory-cgroup",
}
