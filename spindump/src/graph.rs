//! The wait-for graph of a report: each blocked thread points at whom its heaviest wait
//! named; following the arrows ends at a root, a thread that waits on nobody (running,
//! or in a driver's or the kernel's own wait). The root with the most waiters is the
//! culprit of the hang; the waiters are its victims.
//!
//! ```text
//! Safari main ──┐
//! Dock main ────┼──► WindowServer main 0x3e2  (12/12 samples in waitForStamp (AMDRadeonX5000))
//! kernel_task ×8┘        ▲
//! Safari ×8, Dock ×5 ────┘ (through kernel_task)
//! ```

use std::collections::HashMap;

use pmon_proto::v1::{StackThread, WaitChain, WaitGroup};

use crate::{
    model::{Process, Report, Thread},
    note::{ProcessRef, Target},
};

/// A node: a thread, a process whose waited-on thread is unknown, or a process the
/// report does not hold (it exited, or was left out).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Node {
    Thread(usize, usize),
    Process(usize),
    Absent(String),
}

/// The graph: each waiting thread's arrow and the samples it spent on that wait.
pub(crate) struct Graph<'a> {
    pub report: &'a Report,
    edges: HashMap<(usize, usize), (Node, u32)>,
}

impl<'a> Graph<'a> {
    pub fn new(report: &'a Report) -> Self {
        let mut edges = HashMap::new();
        for (p, process) in report.processes.iter().enumerate() {
            for (t, thread) in process.threads.iter().enumerate() {
                if let Some(edge) = heaviest_wait(report, p, thread) {
                    edges.insert((p, t), edge);
                }
            }
        }
        Self { report, edges }
    }

    /// Whom `target` is in this report.
    pub fn resolve(&self, target: &Target) -> Option<Node> {
        resolve(self.report, target)
    }

    /// The root a thread's waits end at, and whether they went round in a circle (then
    /// the root is the circle's first thread in report order, the same for all of it).
    fn root_of(&self, start: (usize, usize)) -> (Node, bool) {
        let mut seen = vec![start];
        let mut current = start;
        loop {
            let Some((next, _)) = self.edges.get(&current) else {
                return (Node::Thread(current.0, current.1), false);
            };
            let Node::Thread(p, t) = next else { return (next.clone(), false) };
            if let Some(at) = seen.iter().position(|n| *n == (*p, *t)) {
                let first = seen[at..].iter().min().copied().unwrap_or((*p, *t));
                return (Node::Thread(first.0, first.1), true);
            }
            seen.push((*p, *t));
            current = (*p, *t);
        }
    }

    /// Every root with at least one waiter, most waited on first.
    pub fn chains(&self) -> Vec<WaitChain> {
        let mut roots: HashMap<Node, (Vec<(usize, usize)>, bool)> = HashMap::new();
        let mut waiters: Vec<&(usize, usize)> = self.edges.keys().collect();
        waiters.sort();
        for &w in waiters {
            let (root, circle) = self.root_of(w);
            let is_root = root == Node::Thread(w.0, w.1);
            if is_root && !circle {
                continue;
            }
            let entry = roots.entry(root).or_default();
            if !is_root {
                entry.0.push(w);
            }
            entry.1 |= circle;
        }
        let mut chains: Vec<WaitChain> = roots
            .into_iter()
            .filter(|(_, (waiting, _))| !waiting.is_empty())
            .map(|(root, (waiting, circle))| self.chain(&root, &waiting, circle))
            .collect();
        // Frozen windows first: a chain that holds up an app's main thread is what the
        // person saw; then the most threads, then the most samples.
        let weight = |c: &WaitChain| {
            let mains = c.waiters.iter().filter(|g| g.main).count();
            let threads: u32 = c.waiters.iter().map(|g| g.threads).sum();
            let samples: u32 = c.waiters.iter().map(|g| g.samples).sum();
            (mains, threads, samples)
        };
        chains.sort_by(|a, b| weight(b).cmp(&weight(a)).then_with(|| a.why.cmp(&b.why)));
        chains
    }

    fn chain(&self, root: &Node, waiting: &[(usize, usize)], deadlock: bool) -> WaitChain {
        let mut groups: Vec<(usize, WaitGroup)> = Vec::new();
        for &(p, t) in waiting {
            let process = &self.report.processes[p];
            let thread = &process.threads[t];
            let samples = self.edges.get(&(p, t)).map_or(0, |(_, s)| *s);
            let at = match groups.iter().position(|(q, _)| *q == p) {
                Some(at) => at,
                None => {
                    let g = WaitGroup { process: process.name.clone(), pid: process.pid, ..WaitGroup::default() };
                    groups.push((p, g));
                    groups.len() - 1
                }
            };
            let g = &mut groups[at].1;
            // A `<multiple>` group stands for two threads at least.
            g.threads += if thread.multiple { 2 } else { 1 };
            g.more_threads |= thread.multiple;
            g.samples += samples;
            g.main |= thread.main;
        }
        let mut waiters: Vec<WaitGroup> = groups.into_iter().map(|(_, g)| g).collect();
        waiters.sort_by(|a, b| {
            (b.threads, b.samples).cmp(&(a.threads, a.samples)).then_with(|| a.process.cmp(&b.process))
        });
        let mut chain = WaitChain { root: Some(self.stack_thread(root)), waiters, deadlock, ..WaitChain::default() };
        match root {
            Node::Thread(p, t) => {
                let thread = &self.report.processes[*p].threads[*t];
                chain.total_samples = thread.samples;
                if let Some(leaf) = thread.heaviest_active().or(thread.leaves.first()) {
                    chain.doing = leaf.doing.short();
                    chain.root_samples = leaf.samples;
                    chain.state = match &leaf.state {
                        Some(s) => s.clone(),
                        None if leaf.kernel => "in the kernel".into(),
                        None => "in a call".into(),
                    };
                }
            }
            Node::Process(p) => {
                chain.total_samples = self.report.processes[*p].samples.unwrap_or(0);
                chain.state = "no thread of it was seen busy".into();
            }
            Node::Absent(label) => {
                let exited = absent_parts(label).1.is_some_and(|pid| self.report.exited.contains(&pid));
                chain.state =
                    if exited { "exited while the report was taken" } else { "not in the report; it may have exited" }
                        .into();
            }
        }
        chain.why = crate::text::why(&chain);
        chain
    }

    /// A node as the contract names it.
    pub fn stack_thread(&self, node: &Node) -> StackThread {
        match node {
            Node::Thread(p, t) => {
                let process = &self.report.processes[*p];
                thread_of(process, &process.threads[*t])
            }
            Node::Process(p) => {
                let process = &self.report.processes[*p];
                StackThread { process: process.name.clone(), pid: process.pid, ..StackThread::default() }
            }
            Node::Absent(label) => {
                let (name, pid) = absent_parts(label);
                StackThread { process: name, pid, ..StackThread::default() }
            }
        }
    }
}

/// A thread of a process as the contract names it.
pub(crate) fn thread_of(process: &Process, thread: &Thread) -> StackThread {
    StackThread {
        process: process.name.clone(),
        pid: process.pid,
        thread: thread.id.clone(),
        label: thread.label.clone().unwrap_or_default(),
        main: thread.main,
    }
}

/// The wait a thread spent most samples on, among those naming someone else.
fn heaviest_wait(report: &Report, p: usize, thread: &Thread) -> Option<(Node, u32)> {
    let mut waits: Vec<(Node, u32)> = Vec::new();
    for leaf in thread.leaves.iter().filter(|l| l.blocked()) {
        let Some(node) = leaf.target.as_ref().and_then(|t| resolve(report, t)) else { continue };
        let node = match node {
            // A lock a thread's own process holds, thread unknown, says nothing new.
            Node::Process(q) if q == p => continue,
            other => other,
        };
        match waits.iter_mut().find(|(n, _)| *n == node) {
            Some((_, s)) => *s += leaf.samples,
            None => waits.push((node, leaf.samples)),
        }
    }
    waits.into_iter().max_by_key(|(_, s)| *s)
}

fn find(report: &Report, r: &ProcessRef) -> Option<usize> {
    let by_pid = r.pid.and_then(|pid| report.processes.iter().position(|p| p.pid == Some(pid)));
    by_pid.or_else(|| {
        let name = r.name.as_deref()?;
        report.processes.iter().position(|p| p.name == name)
    })
}

fn resolve(report: &Report, target: &Target) -> Option<Node> {
    let absent = |r: &ProcessRef| Node::Absent(absent_label(r));
    Some(match target {
        Target::Itself => return None,
        Target::Thread { process, thread } => match find(report, process) {
            Some(p) => match report.processes[p].threads.iter().position(|t| &t.id == thread) {
                Some(t) => Node::Thread(p, t),
                None => Node::Process(p),
            },
            None => absent(process),
        },
        Target::Main(process) => match find(report, process) {
            Some(p) => match report.processes[p].threads.iter().position(|t| t.main) {
                Some(t) => Node::Thread(p, t),
                None => busiest(report, p),
            },
            None => absent(process),
        },
        Target::Process(process) => match find(report, process) {
            Some(p) => busiest(report, p),
            None => absent(process),
        },
    })
}

/// A process waited on without naming a thread: its thread that was most often not
/// idle (that is the one others wait for; on a tie, one on a CPU, then the main thread,
/// then the first listed), or the process itself.
fn busiest(report: &Report, p: usize) -> Node {
    let threads = &report.processes[p].threads;
    let rank = |t: &Thread| (t.active_samples(), t.heaviest_active().is_some_and(|l| l.running()), t.main);
    let best = threads
        .iter()
        .enumerate()
        .filter(|(_, t)| t.active_samples() > 0)
        .min_by(|(i, a), (j, b)| rank(b).cmp(&rank(a)).then(i.cmp(j)));
    best.map_or(Node::Process(p), |(t, _)| Node::Thread(p, t))
}

fn absent_label(r: &ProcessRef) -> String {
    match (&r.name, r.pid) {
        (Some(name), Some(pid)) => format!("{name} [{pid}]"),
        (Some(name), None) => name.clone(),
        (None, Some(pid)) => format!("[{pid}]"),
        (None, None) => "?".into(),
    }
}

fn absent_parts(label: &str) -> (String, Option<u32>) {
    match label.rsplit_once('[') {
        Some((name, pid)) => (name.trim().to_string(), pid.trim_end_matches(']').parse().ok()),
        None => (label.to_string(), None),
    }
}
