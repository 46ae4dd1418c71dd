//! The stall lab: real stalls with a known culprit, made on this machine, and a check
//! of what the real `pmon-server` names for each, read back with the real `pmon`.
//!
//! ```text
//! scenario ─► fresh pmon-server (lab: root, 0.2 s; defaults: nobody, 1 s) ─► warm-up samples
//!          ─► hogs freeze the machine (or the server alone) ─► pause event(s) recorded
//!          ─► lab: the longest one's culprits and cause == expected?
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

mod busy;
mod cgroup;
mod fleet;
mod hogs;
mod lab;
mod loads;
mod scenarios;
mod server;
mod stress;

/// One ignored test per scenario and setup, named like them: `in_lab::rt_starvation` is
/// rt-starvation in the lab's setup (root, 0.2 s), `at_defaults::rt_starvation` at the
/// defaults as an ordinary user.
macro_rules! scenarios {
    ($($test:ident => $name:literal,)*) => {
        mod in_lab {$(
            #[test]
            #[ignore = "makes a real stall: needs root (chrt, kill -STOP, cgroups) and starves the machine; run one at a time by scripts/test and scripts/stall-lab"]
            fn $test() {
                crate::lab::run($name, crate::server::Setup::Lab, crate::scenarios::$test);
            }
        )*}
        mod at_defaults {$(
            #[test]
            #[ignore = "makes a real stall: needs root (chrt, kill -STOP, cgroups, setpriv) and starves the machine; run one at a time by scripts/test and scripts/stall-lab"]
            fn $test() {
                crate::lab::run($name, crate::server::Setup::Defaults, crate::scenarios::$test);
            }
        )*}
    };
}

scenarios! {
    rt_starvation => "rt-starvation",
    equal_hogs => "equal-hogs",
    server_frozen => "server-frozen",
    server_throttled => "server-throttled",
    server_stopped => "server-stopped",
    culprit_exits => "culprit-exits",
    decoy => "decoy",
    fork_tree => "fork-tree",
    memory_cgroup => "memory-cgroup",
    memory_burst => "memory-burst",
}

/// One ignored test per load of the stress lab, at the defaults as an ordinary user:
/// `stress_lab::build_storm` is build-storm.
macro_rules! loads {
    ($($test:ident => $name:literal,)*) => {
        mod stress_lab {$(
            #[test]
            #[ignore = "loads the machine for 8-12 s (busy loops, I/O floods, swap, real-time hogs): needs root (setpriv, cgroups, swapon, chrt); run one at a time by scripts/test and scripts/stress-lab"]
            fn $test() {
                crate::stress::run($name, crate::loads::$test);
            }
        )*}
    };
}

loads! {
    idle => "idle",
    light => "light",
    one_hog => "one-hog",
    build_storm => "build-storm",
    hog_fleet => "hog-fleet",
    io_flood => "io-flood",
    memory_squeeze => "memory-squeeze",
    thrash => "thrash",
    rt_starvation => "rt-starvation",
}
