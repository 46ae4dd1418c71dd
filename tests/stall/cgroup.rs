//! A memory-limited cgroup (v1 memory controller) of the test's own, whose processes are
//! killed and whose directory is removed on drop.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// Where the cgroup-v1 memory controller is mounted.
const MEMORY_V1: &str = "/sys/fs/cgroup/memory";

pub struct MemoryCgroup {
    dir: PathBuf,
}

impl MemoryCgroup {
    /// A new cgroup limited to `limit_mb`, whose OOM killer is off: a process charging
    /// memory beyond the limit waits (in the kernel) until memory is freed, which is a
    /// freeze of every process of the cgroup that needs a page.
    pub fn frozen_at_limit(limit_mb: u64) -> MemoryCgroup {
        let root = Path::new(MEMORY_V1);
        assert!(
            root.join("memory.oom_control").exists(),
            "no cgroup-v1 memory controller at {MEMORY_V1}: this scenario needs one (cgroup v2 has no \
             memory.oom_control to keep a cgroup frozen at its limit)"
        );
        let dir = root.join(format!("pmon-stall-lab-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let cgroup = MemoryCgroup { dir };
        cgroup.write("memory.limit_in_bytes", &(limit_mb << 20).to_string());
        cgroup.write("memory.oom_control", "1");
        cgroup
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Whether a process of the cgroup is waiting for memory at the limit.
    pub fn under_oom(&self) -> bool {
        self.read("memory.oom_control").lines().any(|l| l == "under_oom 1")
    }

    /// How hard the cgroup was pressed: its peak usage, how often it hit the limit and
    /// the major page faults of its processes.
    pub fn pressure(&self) -> String {
        let stat = self.read("memory.stat");
        let faults = stat.lines().find_map(|l| l.strip_prefix("total_pgmajfault ")).unwrap_or("?");
        let peak_mb = self.read("memory.max_usage_in_bytes").trim().parse::<u64>().map_or(0, |b| b >> 20);
        format!(
            "cgroup peak {peak_mb} MB, limit hit {} times, {faults} major faults",
            self.read("memory.failcnt").trim()
        )
    }

    fn write(&self, file: &str, value: &str) {
        let path = self.dir.join(file);
        std::fs::write(&path, value).unwrap_or_else(|e| panic!("write {value} to {}: {e}", path.display()));
    }

    fn read(&self, file: &str) -> String {
        let path = self.dir.join(file);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // A cgroup can only be removed once empty; SIGKILL also wakes a process waiting
        // for memory at the limit.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() >= deadline {
                break;
            }
            for pid in pids {
                // SAFETY: kill has no memory-safety preconditions; these are the
                // processes of the test's own cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            eprintln!("could not remove {}: {e}", self.dir.display());
        }
    }
}
