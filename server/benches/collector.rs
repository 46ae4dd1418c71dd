//! Per-sample CPU cost of the Linux `proc` collector against a naive reference.
//!
//! ```text
//! cargo bench -p pmon-server --bench collector
//! PMON_BENCH_COUNTS=300,1000 cargo bench -p pmon-server --bench collector
//! ```
//!
//! Method:
//!
//! - The bench raises the number of processes on the machine to each target (default
//!   300, 1000, 3000) by spawning idle `sleep` children, going up in steps and reusing the
//!   children already spawned. A machine that already has more than a target is measured
//!   as it is, and the row says so.
//! - At each target it compares `ProcCollector::collect` with a reference that does only
//!   the unavoidable work: list `/proc`, then open + read + close `stat`, `status` and `io`
//!   of every pid into one reused 8 KiB buffer, with no parsing and no rates.
//! - Cost is the CPU time of the measuring thread (`CLOCK_THREAD_CPUTIME_ID`), which
//!   includes the kernel time spent generating /proc files — almost all of the cost. Wall
//!   time is recorded too.
//! - Runs are interleaved (collector, reference, collector, …) so that drift in machine
//!   load hits both alike, and medians are reported.
//!
//! The machine is usually shared and noisy: the ratio collector/reference and the growth
//! per process are the point, not the absolute figures.
//!
//! Every child is killed and reaped at the end, and by a drop guard should the bench
//! panic or fail. A bench killed by a signal leaves its `sleep 100000` children behind.

#[path = "support/reference.rs"]
mod reference;

use std::{
    hint::black_box,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use pmon_server::collect::{
    Collector,
    proc::{ProcCollector, raise_open_file_limit},
};
use reference::Reference;

/// Targets when `PMON_BENCH_COUNTS` is not set.
const DEFAULT_COUNTS: [usize; 3] = [300, 1000, 3000];
/// Measured collector/reference pairs per target, after one warm-up of each.
const PAIRS: usize = 15;
/// Upper bound on spawn rounds per target: others' processes exiting while we spawn
/// can leave us short, but never for long.
const SPAWN_ROUNDS: usize = 10;

fn main() -> Result<()> {
    // `cargo bench` passes `--bench` (and maybe a filter); none of them concern us.
    let counts = counts()?;
    // As pmon-server does at start: room for the collector's kept descriptors.
    raise_open_file_limit();
    let mut children = Children::default();

    println!("pmon proc collector: per-sample cost vs a naive reference, in the same run");
    println!("  collector = ProcCollector::collect (read stat/status/io per pid + parse + rates)");
    println!("  reference = list /proc, open+read+close stat/status/io per pid, no parsing");
    println!("  cost = CPU time of the measuring thread (user + kernel), median of {PAIRS}");
    println!("  interleaved pairs; wall time shown for comparison.");
    println!("  The machine is shared and noisy: read the ratio and the per-process growth,");
    println!("  not the absolute figures.");
    println!();
    println!(
        "{:>9} {:>10} {:>10} {:>6} {:>10} {:>10} {:>10} {:>10}  note",
        "processes", "coll ms", "ref ms", "ratio", "coll µs/p", "ref µs/p", "coll wall", "ref wall"
    );

    for target in counts {
        let note = children.reach(target)?;
        let row = measure()?;
        println!(
            "{:>9} {:>10.2} {:>10.2} {:>6.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}  {}",
            row.processes,
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

    children.reap();
    Ok(())
}

/// Targets from `PMON_BENCH_COUNTS` ("300,1000"), sorted so children are reused.
fn counts() -> Result<Vec<usize>> {
    let Ok(spec) = std::env::var("PMON_BENCH_COUNTS") else {
        return Ok(DEFAULT_COUNTS.to_vec());
    };
    let mut counts = spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().with_context(|| format!("PMON_BENCH_COUNTS: {s:?} is not a count")))
        .collect::<Result<Vec<_>>>()?;
    ensure!(!counts.is_empty(), "PMON_BENCH_COUNTS={spec:?} names no count");
    // Spawned children are only ever added, so targets must go up.
    counts.sort_unstable();
    counts.dedup();
    Ok(counts)
}

/// Numeric entries of /proc: one per process.
fn count_processes() -> Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").context("listing /proc")? {
        // An entry vanishing while listing is a process that exited: not counted.
        let Ok(entry) = entry else { continue };
        if entry.file_name().to_str().is_some_and(|s| s.parse::<u32>().is_ok()) {
            n += 1;
        }
    }
    Ok(n)
}

/// The idle children; killed and reaped on drop so a panic or error still cleans up.
#[derive(Default)]
struct Children(Vec<Child>);

impl Children {
    /// Spawns children until /proc has at least `target` processes; returns the row note.
    fn reach(&mut self, target: usize) -> Result<String> {
        let before = count_processes()?;
        if before > target {
            return Ok(format!("target {target}: machine already has {before}"));
        }
        for _ in 0..SPAWN_ROUNDS {
            let have = count_processes()?;
            if have >= target {
                // Let the newest children get through exec, so every process the runs
                // see is a settled `sleep` and not a half-started copy of this bench.
                std::thread::sleep(Duration::from_millis(200));
                return Ok(String::new());
            }
            for _ in have..target {
                let child = Command::new("sleep")
                    .arg("100000")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .with_context(|| {
                        format!("spawning idle child {} (to reach {target} processes)", self.0.len() + 1)
                    })?;
                self.0.push(child);
            }
        }
        bail!("could not reach {target} processes after {SPAWN_ROUNDS} rounds of spawning")
    }

    /// Kills and waits every child; safe to call twice (the list is drained).
    fn reap(&mut self) {
        let mut children = std::mem::take(&mut self.0);
        // Kill all first, then wait: waiting one by one on live children would take as long
        // as each needs to die, in sequence.
        for child in &mut children {
            // Failing means it already exited; the wait below reaps it either way.
            let _ = child.kill();
        }
        for child in &mut children {
            if let Err(e) = child.wait() {
                eprintln!("could not reap child {}: {e}", child.id());
            }
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.reap();
    }
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
    let processes = count_processes()?;
    let mut collector = ProcCollector::new("/proc");
    let mut reference = Reference::new();

    // The collector's first sample has no rates (nothing to compare with), so it does
    // less work than every later one: not measured. The reference warms its caches alike.
    let first = collector.collect().context("warm-up collection")?;
    ensure!(!first.processes.is_empty(), "the collector saw no process in /proc");
    reference.sample().context("warm-up reference")?;

    let (mut coll_cpu, mut coll_wall) = (Vec::with_capacity(PAIRS), Vec::with_capacity(PAIRS));
    let (mut ref_cpu, mut ref_wall) = (Vec::with_capacity(PAIRS), Vec::with_capacity(PAIRS));
    for _ in 0..PAIRS {
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
