//! Seeing inside a freeze: the sampler thread asks for `SCHED_DEADLINE`, which the
//! kernel serves before every real-time and ordinary task, so a real-time busy loop on
//! every CPU cannot starve it; failing that, `SCHED_FIFO` at the top priority. Its
//! budget (a few milliseconds of every 100) is far more than a sample costs, and the
//! kernel enforces it, so a runaway sampler cannot freeze the machine either. Threads
//! and processes the sampler starts go back to ordinary scheduling (reset-on-fork).
//! Needs root or CAP_SYS_NICE; without it the sampler runs as before and says so.
//!
//! Memory is deliberately not locked: `mlockall` covers the whole process, the sentinel
//! thread too, and a sentinel whose pages can never be reclaimed does not feel a memory
//! freeze, the commonest freeze of all. Tried on a real one (a memory cgroup filled to
//! its limit with the server inside), a locked server recorded no pause at all.

use std::time::Duration;

/// The budget: `RUNTIME` of CPU in every `PERIOD`.
const RUNTIME: Duration = Duration::from_millis(20);
const PERIOD: Duration = Duration::from_millis(100);

const SCHED_DEADLINE: u32 = 6;
const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;
const SCHED_RESET_ON_FORK: i32 = 0x4000_0000;

/// `struct sched_attr` of sched_setattr(2) (the first, fixed part of it).
#[repr(C)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
}

/// Raises the calling thread; returns how it runs now and whether hogs can starve it.
pub fn protect_sampler() -> (String, bool) {
    match deadline().or_else(|deadline_error| fifo().map_err(|fifo_error| (deadline_error, fifo_error))) {
        Ok(policy) => (policy.to_string(), true),
        Err((d, f)) => (
            format!(
                "ordinary priority: hogs can starve the sampler (SCHED_DEADLINE: {d}; SCHED_FIFO: {f}; \
                 raising it needs root or CAP_SYS_NICE)"
            ),
            false,
        ),
    }
}

fn deadline() -> Result<&'static str, std::io::Error> {
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: SCHED_DEADLINE,
        sched_flags: SCHED_FLAG_RESET_ON_FORK,
        sched_nice: 0,
        sched_priority: 0,
        sched_runtime: nanos(RUNTIME),
        sched_deadline: nanos(PERIOD),
        sched_period: nanos(PERIOD),
    };
    // SAFETY: sched_setattr reads `attr.size` bytes from a valid, initialised struct of
    // that size; pid 0 is the calling thread.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0u32) };
    if rc == 0 { Ok("SCHED_DEADLINE") } else { Err(std::io::Error::last_os_error()) }
}

fn fifo() -> Result<&'static str, std::io::Error> {
    // SAFETY: sched_get_priority_max has no preconditions.
    let top = unsafe { libc::sched_get_priority_max(libc::SCHED_FIFO) };
    let param = libc::sched_param { sched_priority: top };
    // SAFETY: a valid sched_param; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO | SCHED_RESET_ON_FORK, &param) };
    if rc == 0 { Ok("SCHED_FIFO 99") } else { Err(std::io::Error::last_os_error()) }
}
