//! Per-second rates of cumulative per-process counters, shared by the sources that read
//! counters (`libproc`, `top`): the previous reading of the same process and the real
//! elapsed time give the rate.
//!
//! A pid is the same process only while its identity (a start time, or the command name
//! where the source gives no start time) stays the same: a reused pid gets no rate until
//! its second reading. A counter that went backwards was reset: no rate rather than a
//! huge one.

use std::collections::HashMap;

/// The readings of one sample, kept to rate the next one.
#[derive(Debug)]
pub struct CounterMemory<I, const N: usize> {
    prev: HashMap<u32, (I, [Option<u64>; N])>,
    next: HashMap<u32, (I, [Option<u64>; N])>,
}

impl<I: PartialEq, const N: usize> Default for CounterMemory<I, N> {
    fn default() -> Self {
        Self { prev: HashMap::new(), next: HashMap::new() }
    }
}

impl<I: PartialEq, const N: usize> CounterMemory<I, N> {
    /// Records this sample's counters of `pid` and returns their rates against the
    /// previous sample over `secs` (none without a previous reading of the same process).
    pub fn rates(&mut self, pid: u32, identity: I, now: [Option<u64>; N], secs: Option<f64>) -> [Option<f64>; N] {
        let before = self.prev.get(&pid).filter(|(id, _)| *id == identity).map(|(_, c)| c);
        let rates = std::array::from_fn(|i| rate(now[i], before.and_then(|b| b[i]), secs));
        self.next.insert(pid, (identity, now));
        rates
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

/// Per-second rate of a cumulative counter; none without both readings and a positive
/// time, or when the counter went backwards.
pub fn rate(cur: Option<u64>, old: Option<u64>, secs: Option<f64>) -> Option<f64> {
    let (cur, old, secs) = (cur?, old?, secs.filter(|s| *s > 0.0)?);
    (cur >= old).then(|| (cur - old) as f64 / secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_need_a_previous_reading_of_the_same_process() {
        let mut m: CounterMemory<u64, 2> = CounterMemory::default();
        assert_eq!(m.rates(7, 100, [Some(10), Some(5)], Some(2.0)), [None, None], "first sight");
        m.end_sample();
        assert_eq!(m.rates(7, 100, [Some(30), None], Some(2.0)), [Some(10.0), None], "a missing reading has no rate");
        m.end_sample();
        assert_eq!(m.rates(7, 200, [Some(50), Some(9)], Some(2.0)), [None, None], "pid reused: new start time");
        m.end_sample();
        assert_eq!(m.rates(7, 200, [Some(40), Some(11)], Some(1.0)), [None, Some(2.0)], "counter went backwards");
    }

    #[test]
    fn processes_missing_from_a_sample_are_forgotten() {
        let mut m: CounterMemory<u64, 1> = CounterMemory::default();
        m.rates(1, 0, [Some(1)], None);
        m.end_sample();
        m.end_sample();
        assert_eq!(m.rates(1, 0, [Some(5)], Some(1.0)), [None]);
        m.end_sample();
        m.clear();
        assert_eq!(m.rates(1, 0, [Some(9)], Some(1.0)), [None], "cleared");
    }

    #[test]
    fn no_rate_without_elapsed_time() {
        assert_eq!(rate(Some(5), Some(1), Some(0.0)), None);
        assert_eq!(rate(Some(5), Some(1), None), None);
        assert_eq!(rate(Some(5), Some(1), Some(0.5)), Some(8.0));
    }
}
