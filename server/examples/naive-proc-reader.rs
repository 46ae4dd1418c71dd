//! The naive /proc sampler `bench/peers` runs next to pmon-server: once a second, list
//! /proc, then open + read + close `stat`, `status` and `io` of every pid, no parsing.
//! It is the floor any per-process sampler that reopens files is judged by.
//!
//! ```text
//! cargo run --release -p pmon-server --example naive-proc-reader
//! ```

#[path = "../benches/support/reference.rs"]
mod reference;

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use anyhow::Result;

fn main() -> Result<()> {
    let mut reference = reference::Reference::new();
    // Keep a steady 1 Hz schedule, as the monitors it is compared with do.
    let mut next = Instant::now();
    loop {
        black_box(reference.sample()?);
        next += Duration::from_secs(1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}
