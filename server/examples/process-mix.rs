//! The process mix `bench/peers` measures monitors under (see
//! `server/benches/support/mix.rs`): N children, a given share of them active each
//! second, the rest asleep.
//!
//! ```text
//! cargo run --release -p pmon-server --example process-mix -- CHILDREN ACTIVE_PERCENT
//! ```
//!
//! It runs until killed; `bench/peers` kills the whole process group.

#[path = "../benches/support/mix.rs"]
mod mix;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if mix::run_child_if_asked(&args)? {
        return Ok(());
    }
    let [children, active] = args.as_slice() else {
        bail!("usage: process-mix CHILDREN ACTIVE_PERCENT (0 to 100)");
    };
    let children = children.parse().context("CHILDREN")?;
    let active = active.parse().context("ACTIVE_PERCENT")?;
    let me = std::env::current_exe()?;
    let _running = mix::Mix::start(&me, children, active)?;
    println!(
        "{children} children, {active} % active each second; {} processes on the machine",
        mix::count_processes()?
    );
    // Until killed (with the whole process group); the children go with the mix.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
