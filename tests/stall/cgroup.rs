//! Control groups (cgroup v1) of the test's own: a memory-limited one, a freezer and a
//! CPU quota. Their processes are killed and their directories removed on drop.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// Where the cgroup-v1 controllers are mounted.
const V1: &str = "/sys/fs/cgroup";

pub struct Cgroup {
    dir: PathBuf,
    /// Thawed before its processes are killed (a frozen task takes no signal).
    freezer: bool,
}

impl Cgroup {
    /// A new group of the v1 `controller`, named after the test process.
    fn new(controller: &str, needs: &str) -> Cgroup {
        let root = Path::new(V1).join(controller);
        assert!(
            root.join(needs).exists(),
            "no cgroup-v1 {controller} controller at {} (no {needs}): this scenario needs one",
            root.display()
        );
        let dir = root.join(format!("pmon-stall-lab-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        Cgroup { dir, freezer: controller == "freezer" }
    }

    /// A memory group limited to `limit_mb`, whose OOM killer is off: a process charging
    /// memory beyond the limit waits (in the kernel) until memory is freed, which is a
    /// freeze of every process of the group that needs a page. (cgroup v2 has no
    /// memory.oom_control to keep a group frozen at its limit.)
    pub fn memory_frozen_at_limit(limit_mb: u64) -> Cgroup {
        let cgroup = Cgroup::new("memory", "memory.oom_control");
        cgroup.write("memory.limit_in_bytes", &(limit_mb << 20).to_string());
        cgroup.write("memory.oom_control", "1");
        cgroup
    }

    /// A memory group limited to `limit_mb`, its OOM killer on, as a systemd unit's
    /// `MemoryMax` makes one: at the limit the kernel reclaims the group's pages.
    pub fn memory_limited(limit_mb: u64) -> Cgroup {
        let cgroup = Cgroup::new("memory", "memory.limit_in_bytes");
        cgroup.write("memory.limit_in_bytes", &(limit_mb << 20).to_string());
        cgroup
    }

    /// A freezer group, thawed.
    pub fn freezer() -> Cgroup {
        Cgroup::new("freezer", "tasks")
    }

    /// A CPU group allowed `quota_ms` of CPU time every `period_ms`.
    pub fn cpu_quota(quota_ms: u64, period_ms: u64) -> Cgroup {
        let cgroup = Cgroup::new("cpu", "cpu.cfs_quota_us");
        cgroup.write("cpu.cfs_period_us", &(period_ms * 1000).to_string());
        cgroup.write("cpu.cfs_quota_us", &(quota_ms * 1000).to_string());
        cgroup
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Freezes (true) or thaws the group, and waits until it is so.
    pub fn freeze(&self, frozen: bool) {
        let want = if frozen { "FROZEN" } else { "THAWED" };
        self.write("freezer.state", want);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.read("freezer.state").trim() != want {
            assert!(Instant::now() < deadline, "{} not {want} within 10 s", self.dir.display());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the (memory) group is full: a process of it waits for memory at the
    /// limit, or its usage is within 4 MiB of it and the limit was hit.
    pub fn at_limit(&self) -> bool {
        let number = |file: &str| self.read(file).trim().parse::<u64>().unwrap_or(0);
        self.read("memory.oom_control").lines().any(|l| l == "under_oom 1")
            || (number("memory.failcnt") > 0
                && number("memory.usage_in_bytes") + (4 << 20) >= number("memory.limit_in_bytes"))
    }

    /// How hard the (memory) group was pressed: its peak usage, how often it hit the
    /// limit and the major page faults of its processes.
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

impl Drop for Cgroup {
    fn drop(&mut self) {
        if self.freezer {
            let _ = std::fs::write(self.dir.join("freezer.state"), "THAWED");
        }
        // A group can only be removed once empty; SIGKILL also wakes a process waiting
        // for memory at the limit.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() >= deadline {
                break;
            }
            for pid in pids {
                // SAFETY: kill has no memory-safety preconditions; these are the
                // processes of the test's own group.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            eprintln!("could not remove {}: {e}", self.dir.display());
        }
    }
}
