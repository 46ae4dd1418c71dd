//! Plain mirrors of what the macOS calls answer, the fields pmon uses only. The OS layer
//! (`native.rs`) copies the C structs into these; everything after is plain code,
//! tested on any OS.
//!
//! What the kernel (xnu) lets an ordinary user read, and so what these can hold:
//!
//! | call | own processes | another user's, without root |
//! |---|---|---|
//! | `sysctl KERN_PROC_ALL` → [`KinfoProc`] | yes | yes: every process is listed |
//! | `proc_pidinfo(PROC_PIDTBSDINFO)` → [`BsdInfo`] | yes (zombies too, asked with arg 1) | EPERM |
//! | `proc_pidinfo(PROC_PIDTASKINFO)` → [`TaskInfo`] | yes (ESRCH for a zombie) | EPERM |
//! | `proc_pid_rusage(RUSAGE_INFO_V4)` → [`RusageInfo`] | yes | EPERM |
//!
//! `proc_pidinfo` and `proc_pid_rusage` pass through `proc_security_policy(…,
//! CHECK_SAME_USER)` in `bsd/kern/proc_info.c`: only root (or the process's own user) is
//! answered, for every flavor but SHORTBSDINFO, UNIQIDENTIFIERINFO, PATHINFO,
//! COALITIONINFO and PLATFORMINFO. `KERN_PROC_ALL` has no such check, but carries no CPU
//! time or memory.

/// One process as `sysctl KERN_PROC_ALL` lists it (`struct kinfo_proc`, sys/sysctl.h).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KinfoProc {
    /// `kp_proc.p_pid`.
    pub p_pid: u32,
    /// `kp_eproc.e_ppid`.
    pub e_ppid: u32,
    /// `kp_eproc.e_ucred.cr_uid`: the effective user.
    pub cr_uid: u32,
    /// `kp_proc.p_comm`: the command name, at most 16 bytes.
    pub p_comm: String,
    /// `kp_proc.p_stat`: SIDL, SRUN (every live process), SSTOP or SZOMB.
    pub p_stat: u32,
    /// `kp_proc.p_starttime`, microseconds since the epoch: with the pid, what makes a
    /// process the same one from one sample to the next.
    pub p_starttime_us: u64,
}

/// The fields used of `struct proc_bsdinfo` (sys/proc_info.h).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BsdInfo {
    /// `pbi_name`: the longer name (up to 32 bytes), empty for some processes.
    pub pbi_name: String,
    /// `pbi_status`: the same values as `p_stat`.
    pub pbi_status: u32,
}

/// The fields used of `struct proc_taskinfo` (sys/proc_info.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskInfo {
    /// `pti_threadnum`.
    pub pti_threadnum: i32,
    /// `pti_csw`: context switches since start.
    pub pti_csw: i32,
    /// `pti_syscalls_unix`: Unix system calls since start.
    pub pti_syscalls_unix: i32,
}

/// The fields used of `struct rusage_info_v4` (sys/resource.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RusageInfo {
    /// `ri_user_time`, mach time units.
    pub ri_user_time: u64,
    /// `ri_system_time`, mach time units.
    pub ri_system_time: u64,
    /// `ri_pageins` since start.
    pub ri_pageins: u64,
    /// `ri_phys_footprint`, bytes.
    pub ri_phys_footprint: u64,
}

/// Why a call gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// EPERM: another user's process, and the server is not root.
    Denied,
    /// ESRCH: the process exited after it was listed.
    Gone,
    /// Any other failure, with its errno.
    Failed(i32),
}

impl Refusal {
    /// The refusal an errno stands for.
    pub fn from_errno(errno: i32) -> Refusal {
        match errno {
            libc::EPERM => Refusal::Denied,
            libc::ESRCH => Refusal::Gone,
            other => Refusal::Failed(other),
        }
    }
}

/// One call's answer.
pub type Answer<T> = Result<T, Refusal>;

/// The per-process calls' answers for one listed process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    /// `proc_pidinfo(PROC_PIDTBSDINFO)`.
    pub bsd: Answer<BsdInfo>,
    /// `proc_pidinfo(PROC_PIDTASKINFO)`.
    pub task: Answer<TaskInfo>,
    /// `proc_pid_rusage(RUSAGE_INFO_V4)`.
    pub rusage: Answer<RusageInfo>,
}

impl Details {
    /// Every call refused the same way (another user's process without root: all
    /// three are [`Refusal::Denied`]).
    pub fn refused(why: Refusal) -> Details {
        Details { bsd: Err(why), task: Err(why), rusage: Err(why) }
    }

    /// Whether the process exited and was reaped between the listing and the calls:
    /// `proc_pid_rusage` answers for zombies too (xnu looks them up with
    /// `proc_find_zombref`), so its ESRCH means the pid is no more. Task info of a
    /// zombie is ESRCH though it is still there: it has no task left.
    pub fn gone(&self) -> bool {
        self.rusage == Err(Refusal::Gone)
    }
}

/// Everything read of one process: the listing always, the rest where it was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawProc {
    /// Its entry in the listing.
    pub kinfo: KinfoProc,
    /// The per-process calls' answers.
    pub details: Details,
}
