//! The `powermetrics -f plist` stream: a splitter that cuts the byte stream into plist
//! documents, and a parser of one document into the figures pmon uses.
//!
//! ```text
//! <?xml …?><plist><dict>…</dict></plist>\n\0<?xml …   (NUL after each document, or only
//!                                                      between them; newline or none)
//! ```
//!
//! A document ends at a NUL or at its closing `</plist>` tag, whichever comes first, so a
//! document is complete as soon as it has been read, whatever separates it from the next.
//! Keys vary by machine and OS version (no `processor` on unsupported hardware, no GPU in
//! a VM, `started_ns` before macOS 11 and `started_abstime_ns` after): every figure is
//! optional.

use std::time::SystemTime;

use plist::{Dictionary, Value};

/// A pending document larger than this is not a powermetrics document: dropped.
const MAX_DOCUMENT: usize = 64 << 20;
const CLOSE: &[u8] = b"</plist>";

/// Cuts a byte stream into plist documents.
#[derive(Debug, Default)]
pub struct PlistSplitter {
    pending: Vec<u8>,
    dropped: u64,
}

impl PlistSplitter {
    /// Feeds bytes; returns the documents they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.pending.extend_from_slice(bytes);
        let mut done = Vec::new();
        let mut start = 0;
        while let Some(end) = boundary(&self.pending[start..]) {
            let piece = &self.pending[start..start + end];
            if !is_blank(piece) {
                done.push(piece.to_vec());
            }
            start += end;
            if self.pending.get(start) == Some(&0) {
                start += 1;
            }
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_DOCUMENT {
            self.pending.clear();
            self.dropped += 1;
        }
        done
    }

    /// The stream ended: what is left, if anything, is the last document.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = std::mem::take(&mut self.pending);
        (!is_blank(&rest)).then_some(rest)
    }

    /// Oversized pieces dropped.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Length of the next document in `bytes` (up to a NUL, or through `</plist>`).
fn boundary(bytes: &[u8]) -> Option<usize> {
    let nul = bytes.iter().position(|b| *b == 0);
    let close = bytes.windows(CLOSE.len()).position(|w| w == CLOSE).map(|at| at + CLOSE.len());
    match (nul, close) {
        (Some(n), Some(c)) => Some(n.min(c)),
        (n, c) => n.or(c),
    }
}

fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| b.is_ascii_whitespace() || *b == 0)
}

/// One task (process) of a sample.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PmTask {
    /// Process id.
    pub pid: u32,
    /// Process name (truncated by powermetrics to 16 characters on older systems).
    pub name: String,
    /// When the process started, nanoseconds on the source's own clock: with the pid,
    /// it tells a reused pid apart.
    pub started_ns: Option<u64>,
    /// CPU time, milliseconds per second.
    pub cpu_ms_per_s: Option<f64>,
    /// Page-ins per second.
    pub pageins_per_s: Option<f64>,
    /// Disk bytes read per second.
    pub disk_read_bytes_per_s: Option<f64>,
    /// Disk bytes written per second.
    pub disk_write_bytes_per_s: Option<f64>,
    /// Interrupt and idle wake-ups per second.
    pub wakeups_per_s: Option<f64>,
}

/// The figures of one document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PmSample {
    /// `timestamp`.
    pub time: Option<SystemTime>,
    /// `elapsed_ns`: the span the rates cover.
    pub elapsed_ns: Option<u64>,
    /// `is_delta`: false when the figures do not cover an interval of their own.
    pub is_delta: Option<bool>,
    /// `tasks`.
    pub tasks: Vec<PmTask>,
    /// `thermal_pressure` (`Nominal`, `Moderate`, `Heavy`, `Trapping`, `Sleeping`).
    pub thermal_pressure: Option<String>,
    /// 1 − `gpu.idle_ratio`.
    pub gpu_busy_ratio: Option<f64>,
    /// `disk.rbytes_per_s`.
    pub disk_read_bytes_per_s: Option<f64>,
    /// `disk.wbytes_per_s`.
    pub disk_write_bytes_per_s: Option<f64>,
}

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Not a well-formed plist.
    #[error("not a plist document: {0}")]
    Plist(#[from] plist::Error),
    /// A plist, but not a dictionary at the top.
    #[error("a plist whose top level is not a dictionary (powermetrics writes one dictionary per sample)")]
    NotADictionary,
}

/// Parses one document. powermetrics writes its warnings (`warning: time went
/// backwards by … ns`) into the same stream, even between a key and its value: a
/// document that does not parse is tried again without its lines that are not XML.
pub fn document(bytes: &[u8]) -> Result<PmSample, DocumentError> {
    let value = match Value::from_reader_xml(std::io::Cursor::new(bytes)) {
        Ok(v) => v,
        Err(first) => {
            let xml_lines: Vec<&[u8]> =
                bytes.split(|b| *b == b'\n').filter(|l| l.trim_ascii().first().is_none_or(|c| *c == b'<')).collect();
            let cleaned = xml_lines.join(&b'\n');
            if cleaned.len() == bytes.len() {
                return Err(first.into());
            }
            Value::from_reader_xml(std::io::Cursor::new(cleaned)).map_err(|_| first)?
        }
    };
    let top = value.as_dictionary().ok_or(DocumentError::NotADictionary)?;
    let tasks = top.get("tasks").and_then(Value::as_array).map(|a| a.iter().filter_map(task).collect());
    let gpu = top.get("gpu").and_then(Value::as_dictionary);
    let disk = top.get("disk").and_then(Value::as_dictionary);
    Ok(PmSample {
        time: top.get("timestamp").and_then(Value::as_date).map(SystemTime::from),
        elapsed_ns: unsigned(top, "elapsed_ns"),
        is_delta: top.get("is_delta").and_then(Value::as_boolean),
        tasks: tasks.unwrap_or_default(),
        thermal_pressure: top.get("thermal_pressure").and_then(Value::as_string).map(str::to_string),
        gpu_busy_ratio: gpu.and_then(|g| real(g, "idle_ratio")).filter(|r| (0.0..=1.0).contains(r)).map(|r| 1.0 - r),
        disk_read_bytes_per_s: disk.and_then(|d| real(d, "rbytes_per_s")),
        disk_write_bytes_per_s: disk.and_then(|d| real(d, "wbytes_per_s")),
    })
}

fn task(value: &Value) -> Option<PmTask> {
    let d = value.as_dictionary()?;
    // Negative pids are powermetrics' own aggregates (ALL_TASKS is -2).
    let pid = u32::try_from(d.get("pid")?.as_signed_integer()?).ok()?;
    let wakeups = match (real(d, "intr_wakeups_per_s"), real(d, "idle_wakeups_per_s")) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    Some(PmTask {
        pid,
        name: d.get("name").and_then(Value::as_string).unwrap_or_default().to_string(),
        started_ns: unsigned(d, "started_abstime_ns").or_else(|| unsigned(d, "started_ns")),
        cpu_ms_per_s: real(d, "cputime_ms_per_s"),
        pageins_per_s: real(d, "pageins_per_s"),
        disk_read_bytes_per_s: real(d, "diskio_bytesread_per_s"),
        disk_write_bytes_per_s: real(d, "diskio_byteswritten_per_s"),
        wakeups_per_s: wakeups,
    })
}

/// A number, written as `<real>` or `<integer>`; never NaN or infinite.
fn real(d: &Dictionary, key: &str) -> Option<f64> {
    let v = d.get(key)?;
    let n = v.as_real().or_else(|| v.as_signed_integer().map(|i| i as f64))?;
    n.is_finite().then_some(n)
}

fn unsigned(d: &Dictionary, key: &str) -> Option<u64> {
    let v = d.get(key)?;
    v.as_unsigned_integer().or_else(|| v.as_signed_integer().and_then(|i| u64::try_from(i).ok()))
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
