//! pmon's own recording: the collector's samples, before scoring, as JSON lines, so a
//! replay runs the same engine on exactly what the live server saw.
//!
//! ```text
//! {"pmon_recording":1,"source":"proc"}                                  ← header
//! {"time_ms":…,"elapsed_ms":…,"processes":[{"pid":…,"command":…,"state":"PROCESS_STATE_RUNNING","factors":{…}}],"system":{…}}
//! ```
//!
//! Factors and system figures use the API's JSON mapping (unavailable figures absent).
//! What attribution needs rides along where the source had it, so that a replay blames
//! as the live server did: the parent, the scheduling, and the usage since the previous
//! reading (times in microseconds). Recordings without them still read.

use std::{
    io::Write,
    path::Path,
    time::{Duration, UNIX_EPOCH},
};

use pmon_proto::v1::{ProcessFactors, ProcessState, SchedPolicy, SystemFigures};
use serde::{Deserialize, Serialize};

use super::{ProcessRecord, RawSample, Reaped, Scheduling, Usage};

/// The format version written in the header.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    pmon_recording: u32,
    source: String,
}

#[derive(Serialize, Deserialize)]
struct Line {
    time_ms: i64,
    elapsed_ms: Option<f64>,
    processes: Vec<Process>,
    system: SystemFigures,
}

#[derive(Serialize, Deserialize)]
struct Process {
    pid: u32,
    command: String,
    state: String,
    factors: ProcessFactors,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ppid: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    kernel_thread: bool,
    /// `SCHED_*` name, real-time priority, nice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scheduling: Option<(String, u32, Option<i32>)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    usage: Option<Use>,
}

/// [`Usage`] with its times in microseconds.
#[derive(Serialize, Deserialize)]
struct Use {
    span_us: u64,
    cpu_us: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run_delay_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    io_delay_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pageins: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mem_growth: Option<i64>,
    #[serde(default)]
    lag_us: u64,
    /// Reaped children's CPU time and the one child it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reaped: Option<(u64, Option<u32>)>,
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl From<Usage> for Use {
    fn from(u: Usage) -> Self {
        Self {
            span_us: us(u.span),
            cpu_us: us(u.cpu),
            run_delay_us: u.run_delay.map(us),
            io_delay_us: u.io_delay.map(us),
            pageins: u.pageins,
            mem_growth: u.mem_growth,
            lag_us: us(u.lag),
            reaped: u.reaped.map(|r| (us(r.cpu), r.child)),
        }
    }
}

impl From<Use> for Usage {
    fn from(u: Use) -> Self {
        Self {
            span: Duration::from_micros(u.span_us),
            cpu: Duration::from_micros(u.cpu_us),
            run_delay: u.run_delay_us.map(Duration::from_micros),
            io_delay: u.io_delay_us.map(Duration::from_micros),
            pageins: u.pageins,
            mem_growth: u.mem_growth,
            lag: Duration::from_micros(u.lag_us),
            reaped: u.reaped.map(|(cpu, child)| Reaped { cpu: Duration::from_micros(cpu), child }),
        }
    }
}

/// Whether these bytes begin like a recording.
pub fn looks_like(bytes: &[u8]) -> bool {
    bytes.trim_ascii_start().starts_with(b"{\"pmon_recording\"")
}

/// Checks a recording's first line.
pub fn header(line: &str) -> Result<(), String> {
    let header: Header = serde_json::from_str(line)
        .map_err(|_| "a pmon recording starts with a {\"pmon_recording\": 1, …} line".to_string())?;
    if header.pmon_recording != VERSION {
        return Err(format!(
            "recording format {} is not known (this pmon reads format {VERSION})",
            header.pmon_recording
        ));
    }
    Ok(())
}

/// One sample line; `None` if it is not one.
pub fn line(line: &str) -> Option<RawSample> {
    serde_json::from_str::<Line>(line).ok().map(sample)
}

fn sample(l: Line) -> RawSample {
    let time = if l.time_ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(l.time_ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(l.time_ms.unsigned_abs())
    };
    RawSample {
        time,
        elapsed: l.elapsed_ms.filter(|e| e.is_finite() && *e >= 0.0).map(|e| Duration::from_secs_f64(e / 1000.0)),
        processes: l
            .processes
            .into_iter()
            .map(|p| ProcessRecord {
                pid: p.pid,
                command: p.command,
                state: ProcessState::from_str_name(&p.state).unwrap_or(ProcessState::Unspecified),
                factors: p.factors,
                ppid: p.ppid,
                kernel_thread: p.kernel_thread,
                scheduling: p.scheduling.map(|(policy, rt_priority, nice)| Scheduling {
                    policy: SchedPolicy::from_str_name(&policy).unwrap_or(SchedPolicy::Unspecified),
                    rt_priority,
                    nice,
                }),
                usage: p.usage.map(Usage::from),
            })
            .collect(),
        system: l.system,
    }
}

/// Writes a recording as samples are taken.
#[derive(Debug)]
pub struct Recorder {
    out: std::io::BufWriter<std::fs::File>,
}

impl Recorder {
    /// Creates (or truncates) `path` and writes the header.
    pub fn create(path: &Path, source: &str) -> std::io::Result<Self> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        let header = Header { pmon_recording: VERSION, source: source.to_string() };
        writeln!(out, "{}", serde_json::to_string(&header).map_err(std::io::Error::other)?)?;
        out.flush()?;
        Ok(Self { out })
    }

    /// Appends one sample (flushed, so a crash loses at most the sample being written).
    pub fn write(&mut self, sample: &RawSample) -> std::io::Result<()> {
        writeln!(self.out, "{}", encode(sample))?;
        self.out.flush()
    }
}

/// One sample as a recording line.
pub fn encode(s: &RawSample) -> String {
    let time_ms = match s.time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    };
    let line = Line {
        time_ms,
        elapsed_ms: s.elapsed.map(|e| e.as_secs_f64() * 1000.0),
        processes: s
            .processes
            .iter()
            .map(|p| Process {
                pid: p.pid,
                command: p.command.clone(),
                state: p.state.as_str_name().to_string(),
                factors: p.factors,
                ppid: p.ppid,
                kernel_thread: p.kernel_thread,
                scheduling: p.scheduling.map(|s| (s.policy.as_str_name().to_string(), s.rt_priority, s.nice)),
                usage: p.usage.map(Use::from),
            })
            .collect(),
        system: s.system,
    };
    // Plain structs of numbers and strings always serialise.
    serde_json::to_string(&line).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_reads_back_what_was_written() {
        let sample = RawSample {
            time: UNIX_EPOCH + Duration::from_millis(1_795_183_502_250),
            elapsed: Some(Duration::from_millis(1000)),
            processes: vec![ProcessRecord {
                pid: 666,
                command: "mds stores".into(),
                state: ProcessState::Stuck,
                factors: ProcessFactors {
                    cpu_percent: Some(99.5),
                    mem_bytes: Some(1 << 32),
                    ..ProcessFactors::default()
                },
                ppid: Some(1),
                kernel_thread: false,
                scheduling: Some(Scheduling { policy: SchedPolicy::Fifo, rt_priority: 50, nice: Some(0) }),
                usage: Some(Usage {
                    span: Duration::from_millis(1000),
                    cpu: Duration::from_micros(995_000),
                    run_delay: Some(Duration::from_micros(1_250)),
                    io_delay: None,
                    pageins: Some(3),
                    mem_growth: Some(-4096),
                    lag: Duration::from_micros(40),
                    reaped: Some(Reaped { cpu: Duration::from_millis(20), child: Some(667) }),
                }),
            }],
            system: SystemFigures { load_1m: Some(2.5), ..SystemFigures::default() },
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rec.jsonl");
        let mut rec = Recorder::create(&path, "proc").expect("create");
        rec.write(&sample).expect("write");
        drop(rec);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(looks_like(text.as_bytes()));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(header(lines[0]), Ok(()));
        assert_eq!(line(lines[1]), Some(sample));
        assert_eq!(line("not json"), None);
        // Written before usage rode along: still read, the usage unknown.
        let older = r#"{"time_ms":0,"elapsed_ms":null,"processes":[{"pid":1,"command":"a","state":"PROCESS_STATE_RUNNING","factors":{}}],"system":{}}"#;
        let older = line(older).expect("an older line reads");
        assert_eq!((older.processes[0].usage, older.processes[0].ppid), (None, None));
        assert!(!text.contains("cmprs"), "unavailable figures are absent: {text}");
    }

    #[test]
    fn a_recording_of_another_version_is_refused_by_name() {
        let err = header("{\"pmon_recording\":7,\"source\":\"x\"}").expect_err("unknown version");
        assert!(err.contains("format 7"), "{err}");
        assert!(header("hello").expect_err("no header").contains("pmon_recording"));
    }
}
