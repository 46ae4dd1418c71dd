//! The OS calls behind the `libproc` source. They only fill [`RawProc`] and
//! [`RawSystem`]; every conversion is in the parent module.

use std::{ffi::CStr, mem::size_of};

use super::{ProcSource, RawProc, RawSystem, Timebase};

/// Reads processes with libproc and the machine with sysctl.
#[derive(Debug, Default)]
pub struct Native {
    buf: Vec<libc::pid_t>,
}

impl ProcSource for Native {
    fn pids(&mut self, out: &mut Vec<u32>) -> std::io::Result<()> {
        // Room for more than there are now: the table may grow between the two calls.
        // SAFETY: a null buffer asks only for the number of pids.
        let count = unsafe { libc::proc_listallpids(std::ptr::null_mut(), 0) };
        if count < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let room = usize::try_from(count).unwrap_or(0) + 64;
        self.buf.resize(room, 0);
        let bytes = i32::try_from(room * size_of::<libc::pid_t>()).unwrap_or(i32::MAX);
        // SAFETY: the buffer holds `bytes` bytes of pid_t, as the call is told.
        let n = unsafe { libc::proc_listallpids(self.buf.as_mut_ptr().cast(), bytes) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = usize::try_from(n).unwrap_or(0).min(room);
        out.clear();
        out.extend(self.buf[..n].iter().filter_map(|p| u32::try_from(*p).ok()).filter(|p| *p > 0));
        Ok(())
    }

    fn process(&mut self, pid: u32) -> Option<RawProc> {
        let id = libc::c_int::try_from(pid).ok()?;
        // BSD info is readable for every process; without it the process is gone.
        let bsd: libc::proc_bsdinfo = pidinfo(id, libc::PROC_PIDTBSDINFO)?;
        let task: Option<libc::proc_taskinfo> = pidinfo(id, libc::PROC_PIDTASKINFO);
        let usage = rusage(id);
        let name = c_chars(&bsd.pbi_name).filter(|n| !n.is_empty()).or_else(|| c_chars(&bsd.pbi_comm));
        Some(RawProc {
            pid,
            name: name.unwrap_or_default(),
            start_us: bsd.pbi_start_tvsec.saturating_mul(1_000_000).saturating_add(bsd.pbi_start_tvusec),
            bsd_status: Some(bsd.pbi_status),
            cpu_time_mach: usage.map(|u| u.ri_user_time.saturating_add(u.ri_system_time)),
            pageins: usage.map(|u| u.ri_pageins),
            footprint_bytes: usage.map(|u| u.ri_phys_footprint),
            csw: task.and_then(|t| u64::try_from(t.pti_csw).ok()),
            syscalls_unix: task.and_then(|t| u64::try_from(t.pti_syscalls_unix).ok()),
            threads: task.and_then(|t| u32::try_from(t.pti_threadnum).ok()),
            ppid: Some(bsd.pbi_ppid),
        })
    }

    fn system(&mut self) -> RawSystem {
        let mut load = [0f64; 3];
        // SAFETY: the array has room for the 3 values asked for.
        let got = unsafe { libc::getloadavg(load.as_mut_ptr(), 3) };
        let swap: Option<libc::xsw_usage> = sysctl(c"vm.swapusage");
        RawSystem {
            load: (got == 3).then_some(load),
            mem_total_bytes: sysctl::<u64>(c"hw.memsize"),
            swap_total_bytes: swap.map(|s| s.xsu_total),
            swap_used_bytes: swap.map(|s| s.xsu_used),
        }
    }

    fn timebase(&self) -> Timebase {
        let mut info = MachTimebaseInfo { numer: 0, denom: 0 };
        // SAFETY: fills the struct it is given, which has the C layout of
        // mach_timebase_info_data_t.
        let rc = unsafe { mach_timebase_info(&mut info) };
        if rc == 0 && info.denom != 0 {
            Timebase { numer: info.numer, denom: info.denom }
        } else {
            Timebase { numer: 1, denom: 1 }
        }
    }
}

/// `mach_timebase_info_data_t` (mach/mach_time.h). Declared here because libc's
/// binding is deprecated in favour of the mach2 crate, and one call does not justify a
/// dependency.
#[repr(C)]
struct MachTimebaseInfo {
    numer: u32,
    denom: u32,
}

unsafe extern "C" {
    fn mach_timebase_info(info: *mut MachTimebaseInfo) -> libc::c_int;
}

/// `proc_pidinfo` of one flavor into its struct; `None` unless the whole struct came back.
fn pidinfo<T: Copy>(pid: libc::c_int, flavor: libc::c_int) -> Option<T> {
    let mut value = std::mem::MaybeUninit::<T>::zeroed();
    let size = libc::c_int::try_from(size_of::<T>()).ok()?;
    // SAFETY: the buffer is `size` bytes of T, which are plain C structs of integers.
    let n = unsafe { libc::proc_pidinfo(pid, flavor, 0, value.as_mut_ptr().cast(), size) };
    // SAFETY: the call wrote the whole struct (n == size); zeroed memory is a valid T anyway.
    (n == size).then(|| unsafe { value.assume_init() })
}

fn rusage(pid: libc::c_int) -> Option<libc::rusage_info_v4> {
    let mut value = std::mem::MaybeUninit::<libc::rusage_info_v4>::zeroed();
    // SAFETY: flavor V4 writes a rusage_info_v4 into the buffer it is given.
    let rc = unsafe { libc::proc_pid_rusage(pid, libc::RUSAGE_INFO_V4, value.as_mut_ptr().cast()) };
    // SAFETY: on success the struct is filled; zeroed memory is a valid one anyway.
    (rc == 0).then(|| unsafe { value.assume_init() })
}

fn sysctl<T: Copy>(name: &CStr) -> Option<T> {
    let mut value = std::mem::MaybeUninit::<T>::zeroed();
    let mut len = size_of::<T>();
    // SAFETY: the buffer is `len` bytes; the kernel writes at most that and says how much.
    let rc = unsafe { libc::sysctlbyname(name.as_ptr(), value.as_mut_ptr().cast(), &mut len, std::ptr::null_mut(), 0) };
    // SAFETY: the whole value was written; zeroed memory is a valid T of integers anyway.
    (rc == 0 && len == size_of::<T>()).then(|| unsafe { value.assume_init() })
}

/// A NUL-terminated C char array as a string (lossy: names are mostly ASCII).
fn c_chars(chars: &[libc::c_char]) -> Option<String> {
    let bytes: Vec<u8> = chars.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}
