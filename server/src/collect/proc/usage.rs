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
    /// Its run delay here is its main thread's: [`Self::usage_since`] puts every
    /// thread's in its place where they were summed.
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

impl ProcCollector {
    /// What a process did since its previous reading `before`, `secs` ago (`None` when
    /// too close to tell), or, first seen, since its birth if that was after the previous
    /// sample; the run delay of all its threads where they were summed.
    pub(super) fn usage_since(
        &self,
        (before, secs): (Option<&Counters>, Option<f64>),
        (stat, sched, threads): (&parse::Stat, Option<parse::Sched>, Option<parse::Sched>),
        born: Option<(f64, f64)>,
    ) -> Option<Usage> {
        match before {
            Some(b) => secs.map(|secs| {
                let u = self.usage(b, stat, sched, secs);
                Usage { run_delay: Self::threads_waited(b.threads, threads).or(u.run_delay), ..u }
            }),
            None => self
                .newborn(stat, sched, born)
                .map(|u| Usage { run_delay: threads.map(|t| Duration::from_nanos(t.wait_ns)).or(u.run_delay), ..u }),
        }
    }

    /// Every thread's `schedstat` of a multi-threaded process, summed, as of now: read
    /// when it ran since `before` (its CPU time or its main thread moved), else carried
    /// over (a thread's wait is credited when it next runs). `None` for a process with
    /// one thread, whose main thread's is all.
    pub(super) fn threads(
        &mut self,
        pid: u32,
        before: Option<&Counters>,
        stat: &parse::Stat,
        sched: Option<parse::Sched>,
    ) -> Option<parse::Sched> {
        if stat.num_threads <= 1 || stat.kernel_thread {
            return None;
        }
        if let Some(b) =
            before.filter(|b| b.threads.is_some() && b.stat.cpu_ticks == stat.cpu_ticks && b.sched == sched)
        {
            return b.threads;
        }
        let mut sum: Option<parse::Sched> = None;
        self.files
            .each_thread(pid, "schedstat", |bytes| {
                if let Some(t) = parse::schedstat(bytes) {
                    let s = sum.get_or_insert(parse::Sched { run_ns: 0, wait_ns: 0, timeslices: 0 });
                    s.run_ns += t.run_ns;
                    s.wait_ns += t.wait_ns;
                    s.timeslices += t.timeslices;
                }
            })
            .ok()?;
        sum
    }

    /// The run delay of all the threads between two sums of theirs; `None` when either
    /// is missing or the sum shrank (a thread that exited took its waits with it: the
    /// main thread's then stands).
    pub(super) fn threads_waited(before: Option<parse::Sched>, now: Option<parse::Sched>) -> Option<Duration> {
        before
            .zip(now)
            .filter(|(b, n)| n.wait_ns >= b.wait_ns)
            .map(|(b, n)| Duration::from_nanos(n.wait_ns - b.wait_ns))
    }
}
