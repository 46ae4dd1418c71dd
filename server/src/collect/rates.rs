//! Per-second rates of cumulative per-process counters, shared by the sources that read
//! counters (`libproc`, `top`): the previous reading of the same process and the time
//! between the two readings of it give the rate.
//!
//! A pid is the same process only while its identity (a start time, or the command name
//! where the source gives no start time) stays the same: a reused pid gets no rate until
//! its second reading. A counter that went backwards was reset: no rate rather than a
//! huge one.

use std::{collections::HashMap, time::Duration};

use super::ProcessRecord;

/// Two readings of a process closer together than this give no rates: CPU time is
/// counted in 10 ms clock ticks, so over a few milliseconds (a sample taken right after
/// another, a sampler continued after a stop) one tick more or less reads as a huge rate.
pub const MIN_RATE_SPAN: Duration = Duration::from_millis(20);

/// The seconds between two readings, when they are far enough apart to rate.
pub fn rate_span(span: Duration) -> Option<f64> {
    (span >= MIN_RATE_SPAN).then_some(span.as_secs_f64())
}

/// Keeps CPU figures physically possible: no process above 100 % per thread, and the
/// sample's total no more than 100 % per CPU. Readings of different processes are taken
/// at slightly different moments, and tick counts are rounded, so a sum can come out a
/// little above the machine's capacity; then every figure is scaled down alike, which
/// keeps their order and proportions. The CPU time of each [`Usage`](super::Usage)
/// follows its percentage.
pub fn bound_cpu(processes: &mut [ProcessRecord], cpus: u32) {
    for p in processes.iter_mut() {
        let threads = p.factors.threads.unwrap_or(1).max(1);
        if let Some(cpu) = &mut p.factors.cpu_percent {
            let max = 100.0 * f64::from(threads);
            if *cpu > max {
                scale_usage(p.usage.as_mut(), max / *cpu);
                *cpu = max;
            }
        }
    }
    let total: f64 = processes.iter().filter_map(|p| p.factors.cpu_percent).sum();
    let capacity = 100.0 * f64::from(cpus.max(1));
    if total > capacity {
        let factor = capacity / total;
        for p in processes.iter_mut() {
            if let Some(cpu) = &mut p.factors.cpu_percent {
                *cpu *= factor;
                scale_usage(p.usage.as_mut(), factor);
            }
        }
    }
}

fn scale_usage(usage: Option<&mut super::Usage>, factor: f64) {
    if let Some(u) = usage {
        u.cpu = u.cpu.mul_f64(factor);
    }
}

/// CPUs online, for [`bound_cpu`]: the machine's, not the ones this process may use
/// (other processes are not bound by pmon's affinity); 1 when the system will not say.
pub fn online_cpus() -> u32 {
    // SAFETY: sysconf has no preconditions; it returns -1 for unknown names.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(n).ok().filter(|n| *n > 0).unwrap_or(1)
}

/// One process's reading: its identity, its counters, and when they were read (on any
/// monotonic clock the caller keeps).
type Reading<I, const N: usize> = (I, [Option<u64>; N], Duration);

/// The readings of one sample, kept to rate the next one.
#[derive(Debug)]
pub struct CounterMemory<I, const N: usize> {
    prev: HashMap<u32, Reading<I, N>>,
    next: HashMap<u32, Reading<I, N>>,
}

impl<I: PartialEq, const N: usize> Default for CounterMemory<I, N> {
    fn default() -> Self {
        Self { prev: HashMap::new(), next: HashMap::new() }
    }
}

impl<I: PartialEq, const N: usize> CounterMemory<I, N> {
    /// Records this sample's counters of `pid`, read at `at`, and returns their rates
    /// against the previous reading of the same process with the time between the two
    /// (none without a previous reading, or readings too close together).
    pub fn rates(
        &mut self,
        pid: u32,
        identity: I,
        now: [Option<u64>; N],
        at: Duration,
    ) -> ([Option<f64>; N], Option<Duration>) {
        let before = self.prev.get(&pid).filter(|(id, _, _)| *id == identity);
        let span = before.map(|(_, _, then)| at.saturating_sub(*then)).filter(|s| rate_span(*s).is_some());
        let secs = span.map(|s| s.as_secs_f64());
        let rates = std::array::from_fn(|i| rate(now[i], before.and_then(|(_, b, _)| b[i]), secs));
        self.next.insert(pid, (identity, now, at));
        (rates, span)
    }

    /// Ends a sample: processes not seen in it are forgotten.
    pub fn end_sample(&mut self) {
        std::mem::swap(&mut self.prev, &mut self.next);
        self.next.clear();
    }

    /// Forgets everything (the source restarted: its counters start over).
    pub fn clear(&mut self) {
        self.prev.clear();
        self.next.clear();
    }
}

/// Per-second rate of a cumulative counter; none without both readings, when they are
/// less than [`MIN_RATE_SPAN`] apart, or when the counter went backwards.
pub fn rate(cur: Option<u64>, old: Option<u64>, secs: Option<f64>) -> Option<f64> {
    let (cur, old, secs) = (cur?, old?, secs.filter(|s| *s >= MIN_RATE_SPAN.as_secs_f64())?);
    (cur >= old).then(|| (cur - old) as f64 / secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn rates_need_a_previous_reading_of_the_same_process() {
        let mut m: CounterMemory<u64, 2> = CounterMemory::default();
        assert_eq!(m.rates(7, 100, [Some(10), Some(5)], secs(10.0)).0, [None, None], "first sight");
        m.end_sample();
        let (rates, span) = m.rates(7, 100, [Some(30), None], secs(12.0));
        assert_eq!((rates, span), ([Some(10.0), None], Some(secs(2.0))), "a missing reading has no rate");
        m.end_sample();
        assert_eq!(m.rates(7, 200, [Some(50), Some(9)], secs(14.0)).0, [None, None], "pid reused: new start time");
        m.end_sample();
        assert_eq!(m.rates(7, 200, [Some(40), Some(11)], secs(15.0)).0, [None, Some(2.0)], "counter went backwards");
    }

    #[test]
    fn each_process_is_rated_over_the_time_between_its_own_readings() {
        let mut m: CounterMemory<u64, 1> = CounterMemory::default();
        m.rates(1, 0, [Some(0)], secs(0.0));
        m.rates(2, 0, [Some(0)], secs(0.9));
        m.end_sample();
        // One collection read pid 1 at 1.0 s and, held up, pid 2 at 2.9 s.
        assert_eq!(m.rates(1, 0, [Some(100)], secs(1.0)), ([Some(100.0)], Some(secs(1.0))));
        assert_eq!(m.rates(2, 0, [Some(200)], secs(2.9)), ([Some(100.0)], Some(secs(2.0))));
        m.end_sample();
        // Read again 5 ms later (a catch-up sample): no rate, never 20 000/s.
        assert_eq!(m.rates(1, 0, [Some(200)], secs(1.005)), ([None], None));
    }

    #[test]
    fn processes_missing_from_a_sample_are_forgotten() {
        let mut m: CounterMemory<u64, 1> = CounterMemory::default();
        m.rates(1, 0, [Some(1)], secs(0.0));
        m.end_sample();
        m.end_sample();
        assert_eq!(m.rates(1, 0, [Some(5)], secs(2.0)).0, [None]);
        m.end_sample();
        m.clear();
        assert_eq!(m.rates(1, 0, [Some(9)], secs(3.0)).0, [None], "cleared");
    }

    fn busy(cpu: Option<f64>, threads: Option<u32>) -> ProcessRecord {
        let usage = cpu.and_then(|c| super::super::Usage::of_cpu(Duration::from_secs(1), c));
        ProcessRecord {
            factors: pmon_proto::v1::ProcessFactors { cpu_percent: cpu, threads, ..Default::default() },
            usage,
            ..ProcessRecord::default()
        }
    }

    #[test]
    fn one_thread_at_189_percent_is_brought_back_to_100_and_the_total_to_the_machine() {
        let mut procs = vec![busy(Some(189.0), Some(1)), busy(Some(150.0), Some(2)), busy(None, Some(1))];
        bound_cpu(&mut procs, 4);
        assert_eq!(procs[0].factors.cpu_percent, Some(100.0));
        assert_eq!(procs[0].usage.map(|u| u.cpu), Some(Duration::from_secs(1)), "the CPU time follows");
        assert_eq!(procs[1].factors.cpu_percent, Some(150.0), "two threads may use 150 %");
        assert_eq!(procs[2].factors.cpu_percent, None, "unknown stays unknown");
        bound_cpu(&mut procs, 2);
        let total: f64 = procs.iter().filter_map(|p| p.factors.cpu_percent).sum();
        assert!((total - 200.0).abs() < 1e-9, "{total}");
        assert!((procs[0].factors.cpu_percent.unwrap_or(0.0) - 80.0).abs() < 1e-9, "scaled alike: 100 × 200/250");
    }

    proptest::proptest! {
        /// Whatever the readings: no process above 100 % per thread, no sample above
        /// 100 % per CPU, and each CPU time agreeing with its percentage.
        #[test]
        fn cpu_is_bounded_per_thread_and_per_machine(
            readings in proptest::collection::vec((proptest::option::of(0.0f64..5000.0), proptest::option::of(0u32..64)), 0..40),
            cpus in 1u32..16,
        ) {
            let mut procs: Vec<ProcessRecord> = readings.iter().map(|&(c, t)| busy(c, t)).collect();
            bound_cpu(&mut procs, cpus);
            let mut total = 0.0;
            for p in &procs {
                if let Some(cpu) = p.factors.cpu_percent {
                    let threads = p.factors.threads.unwrap_or(1).max(1);
                    proptest::prop_assert!(cpu <= 100.0 * f64::from(threads) + 1e-9, "{cpu} with {threads} threads");
                    let usage = p.usage.map(|u| u.cpu.as_secs_f64() * 100.0).unwrap_or(cpu);
                    proptest::prop_assert!((usage - cpu).abs() < 1e-6, "usage {usage} follows cpu {cpu}");
                    total += cpu;
                }
            }
            proptest::prop_assert!(total <= 100.0 * f64::from(cpus) + 1e-6, "total {total} on {cpus} CPUs");
        }
    }

    #[test]
    fn no_rate_without_elapsed_time() {
        assert_eq!(rate(Some(5), Some(1), Some(0.0)), None);
        assert_eq!(rate(Some(5), Some(1), None), None);
        assert_eq!(rate(Some(5), Some(1), Some(0.5)), Some(8.0));
        assert_eq!(rate(Some(5), Some(1), Some(0.005)), None, "readings 5 ms apart prove no rate");
    }
}
