//! Linux forensic steps: PSI deltas across the stall, kernel log lines in its window,
//! processes stuck in uninterruptible sleep, memory and swap, and a process snapshot.

use std::{
    fmt::Write as _,
    fs,
    io::{ErrorKind, Read},
    os::unix::fs::OpenOptionsExt,
    time::Duration,
};

use pmon_proto::v1::Pressure;

use super::{Output, Pause, Step, kmsg};
use crate::collect::{
    Collector,
    proc::{ProcCollector, parse},
};

/// Kernel messages this long before the stall began still count: a hung-task report
/// comes after the task has already been blocked a while.
const KMSG_LEAD: Duration = Duration::from_secs(10);
/// Lines of kernel log kept in the finding (all of the window goes to the artefact).
const KMSG_DETAIL_LINES: usize = 50;

/// The step whose stack report says who waited on whom: no stack report: the announcement goes out at once.
pub(super) const WAITS_STEP: Option<&str> = None;

/// The steps, in the order they run: the fast, telling ones first.
pub(super) fn steps(pause: &Pause) -> Vec<Step> {
    // The last sample before the freeze began: the ring also holds those after it.
    let began = pause.ended_at.checked_sub(pause.stall).unwrap_or(pause.ended_at);
    let taken = |s: &pmon_proto::v1::Sample| s.time.as_ref().and_then(pmon_proto::time::system_time);
    let before = pause.ring.iter().rev().find(|s| taken(s).is_some_and(|t| t <= began)).and_then(|s| s.system);
    let window = pause.stall + KMSG_LEAD;
    vec![
        ("psi", Box::new(move || psi(before.as_ref()))),
        ("kernel-log", Box::new(move || kernel_log(window))),
        ("stuck-processes", Box::new(stuck_processes)),
        ("memory", Box::new(memory)),
        ("processes", Box::new(processes)),
    ]
}

fn read(path: &str) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
}

/// How much more stall time each resource had since the last sample before the pause.
fn psi(before: Option<&pmon_proto::v1::SystemFigures>) -> Result<Output, String> {
    let mut detail = String::new();
    let mut summary = Vec::new();
    for (name, prior) in [
        ("cpu", before.and_then(|b| b.cpu_pressure.as_ref())),
        ("memory", before.and_then(|b| b.memory_pressure.as_ref())),
        ("io", before.and_then(|b| b.io_pressure.as_ref())),
    ] {
        let path = format!("/proc/pressure/{name}");
        let Some(now) = fs::read_to_string(&path).ok().and_then(|t| parse::pressure(&t)) else {
            let _ = writeln!(detail, "{name}: no PSI on this kernel");
            continue;
        };
        let delta = |now: u64, then: Option<u64>| then.map(|t| Duration::from_micros(now.saturating_sub(t)));
        let some = delta(now.some_total_micros, prior.map(|p| p.some_total_micros));
        let full = now.full_total_micros.and_then(|n| delta(n, prior.and_then(|p: &Pressure| p.full_total_micros)));
        let _ = writeln!(
            detail,
            "{name}: some avg10 {:.2}% (+{} stalled), full avg10 {} (+{} stalled)",
            now.some_avg10_percent,
            some.map_or("?".into(), |d| format!("{:.3} s", d.as_secs_f64())),
            now.full_avg10_percent.map_or("n/a".into(), |f| format!("{f:.2}%")),
            full.map_or("?".into(), |d| format!("{:.3} s", d.as_secs_f64())),
        );
        if let Some(d) = some.filter(|d| *d >= Duration::from_millis(100)) {
            summary.push(format!("{name} +{:.2} s", d.as_secs_f64()));
        }
    }
    if before.is_none() {
        detail.push_str("(no sample before the pause to compare with: totals only)\n");
    }
    let summary = if summary.is_empty() {
        "no resource stalled tasks noticeably during the pause".to_string()
    } else {
        format!("tasks stalled waiting for {}", summary.join(", "))
    };
    Ok(Output { summary, detail, artefacts: vec![], ..Output::default() })
}

/// Kernel log records from `window` before now, read from /dev/kmsg without blocking.
fn kernel_log(window: Duration) -> Result<Output, String> {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .map_err(|e| format!("cannot read the kernel log (/dev/kmsg): {e}; it needs root or CAP_SYSLOG"))?;
    // kmsg stamps records on the monotonic clock, which `sleep::now` reads on Linux.
    let now = crate::pause::sleep::now().map_err(|e| e.to_string())?.monotonic;
    let now_us = u64::try_from(now.as_micros()).unwrap_or(u64::MAX);
    let since_us = now_us.saturating_sub(u64::try_from(window.as_micros()).unwrap_or(u64::MAX));
    // Each read returns one record; EAGAIN means the end of the buffer.
    let mut buf = vec![0u8; 8192];
    let (mut lines, mut telling) = (Vec::new(), Vec::new());
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                if let Some(r) = text.lines().next().and_then(kmsg::parse).filter(|r| r.at_us >= since_us) {
                    let line = format!("[{:>12.6}] {}", r.at_us as f64 / 1e6, r.message);
                    if kmsg::is_telling(r.message) {
                        telling.push(line.clone());
                    }
                    lines.push(line);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            // A record overwritten while reading: skip on.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) => return Err(format!("reading /dev/kmsg: {e}")),
        }
    }
    let summary = match (lines.len(), telling.len()) {
        (0, _) => format!("no kernel messages in the {:.0} s around the pause", window.as_secs_f64()),
        (n, 0) => format!("{n} kernel messages around the pause, none about hung tasks, OOM or lockups"),
        (n, t) => format!("{t} of {n} kernel messages report hung tasks, OOM, lockups or I/O errors"),
    };
    let shown: Vec<&String> = if telling.is_empty() {
        lines.iter().rev().take(KMSG_DETAIL_LINES).collect()
    } else {
        telling.iter().collect()
    };
    let detail = shown.into_iter().map(String::as_str).collect::<Vec<_>>().join("\n");
    Ok(Output {
        summary,
        detail,
        artefacts: vec![("kernel-log.txt".into(), lines.join("\n").into_bytes())],
        ..Output::default()
    })
}

/// Processes in D state now: where in the kernel they wait (wchan, stack) and how long
/// they have waited to run (schedstat).
fn stuck_processes() -> Result<Output, String> {
    let (mut found, mut names) = (Vec::new(), Vec::new());
    for entry in fs::read_dir("/proc").map_err(|e| format!("cannot list /proc: {e}"))?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = fs::read(format!("/proc/{pid}/stat")) else { continue };
        let Ok(stat) = parse::stat(&stat) else { continue };
        if stat.state != pmon_proto::v1::ProcessState::Stuck {
            continue;
        }
        let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        let stack =
            fs::read_to_string(format!("/proc/{pid}/stack")).unwrap_or_else(|e| format!("(stack unreadable: {e})\n"));
        // schedstat: time on CPU, time waiting on a run queue (ns), timeslices.
        let waited = fs::read_to_string(format!("/proc/{pid}/schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or("?".into(), |ns| format!("{:.3} s", ns as f64 / 1e9));
        found.push(format!("{pid} {} wchan={} run-queue wait {waited}\n{stack}", stat.comm, wchan.trim()));
        names.push(stat.comm);
    }
    let summary = match found.len() {
        0 => "no process in uninterruptible sleep (D) after the pause".to_string(),
        n => format!(
            "{n} processes in uninterruptible sleep (D): {}",
            names.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        ),
    };
    let detail = found.join("\n");
    Ok(Output {
        summary,
        artefacts: vec![("stuck-processes.txt".into(), detail.clone().into_bytes())],
        detail,
        ..Output::default()
    })
}

/// Memory and swap right after the pause.
fn memory() -> Result<Output, String> {
    let meminfo = read("/proc/meminfo")?;
    let vmstat = read("/proc/vmstat").unwrap_or_default();
    let m = parse::meminfo(&meminfo);
    let gib = |b: Option<u64>| b.map_or("?".into(), |b| format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64));
    let swap_used = m.swap_total.zip(m.swap_free).map(|(t, f)| t.saturating_sub(f));
    let summary = format!(
        "available {} of {}, swap used {} of {}",
        gib(m.available),
        gib(m.total),
        gib(swap_used),
        gib(m.swap_total)
    );
    let keep = ["pgmajfault", "pswpin", "pswpout", "allocstall", "oom_kill", "compact_stall"];
    let detail = vmstat.lines().filter(|l| keep.iter().any(|k| l.starts_with(k))).collect::<Vec<_>>().join("\n");
    Ok(Output {
        summary,
        detail,
        artefacts: vec![("meminfo.txt".into(), meminfo.into_bytes()), ("vmstat.txt".into(), vmstat.into_bytes())],
        ..Output::default()
    })
}

/// Every process right after the pause: pid, state, threads, resident memory, name.
fn processes() -> Result<Output, String> {
    let sample = ProcCollector::new("/proc").collect().map_err(|e| e.to_string())?;
    let mut table = String::from("pid\tstate\tthreads\trss_bytes\tcommand\n");
    for p in &sample.processes {
        let f = &p.factors;
        let _ = writeln!(
            table,
            "{}\t{}\t{}\t{}\t{}",
            p.pid,
            p.state.as_str_name().trim_start_matches("PROCESS_STATE_").to_lowercase(),
            f.threads.map_or("-".into(), |t| t.to_string()),
            f.mem_bytes.map_or("-".into(), |m| m.to_string()),
            p.command
        );
    }
    let stuck = sample.processes.iter().filter(|p| p.state == pmon_proto::v1::ProcessState::Stuck).count();
    let running = sample.processes.iter().filter(|p| p.state == pmon_proto::v1::ProcessState::Running).count();
    Ok(Output {
        summary: format!("{} processes: {running} running, {stuck} stuck", sample.processes.len()),
        detail: String::new(),
        artefacts: vec![("processes.tsv".into(), table.into_bytes())],
        ..Output::default()
    })
}
