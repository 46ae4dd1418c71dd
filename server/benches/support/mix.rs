//! The process mix every speed figure is measured under: N children, of which a given
//! share is active each second, the rest asleep. Which ones are active rotates, so over
//! ten seconds every child of a 10 % mix has run, as on a real machine. Shared by the
//! collector bench and the `process-mix` example that `bench/peers` runs.
//!
//! An active child, in its second: a short CPU burst (200 µs), memory growth (16 KiB
//! more, given back at 4 MiB), a file read (64 KiB, from the page cache), system calls
//! (a few `stat`s) and, every tenth active second, a short-lived child of its own
//! (`true`). An idle child is never scheduled (at 0 % it sleeps for good), as an idle
//! process on a real machine is not.

use std::{
    hint::black_box,
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};

/// The argument that makes a program that embeds the mix run as one of its children.
pub const CHILD_FLAG: &str = "--mix-child";

/// The file every child reads.
fn shared_file() -> PathBuf {
    std::env::temp_dir().join("pmon-process-mix.bin")
}

/// Runs as a child when the arguments are `--mix-child INDEX ACTIVE`; `Ok(false)` when
/// they are not (the program goes on as itself). A child runs until killed.
pub fn run_child_if_asked(args: &[String]) -> Result<bool> {
    match args {
        [flag, index, active] if flag == CHILD_FLAG => {
            child(index.parse().context("child index")?, active.parse().context("child share")?)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Numeric entries of /proc: one per process.
pub fn count_processes() -> Result<usize> {
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

/// Running children of `exe` (which must call [`run_child_if_asked`]); killed and
/// reaped on drop, so a panic or an error still cleans up.
pub struct Mix(Vec<Child>);

impl Mix {
    /// Starts `children` of which `active` % are active each second.
    pub fn start(exe: &Path, children: usize, active: u32) -> Result<Self> {
        if active > 100 {
            bail!("the active share is 0 to 100 %, got {active}");
        }
        std::fs::write(shared_file(), vec![7u8; 64 * 1024]).context("write the shared file")?;
        let mut mix = Mix(Vec::with_capacity(children));
        for i in 0..children {
            let child = Command::new(exe)
                .args([CHILD_FLAG, &i.to_string(), &active.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .with_context(|| format!("starting child {i} of the process mix"))?;
            mix.0.push(child);
        }
        Ok(mix)
    }
}

impl Drop for Mix {
    fn drop(&mut self) {
        // Kill all first, then wait: waiting on each live child in turn would take as
        // long as each needs to die, in sequence.
        for c in &mut self.0 {
            // Failing means it already exited; the wait below reaps it either way.
            let _ = c.kill();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

fn child(index: u32, active: u32) -> Result<()> {
    let mut memory: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut turns = 0u32;
    // A phase of its own within the second, so the children do not all wake at once.
    let phase = Duration::from_micros(u64::from(index) * 7_919 % 1_000_000);
    loop {
        let second = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        // Active this second when its slot, rotating by the second, falls in the share.
        let slot = (u64::from(index) + second) % 100;
        if slot < u64::from(active) {
            work(&mut memory, &mut buf, &mut turns)?;
        }
        // Asleep until its next active second.
        let wait = match active {
            0 => Duration::from_secs(86_400),
            _ if slot + 1 < u64::from(active) => Duration::from_secs(1),
            _ => Duration::from_secs(100 - slot),
        };
        let next = Duration::from_secs(second) + wait + phase;
        std::thread::sleep(next.saturating_sub(SystemTime::now().duration_since(UNIX_EPOCH)?));
    }
}

fn work(memory: &mut Vec<u8>, buf: &mut [u8], turns: &mut u32) -> Result<()> {
    let burst = Instant::now();
    let mut x = 0u64;
    while burst.elapsed() < Duration::from_micros(200) {
        x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
    if memory.len() >= 4 << 20 {
        *memory = Vec::new();
    }
    memory.extend(std::iter::repeat_n(1u8, 16 * 1024));
    std::fs::File::open(shared_file())?.read_exact(buf)?;
    for _ in 0..8 {
        black_box(std::fs::metadata("/")?);
    }
    *turns += 1;
    if turns.is_multiple_of(10) {
        Command::new("true").status()?;
    }
    Ok(())
}
