//! What a process consumed and waited between two readings, or since its birth: the
//! usage a stall's culprits are named from.

use std::time::Duration;

use super::counters::Counters;
use super::{ProcCollector, parse};
use crate::collect::{Reaped, Usage, rates::rate_span};

impl ProcCollector {
    /// What a process consumed and waited between its previous reading and this one,
    /// `secs` apart. A single-threaded process's CPU time is its main thread's
    /// nanosecond run time (schedstat); otherwise `stat`'s clock ticks, all threads.
    pub(super) fn usage(&self, before: &Counters, stat: &parse::Stat, sched: Option<parse::Sched>, secs: f64) -> Usage {
        let pair = before.sched.zip(sched).filter(|(b, n)| n.run_ns >= b.run_ns && n.wait_ns >= b.wait_ns);
        let single = before.stat.num_threads == 1 && stat.num_threads == 1;
        let ticks = |now: u64, then: u64| Duration::from_secs_f64(now.saturating_sub(then) as f64 / self.ticks_per_sec);
        let all_threads = ticks(stat.cpu_ticks, before.stat.cpu_ticks);
        // The main thread's nanoseconds are exact, unless threads came and went between
        // the readings: then their time shows in the ticks only (2 ticks of rounding).
        let cpu = match pair {
            Some((b, n)) if single => {
                let main = Duration::from_nanos(n.run_ns - b.run_ns);
                if all_threads > main + Duration::from_secs_f64(2.0 / self.ticks_per_sec) { all_threads } else { main }
            }
            _ => all_threads,
        };
        let blkio = stat.blkio_ticks.zip(before.stat.blkio_ticks).filter(|_| self.delayacct);
        let rss = |s: &parse::Stat| i64::try_from(s.rss_pages.saturating_mul(self.page_size)).unwrap_or(i64::MAX);
        Usage {
            span: Duration::from_secs_f64(secs),
            cpu,
            run_delay: pair.map(|(b, n)| Duration::from_nanos(n.wait_ns - b.wait_ns)),
            io_delay: blkio.map(|(now, then)| ticks(now, then)),
            pageins: stat.majflt.checked_sub(before.stat.majflt),
            mem_growth: (!stat.kernel_thread).then(|| rss(stat).saturating_sub(rss(&before.stat))),
            lag: Duration::ZERO,
            // All of it for now: `Reaping::settle` takes what the children's readings show.
            reaped: Some(Reaped { cpu: ticks(stat.children_ticks, before.stat.children_ticks), child: None }),
        }
    }

    /// What a process born since the previous sample did in its life so far: its
    /// counters started at zero then. A short-lived worker may be read only once, and
    /// this is all there is to know of it. `None` for a process that is older.
    pub(super) fn newborn(
        &self,
        stat: &parse::Stat,
        sched: Option<parse::Sched>,
        born: Option<(f64, f64)>,
    ) -> Option<Usage> {
        let (then, now) = born?;
        let started = stat.starttime as f64 / self.ticks_per_sec;
        // Start times are in clock ticks: one tick of slack for the rounding.
        if started + 1.0 / self.ticks_per_sec < then || started > now {
            return None;
        }
        let span = Duration::try_from_secs_f64(now - started).ok().filter(|s| rate_span(*s).is_some())?;
        let cpu = match sched {
            Some(s) if stat.num_threads == 1 => Duration::from_nanos(s.run_ns),
            _ => Duration::from_secs_f64(stat.cpu_ticks as f64 / self.ticks_per_sec),
        };
        Some(Usage {
            span,
            cpu: cpu.min(span.saturating_mul(stat.num_threads.max(1))),
            run_delay: sched.map(|s| Duration::from_nanos(s.wait_ns)),
            io_delay: stat
                .blkio_ticks
                .filter(|_| self.delayacct)
                .map(|t| Duration::from_secs_f64(t as f64 / self.ticks_per_sec)),
            pageins: Some(stat.majflt),
            mem_growth: (!stat.kernel_thread)
                .then(|| i64::try_from(stat.rss_pages.saturating_mul(self.page_size)).unwrap_or(i64::MAX)),
            lag: Duration::ZERO,
            reaped: Some(Reaped {
                cpu: Duration::from_secs_f64(stat.children_ticks as f64 / self.ticks_per_sec),
                child: None,
            }),
        })
    }
}
