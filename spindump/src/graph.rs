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

use std::collections::{HashMap, HashSet};

use pmon_proto::v1::{StackThread, WaitChain, WaitGroup};

use crate::{
    model::{Process, Report, Thread, total},
    note::{ProcessRef, Target},
};

/// A node: a thread, a process whose waited-on thread is unknown, or a process the
/// report does not hold (it exited, or was left out).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Node {
    Thread(usize, usize),
    /// A process, with the thread id a note named when that thread is not in the report.
    Process(usize, Option<String>),
    Absent(ProcessRef),
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
                if let Some(edge) = heaviest_wait(report, p, t, thread) {
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

    /// The root each waiting thread's waits end at, and whether they went round in a
    /// circle (then the root is the circle's first thread in report order, the same for
    /// all of it). Each thread is walked once: a long crafted chain stays linear.
    fn roots(&self) -> HashMap<(usize, usize), (Node, bool)> {
        let mut memo: HashMap<(usize, usize), (Node, bool)> = HashMap::new();
        let mut waiters: Vec<&(usize, usize)> = self.edges.keys().collect();
        waiters.sort();
        for &start in waiters {
            let (mut path, mut on_path) = (vec![start], HashSet::from([start]));
            let mut current = start;
            let found = loop {
                if let Some(known) = memo.get(&current) {
                    break known.clone();
                }
                let Some((next, _)) = self.edges.get(&current) else {
                    break (Node::Thread(current.0, current.1), false);
                };
                let &Node::Thread(p, t) = next else { break (next.clone(), false) };
                if on_path.contains(&(p, t)) {
                    let at = path.iter().position(|n| *n == (p, t)).unwrap_or(0);
                    let first = path[at..].iter().min().copied().unwrap_or((p, t));
                    break (Node::Thread(first.0, first.1), true);
                }
                path.push((p, t));
                on_path.insert((p, t));
                current = (p, t);
            };
            for n in path.into_iter().filter(|n| self.edges.contains_key(n)) {
                memo.entry(n).or_insert_with(|| found.clone());
            }
        }
        memo
    }

    /// Every root with at least one waiter; those holding up a main thread first.
    pub fn chains(&self) -> Vec<WaitChain> {
        let mut roots: HashMap<Node, (Vec<(usize, usize)>, bool)> = HashMap::new();
        let mut walked: Vec<((usize, usize), (Node, bool))> = self.roots().into_iter().collect();
        walked.sort_by_key(|(w, _)| *w);
        for (w, (root, circle)) in walked {
            let entry = roots.entry(root.clone()).or_default();
            // In a circle the root waits too, but not on itself.
            if root != Node::Thread(w.0, w.1) {
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
            let threads = total(c.waiters.iter().map(|g| g.threads));
            let samples = total(c.waiters.iter().map(|g| g.samples));
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
            g.threads = g.threads.saturating_add(if thread.multiple { 2 } else { 1 });
            g.more_threads |= thread.multiple;
            g.samples = g.samples.saturating_add(samples);
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
            Node::Process(p, missing) => {
                chain.total_samples = self.report.processes[*p].samples.unwrap_or(0);
                chain.state = match missing {
                    Some(id) => format!("its thread {id} is not in the report"),
                    None => "no thread of it was seen busy".into(),
                };
            }
            Node::Absent(r) => {
                let exited = r.pid.is_some_and(|pid| self.report.exited.contains(&pid));
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
            Node::Process(p, missing) => {
                let process = &self.report.processes[*p];
                let thread = missing.clone().unwrap_or_default();
                StackThread { process: process.name.clone(), pid: process.pid, thread, ..StackThread::default() }
            }
            Node::Absent(r) => {
                StackThread { process: r.name.clone().unwrap_or_default(), pid: r.pid, ..StackThread::default() }
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
fn heaviest_wait(report: &Report, p: usize, t: usize, thread: &Thread) -> Option<(Node, u32)> {
    let mut waits: Vec<(Node, u32)> = Vec::new();
    for leaf in thread.leaves.iter().filter(|l| l.blocked()) {
        let Some(node) = leaf.target.as_ref().and_then(|t| resolve(report, t)) else { continue };
        match node {
            // A lock a thread's own process holds, thread unknown, says nothing new;
            // nor does a note that comes back to the waiting thread itself.
            Node::Process(q, None) if q == p => continue,
            Node::Thread(q, u) if (q, u) == (p, t) => continue,
            _ => {}
        }
        match waits.iter_mut().find(|(n, _)| *n == node) {
            Some((_, s)) => *s = s.saturating_add(leaf.samples),
            None => waits.push((node, leaf.samples)),
        }
    }
    waits.into_iter().max_by_key(|(_, s)| *s)
}

/// The process a note names: by pid when it gives one (a pid not in the report is a
/// process that is not, even if another of the same name is), else by name.
fn find(report: &Report, r: &ProcessRef) -> Option<usize> {
    match (r.pid, r.name.as_deref()) {
        (Some(pid), _) => report.processes.iter().position(|p| p.pid == Some(pid)),
        (None, Some(name)) => report.processes.iter().position(|p| p.name == name),
        (None, None) => None,
    }
}

fn resolve(report: &Report, target: &Target) -> Option<Node> {
    let absent = |r: &ProcessRef| Node::Absent(r.clone());
    Some(match target {
        Target::Itself => return None,
        Target::Thread { process, thread } => match find(report, process) {
            Some(p) => match report.processes[p].threads.iter().position(|t| &t.id == thread) {
                Some(t) => Node::Thread(p, t),
                None => Node::Process(p, Some(thread.clone())),
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
    best.map_or(Node::Process(p, None), |(t, _)| Node::Thread(p, t))
}
