//! Parsers for the /proc files the collector reads. Pure functions over file contents,
//! so they run on every OS and are tested against `fixtures/proc/`.
//!
//! The per-process parsers (`stat`, `status`, `io`) run thousands of times a sample, so
//! they work on bytes and look only at the lines they need: decoding whole files as
//! UTF-8 and splitting every line cost more than the rest of the collector together.
//! Only `comm` is decoded, since a process name may hold any bytes.

use pmon_proto::v1::{Pressure, ProcessState};

/// `PF_KTHREAD` in the `flags` field of `/proc/[pid]/stat`.
const PF_KTHREAD: u64 = 0x0020_0000;

/// A line or field that is not in the expected format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {file}: {what}")]
pub struct ParseError {
    file: &'static str,
    what: &'static str,
}

fn malformed(file: &'static str, what: &'static str) -> ParseError {
    ParseError { file, what }
}

/// The fields of `/proc/[pid]/stat` the collector uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// `comm`: the command name (up to 15 bytes; may contain spaces and parentheses).
    pub comm: String,
    /// Single-letter state.
    pub state: ProcessState,
    /// A kernel thread (no user memory, no system calls).
    pub kernel_thread: bool,
    /// Major faults.
    pub majflt: u64,
    /// User + system CPU time, clock ticks.
    pub cpu_ticks: u64,
    /// User + system CPU time of the children it has waited for (reaped), with theirs,
    /// clock ticks (`cutime` + `cstime`): a child that exited between two readings
    /// leaves its last moments here.
    pub children_ticks: u64,
    /// Threads.
    pub num_threads: u32,
    /// Start time after boot, clock ticks: tells a reused pid from the old process.
    pub starttime: u64,
    /// Resident set, pages.
    pub rss_pages: u64,
    /// Parent process id.
    pub ppid: u32,
    /// Nice value, -20..19.
    pub nice: Option<i32>,
    /// Real-time priority, 1..99 under a real-time policy, else 0 (field 40).
    pub rt_priority: Option<u32>,
    /// Scheduling policy, `SCHED_*` (field 41).
    pub policy: Option<u32>,
    /// Aggregated block I/O delay, clock ticks (field 42): counted only while the
    /// kernel's delay accounting is on, otherwise always 0.
    pub blkio_ticks: Option<u64>,
}

/// Parses `/proc/[pid]/stat`. `comm` is everything between the first `(` and the
/// *last* `)`, since the name itself may contain both.
pub fn stat(bytes: &[u8]) -> Result<Stat, ParseError> {
    const F: &str = "stat";
    let open = bytes.iter().position(|&b| b == b'(').ok_or(malformed(F, "no '(' before comm"))?;
    let close = bytes.iter().rposition(|&b| b == b')').ok_or(malformed(F, "no ')' after comm"))?;
    if close < open {
        return Err(malformed(F, "')' before '('"));
    }
    // Fields after comm, numbered from the state (field 3 in proc(5)): up to rss (24)
    // they must be there; the scheduling fields up to 42 are read where present.
    let mut f: [&[u8]; 40] = [b""; 40];
    let mut rest = bytes[close + 1..].split(u8::is_ascii_whitespace).filter(|w| !w.is_empty());
    for (i, slot) in f.iter_mut().enumerate() {
        match rest.next() {
            Some(word) => *slot = word,
            None if i >= 22 => break,
            None => return Err(malformed(F, "line ends before the rss field")),
        }
    }
    let field = |i: usize, what| number(f[i]).ok_or(malformed(F, what));
    let flags = field(6, "flags")?;
    let nice = std::str::from_utf8(f[16]).ok().and_then(|n| n.parse().ok());
    Ok(Stat {
        ppid: u32::try_from(field(1, "ppid")?).unwrap_or(0),
        nice,
        rt_priority: number(f[37]).and_then(|p| u32::try_from(p).ok()),
        policy: number(f[38]).and_then(|p| u32::try_from(p).ok()),
        blkio_ticks: number(f[39]),
        comm: String::from_utf8_lossy(&bytes[open + 1..close]).into_owned(),
        state: state_letter(f[0]),
        kernel_thread: flags & PF_KTHREAD != 0,
        majflt: field(9, "majflt")?,
        cpu_ticks: field(11, "utime")?.saturating_add(field(12, "stime")?),
        children_ticks: field(13, "cutime")?.saturating_add(field(14, "cstime")?),
        num_threads: u32::try_from(field(17, "num_threads")?).unwrap_or(u32::MAX),
        starttime: field(19, "starttime")?,
        rss_pages: field(21, "rss")?,
    })
}

/// Linux state letters in the vocabulary of the SPEC's factor table.
fn state_letter(s: &[u8]) -> ProcessState {
    match s {
        b"R" => ProcessState::Running,
        b"S" => ProcessState::Sleeping,
        b"D" => ProcessState::Stuck,
        b"Z" => ProcessState::Zombie,
        b"T" | b"t" => ProcessState::Stopped,
        b"I" => ProcessState::Idle,
        // X (dead), W, P, K and anything newer: say nothing rather than guess.
        _ => ProcessState::Unspecified,
    }
}

/// The fields of `/proc/[pid]/status` the collector uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// `Tgid`: the process (thread group) the task belongs to.
    pub tgid: Option<u32>,
    /// `VmSwap`, bytes; absent for kernel threads and zombies.
    pub swap_bytes: Option<u64>,
    /// voluntary + nonvoluntary context switches.
    pub ctxt_switches: Option<u64>,
}

/// Parses `/proc/[pid]/status`. Lines it does not need are skipped by their first
/// byte; a line it needs that is malformed leaves that field `None`.
pub fn status(bytes: &[u8]) -> Status {
    let mut swap_kib = None;
    let mut voluntary = None;
    let mut nonvoluntary = None;
    let mut tgid = None;
    for line in bytes.split(|&b| b == b'\n') {
        match line.first() {
            Some(b'T') => {
                if let Some(v) = line.strip_prefix(b"Tgid:") {
                    tgid = number(v.trim_ascii()).and_then(|t: u64| u32::try_from(t).ok());
                }
            }
            Some(b'V') => {
                if let Some(v) = line.strip_prefix(b"VmSwap:") {
                    swap_kib = v.trim_ascii().strip_suffix(b"kB").and_then(|v| number(v.trim_ascii()));
                }
            }
            Some(b'v') => {
                if let Some(v) = line.strip_prefix(b"voluntary_ctxt_switches:") {
                    voluntary = number(v.trim_ascii());
                }
            }
            Some(b'n') => {
                if let Some(v) = line.strip_prefix(b"nonvoluntary_ctxt_switches:") {
                    nonvoluntary = number(v.trim_ascii());
                }
            }
            _ => {}
        }
    }
    Status {
        tgid,
        swap_bytes: swap_kib.map(|k: u64| k.saturating_mul(1024)),
        ctxt_switches: voluntary.zip(nonvoluntary).map(|(v, n)| v.saturating_add(n)),
    }
}

/// `syscr + syscw` from `/proc/[pid]/io`: read and write system calls.
pub fn io_syscalls(bytes: &[u8]) -> Option<u64> {
    let mut syscr = None;
    let mut syscw = None;
    for line in bytes.split(|&b| b == b'\n') {
        if let Some(v) = line.strip_prefix(b"syscr:") {
            syscr = number(v.trim_ascii());
        } else if let Some(v) = line.strip_prefix(b"syscw:") {
            syscw = number(v.trim_ascii());
        }
    }
    syscr.zip(syscw).map(|(r, w)| r.saturating_add(w))
}

/// What `/proc/[pid]/schedstat` says about the process's main thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sched {
    /// Nanoseconds spent on a CPU.
    pub run_ns: u64,
    /// Nanoseconds spent runnable, waiting on a run queue for a CPU.
    pub wait_ns: u64,
    /// Times it was put on a CPU.
    pub timeslices: u64,
}

/// Parses `/proc/[pid]/schedstat` (`run_ns wait_ns timeslices`). `None` when malformed,
/// and for `0 0 0`, which kernels without scheduler statistics print for every task:
/// "never ran" cannot be told apart from "not counted", so it proves nothing.
pub fn schedstat(bytes: &[u8]) -> Option<Sched> {
    let mut fields = bytes.trim_ascii().split(|&b| b == b' ');
    let run_ns = number(fields.next()?)?;
    let wait_ns = number(fields.next()?)?;
    let timeslices = number(fields.next()?)?;
    (run_ns != 0 || timeslices != 0).then_some(Sched { run_ns, wait_ns, timeslices })
}

/// The first field of `/proc/uptime`: seconds since boot.
pub fn uptime(text: &str) -> Option<f64> {
    text.split_ascii_whitespace().next()?.parse().ok().filter(|s: &f64| s.is_finite() && *s >= 0.0)
}

/// The last field of `/proc/loadavg`: the pid most recently handed out, to a process
/// or a thread.
pub fn last_pid(text: &str) -> Option<u32> {
    text.split_ascii_whitespace().nth(4)?.parse().ok()
}

/// The three load averages of `/proc/loadavg`.
pub fn loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_ascii_whitespace().map(|f| f.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// The fields of `/proc/meminfo` the collector uses, bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemInfo {
    /// MemTotal.
    pub total: Option<u64>,
    /// MemAvailable.
    pub available: Option<u64>,
    /// SwapTotal.
    pub swap_total: Option<u64>,
    /// SwapFree.
    pub swap_free: Option<u64>,
}

/// Parses `/proc/meminfo` (values in kB).
pub fn meminfo(text: &str) -> MemInfo {
    let mut m = MemInfo::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let bytes =
            value.trim().strip_suffix("kB").and_then(|v| v.trim().parse::<u64>().ok()).map(|k| k.saturating_mul(1024));
        match key {
            "MemTotal" => m.total = bytes,
            "MemAvailable" => m.available = bytes,
            "SwapTotal" => m.swap_total = bytes,
            "SwapFree" => m.swap_free = bytes,
            _ => {}
        }
    }
    m
}

/// Parses a `/proc/pressure/{cpu,memory,io}` file:
/// `some avg10=1.23 avg60=… avg300=… total=N` and optionally a `full …` line.
pub fn pressure(text: &str) -> Option<Pressure> {
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        let kind = words.next();
        let mut avg10 = None;
        let mut total = None;
        for word in words {
            match word.split_once('=') {
                Some(("avg10", v)) => avg10 = v.parse::<f64>().ok(),
                Some(("total", v)) => total = v.parse::<u64>().ok(),
                _ => {}
            }
        }
        match kind {
            Some("some") => some = avg10.zip(total),
            Some("full") => full = avg10.zip(total),
            _ => {}
        }
    }
    let (some_avg10, some_total) = some?;
    Some(Pressure {
        some_avg10_percent: some_avg10,
        full_avg10_percent: full.map(|f| f.0),
        some_total_micros: some_total,
        full_total_micros: full.map(|f| f.1),
    })
}

/// Machine-wide counters from `/proc/vmstat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmStat {
    /// Major faults since boot.
    pub pgmajfault: Option<u64>,
    /// Pages swapped in since boot.
    pub pswpin: Option<u64>,
    /// Pages swapped out since boot.
    pub pswpout: Option<u64>,
    /// Pages taken back from / put into zswap since boot (kernels with zswap); zswap
    /// stores pages without counting them in `pswpout`, yet they show in `VmSwap`.
    pub zswap: Option<(u64, u64)>,
    /// Pages reclaimed since boot, all `pgsteal_*` counters summed: reclaim takes pages
    /// from processes that are not running.
    pub pgsteal: Option<u64>,
}

/// Parses `/proc/vmstat` (`name value` per line).
pub fn vmstat(text: &str) -> VmStat {
    let mut v = VmStat::default();
    let (mut zswpin, mut zswpout) = (None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(' ') else { continue };
        let value = value.trim().parse::<u64>().ok();
        match key {
            "pgmajfault" => v.pgmajfault = value,
            "pswpin" => v.pswpin = value,
            "pswpout" => v.pswpout = value,
            "zswpin" => zswpin = value,
            "zswpout" => zswpout = value,
            _ if key.starts_with("pgsteal_") => {
                v.pgsteal = Some(v.pgsteal.unwrap_or(0).saturating_add(value.unwrap_or(0)));
            }
            _ => {}
        }
    }
    v.zswap = zswpin.zip(zswpout);
    v
}

/// An unsigned decimal; anything else (sign, spaces, overflow) is `None`, never zero.
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if d.is_ascii_digit() { n.checked_mul(10)?.checked_add(u64::from(d - b'0')) } else { None }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (my (weird) app) S 1 4242 4242 0 -1 4194560 \
        1200 0 37 0 250 50 0 0 20 0 6 0 98765 123456789 2048 18446744073709551615 \
        1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn stat_with_spaces_and_parentheses_in_comm() {
        let s = stat(STAT.as_bytes()).expect("valid stat");
        assert_eq!(s.comm, "my (weird) app");
        assert_eq!(s.state, ProcessState::Sleeping);
        assert_eq!((s.majflt, s.cpu_ticks, s.num_threads), (37, 300, 6));
        assert_eq!((s.starttime, s.rss_pages), (98765, 2048));
        assert!(!s.kernel_thread);
        assert_eq!((s.ppid, s.nice, s.rt_priority, s.policy, s.blkio_ticks), (1, Some(0), Some(0), Some(0), Some(0)));
    }

    #[test]
    fn stat_scheduling_fields_of_a_real_time_process_and_an_old_short_line() {
        let rt = "77 (hog) R 70 77 70 0 -1 4194560 0 0 0 0 399 1 30 2 -51 -5 1 0 500 1000 10             18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 50 1 12 0 0\n";
        let s = stat(rt.as_bytes()).expect("valid stat");
        assert_eq!(
            (s.ppid, s.nice, s.rt_priority, s.policy, s.blkio_ticks),
            (70, Some(-5), Some(50), Some(1), Some(12))
        );
        assert_eq!((s.cpu_ticks, s.children_ticks), (400, 32), "its own and its reaped children's");
        let short = "9 (old) S 1 9 9 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 100 3\n";
        let s = stat(short.as_bytes()).expect("fields up to rss are enough");
        assert_eq!((s.rt_priority, s.policy, s.blkio_ticks), (None, None, None));
    }

    #[test]
    fn stat_kernel_thread_flag_and_states() {
        let kthread = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 3 0 0 20 0 1 0 2 0 0 \
            18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 0 0 0 0 0 0 0 0";
        assert!(stat(kthread.as_bytes()).expect("valid").kernel_thread);
        for (letter, want) in [
            ("R", ProcessState::Running),
            ("D", ProcessState::Stuck),
            ("Z", ProcessState::Zombie),
            ("T", ProcessState::Stopped),
            ("t", ProcessState::Stopped),
            ("I", ProcessState::Idle),
            ("X", ProcessState::Unspecified),
        ] {
            let text = STAT.replacen(") S ", &format!(") {letter} "), 1);
            assert_eq!(stat(text.as_bytes()).expect("valid").state, want, "{letter}");
        }
    }

    #[test]
    fn stat_truncated_or_garbled_is_an_error_not_a_panic() {
        for bad in ["", "4242", "4242 (app", "4242 app) S", ") (", &STAT[..60], "1 (a) S x x x x x notanumber"] {
            assert!(stat(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let negative = STAT.replacen(" 37 ", " -37 ", 1);
        assert!(stat(negative.as_bytes()).is_err(), "a negative count is malformed, not zero");
    }

    #[test]
    fn status_fields_and_their_absence() {
        let full = b"Name:\tapp\nTgid:\t4242\nTracerPid:\t0\nVmSwap:\t    512 kB\nvoluntary_ctxt_switches:\t10\nnonvoluntary_ctxt_switches:\t5\n";
        assert_eq!(status(full), Status { tgid: Some(4242), swap_bytes: Some(512 * 1024), ctxt_switches: Some(15) });
        let kthread = b"Name:\tkworker/0:1\nvoluntary_ctxt_switches:\t7\nnonvoluntary_ctxt_switches:\t0\n";
        assert_eq!(status(kthread), Status { tgid: None, swap_bytes: None, ctxt_switches: Some(7) });
        assert_eq!(status(b"VmSwap:\tlots\nvoluntary_ctxt_switches:\t1\n"), Status::default());
        // A name with invalid UTF-8 does not stop the fields after it.
        let odd = b"Name:\t\xff\xfe\nVmSwap:\t 1 kB\nvoluntary_ctxt_switches:\t1\nnonvoluntary_ctxt_switches:\t1\n";
        assert_eq!(status(odd), Status { tgid: None, swap_bytes: Some(1024), ctxt_switches: Some(2) });
    }

    #[test]
    fn io_needs_both_counters() {
        assert_eq!(io_syscalls(b"rchar: 1\nsyscr: 10\nsyscw: 4\n"), Some(14));
        assert_eq!(io_syscalls(b"syscr: 10\n"), None);
        assert_eq!(io_syscalls(b"syscr: 99999999999999999999999\nsyscw: 1\n"), None, "overflow is not a number");
    }

    #[test]
    fn uptime_is_the_first_field() {
        assert_eq!(uptime("350735.47 234388.90\n"), Some(350_735.47));
        assert_eq!(uptime(""), None);
        assert_eq!(uptime("-3 1"), None);
    }

    #[test]
    fn schedstat_fields_and_the_uncounted_case() {
        assert_eq!(
            schedstat(b"231762870 22151027 625\n"),
            Some(Sched { run_ns: 231_762_870, wait_ns: 22_151_027, timeslices: 625 })
        );
        assert_eq!(schedstat(b"0 0 0\n"), None, "no scheduler statistics: proves nothing");
        assert_eq!(schedstat(b"12 34\n"), None);
        assert_eq!(schedstat(b"x 1 2\n"), None);
        assert_eq!(schedstat(b""), None);
    }

    #[test]
    fn system_files() {
        assert_eq!(loadavg("0.17 0.05 0.01 1/79 2137\n"), Some([0.17, 0.05, 0.01]));
        assert_eq!(loadavg("0.17 x"), None);
        assert_eq!(last_pid("0.17 0.05 0.01 1/79 2137\n"), Some(2137));
        assert_eq!(last_pid("0.17 0.05 0.01 1/79"), None);
        let m = meminfo("MemTotal: 100 kB\nMemFree: 1 kB\nMemAvailable: 50 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n");
        assert_eq!((m.total, m.available, m.swap_total), (Some(102_400), Some(51_200), Some(0)));
        let p = pressure(
            "some avg10=1.50 avg60=0.00 avg300=0.00 total=1234\nfull avg10=0.25 avg60=0.00 avg300=0.00 total=99\n",
        )
        .expect("valid");
        assert_eq!((p.some_avg10_percent, p.full_avg10_percent), (1.5, Some(0.25)));
        assert_eq!((p.some_total_micros, p.full_total_micros), (1234, Some(99)));
        let cpu_only_some = pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n").expect("valid");
        assert_eq!(cpu_only_some.full_total_micros, None);
        assert_eq!(pressure(""), None);
        let v = vmstat("nr_free_pages 5\npgmajfault 42\npswpin 1\npswpout 2\n");
        assert_eq!(v, VmStat { pgmajfault: Some(42), pswpin: Some(1), pswpout: Some(2), zswap: None, pgsteal: None });
        let z = vmstat("pswpin 1\npswpout 2\nzswpin 7\nzswpout 9\n");
        assert_eq!(z.zswap, Some((7, 9)));
        assert_eq!(vmstat("pgsteal_kswapd 3\npgsteal_direct 4\n").pgsteal, Some(7));
    }
}
