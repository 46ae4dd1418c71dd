//! The processes that freeze the machine. Each one times itself out, and each is the
//! leader of its own process group, killed whole when its [`Hog`] is dropped: nothing
//! outlives a test, pass or fail.

use std::{
    os::unix::process::CommandExt as _,
    path::Path,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

/// Burns one thread per listed CPU (pinned to it) for SECONDS, and grows its resident
/// memory by GROW_MB in ten steps meanwhile: `python3 -c BURN SECONDS CPUS GROW_MB`.
/// hashlib lets go of the GIL while it hashes, so the threads of one process really
/// run at once. No thread burns before every one is pinned: under a real-time policy, a
/// first thread burning on the CPU of the main thread could keep it from starting the
/// others, and the machine would not be starved at all.
const BURN: &str = r#"
import hashlib, os, sys, threading, time
secs, cpus, grow_mb = float(sys.argv[1]), [int(c) for c in sys.argv[2].split(",")], int(sys.argv[3])
block = bytes(1 << 20)
ready = threading.Barrier(len(cpus) + 1)
def burn(cpu):
    os.sched_setaffinity(0, {cpu})
    ready.wait()
    while time.monotonic() < end:
        hashlib.sha256(block).digest()
threads = [threading.Thread(target=burn, args=(c,)) for c in cpus]
for t in threads:
    t.start()
end = time.monotonic() + secs
ready.wait()
kept = []
while time.monotonic() < end:
    if len(kept) < grow_mb:
        kept.extend(b"x" * (1 << 20) for _ in range(max(1, grow_mb // 10)))
    time.sleep(secs / 10)
for t in threads:
    t.join()
"#;

/// Allocates and touches memory a mebibyte at a time, GROW_MB in all (or until killed):
/// `python3 -c GROW GROW_MB`.
const GROW: &str = r#"
import sys
kept = [b"x" * (1 << 20) for _ in range(int(sys.argv[1]))]
"#;

/// A bash parent that, until SECONDS are over, spawns two real-time BURN children of
/// CHILD_SECONDS (one per CPU) every EVERY seconds and writes their pids to PIDS:
/// `bash -c FORK_TREE bash SECONDS CHILD_MICROSECONDS EVERY PIDS`. The children
/// overlap, so each CPU always has one to run (a gap between two would let the sentinel
/// run); the parent runs at a real-time priority above theirs, so it spawns on time.
/// Each child is one thread pinned before it starts (`taskset`): a child that pinned a
/// thread of its own while the parent reaped its siblings twice left that parent spinning
/// in the kernel's `shrink_dcache_parent` on this 6.18 kernel, the child's thread waiting
/// behind it on the same CPU for good.
const FORK_TREE: &str = r#"
end=$(( ${EPOCHREALTIME/./} + $1 * 1000000 ))
child='end=$(( ${EPOCHREALTIME/./} + $1 )); while (( ${EPOCHREALTIME/./} < end )); do :; done'
while (( ${EPOCHREALTIME/./} < end )); do
  taskset -c 0 chrt -f 50 bash -c "$child" bash "$2" & echo $! >> "$4"
  taskset -c 1 chrt -f 50 bash -c "$child" bash "$2" & echo $! >> "$4"
  sleep "$3"
done
wait
"#;

/// A shell in the cgroup-v1 directory CGROUP that starts COUNT children at once, each
/// allocating MB mebibytes, writes their pids to PIDS and waits for them:
/// `sh -c MEMORY_BURST sh CGROUP COUNT MB PYTHON GROW PIDS`.
const MEMORY_BURST: &str = r#"
echo $$ > "$1/cgroup.procs"
i=0
while [ "$i" -lt "$2" ]; do
  "$4" -c "$5" "$3" & echo $! >> "$6"
  i=$((i + 1))
done
wait
"#;

/// The real-time priority of the hogs (`chrt -f 50`): above every ordinary thread, the
/// sentinel's included; the kernel's fair server still gives ordinary threads ~5 %.
const RT_PRIORITY: &str = "50";
/// The fork tree's parent, above its children so that it is never queued behind them.
const RT_PARENT_PRIORITY: &str = "51";

/// A running hog: its process group is killed and its leader reaped on drop.
pub struct Hog {
    child: Child,
}

impl Hog {
    /// Any command as a hog (its own process group, killed on drop); it must end by
    /// itself in bounded time.
    pub fn spawn(command: &mut Command) -> Hog {
        let child = command.process_group(0).stdin(Stdio::null()).spawn().expect("start a hog");
        Hog { child }
    }

    /// A real-time (SCHED_FIFO) process burning each CPU in `cpus` for `seconds`.
    pub fn realtime(cpus: &str, seconds: f64) -> Hog {
        Hog::spawn(Command::new("chrt").args(["-f", RT_PRIORITY]).arg(python()).args(burn_args(cpus, seconds, 0)))
    }

    /// An ordinary-priority process burning each CPU in `cpus` for `seconds` while its
    /// memory grows by `grow_mb`.
    pub fn ordinary(cpus: &str, seconds: f64, grow_mb: u32) -> Hog {
        Hog::spawn(Command::new(python()).args(burn_args(cpus, seconds, grow_mb)))
    }

    /// A process that allocates `mb` mebibytes, inside the cgroup-v1 directory `cgroup`.
    pub fn memory_in(cgroup: &Path, mb: u32) -> Hog {
        Hog::in_cgroup(cgroup, &["-c".into(), GROW.into(), mb.to_string()])
    }

    /// A shell in the cgroup-v1 directory `cgroup` whose `count` children each take `mb`
    /// mebibytes at once; their pids are appended to the file `pids`.
    pub fn memory_burst_in(cgroup: &Path, count: u32, mb: u32, pids: &Path) -> Hog {
        Hog::spawn(
            Command::new("sh")
                .args(["-c", MEMORY_BURST, "sh"])
                .arg(cgroup)
                .arg(count.to_string())
                .arg(mb.to_string())
                .arg(python())
                .arg(GROW)
                .arg(pids),
        )
    }

    /// An ordinary busy shell loop, unpinned, for `seconds` (`timeout` ends it): cheaper
    /// than python when hundreds are wanted.
    pub fn busy_loop(seconds: u64) -> Hog {
        Hog::spawn(Command::new("timeout").args([
            "-s",
            "KILL",
            &seconds.to_string(),
            "sh",
            "-c",
            "while :; do :; done",
        ]))
    }

    /// An ordinary-priority process burning each CPU in `cpus` for `seconds`, inside
    /// the cgroup-v1 directory `cgroup`.
    pub fn ordinary_in(cgroup: &Path, cpus: &str, seconds: f64) -> Hog {
        Hog::in_cgroup(cgroup, &burn_args(cpus, seconds, 0))
    }

    /// python3 with `args`, entering the cgroup-v1 directory `cgroup` first (the pid
    /// stays the same: `sh` execs python).
    fn in_cgroup(cgroup: &Path, args: &[String]) -> Hog {
        Hog::spawn(
            Command::new("sh")
                .args(["-c", r#"echo $$ > "$1/cgroup.procs" && shift && exec "$@""#, "sh"])
                .arg(cgroup)
                .arg(python())
                .args(args),
        )
    }

    /// A real-time bash parent spawning overlapping real-time children of
    /// `child_seconds`, a pair every `every` seconds, for `seconds` (see [`FORK_TREE`]);
    /// the children's pids are appended to the file `pids`.
    pub fn fork_tree(seconds: u32, child_seconds: f64, every: f64, pids: &Path) -> Hog {
        Hog::spawn(
            Command::new("chrt")
                .args(["-f", RT_PARENT_PRIORITY, "bash", "-c", FORK_TREE, "bash"])
                .arg(seconds.to_string())
                .arg(((child_seconds * 1e6).round() as u64).to_string())
                .arg(every.to_string())
                .arg(pids),
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the hog to end by itself; panics after `limit` (the drop kills it).
    pub fn wait(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.child.try_wait().expect("try_wait").is_none() {
            assert!(Instant::now() < deadline, "hog {} still running after {limit:?}", self.pid());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        let group = i32::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill has no memory-safety preconditions; the group is the hog's own,
        // made by process_group(0) at spawn. Its members may be gone already (ESRCH).
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

fn burn_args(cpus: &str, seconds: f64, grow_mb: u32) -> [String; 5] {
    ["-c".into(), BURN.into(), seconds.to_string(), cpus.into(), grow_mb.to_string()]
}

/// The real python3 executable, not a version manager's shim script: a shim's start-up
/// is slow and would run at real-time priority inside the stall.
pub fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 is needed to make the hogs");
        assert!(out.status.success(), "python3: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8 path").trim().to_string()
    })
}
