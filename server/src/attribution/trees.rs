//! Groups that share the blame. Process trees: a build that spawns compilers, a shell
//! loop forking workers; no single short-lived child consumes much, but together under
//! one parent they do, and the tree is named by its root, "make[4242] and 37
//! children". Control groups: a systemd unit or a container whose processes are the
//! culprits together.

use std::{collections::HashMap, time::Duration};

use pmon_proto::v1::ProcessGroup;

use super::{Recent, Tally};

/// A tree is named when at least this many of its processes consumed.
const MIN_MEMBERS: u32 = 3;
/// Of the trees that hold nearly as much CPU as the largest, the deepest is named:
/// every tree sits under init, which explains nothing.
const NEARLY: f64 = 0.9;
/// Ancestors followed at most (a loop in stale parent links ends here too).
const MAX_DEPTH: usize = 64;

/// The parent of `pid`: from its readings in the window (it may have exited since), or
/// from the latest sample.
fn parent_of(pid: u32, uses: &HashMap<u32, Tally>, recent: &Recent) -> Option<u32> {
    uses.get(&pid).and_then(|u| u.ppid).or_else(|| recent.parent(pid).and_then(|(ppid, _)| ppid))
}

/// `pid` and its ancestors up to init, nearest first (bounded: stale parent links can
/// make a loop).
fn lineage(pid: u32, uses: &HashMap<u32, Tally>, recent: &Recent) -> Vec<u32> {
    let mut chain = vec![pid];
    let mut at = pid;
    while let Some(parent) = parent_of(at, uses, recent).filter(|p| *p > 2 && *p != at && chain.len() <= MAX_DEPTH) {
        chain.push(parent);
        at = parent;
    }
    chain
}

/// Whether `pid` is the server or was started by it, however indirectly (its tools run
/// through `sudo`, the `top` source's child).
pub(super) fn descends_from(pid: u32, server: u32, uses: &HashMap<u32, Tally>, recent: &Recent) -> bool {
    lineage(pid, uses, recent).contains(&server)
}

/// The tree that explains most of the window's consumption, if several processes under
/// one parent consumed at least `min_cpu` together and most of what all consumed. Init,
/// kthreadd, the server and the server's own ancestors (the session or service manager
/// that started it, which holds everybody) are never roots.
pub(super) fn groups(uses: &HashMap<u32, Tally>, recent: &Recent, server: u32, min_cpu: Duration) -> Vec<ProcessGroup> {
    let name_of =
        |pid: u32| uses.get(&pid).map(|u| u.command.clone()).or_else(|| recent.parent(pid).map(|(_, c)| c.to_string()));
    let not_roots = lineage(server, uses, recent);
    // Ancestor → (consuming descendants, their CPU, depth from init).
    let mut trees: HashMap<u32, (u32, Duration, usize)> = HashMap::new();
    let mut total = Duration::ZERO;
    for u in uses.values().filter(|u| !u.cpu.is_zero()) {
        let chain = lineage(u.pid, uses, recent);
        if chain.contains(&server) {
            continue;
        }
        total += u.cpu;
        let depth = chain.len();
        for (up, ancestor) in chain.into_iter().enumerate().skip(1) {
            if not_roots.contains(&ancestor) {
                break;
            }
            let t = trees.entry(ancestor).or_insert((0, Duration::ZERO, depth - up));
            t.0 += 1;
            t.1 += u.cpu;
        }
    }
    let candidates: Vec<(u32, (u32, Duration, usize))> = trees
        .into_iter()
        .filter(|(_, (members, cpu, _))| {
            *members >= MIN_MEMBERS && *cpu >= min_cpu && cpu.as_secs_f64() * 2.0 >= total.as_secs_f64()
        })
        .collect();
    let Some(most) = candidates.iter().map(|(_, (_, cpu, _))| *cpu).max() else { return vec![] };
    let best = candidates
        .iter()
        .filter(|(_, (_, cpu, _))| cpu.as_secs_f64() >= NEARLY * most.as_secs_f64())
        .max_by(|a, b| a.1.2.cmp(&b.1.2).then(b.0.cmp(&a.0)));
    best.map(|&(root, (members, cpu, _))| ProcessGroup {
        kind: "tree".into(),
        name: format!("{}[{root}] and {members} {}", name_of(root).unwrap_or_else(|| "?".into()), children(members)),
        processes: members,
        cpu_ms: cpu.as_secs_f64() * 1000.0,
        root_pid: root,
    })
    .into_iter()
    .collect()
}

fn children(n: u32) -> &'static str {
    if n == 1 { "child" } else { "children" }
}

/// The control group most of the culprits share, when at least two of them do and it
/// is not the server's own (which is everybody's, on a desktop session).
pub(super) fn cgroups(culprits: &[&Tally], server_cgroup: Option<&str>) -> Vec<ProcessGroup> {
    let mut shared: HashMap<&str, (u32, Duration)> = HashMap::new();
    for c in culprits {
        if let Some(g) = c.cgroup.as_deref().filter(|g| Some(*g) != server_cgroup) {
            let e = shared.entry(g).or_default();
            e.0 += 1;
            e.1 += c.cpu;
        }
    }
    let total: Duration = culprits.iter().map(|c| c.cpu).sum();
    let best = shared.into_iter().filter(|(_, (n, _))| *n >= 2).max_by(|a, b| a.1.1.cmp(&b.1.1).then(b.0.cmp(a.0)));
    best.filter(|(_, (_, cpu))| cpu.as_secs_f64() * 2.0 >= total.as_secs_f64())
        .map(|(name, (processes, cpu))| ProcessGroup {
            kind: "cgroup".into(),
            name: name.to_string(),
            processes,
            cpu_ms: cpu.as_secs_f64() * 1000.0,
            root_pid: 0,
        })
        .into_iter()
        .collect()
}
