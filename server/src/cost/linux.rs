//! Memory of this process on Linux: `/proc/self/statm` and `getrusage`.

use super::Memory;

/// Resident memory now and at its peak.
pub fn memory() -> Memory {
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let resident = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_ascii_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * page);
    // The kernel updates the high-water mark lazily, so it can trail the current figure.
    let peak = peak_kib().map(|k| k * 1024).max(resident);
    Memory { resident, peak }
}

fn peak_kib() -> Option<u64> {
    // SAFETY: getrusage writes into the struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_SELF, &mut usage) == 0).then_some(usage)?
    };
    // Linux reports ru_maxrss in KiB.
    u64::try_from(usage.ru_maxrss).ok()
}
