//! The macOS `top` source: one long-lived
//! `top -l 0 -s <secs> -stats pid,command,cpu,state,mem,cmprs,threads,csw,sysbsd,pageins`
//! child, its output parsed as it streams.
//!
//! ```text
//! child (supervised) ──bytes──► TopParser ──TopSample──► TopConverter (rates) ──► RawSample
//! ```
//!
//! `top` reports CSW, SYSBSD and PAGEINS as totals since each process started: rates come
//! from the previous sample of the same process, which `top` identifies by pid and
//! command (it shows no start time). Its first sample's %CPU has nothing to be measured
//! against and is meaningless: unavailable.

pub mod parse;

use std::time::{Duration, Instant, SystemTime};

use pmon_proto::v1::{ProcessFactors, ProcessState, SystemFigures};

use super::{
    CollectError, Collector, ProcessRecord, RawSample, SourceHealth, Usage,
    child::{Child, Output},
    rates::{CounterMemory, rate},
};
pub use parse::{TopParser, TopSample};

/// The columns pmon asks `top` for.
pub const STATS: &str = "pid,command,cpu,state,mem,cmprs,threads,csw,sysbsd,pageins";
/// How long the stream must be quiet before the sample in progress counts as complete
/// (`top` writes a sample in one go; the next begins a whole interval later).
pub const QUIET: Duration = Duration::from_millis(150);

/// Starts `program` (normally `top`, found on PATH) as a supervised
/// `top -l 0 -s <secs> -stats …` stream, sampling every `interval` rounded up to whole
/// seconds, at least one (`top -s` takes no fractions); returns the child and the
/// seconds.
pub fn spawn(program: &str, interval: Duration) -> Result<(Child, u64), CollectError> {
    let secs = interval.as_secs_f64().ceil().max(1.0) as u64;
    let args = ["-l", "0", "-s", &secs.to_string(), "-stats", STATS].map(str::to_string).to_vec();
    let child = Child::spawn(program.to_string(), args)
        .map_err(|e| CollectError::Source { source_name: "top", message: format!("cannot start {program}: {e}") })?;
    Ok((child, secs))
}

/// Turns parsed samples into collector samples, keeping counters between them.
#[derive(Debug, Default)]
pub struct TopConverter {
    counters: CounterMemory<String, 3>,
    prev_swaps: Option<(Option<u64>, Option<u64>)>,
    seen: bool,
    /// Time since the first sample, from the real time between samples: when each
    /// sample's counters were read.
    clock: Duration,
}

impl TopConverter {
    /// Converts the next sample; `elapsed` is the real time since the previous one.
    pub fn convert(&mut self, sample: &TopSample, time: SystemTime, elapsed: Option<Duration>) -> RawSample {
        let elapsed = elapsed.filter(|_| self.seen);
        let secs = elapsed.map(|e| e.as_secs_f64());
        self.clock += elapsed.unwrap_or_default();
        let at = self.clock;
        let processes = sample
            .rows
            .iter()
            .map(|row| {
                let ([pageins, csw, sysbsd], _) =
                    self.counters.rates(row.pid, row.command.clone(), [row.pageins, row.csw, row.sysbsd], at);
                // What it consumed over top's interval, as top measured it.
                let cpu = row.cpu_percent.filter(|_| self.seen);
                let usage = elapsed.zip(cpu).and_then(|(span, cpu)| Usage::of_cpu(span, cpu));
                ProcessRecord {
                    pid: row.pid,
                    command: row.command.clone(),
                    state: row.state.unwrap_or(ProcessState::Unspecified),
                    factors: ProcessFactors {
                        cpu_percent: row.cpu_percent.filter(|_| self.seen),
                        pageins_per_sec: pageins,
                        mem_bytes: row.mem_bytes,
                        cmprs_bytes: row.cmprs_bytes,
                        csw_per_sec: csw,
                        sysbsd_per_sec: sysbsd,
                        threads: row.threads,
                        // top has no per-process disk figures.
                        disk_read_bytes_per_sec: None,
                        disk_write_bytes_per_sec: None,
                    },
                    usage,
                    ..ProcessRecord::default()
                }
            })
            .collect();
        self.counters.end_sample();
        let (ins, outs) = (sample.swapins, sample.swapouts);
        let before = self.prev_swaps.replace((ins, outs));
        let system = SystemFigures {
            load_1m: sample.load.map(|l| l[0]),
            load_5m: sample.load.map(|l| l[1]),
            load_15m: sample.load.map(|l| l[2]),
            mem_total_bytes: sample.phys_used_bytes.zip(sample.phys_unused_bytes).map(|(u, f)| u.saturating_add(f)),
            swapins_per_sec: rate(ins, before.and_then(|b| b.0), secs),
            swapouts_per_sec: rate(outs, before.and_then(|b| b.1), secs),
            ..SystemFigures::default()
        };
        self.seen = true;
        RawSample { time, elapsed, processes, system }
    }

    /// The source started over: nothing before is comparable.
    pub fn restart(&mut self) {
        *self = Self::default();
    }
}

/// The live `top` collector.
pub struct TopCollector {
    child: Child,
    parser: TopParser,
    converter: TopConverter,
    /// The longest `collect` waits for a sample before reporting the gap.
    wait: Duration,
    last_at: Option<Instant>,
    health: SourceHealth,
}

impl TopCollector {
    /// Starts `program` (normally `top`, found on PATH) sampling every `interval`
    /// (whole seconds, at least one: `top -s` takes no fractions).
    pub fn start(program: &str, interval: Duration) -> Result<Self, CollectError> {
        let (child, secs) = spawn(program, interval)?;
        Ok(Self {
            child,
            parser: TopParser::default(),
            converter: TopConverter::default(),
            wait: Duration::from_secs(secs * 2 + 1),
            last_at: None,
            health: SourceHealth::default(),
        })
    }

    fn ready(&mut self, sample: &TopSample) -> RawSample {
        let now = Instant::now();
        let elapsed = self.last_at.map(|p| now.saturating_duration_since(p));
        self.last_at = Some(now);
        self.converter.convert(sample, SystemTime::now(), elapsed)
    }
}

impl Collector for TopCollector {
    fn name(&self) -> &'static str {
        "top"
    }

    fn collect(&mut self) -> Result<RawSample, CollectError> {
        let deadline = Instant::now() + self.wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CollectError::Source {
                    source_name: "top",
                    message: format!("no sample from top for {:?}", self.wait),
                });
            }
            // With rows in hand, a short silence means the sample is complete.
            let limit = if self.parser.has_rows() { QUIET.min(left) } else { left };
            let complete = match self.child.next(limit) {
                // Only the newest complete sample is returned, but each one is converted
                // so that rates stay over consecutive samples.
                Some(Output::Bytes(bytes)) => self.parser.push(&bytes).iter().map(|s| self.ready(s)).last(),
                Some(Output::Started) => {
                    self.parser = TopParser::default();
                    self.converter.restart();
                    self.last_at = None;
                    None
                }
                Some(Output::Exited(message)) => {
                    self.health.restarts += 1;
                    self.health.last_problem = Some((SystemTime::now(), message.clone()));
                    return Err(CollectError::Source { source_name: "top", message });
                }
                None if self.parser.has_rows() => self.parser.finish().map(|s| self.ready(&s)),
                None => None,
            };
            if let Some(sample) = complete {
                return Ok(sample);
            }
        }
    }

    fn health(&self) -> SourceHealth {
        self.health.clone()
    }
}

#[cfg(test)]
mod tests;
