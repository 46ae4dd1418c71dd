//! Memory of this process on macOS: `proc_pidinfo(PROC_PIDTASKINFO)` and `getrusage`.

use super::Memory;

/// Resident memory now and at its peak.
pub fn memory() -> Memory {
    // SAFETY: proc_pidinfo fills at most `size` bytes of the struct we pass and returns
    // how many it wrote; anything short of the whole struct is treated as failure.
    let resident = unsafe {
        let mut info: libc::proc_taskinfo = std::mem::zeroed();
        let size = std::mem::size_of::<libc::proc_taskinfo>() as libc::c_int;
        let written =
            libc::proc_pidinfo(libc::getpid(), libc::PROC_PIDTASKINFO, 0, (&raw mut info).cast::<libc::c_void>(), size);
        (written == size).then_some(info.pti_resident_size)
    };
    // SAFETY: getrusage writes into the struct we pass.
    let peak = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        // macOS reports ru_maxrss in bytes.
        (libc::getrusage(libc::RUSAGE_SELF, &mut usage) == 0).then(|| u64::try_from(usage.ru_maxrss).ok()).flatten()
    };
    Memory { resident, peak }
}
