//! Other users' processes on macOS without root, on any OS: the `libproc` collector
//! with its `top` stream for the processes the kernel refuses, the stream coming from
//! a stand-in `top` that prints a capture in top's exact format
//! (fixtures/macos/top/stream_other_users.log) at the pace it is asked for.
//!
//! The macOS calls cannot run here, so the kernel's part is played by a
//! `ProcSource` that answers as xnu does: `sysctl KERN_PROC_ALL` lists every process,
//! and `proc_pidinfo` / `proc_pid_rusage` answer EPERM for another user's process
//! (`proc_security_policy(…, CHECK_SAME_USER)`). Everything else is the product's own:
//! the conversion, the supervised child, top's parser, the merge and the scoring that
//! names rogues from the merged sample.

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use pmon_proto::{
    config::Config,
    v1::{Factor, ProcessState},
};
use pmon_server::{
    collect::{
        Collector, ProcessRecord, RawSample,
        libproc::{
            BsdInfo, Details, KinfoProc, LibprocCollector, ProcSource, RawSystem, Refusal, RusageInfo, TaskInfo,
            Timebase, others::TopStream,
        },
    },
    engine::score,
};

/// The user the server runs as in this play.
const ME: u32 = 501;

/// xnu's answers for a fixed process table; the server's own process burns 10 ms of
/// CPU between two readings.
struct Xnu {
    table: BTreeMap<u32, (u32, &'static str)>,
    own_cpu_ns: u64,
}

impl ProcSource for Xnu {
    fn list(&mut self, out: &mut Vec<KinfoProc>) -> std::io::Result<()> {
        out.clear();
        out.extend(self.table.iter().map(|(&pid, &(uid, name))| KinfoProc {
            p_pid: pid,
            e_ppid: u32::from(pid != 0),
            cr_uid: uid,
            p_comm: name.into(),
            p_stat: 2,
            p_starttime_us: 1_700_000_000_000_000 + u64::from(pid),
        }));
        Ok(())
    }

    fn details(&mut self, pid: u32) -> Details {
        match self.table.get(&pid) {
            None => Details::refused(Refusal::Gone),
            Some(&(uid, _)) if uid != ME => Details::refused(Refusal::Denied),
            Some(&(_, name)) => {
                self.own_cpu_ns += 10_000_000;
                Details {
                    bsd: Ok(BsdInfo { pbi_name: name.into(), pbi_status: 2 }),
                    task: Ok(TaskInfo { pti_threadnum: 8, pti_csw: 100, pti_syscalls_unix: 100 }),
                    rusage: Ok(RusageInfo {
                        ri_user_time: self.own_cpu_ns,
                        ri_system_time: 0,
                        ri_pageins: 0,
                        ri_phys_footprint: 64 << 20,
                    }),
                }
            }
        }
    }

    fn system(&mut self) -> RawSystem {
        RawSystem::default()
    }

    fn timebase(&self) -> Timebase {
        Timebase { numer: 1, denom: 1 }
    }
}

fn process(sample: &RawSample, pid: u32) -> &ProcessRecord {
    sample.processes.iter().find(|p| p.pid == pid).unwrap_or_else(|| panic!("pid {pid} not listed: {sample:?}"))
}

#[test]
fn other_users_processes_get_cpu_and_memory_from_the_top_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = crate::stand_ins::top_stand_in(dir.path(), "stream_other_users.log");
    let table = BTreeMap::from([
        (0, (0, "kernel_task")),
        (1, (0, "launchd")),
        (160, (88, "WindowServer")),
        (412, (0, "mds_stores")),
        (7001, (ME, "Terminal")),
    ]);
    let top = TopStream::start(bin.join("top").to_str().expect("utf-8 path"), Duration::from_secs(1)).expect("top");
    let mut collector = LibprocCollector::new(Xnu { table, own_cpu_ns: 0 }, Some(Box::new(top)));

    // Collect as the sampler does until top's second sample (its first %CPU means
    // nothing) has reached the merge.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut first_seen = None;
    let sample = loop {
        let sample = collector.collect().expect("sample");
        assert_eq!(sample.processes.len(), 5, "every listed process, refused or not: {sample:?}");
        let ws = process(&sample, 160);
        if first_seen.is_none() && ws.factors.mem_bytes.is_some() {
            first_seen = Some(ws.clone());
        }
        if ws.factors.cpu_percent.is_some() {
            break sample;
        }
        assert!(Instant::now() < deadline, "no CPU for WindowServer within 20 s: {sample:?}");
        std::thread::sleep(Duration::from_millis(100));
    };

    let first = first_seen.expect("top's first sample was merged");
    assert_eq!(first.factors.mem_bytes, Some(1114 << 20), "{first:?}");
    assert_eq!(first.factors.cpu_percent, None, "top's first %CPU is not used: {first:?}");

    // The second or the third sample of the capture, whichever the merge met first.
    let ws = process(&sample, 160);
    let kernel = process(&sample, 0);
    let cpus = (kernel.factors.cpu_percent, ws.factors.cpu_percent);
    assert!(cpus == (Some(12.0), Some(38.5)) || cpus == (Some(14.0), Some(41.0)), "{cpus:?}: {sample:?}");
    assert_eq!((ws.command.as_str(), ws.ppid, ws.state), ("WindowServer", Some(1), ProcessState::Running));
    assert!(ws.factors.mem_bytes.is_some_and(|m| m >= 1120 << 20), "{ws:?}");
    assert_eq!(ws.factors.cmprs_bytes, Some(103 << 20), "top reads what libproc could not: {ws:?}");
    assert!(ws.usage.is_some_and(|u| u.cpu > Duration::ZERO), "its CPU counts for attribution: {ws:?}");
    assert_eq!(kernel.command, "kernel_task");
    assert_eq!(kernel.factors.mem_bytes, Some(1207 << 20));
    assert!(process(&sample, 1).factors.cpu_percent.is_some(), "launchd: {sample:?}");

    // The server's own process keeps libproc's figures, not top's.
    let own = process(&sample, 7001);
    assert_eq!((own.factors.mem_bytes, own.factors.threads), (Some(64 << 20), Some(8)), "{own:?}");
    assert_eq!(own.factors.cmprs_bytes, None, "libproc has no compressor figure: {own:?}");
    assert_eq!(collector.health().restarts, 0);

    // What the engine makes of it: WindowServer, refused to libproc, is the top rogue
    // by its CPU; kernel_task is a rogue too.
    let scored = score::evaluate(&sample.processes, &Config::default(), &HashSet::new());
    let first = &scored.rogues[0];
    assert_eq!((first.pid, first.command.as_str()), (160, "WindowServer"), "{:?}", scored.rogues);
    assert!(first.selected_by.contains(&(Factor::Cpu as i32)), "{first:?}");
    assert_eq!(first.factors.as_ref().and_then(|f| f.cpu_percent), ws.factors.cpu_percent);
    assert!(scored.rogues.iter().any(|r| r.pid == 0 && r.command == "kernel_task"), "{:?}", scored.rogues);
}
