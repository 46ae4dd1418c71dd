//! What can hold pmon-server up while the rest of the machine runs, from the kernel's
//! own cumulative accounting, read before and after a freeze:
//!
//! - **throttled**: its control group's CPU quota (`cpu.stat`: `throttled_time` ns in
//!   cgroup v1, `throttled_usec` in v2, summed over CPUs by the kernel; per CPU here) —
//!   grows while the quota holds the group off (a quota set on a parent group is not
//!   seen here);
//! - **steal**: the time the host ran something else on this virtual machine's CPUs
//!   (`/proc/stat`, the `cpu` line's eighth figure, in USER_HZ ticks), per CPU;
//! - **memory limit**: how often its memory control group hit its limit (v1
//!   `memory.failcnt`, v2 `memory.events` `max`): a task that needs a page there waits in
//!   reclaim or for the OOM killer, in no pressure figure when the group's OOM killer is
//!   off — a freeze of the group, whose culprit is who took its memory;
//! - **freezer**: whether its control group can be frozen at all (v1 `freezer.state`,
//!   v2 `cgroup.freeze`; the root group never can). Freezing leaves no counter: a frozen
//!   task neither runs nor waits for a CPU, so the sentinel tells it by a lateness with
//!   no wait, while nobody else waited (see `attribution::cause`).
//!
//! Its groups are found through `/proc/self/cgroup` and `/proc/self/mountinfo` (v1, v2,
//! hybrid or none). A file that is missing, unreadable or garbled leaves that figure
//! `None` and says why; it never stands for "nothing happened". The root is injectable
//! so tests run on fixture trees.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

/// USER_HZ, the unit of `/proc/stat`, on every Linux ABI pmon runs on.
const USER_HZ: f64 = 100.0;

/// One reading of the counters, and of the groups they were read from (a process can
/// be moved to another group while it runs: systemd and container runtimes do).
#[derive(Debug, Clone, PartialEq)]
pub struct Counters {
    /// Time the control group's quota held it off since the group was made, summed
    /// over the CPUs by the kernel and divided here by the CPUs online: how long the
    /// group as a whole was held off, at most.
    pub throttled: Option<Duration>,
    /// Time the host took from this machine since boot, per CPU (the sum over CPUs
    /// divided by their number).
    pub steal: Option<Duration>,
    /// Times its memory group hit its limit, since the group was made.
    pub limit_hits: Option<u64>,
    /// Processes the kernel's OOM killer killed since boot, anywhere (`oom_kill` in
    /// `/proc/vmstat`, memory cgroups' kills included).
    pub oom_kills: Option<u64>,
    groups: Resolved,
}

/// How the counters grew across a freeze, and what could have frozen the server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Held {
    /// Throttled time gained (per CPU).
    pub throttled: Option<Duration>,
    /// Steal gained (per CPU).
    pub steal: Option<Duration>,
    /// Memory-limit hits gained, and the group's file they were read from.
    pub limit_hits: Option<(u64, String)>,
    /// The freezer that can hold the server's group, in words (`cgroup v1 freezer
    /// /docker/…`); `None` if none can.
    pub freezer: Option<String>,
    /// Processes the OOM killer killed meanwhile.
    pub oom_kills: Option<u64>,
    /// Why a figure is unknown, in words, one per figure.
    pub unknown: Vec<String>,
}

/// The files of the server's groups, or why each is unknown.
#[derive(Debug, Clone, PartialEq)]
struct Resolved {
    cpu_stat: Result<PathBuf, String>,
    memory: Result<MemoryGroup, String>,
    freezer: Result<Option<String>, String>,
}

/// Reads the server's own counters. Its groups are found again only when
/// `/proc/self/cgroup` changes (mountinfo can be long on a container host).
#[derive(Debug)]
pub struct HeldReader {
    root: PathBuf,
    /// `/proc/self/cgroup` as last read, and the groups it named.
    cache: std::cell::RefCell<Option<(String, Resolved)>>,
}

impl HeldReader {
    /// The reader for this process on the machine at `root` (`/` in production).
    pub fn open(root: &Path) -> Self {
        Self { root: root.to_path_buf(), cache: std::cell::RefCell::new(None) }
    }

    /// The server's groups now.
    fn resolve(&self) -> Resolved {
        let root = &self.root;
        let groups = match read(&root.join("proc/self/cgroup")) {
            Ok(text) => text,
            Err(e) => return Resolved { cpu_stat: Err(e.clone()), memory: Err(e.clone()), freezer: Err(e) },
        };
        let mut cache = self.cache.borrow_mut();
        if let Some((text, resolved)) = cache.as_ref()
            && *text == groups
        {
            return resolved.clone();
        }
        let resolved = match read(&root.join("proc/self/mountinfo")) {
            Ok(mounts) => {
                let (own, mounts) = (own_groups(&groups), cgroup_mounts(&mounts));
                Resolved {
                    cpu_stat: cpu_stat_path(root, &own, &mounts),
                    memory: memory_dir(root, &own, &mounts),
                    freezer: freezer(root, &own, &mounts),
                }
            }
            Err(e) => Resolved { cpu_stat: Err(e.clone()), memory: Err(e.clone()), freezer: Err(e) },
        };
        *cache = Some((groups, resolved.clone()));
        resolved
    }

    /// The server's memory group now, where it has one.
    pub fn memory_group(&self) -> Option<MemoryGroup> {
        self.resolve().memory.ok()
    }

    /// The counters now, from the groups the process is in now.
    pub fn read(&self) -> Counters {
        let groups = self.resolve();
        let stat = read(&self.root.join("proc/stat")).ok();
        let cpus = stat.as_deref().map_or(0, cpus);
        let per_cpu = |d: Duration| (cpus > 0).then(|| d / cpus);
        let counter = |path: Option<&Path>| path.and_then(|p| read(p).ok());
        Counters {
            throttled: counter(groups.cpu_stat.as_deref().ok()).and_then(|t| throttled(&t)).and_then(per_cpu),
            steal: stat.as_deref().and_then(steal).and_then(per_cpu),
            limit_hits: counter(groups.memory.as_ref().ok().map(|g| g.hits.as_path())).and_then(|t| limit_hits(&t)),
            oom_kills: read(&self.root.join("proc/vmstat")).ok().as_deref().and_then(oom_kills),
            groups,
        }
    }

    /// How the counters grew from `before` to `after` (both of the same group, or the
    /// figure is unknown), with what could freeze the server at `after`.
    pub fn held(&self, before: &Counters, after: &Counters) -> Held {
        let grew = |b: Option<Duration>, a: Option<Duration>| Some(a?.saturating_sub(b?));
        let (was, now) = (&before.groups, &after.groups);
        let mut unknown = Vec::new();
        let same_group = was.cpu_stat == now.cpu_stat;
        let throttled = grew(before.throttled, after.throttled).filter(|_| same_group);
        if throttled.is_none() {
            unknown.push(match &now.cpu_stat {
                Err(why) => format!("throttling: {why}"),
                Ok(_) if !same_group => "throttling: pmon-server moved to another group meanwhile".into(),
                Ok(p) => format!("throttling: {} unreadable or garbled", p.display()),
            });
        }
        let limit_hits = match (&now.memory, before.limit_hits, after.limit_hits) {
            (Ok(g), Some(b), Some(a)) if was.memory == now.memory => {
                Some((a.saturating_sub(b), g.hits.display().to_string()))
            }
            (Err(why), ..) => {
                unknown.push(format!("memory limit: {why}"));
                None
            }
            (Ok(g), ..) => {
                unknown.push(format!("memory limit: {} unreadable, garbled or of another group", g.hits.display()));
                None
            }
        };
        let steal = grew(before.steal, after.steal);
        if steal.is_none() {
            unknown.push(format!("steal: {} unreadable or garbled", self.root.join("proc/stat").display()));
        }
        let freezer = match &now.freezer {
            Ok(f) => f.clone(),
            Err(why) => {
                unknown.push(format!("freezer: {why}"));
                None
            }
        };
        // Not in `unknown`: kernels before 4.13 do not count kills, and nothing else hangs on it.
        let oom_kills = after.oom_kills.zip(before.oom_kills).map(|(a, b)| a.saturating_sub(b));
        Held { throttled, steal, limit_hits, freezer, oom_kills, unknown }
    }
}

pub(super) fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The process's group per hierarchy, from `/proc/PID/cgroup`: (controllers, path); the
/// unified (v2) hierarchy has no controllers.
fn own_groups(text: &str) -> Vec<(Vec<&str>, &str)> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let controllers = controllers.split(',').filter(|c| !c.is_empty()).collect();
            Some((controllers, path))
        })
        .collect()
}

/// A mounted cgroup hierarchy: where, the group it shows at its top, its controllers
/// (none for v2).
struct Mount<'a> {
    point: &'a str,
    root: &'a str,
    v2: bool,
    controllers: Vec<&'a str>,
}

/// The cgroup hierarchies in `/proc/self/mountinfo`: `ID PARENT MAJ:MIN ROOT POINT
/// OPTIONS [OPTIONAL…] - FSTYPE SOURCE SUPER_OPTIONS`.
fn cgroup_mounts(text: &str) -> Vec<Mount<'_>> {
    text.lines()
        .filter_map(|l| {
            let (head, tail) = l.split_once(" - ")?;
            let mut head = head.split(' ');
            let (root, point) = (head.nth(3)?, head.next()?);
            let mut tail = tail.split(' ');
            let fstype = tail.next()?;
            let options = tail.nth(1).unwrap_or("");
            match fstype {
                "cgroup2" => Some(Mount { point, root, v2: true, controllers: Vec::new() }),
                "cgroup" => Some(Mount { point, root, v2: false, controllers: options.split(',').collect() }),
                _ => None,
            }
        })
        .collect()
}

/// The directory of the group the process is in, in the hierarchy that has
/// `controller` (or the unified one, for `None`); `Err` says why there is none.
fn group_dir(
    root: &Path,
    groups: &[(Vec<&str>, &str)],
    mounts: &[Mount<'_>],
    controller: Option<&str>,
) -> Result<(PathBuf, String), String> {
    let wanted = controller.map_or_else(|| "the unified hierarchy".to_string(), |c| format!("the {c} controller"));
    let (_, path) = groups
        .iter()
        .find(|(cs, _)| match controller {
            Some(c) => cs.contains(&c),
            None => cs.is_empty(),
        })
        .ok_or_else(|| format!("pmon-server is in no group of {wanted}"))?;
    let mount = mounts
        .iter()
        .find(|m| match controller {
            Some(c) => !m.v2 && m.controllers.contains(&c),
            None => m.v2,
        })
        .ok_or_else(|| format!("{wanted} is not mounted"))?;
    // A mount that shows a subtree (a container's) holds the paths below its root
    // (whole path components: `/docker/abc` is not below `/docker/ab`).
    let inside = match path.strip_prefix(mount.root.trim_end_matches('/')) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => path,
    };
    let dir = Path::new(mount.point).join(inside.trim_start_matches('/'));
    let dir = root.join(dir.strip_prefix("/").unwrap_or(&dir));
    Ok((dir, path.to_string()))
}

/// The `cpu.stat` of the server's group: v2's if the cpu controller is on there, else v1's.
fn cpu_stat_path(root: &Path, groups: &[(Vec<&str>, &str)], mounts: &[Mount<'_>]) -> Result<PathBuf, String> {
    let v1 = group_dir(root, groups, mounts, Some("cpu")).map(|(d, _)| d.join("cpu.stat"));
    match group_dir(root, groups, mounts, None).map(|(d, _)| d.join("cpu.stat")) {
        Ok(p) if v1.is_err() && p.exists() => Ok(p),
        _ => v1,
    }
}

/// The files of a memory control group.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryGroup {
    /// Bytes charged to it (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub usage: PathBuf,
    /// Its limit (v1 `memory.limit_in_bytes`, v2 `memory.max`).
    pub limit: PathBuf,
    /// Its count of limit hits (v1 `memory.failcnt`, v2 `memory.events`).
    pub hits: PathBuf,
}

fn memory_dir(root: &Path, groups: &[(Vec<&str>, &str)], mounts: &[Mount<'_>]) -> Result<MemoryGroup, String> {
    let v1 = group_dir(root, groups, mounts, Some("memory")).map(|(d, _)| MemoryGroup {
        usage: d.join("memory.usage_in_bytes"),
        limit: d.join("memory.limit_in_bytes"),
        hits: d.join("memory.failcnt"),
    });
    match group_dir(root, groups, mounts, None) {
        Ok((d, _)) if v1.is_err() && d.join("memory.events").exists() => Ok(MemoryGroup {
            usage: d.join("memory.current"),
            limit: d.join("memory.max"),
            hits: d.join("memory.events"),
        }),
        _ => v1,
    }
}

/// The freezer that can hold the server's group, if any: the root group has no freezer
/// file (in a cgroup namespace, the group that looks like the root is not the root).
fn freezer(root: &Path, groups: &[(Vec<&str>, &str)], mounts: &[Mount<'_>]) -> Result<Option<String>, String> {
    let v1 = group_dir(root, groups, mounts, Some("freezer"));
    let v2 = group_dir(root, groups, mounts, None);
    if let Ok((dir, path)) = &v1
        && dir.join("freezer.state").exists()
    {
        return Ok(Some(format!("cgroup v1 freezer {path}")));
    }
    if let Ok((dir, path)) = &v2
        && dir.join("cgroup.freeze").exists()
    {
        return Ok(Some(format!("cgroup v2 cgroup.freeze of {path}")));
    }
    match (v1, v2) {
        (Err(a), Err(b)) => Err(format!("{a}; {b}")),
        _ => Ok(None),
    }
}

/// Throttled time from a `cpu.stat`, v1 (`throttled_time` ns) or v2 (`throttled_usec`).
fn throttled(text: &str) -> Option<Duration> {
    text.lines().find_map(|l| {
        let (key, value) = l.split_once(' ')?;
        let n: u64 = value.trim().parse().ok()?;
        match key {
            "throttled_time" => Some(Duration::from_nanos(n)),
            "throttled_usec" => Some(Duration::from_micros(n)),
            _ => None,
        }
    })
}

/// Limit hits from `memory.failcnt` (a number) or `memory.events` (its `max` line).
pub(super) fn limit_hits(text: &str) -> Option<u64> {
    let text = text.trim();
    text.parse().ok().or_else(|| text.lines().find_map(|l| l.strip_prefix("max ")?.trim().parse().ok()))
}

/// The CPUs `/proc/stat` counts (its `cpuN` lines).
fn cpus(text: &str) -> u32 {
    let n = text
        .lines()
        .filter(|l| l.strip_prefix("cpu").is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit())))
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Steal time of all CPUs from `/proc/stat`'s `cpu` line.
fn steal(text: &str) -> Option<Duration> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: u64 = line.split_ascii_whitespace().nth(8)?.parse().ok()?;
    Duration::try_from_secs_f64(ticks as f64 / USER_HZ).ok()
}

/// The `oom_kill` line of `/proc/vmstat`.
fn oom_kills(vmstat: &str) -> Option<u64> {
    vmstat.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|n| n.trim().parse().ok())
}

#[cfg(test)]
#[path = "held_tests.rs"]
mod tests;
