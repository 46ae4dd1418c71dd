//! The OS calls behind the `libproc` source. They only fill the plain mirrors of
//! [`super::raw`] and [`RawSystem`]; every conversion is in the parent module.

use std::{ffi::CStr, mem::size_of};

use super::{Answer, BsdInfo, Details, KinfoProc, ProcSource, RawSystem, Refusal, RusageInfo, TaskInfo, Timebase};

/// Lists processes with sysctl, reads them with libproc and the machine with sysctl.
#[derive(Default)]
pub struct Native {
    buf: Vec<CKinfoProc>,
}

impl ProcSource for Native {
    fn list(&mut self, out: &mut Vec<KinfoProc>) -> std::io::Result<()> {
        let mut mib = [libc::CTL_KERN, libc::KERN_PROC, libc::KERN_PROC_ALL, 0];
        let mut bytes = 0usize;
        // SAFETY: a null buffer asks only for the size the table needs now.
        let rc =
            unsafe { libc::sysctl(mib.as_mut_ptr(), 4, std::ptr::null_mut(), &mut bytes, std::ptr::null_mut(), 0) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Room for more than there are now: the table may grow between the two calls.
        let room = bytes / size_of::<CKinfoProc>() + 64;
        self.buf.clear();
        self.buf.resize_with(room, CKinfoProc::zeroed);
        let mut bytes = room * size_of::<CKinfoProc>();
        // SAFETY: the buffer holds `bytes` bytes of kinfo_proc, as the call is told; the
        // kernel writes whole entries and says how many bytes it wrote.
        let rc = unsafe {
            libc::sysctl(mib.as_mut_ptr(), 4, self.buf.as_mut_ptr().cast(), &mut bytes, std::ptr::null_mut(), 0)
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = (bytes / size_of::<CKinfoProc>()).min(room);
        out.clear();
        out.extend(self.buf[..n].iter().filter_map(CKinfoProc::mirror));
        Ok(())
    }

    fn details(&mut self, pid: u32) -> Details {
        let Ok(id) = libc::c_int::try_from(pid) else {
            return Details::refused(Refusal::Gone);
        };
        // arg 1: xnu then answers for a zombie too, which has BSD info but no task.
        let bsd = pidinfo::<libc::proc_bsdinfo>(id, libc::PROC_PIDTBSDINFO, 1).map(|b| BsdInfo {
            pbi_name: Some(c_chars(&b.pbi_name)).filter(|n| !n.is_empty()).unwrap_or_else(|| c_chars(&b.pbi_comm)),
            pbi_status: b.pbi_status,
        });
        let task = pidinfo::<libc::proc_taskinfo>(id, libc::PROC_PIDTASKINFO, 0).map(|t| TaskInfo {
            pti_threadnum: t.pti_threadnum,
            pti_csw: t.pti_csw,
            pti_syscalls_unix: t.pti_syscalls_unix,
        });
        let rusage = rusage(id).map(|r| RusageInfo {
            ri_user_time: r.ri_user_time,
            ri_system_time: r.ri_system_time,
            ri_pageins: r.ri_pageins,
            ri_phys_footprint: r.ri_phys_footprint,
        });
        Details { bsd, task, rusage }
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
            memory_level: sysctl::<u32>(c"kern.memorystatus_level"),
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

/// The errno of the call that just failed, as a refusal.
fn refusal() -> Refusal {
    Refusal::from_errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// `proc_pidinfo` of one flavor into its struct.
fn pidinfo<T: Copy>(pid: libc::c_int, flavor: libc::c_int, arg: u64) -> Answer<T> {
    let mut value = std::mem::MaybeUninit::<T>::zeroed();
    let size = libc::c_int::try_from(size_of::<T>()).map_err(|_| Refusal::Failed(libc::EINVAL))?;
    // SAFETY: the buffer is `size` bytes of T, which are plain C structs of integers.
    let n = unsafe { libc::proc_pidinfo(pid, flavor, arg, value.as_mut_ptr().cast(), size) };
    match n {
        // SAFETY: the call wrote the whole struct; zeroed memory is a valid T anyway.
        n if n == size => Ok(unsafe { value.assume_init() }),
        // A short answer is a struct this kernel does not have in this size.
        n if n > 0 => Err(Refusal::Failed(libc::EINVAL)),
        _ => Err(refusal()),
    }
}

fn rusage(pid: libc::c_int) -> Answer<libc::rusage_info_v4> {
    let mut value = std::mem::MaybeUninit::<libc::rusage_info_v4>::zeroed();
    // SAFETY: flavor V4 writes a rusage_info_v4 into the buffer it is given.
    let rc = unsafe { libc::proc_pid_rusage(pid, libc::RUSAGE_INFO_V4, value.as_mut_ptr().cast()) };
    // SAFETY: on success the struct is filled; zeroed memory is a valid one anyway.
    if rc == 0 { Ok(unsafe { value.assume_init() }) } else { Err(refusal()) }
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
fn c_chars(chars: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = chars.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `struct kinfo_proc` (sys/sysctl.h) on 64-bit macOS: `struct extern_proc` (sys/proc.h)
/// then `struct eproc`. libc does not declare it for Apple targets; this is its C
/// layout, pointers as `usize`, checked against its known size (648) and the offsets of
/// the fields read. Only integers, so zeroed memory is a valid value.
#[repr(C)]
#[derive(Clone, Copy)]
struct CKinfoProc {
    kp_proc: ExternProc,
    kp_eproc: Eproc,
}

/// `struct extern_proc`; fields pmon does not read start with `_`.
#[repr(C)]
#[derive(Clone, Copy)]
struct ExternProc {
    /// The union `p_un`; its `__p_starttime` member is the one the kernel fills.
    p_starttime: libc::timeval,
    _p_vmspace: usize,
    _p_sigacts: usize,
    _p_flag: i32,
    p_stat: libc::c_char,
    p_pid: libc::pid_t,
    _p_oppid: libc::pid_t,
    _p_dupfd: i32,
    _user_stack: usize,
    _exit_thread: usize,
    _p_debugger: i32,
    _sigwait: i32,
    _p_estcpu: u32,
    _p_cpticks: i32,
    _p_pctcpu: u32,
    _p_wchan: usize,
    _p_wmesg: usize,
    _p_swtime: u32,
    _p_slptime: u32,
    _p_realtimer: [libc::timeval; 2],
    _p_rtime: libc::timeval,
    _p_uticks: u64,
    _p_sticks: u64,
    _p_iticks: u64,
    _p_traceflag: i32,
    _p_tracep: usize,
    _p_siglist: i32,
    _p_textvp: usize,
    _p_holdcnt: i32,
    _p_sigmask: u32,
    _p_sigignore: u32,
    _p_sigcatch: u32,
    _p_priority: u8,
    _p_usrpri: u8,
    _p_nice: libc::c_char,
    p_comm: [libc::c_char; 17],
    _p_pgrp: usize,
    _p_addr: usize,
    _p_xstat: u16,
    _p_acflag: u16,
    _p_ru: usize,
}

/// `struct eproc`; fields pmon does not read start with `_`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Eproc {
    _e_paddr: usize,
    _e_sess: usize,
    _e_pcred: Pcred,
    e_ucred: Ucred,
    _e_vm: Vmspace,
    e_ppid: libc::pid_t,
    _e_pgid: libc::pid_t,
    _e_jobc: i16,
    _e_tdev: i32,
    _e_tpgid: libc::pid_t,
    _e_tsess: usize,
    _e_wmesg: [libc::c_char; 8],
    _e_xsize: i32,
    _e_xrssize: i16,
    _e_xccount: i16,
    _e_xswrss: i16,
    _e_flag: i32,
    _e_login: [libc::c_char; 12],
    _e_spare: [i32; 4],
}

/// `struct _pcred`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Pcred {
    _pc_lock: [libc::c_char; 72],
    _pc_ucred: usize,
    _p_ids: [u32; 4],
    _p_refcnt: i32,
}

/// `struct _ucred`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Ucred {
    _cr_ref: i32,
    cr_uid: libc::uid_t,
    _cr_ngroups: i16,
    _cr_groups: [libc::gid_t; 16],
}

/// `struct vmspace`: placeholders in the kernel's own header too.
#[repr(C)]
#[derive(Clone, Copy)]
struct Vmspace {
    _dummy: i32,
    _dummy2: usize,
    _dummy3: [i32; 5],
    _dummy4: [usize; 3],
}

// The layout the kernel writes (sizeof(struct kinfo_proc) is 648 on 64-bit macOS), and
// where the fields read sit in it.
const _: () = {
    assert!(size_of::<CKinfoProc>() == 648);
    assert!(std::mem::offset_of!(ExternProc, p_stat) == 36);
    assert!(std::mem::offset_of!(ExternProc, p_pid) == 40);
    assert!(std::mem::offset_of!(ExternProc, p_comm) == 243);
    assert!(std::mem::offset_of!(CKinfoProc, kp_eproc) == 296);
    assert!(std::mem::offset_of!(Eproc, e_ucred) == 120);
    assert!(std::mem::offset_of!(Eproc, e_ppid) == 264);
    assert!(std::mem::offset_of!(Ucred, cr_uid) == 4);
};

impl CKinfoProc {
    fn zeroed() -> Self {
        // SAFETY: every field is an integer or an array or tuple of integers.
        unsafe { std::mem::zeroed() }
    }

    /// The fields pmon uses; `None` for an entry with a negative pid.
    fn mirror(&self) -> Option<KinfoProc> {
        let (p, e) = (&self.kp_proc, &self.kp_eproc);
        let start = p.p_starttime;
        let start_us = u64::try_from(start.tv_sec)
            .unwrap_or(0)
            .saturating_mul(1_000_000)
            .saturating_add(u64::try_from(start.tv_usec).unwrap_or(0));
        Some(KinfoProc {
            p_pid: u32::try_from(p.p_pid).ok()?,
            e_ppid: u32::try_from(e.e_ppid).unwrap_or(0),
            cr_uid: e.e_ucred.cr_uid,
            p_comm: c_chars(&p.p_comm),
            p_stat: u32::from(p.p_stat as u8),
            p_starttime_us: start_us,
        })
    }
}
