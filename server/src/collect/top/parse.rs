//! A streaming parser of `top -l` logging output: fed arbitrary chunks of bytes, it
//! yields each sample (header block + process table) once it is complete.
//!
//! ```text
//! Processes: 354 total, 3 running, 351 sleeping, 2530 threads      ← a sample begins
//! 2025/03/07 00:35:54                                               ← header block
//! Load Avg: 2.48, 2.84, 3.43
//! PhysMem: 14G used (2327M wired, 3167M compressor), 1640M unused.
//! VM: 183T vsize, 5536M framework vsize, 3510995(0) swapins, 5171714(0) swapouts.
//!
//! PID    COMMAND          %CPU STATE    MEM   CMPRS #TH  CSW  …     ← column titles
//! 87371  PerfPowerService 0.0  sleeping 12M+  9072K 30/1 336053 …   ← one row per process
//! ```
//!
//! A sample is complete when the next one begins, or when the caller says the stream
//! has gone quiet ([`TopParser::finish`]); `top` writes a whole sample at once. Column
//! order comes from the title line, so any `-stats` list works; the first of two columns
//! with the same title is used. Command names may contain spaces: every column but the
//! command is one word, so the command is what lies between the columns before it and
//! the columns after it.

use chrono::NaiveDateTime;
use pmon_proto::v1::ProcessState;

/// One process row. Values `top` shows as `N/A` or that are absent are `None`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TopRow {
    /// `PID`.
    pub pid: u32,
    /// `COMMAND` (as `top` shows it, truncated by `top` itself to its column width).
    pub command: String,
    /// `%CPU`.
    pub cpu_percent: Option<f64>,
    /// `STATE`.
    pub state: Option<ProcessState>,
    /// `MEM`, bytes.
    pub mem_bytes: Option<u64>,
    /// `CMPRS`, bytes.
    pub cmprs_bytes: Option<u64>,
    /// `#TH` (the total of `total/running`).
    pub threads: Option<u32>,
    /// `CSW`, cumulative.
    pub csw: Option<u64>,
    /// `SYSBSD`, cumulative.
    pub sysbsd: Option<u64>,
    /// `PAGEINS`, cumulative.
    pub pageins: Option<u64>,
}

/// One complete sample.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TopSample {
    /// The header's local date and time.
    pub time: Option<NaiveDateTime>,
    /// `Load Avg:` over 1, 5 and 15 minutes.
    pub load: Option<[f64; 3]>,
    /// `PhysMem:` used, bytes.
    pub phys_used_bytes: Option<u64>,
    /// `PhysMem:` unused, bytes.
    pub phys_unused_bytes: Option<u64>,
    /// `PhysMem:` held by the compressor, bytes.
    pub compressor_bytes: Option<u64>,
    /// `VM:` swapins since boot.
    pub swapins: Option<u64>,
    /// `VM:` swapouts since boot.
    pub swapouts: Option<u64>,
    /// The process table.
    pub rows: Vec<TopRow>,
}

/// Where in a sample the parser is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    /// Before the first `Processes:` line, or after a sample was finished.
    Outside,
    Header,
    Table,
}

/// The streaming parser.
#[derive(Debug)]
pub struct TopParser {
    pending: Vec<u8>,
    part: Part,
    sample: TopSample,
    columns: Vec<String>,
    unparsed_lines: u64,
}

impl Default for TopParser {
    fn default() -> Self {
        Self {
            pending: Vec::new(),
            part: Part::Outside,
            sample: TopSample::default(),
            columns: Vec::new(),
            unparsed_lines: 0,
        }
    }
}

impl TopParser {
    /// Feeds bytes; returns the samples they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<TopSample> {
        self.pending.extend_from_slice(bytes);
        let mut done = Vec::new();
        let mut start = 0;
        while let Some(end) = self.pending[start..].iter().position(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(&self.pending[start..start + end]).into_owned();
            start += end + 1;
            if let Some(sample) = self.line(&line) {
                done.push(sample);
            }
        }
        self.pending.drain(..start);
        done
    }

    /// The stream ended or went quiet: the sample in progress (and a last line without
    /// a newline) is complete. `None` if no sample was in progress.
    pub fn finish(&mut self) -> Option<TopSample> {
        let rest = std::mem::take(&mut self.pending);
        let line = String::from_utf8_lossy(&rest).into_owned();
        let mut done = if line.trim().is_empty() { None } else { self.line(&line) };
        if self.part != Part::Outside {
            self.part = Part::Outside;
            // A sample completed by the last line has been returned already.
            done = done.or_else(|| Some(std::mem::take(&mut self.sample)));
        }
        done
    }

    /// Whether a sample with process rows is in progress (complete once the stream
    /// goes quiet).
    pub fn has_rows(&self) -> bool {
        self.part == Part::Table && !self.sample.rows.is_empty()
    }

    /// Lines that were neither header, titles nor a process row.
    pub fn unparsed_lines(&self) -> u64 {
        self.unparsed_lines
    }

    fn line(&mut self, line: &str) -> Option<TopSample> {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("Processes:") {
            let done = (self.part != Part::Outside).then(|| std::mem::take(&mut self.sample));
            self.sample = TopSample::default();
            self.part = Part::Header;
            if !rest.contains("total") {
                self.unparsed_lines += 1;
            }
            return done;
        }
        if trimmed.is_empty() {
            return None;
        }
        match self.part {
            Part::Outside => self.unparsed_lines += 1,
            Part::Header | Part::Table if trimmed.split_whitespace().next() == Some("PID") => {
                self.columns = trimmed.split_whitespace().map(str::to_string).collect();
                self.part = Part::Table;
            }
            Part::Header => {
                if !self.header(trimmed) {
                    self.unparsed_lines += 1;
                }
            }
            Part::Table => match row(&self.columns, line) {
                Some(r) => self.sample.rows.push(r),
                None => self.unparsed_lines += 1,
            },
        }
        None
    }

    /// One header line; false if it is not one `top` writes.
    fn header(&mut self, line: &str) -> bool {
        let s = &mut self.sample;
        if let Ok(time) = NaiveDateTime::parse_from_str(line, "%Y/%m/%d %H:%M:%S") {
            s.time = Some(time);
        } else if let Some(rest) = line.strip_prefix("Load Avg:") {
            let v: Vec<f64> = rest.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            s.load = (v.len() == 3).then(|| [v[0], v[1], v[2]]);
        } else if let Some(rest) = line.strip_prefix("PhysMem:") {
            // "14G used (2327M wired, 3167M compressor), 1640M unused."
            s.phys_used_bytes = amount_before(rest, "used");
            s.phys_unused_bytes = amount_before(rest, "unused");
            s.compressor_bytes = amount_before(rest, "compressor");
        } else if let Some(rest) = line.strip_prefix("VM:") {
            // "…, 3510995(0) swapins, 5171714(0) swapouts."
            let count = |word| amount_word_before(rest, word).and_then(|w| w.split('(').next()?.parse().ok());
            s.swapins = count("swapins");
            s.swapouts = count("swapouts");
        } else {
            return line.split_once(':').is_some_and(|(key, _)| !key.is_empty() && !key.contains(char::is_numeric));
        }
        true
    }
}

/// The word just before `word` in a comma/parenthesis-separated header list.
fn amount_word_before<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .map(|w| w.trim_start_matches('(').trim_end_matches(['.', ')']))
        .filter(|w| !w.is_empty())
        .collect();
    let at = words.iter().position(|w| *w == word)?;
    words.get(at.checked_sub(1)?).copied()
}

fn amount_before(text: &str, word: &str) -> Option<u64> {
    amount_word_before(text, word).and_then(bytes)
}

/// Parses one process row against the column titles.
fn row(columns: &[String], line: &str) -> Option<TopRow> {
    let words = words_with_offsets(line);
    let n = columns.len();
    let command_at = columns.iter().position(|c| c == "COMMAND");
    // Every column but the command is exactly one word.
    let (values, command) = match command_at {
        Some(at) if words.len() >= n => {
            let after = n - at - 1;
            let first_after = words.len() - after;
            let start = if at == 0 { 0 } else { words[at - 1].0 + words[at - 1].1.len() };
            let end = words.get(first_after).map_or(line.len(), |w| w.0);
            let command = line.get(start..end)?.trim().to_string();
            let mut values: Vec<&str> = words[..at].iter().map(|w| w.1).collect();
            values.push("");
            values.extend(words[first_after..].iter().map(|w| w.1));
            (values, command)
        }
        None if words.len() == n => (words.iter().map(|w| w.1).collect(), String::new()),
        _ => return None,
    };
    let value = |title: &str| columns.iter().position(|c| c == title).and_then(|i| values.get(i).copied());
    let mut r = TopRow { pid: value("PID")?.parse().ok()?, command, ..TopRow::default() };
    r.cpu_percent = value("%CPU").and_then(|v| v.parse().ok());
    r.state = value("STATE").map(state);
    r.mem_bytes = value("MEM").and_then(bytes);
    r.cmprs_bytes = value("CMPRS").and_then(bytes);
    r.threads = value("#TH").and_then(|v| v.split('/').next()?.parse().ok());
    r.csw = value("CSW").and_then(count);
    r.sysbsd = value("SYSBSD").and_then(count);
    r.pageins = value("PAGEINS").and_then(count);
    Some(r)
}

fn words_with_offsets(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s, &line[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &line[s..]));
    }
    out
}

/// `top`'s state words.
pub fn state(word: &str) -> ProcessState {
    match word {
        "running" => ProcessState::Running,
        "sleeping" => ProcessState::Sleeping,
        "stuck" => ProcessState::Stuck,
        "zombie" => ProcessState::Zombie,
        "halted" => ProcessState::Halted,
        "stopped" => ProcessState::Stopped,
        "idle" => ProcessState::Idle,
        _ => ProcessState::Unspecified,
    }
}

/// A count, with the `+`/`-` change mark `top` may append.
fn count(word: &str) -> Option<u64> {
    word.trim_end_matches(['+', '-']).parse().ok()
}

/// An amount of memory like `12M`, `1024K`, `3G`, `0B`, `5820K+` (units of 1024).
pub fn bytes(word: &str) -> Option<u64> {
    let word = word.trim_end_matches(['+', '-']);
    let split = word.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(word.len());
    let (number, unit) = word.split_at(split);
    let shift = match unit {
        "" | "B" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        "P" => 50,
        _ => return None,
    };
    if number.contains('.') {
        let v: f64 = number.parse().ok()?;
        let b = v * (1u64 << shift) as f64;
        return (b.is_finite() && b < u64::MAX as f64).then_some(b as u64);
    }
    number.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
