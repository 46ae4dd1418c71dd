//! Reads macOS stack reports into who waited on whom.
//!
//! ```text
//! text ──► read (spindump | sample layout) ──► Report ──► Graph ──► chains (roots, waiters)
//!                                                           └────► main-thread hangs
//! ```
//!
//! The strongest evidence of a Mac freeze is its stack report: `tailspin` keeps the
//! last seconds in the kernel and `spindump` decodes them; its `(blocked by …)` notes
//! say which thread waits on which, across processes. The thread they all end up
//! waiting on is the answer, and it usually carries no note at all: it is running, or
//! in a driver's wait. Used by pmon-server's forensics and by `pmon explain`, on any
//! platform: nothing here calls the OS.

mod frame;
mod graph;
mod hang;
pub mod model;
pub mod note;
mod read;
mod text;

pub use pmon_proto::v1::{AppHang, StackThread, WaitChain, WaitGroup};
pub use read::{NotAReport, read};

/// What a report says about a hang.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    /// Which layout it was read as.
    pub format: model::Format,
    /// Processes and threads read.
    pub processes: usize,
    /// Threads read (a `<multiple>` group counts once).
    pub threads: usize,
    /// Chains of waits; those holding up an app's main thread first, then the most
    /// threads.
    pub chains: Vec<WaitChain>,
    /// Apps whose main thread was blocked or busy for at least 90 % of the report.
    pub hangs: Vec<AppHang>,
}

impl Analysis {
    /// Who to blame first: the root of the chain that held up an app's main thread;
    /// else an app whose main thread hung on its own (busy, or blocked waiting on
    /// nobody named); else the root of the first chain, else any hung app. `None` when
    /// nothing waited and no app hung.
    pub fn culprit(&self) -> Option<&StackThread> {
        match self.lead() {
            Lead::Chain(c) => c.root.as_ref(),
            Lead::Hang(h) => h.thread.as_ref(),
            Lead::Nobody => None,
        }
    }

    /// Why that one, in one line.
    pub fn why(&self) -> Option<String> {
        match self.lead() {
            Lead::Chain(c) => Some(c.why.clone()),
            Lead::Hang(h) => Some(format!("its main thread hung: {}", pmon_proto::format::app_hang(h))),
            Lead::Nobody => None,
        }
    }

    fn lead(&self) -> Lead<'_> {
        let holds_main = |c: &&WaitChain| c.waiters.iter().any(|g| g.main);
        let on_its_own = |h: &&AppHang| h.waiting_for.is_empty();
        if let Some(c) = self.chains.iter().find(holds_main) {
            Lead::Chain(c)
        } else if let Some(h) = self.hangs.iter().find(on_its_own) {
            Lead::Hang(h)
        } else if let Some(c) = self.chains.first() {
            Lead::Chain(c)
        } else {
            self.hangs.first().map_or(Lead::Nobody, Lead::Hang)
        }
    }
}

/// What [`Analysis::culprit`] rests on.
enum Lead<'a> {
    Chain(&'a WaitChain),
    Hang(&'a AppHang),
    Nobody,
}

/// Reads a report and follows its waits.
pub fn analyse(report: &model::Report) -> Analysis {
    let graph = graph::Graph::new(report);
    Analysis {
        format: report.format,
        processes: report.processes.len(),
        threads: report.processes.iter().map(|p| p.threads.len()).sum(),
        chains: graph.chains(),
        hangs: hang::hangs(&graph),
    }
}

/// [`read`] then [`analyse`].
pub fn explain(text: &str) -> Result<Analysis, NotAReport> {
    read(text).map(|r| analyse(&r))
}

#[cfg(test)]
mod tests;
