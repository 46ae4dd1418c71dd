//! Per-sample CPU cost of the Linux `proc` collector against a naive reference, under
//! a process mix.
//!
//! ```text
//! cargo bench -p pmon-server --bench collector
//! PMON_BENCH_COUNTS=300,1000 PMON_BENCH_ACTIVE=10 cargo bench -p pmon-server --bench collector
//! ```
//!
//! Method:
//!
//! - For each target count (default 300, 1000, 3000) and each active share (default 0,
//!   10 and 100 %), the bench raises the number of processes on the machine to the
//!   target with the children of the process mix (`support/mix.rs`: this bench runs
//!   again as each child), of which the share is active each second. An idle machine is
//!   the best case for the collector, which skips what did not run, so it is never the
//!   only figure. A machine that already has more than a target is measured as it is,
//!   and the row says so. The children are killed after each cell.
//! - In each cell it compares `ProcCollector::collect` with a reference that does only
//!   the unavoidable work: list `/proc`, then open + read + close `stat`, `status` and
//!   `io` of every pid into one reused 8 KiB buffer, with no parsing and no rates.
//!   They sample once a second, as the server does, so every active child has run
//!   between two samples.
//! - Cost is the CPU time of the measuring thread (`CLOCK_THREAD_CPUTIME_ID`), which
//!   includes the kernel time spent generating /proc files — almost all of the cost. Wall
//!   time is recorded too.
//! - Runs are interleaved (collector, reference, collector, …) so that drift in machine
//!   load hits both alike, and medians are reported.
//!
//! The machine is usually shared and noisy: the ratio collector/reference and the growth
//! per process are the point, not the absolute figures.

#[path = "support/mix.rs"]
mod mix;
#[path = "support/reference.rs"]
mod reference;

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use pmon_server::collect::{
    Collector,
    proc::{ProcCollector, raise_open_file_limit},
};
use reference::Reference;

/// Targets when `PMON_BENCH_COUNTS` is not set.
const DEFAULT_COUNTS: &str = "300,1000,3000";
/// Active shares when `PMON_BENCH_ACTIVE` is not set.
const DEFAULT_ACTIVE: &str = "0,10,100";
/// Measured collector/reference pairs per cell, one a second, after one warm-up of each.
const PAIRS: usize = 10;
/// Time for newly started children to get through exec and into their rhythm.
const SETTLE: Duration = Duration::from_secs(3);

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if mix::run_child_if_asked(&args)? {
        return Ok(());
    }
    // `cargo bench` passes `--bench` (and maybe a filter); none of them concern us.
    let counts = list("PMON_BENCH_COUNTS", DEFAULT_COUNTS)?;
    let actives = list("PMON_BENCH_ACTIVE", DEFAULT_ACTIVE)?;
    ensure!(actives.iter().all(|a| *a <= 100), "PMON_BENCH_ACTIVE: shares are 0 to 100 %, got {actives:?}");
    // As pmon-server does at start: room for the collector's kept descriptors.
    raise_open_file_limit();
    let me = std::env::current_exe().context("the bench's own path, to start the mix")?;

    println!("pmon proc collector: per-sample cost vs a naive reference, in the same run");
    println!("  collector = ProcCollector::collect (schedstat per pid, the rest where it can have changed)");
    println!("  reference = list /proc, open+read+close stat/status/io per pid, no parsing");
    println!("  load      = the process mix: of the children, the share `active` runs each second");
    println!("  cost = CPU time of the measuring thread (user + kernel), median of {PAIRS}");
    println!("  interleaved pairs, one a second; wall time shown for comparison.");
    println!("  The machine is shared and noisy: read the ratio, not the absolute figures.");
    println!();
    println!(
        "{:>9} {:>6} {:>10} {:>10} {:>6} {:>10} {:>10} {:>10} {:>10}  note",
        "processes", "active", "coll ms", "ref ms", "ratio", "coll µs/p", "ref µs/p", "coll wall", "ref wall"
    );

    for &target in &counts {
        for &active in &actives {
            let before = mix::count_processes()?;
            let (_mix, note) = match target.checked_sub(before) {
                Some(missing) if missing > 0 => {
                    (Some(mix::Mix::start(&me, missing, u32::try_from(active)?)?), String::new())
                }
                _ => (None, format!("target {target}: machine already has {before}")),
            };
            std::thread::sleep(SETTLE);
            let row = measure()?;
            println!(
                "{:>9} {:>5}% {:>10.2} {:>10.2} {:>6.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}  {}",
                row.processes,
                active,
                row.collector.cpu_ms,
                row.reference.cpu_ms,
                row.collector.cpu_ms / row.reference.cpu_ms,
                row.collector.cpu_ms * 1000.0 / row.processes as f64,
                row.reference.cpu_ms * 1000.0 / row.processes as f64,
                row.collector.wall_ms,
                row.reference.wall_ms,
                note,
            );
        }
    }
    Ok(())
}

/// Numbers from a variable ("300,1000"), sorted, or the default.
fn list(var: &str, default: &str) -> Result<Vec<usize>> {
    let spec = std::env::var(var).unwrap_or_else(|_| default.to_string());
    let mut values = spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().with_context(|| format!("{var}: {s:?} is not a number")))
        .collect::<Result<Vec<_>>>()?;
    ensure!(!values.is_empty(), "{var}={spec:?} names no number");
    values.sort_unstable();
    values.dedup();
    Ok(values)
}

/// Median costs of one side at one target.
struct Cost {
    cpu_ms: f64,
    wall_ms: f64,
}

/// One table row.
struct Row {
    processes: usize,
    collector: Cost,
    reference: Cost,
}

/// Runs warm-up then `PAIRS` interleaved pairs at the current process count.
fn measure() -> Result<Row> {
    let processes = mix::count_processes()?;
    let mut collector = ProcCollector::new("/proc");
    let mut reference = Reference::new();

    // The collector's first sample has no rates (nothing to compare with), so it does
    // less work than every later one: not measured. The reference warms its caches alike.
    let first = collector.collect().context("warm-up collection")?;
    ensure!(!first.processes.is_empty(), "the collector saw no process in /proc");
    reference.sample().context("warm-up reference")?;

    let (mut coll_cpu, mut coll_wall) = (Vec::with_capacity(PAIRS), Vec::with_capacity(PAIRS));
    let (mut ref_cpu, mut ref_wall) = (Vec::with_capacity(PAIRS), Vec::with_capacity(PAIRS));
    let mut next = Instant::now();
    for _ in 0..PAIRS {
        next += Duration::from_secs(1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let (cpu, wall) = timed(|| collector.collect().map(|s| s.processes.len()).context("collection"))?;
        coll_cpu.push(cpu);
        coll_wall.push(wall);
        let (cpu, wall) = timed(|| reference.sample())?;
        ref_cpu.push(cpu);
        ref_wall.push(wall);
    }
    Ok(Row {
        processes,
        collector: Cost { cpu_ms: median(&mut coll_cpu), wall_ms: median(&mut coll_wall) },
        reference: Cost { cpu_ms: median(&mut ref_cpu), wall_ms: median(&mut ref_wall) },
    })
}

/// Runs `f` once; returns (thread CPU ms, wall ms).
fn timed(f: impl FnOnce() -> Result<usize>) -> Result<(f64, f64)> {
    let cpu0 = thread_cpu()?;
    let wall0 = Instant::now();
    // black_box: the result must look used, or the work could be optimised away.
    black_box(f()?);
    let wall = wall0.elapsed();
    let cpu = thread_cpu()? - cpu0;
    Ok((cpu.as_secs_f64() * 1e3, wall.as_secs_f64() * 1e3))
}

/// CPU time consumed so far by the calling thread, user and kernel.
fn thread_cpu() -> Result<Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call, and
    // CLOCK_THREAD_CPUTIME_ID is a clock every Linux kernel pmon runs on provides.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    }
    let secs = u64::try_from(ts.tv_sec).context("negative thread CPU seconds")?;
    let nanos = u32::try_from(ts.tv_nsec).context("thread CPU nanoseconds out of range")?;
    Ok(Duration::new(secs, nanos))
}

/// Median, sorting in place; `values` is never empty here (PAIRS > 0).
fn median(values: &mut [f64]) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
