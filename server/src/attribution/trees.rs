//! Groups that share the blame. Process trees: a build that spawns compilers, a shell
//! loop forking workers; no single short-lived child consumes much, but together under
//! one parent they do, and the tree is named by its root, "make[4242] and 37
//! children". Control groups: a systemd unit or a container whose processes are the
//! culprits together.

use std::{collections::HashMap, time::Duration};

use pmon_proto::v1::ProcessGroup;

use super::{Recent, Tally};

/// A tree is named when at least this many of its processes consumed.
const MIN_MEMBERS: usize = 3;
/// Of the trees that hold nearly as much CPU as the largest, the deepest is named:
/// every tree sits under init, which explains nothing.
const NEARLY: f64 = 0.9;
/// The CPU that makes a process a member of its tree: a process that only started
/// another and waited for it (`timeout`, `sh -c`) used a millisecond or two and is not
/// one of the busy.
const MEMBER_CPU: Duration = Duration::from_millis(10);
/// Ancestors followed at most (a loop in stale parent links ends here too).
const MAX_DEPTH: usize = 64;

/// The parent of `pid`: from its readings in the window (it may have exited since), or
/// from the latest sample.
fn parent_of(pid: u32, uses: &HashMap<u32, Tally>, recent: &Recent) -> Option<u32> {
    uses.get(&pid).and_then(|u| u.ppid).or_else(|| recent.parent(pid).and_then(|(ppid, _)| ppid))
}

/// `pid` and its ancestors up to init, nearest first, from its readings in the window
/// (it may have exited since) or the latest sample.
fn lineage(pid: u32, uses: &HashMap<u32, Tally>, recent: &Recent) -> Vec<u32> {
    ancestry(pid, |p| parent_of(p, uses, recent))
}

/// `pid` and its ancestors below init and kthreadd, nearest first, by `parent` (bounded:
/// stale parent links can make a loop).
pub(crate) fn ancestry(pid: u32, parent: impl Fn(u32) -> Option<u32>) -> Vec<u32> {
    let mut chain = vec![pid];
    let mut at = pid;
    while let Some(up) = parent(at).filter(|p| *p > 2 && *p != at && chain.len() <= MAX_DEPTH) {
        chain.push(up);
        at = up;
    }
    chain
}

/// Whether `pid` is the server or was started by it, however indirectly (its tools run
/// through `sudo`, the `top` source's child).
pub(super) fn descends_from(pid: u32, server: u32, uses: &HashMap<u32, Tally>, recent: &Recent) -> bool {
    lineage(pid, uses, recent).contains(&server)
}

/// The tree that explains most of the window's consumption, if several processes under
/// one parent consumed at least `min_cpu` together and most of what all consumed.
pub(super) fn groups(uses: &HashMap<u32, Tally>, recent: &Recent, server: u32, min_cpu: Duration) -> Vec<ProcessGroup> {
    let name_of =
        |pid: u32| uses.get(&pid).map(|u| u.command.clone()).or_else(|| recent.parent(pid).map(|(_, c)| c.to_string()));
    let consumers = uses.values().filter(|u| u.cpu >= MEMBER_CPU).map(|u| (u.pid, u.cpu.as_secs_f64()));
    let tree = heaviest(consumers, |pid| lineage(pid, uses, recent), server, min_cpu.as_secs_f64());
    tree.map(|t| ProcessGroup {
        kind: "tree".into(),
        name: tree_name(&name_of(t.root).unwrap_or_else(|| "?".into()), t.root, t.members.len()),
        processes: u32::try_from(t.members.len()).unwrap_or(u32::MAX),
        cpu_ms: t.weight * 1000.0,
        root_pid: t.root,
    })
    .into_iter()
    .collect()
}

/// A process tree that holds most of what its processes consumed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tree {
    /// The parent at its root.
    pub root: u32,
    /// Its consuming descendants (not the root itself).
    pub members: Vec<u32>,
    /// What they consumed together, in the caller's unit.
    pub weight: f64,
}

/// Of the trees under which at least [`MIN_MEMBERS`] consumers hold at least `min` and
/// half of what all `consumers` (pid, amount) hold, the deepest of those nearly as heavy
/// as the heaviest. `lineage` gives a pid and its ancestors, nearest first. Init,
/// kthreadd, the server and the server's own ancestors (the session or service manager
/// that started it, which holds everybody) are never roots, and what the server started
/// is not counted.
pub(crate) fn heaviest(
    consumers: impl Iterator<Item = (u32, f64)>,
    lineage: impl Fn(u32) -> Vec<u32>,
    server: u32,
    min: f64,
) -> Option<Tree> {
    let not_roots = lineage(server);
    // Ancestor → (consuming descendants, their amount, depth from init).
    let mut trees: HashMap<u32, (Vec<u32>, f64, usize)> = HashMap::new();
    let mut total = 0.0;
    for (pid, amount) in consumers {
        let chain = lineage(pid);
        if chain.contains(&server) {
            continue;
        }
        total += amount;
        let depth = chain.len();
        for (up, ancestor) in chain.into_iter().enumerate().skip(1) {
            if not_roots.contains(&ancestor) {
                break;
            }
            let t = trees.entry(ancestor).or_insert((Vec::new(), 0.0, depth - up));
            t.0.push(pid);
            t.1 += amount;
        }
    }
    trees.retain(|_, (members, amount, _)| members.len() >= MIN_MEMBERS && *amount >= min && *amount * 2.0 >= total);
    let most = trees.values().map(|t| t.1).max_by(f64::total_cmp)?;
    let (root, (mut members, weight, _)) =
        trees.into_iter().filter(|(_, t)| t.1 >= NEARLY * most).max_by(|a, b| a.1.2.cmp(&b.1.2).then(b.0.cmp(&a.0)))?;
    members.sort_unstable();
    Some(Tree { root, members, weight })
}

/// `make[4242] and 37 children`.
pub(crate) fn tree_name(command: &str, root: u32, members: usize) -> String {
    let children = if members == 1 { "child" } else { "children" };
    format!("{command}[{root}] and {members} {children}")
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
