//! The control group of each busy process (Linux `/proc/PID/cgroup`: a systemd unit, a
//! container, a session), read once per process and kept while it lives, so that a
//! pause can name the unit its culprits share even after they exited. Elsewhere the file
//! does not exist and every process has none.

use std::{collections::HashMap, sync::Arc};

/// Control groups of the processes seen busy.
#[derive(Debug)]
pub struct Cgroups {
    known: HashMap<u32, Option<Arc<str>>>,
    /// Whether the pids are this machine's live ones (not a replay's).
    live: bool,
}

impl Cgroups {
    /// Lookups for this machine's processes; with `live` false (a replayed capture,
    /// whose pids are another machine's) every process has none.
    pub fn new(live: bool) -> Self {
        Self { known: HashMap::new(), live }
    }

    /// The control group of `pid`, read the first time it is asked for.
    pub fn of(&mut self, pid: u32) -> Option<Arc<str>> {
        if !self.live {
            return None;
        }
        self.known
            .entry(pid)
            .or_insert_with(|| {
                std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok().and_then(|t| parse(&t)).map(Arc::from)
            })
            .clone()
    }

    /// Forgets processes that are gone (a reused pid is read again).
    pub fn retain(&mut self, alive: impl Fn(u32) -> bool) {
        self.known.retain(|pid, _| alive(*pid));
    }
}

/// The path that names a process's group in `/proc/PID/cgroup`: the unified (v2)
/// hierarchy's, else systemd's own (v1), else the first controller's that is not the
/// root; `None` when every one is the root.
pub fn parse(text: &str) -> Option<String> {
    let lines: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some((controllers, path))
        })
        .filter(|(_, path)| *path != "/")
        .collect();
    let pick = |want: &str| lines.iter().find(|(c, _)| *c == want).map(|(_, p)| p.to_string());
    pick("").or_else(|| pick("name=systemd")).or_else(|| lines.first().map(|(_, p)| p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unified_hierarchy_first_then_systemds_then_any_controller() {
        let v2 = "0::/user.slice/user-1000.slice/session-2.scope\n";
        assert_eq!(parse(v2).as_deref(), Some("/user.slice/user-1000.slice/session-2.scope"));
        let hybrid = "9:name=systemd:/system.slice/build.service\n4:memory:/build\n0::/\n";
        assert_eq!(parse(hybrid).as_deref(), Some("/system.slice/build.service"));
        let memory_only = "9:name=systemd:/\n4:memory:/pmon-stall-lab-7\n0::/\n";
        assert_eq!(parse(memory_only).as_deref(), Some("/pmon-stall-lab-7"));
        assert_eq!(parse("0::/\n1:cpu:/\n"), None, "the root names no group");
        assert_eq!(parse("garbage"), None);
        assert_eq!(parse("0::/a:b\n").as_deref(), Some("/a:b"), "a colon in the path stays");
    }

    #[test]
    fn a_live_lookup_reads_proc_and_a_replay_reads_nothing() {
        let pid = std::process::id();
        let want = std::fs::read_to_string("/proc/self/cgroup").ok().and_then(|t| parse(&t));
        let mut live = Cgroups::new(true);
        assert_eq!(live.of(pid).as_deref(), want.as_deref());
        assert_eq!(live.known.len(), 1, "kept for the next asking");
        live.retain(|_| false);
        assert!(live.known.is_empty(), "forgotten once gone");
        let mut replay = Cgroups::new(false);
        assert_eq!(replay.of(pid), None, "a replay's pids are another machine's");
        assert!(replay.known.is_empty());
    }
}
