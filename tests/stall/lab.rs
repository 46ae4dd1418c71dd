//! Running one scenario in one setup and judging what pmon named: the pause event the
//! stall left, its culprits and cause against the expected ones, printed as one
//! machine-readable row.
//!
//! ```text
//! LAB|setup|scenario|expected culprit|pmon's first culprit|yes or no
//! LAB-INFO|setup|scenario|the pause events, the judged one's culprits, cause, groups, window
//! ```
//!
//! `scripts/stall-lab` gathers the rows into its table.

use std::{collections::BTreeSet, fmt::Write as _, time::Duration};

use serde_json::Value;

use crate::{
    cgroup::Cgroup,
    server::{Server, Setup, json_u64},
};

/// How long the server may take to record the stall's pause event after the stall.
const RECORDED_WITHIN: Duration = Duration::from_secs(20);
/// After the first pause event appears, how long more pieces of the same freeze may take.
const SETTLE: Duration = Duration::from_secs(3);

/// What a scenario left to judge.
pub struct Trial {
    pub server: Server,
    /// The pause events recorded before the stall began: not this stall's.
    pub before: BTreeSet<u64>,
    pub expected: Expected,
    /// The cgroup the server runs in, if any: removed after the server ends (fields
    /// drop in order).
    pub cgroup: Option<Cgroup>,
}

impl Trial {
    /// A stall of the server alone in its own `cgroup`: no culprit, and `cause` (with
    /// `what` was done, in words).
    pub fn held(server: Server, before: BTreeSet<u64>, (cause, what): (&'static str, String), cgroup: Cgroup) -> Trial {
        Trial { server, before, expected: Expected::Held { cause, what }, cgroup: Some(cgroup) }
    }
}

/// The right answer for a stall.
pub enum Expected {
    /// The first culprit is one of these processes (`what` says which they are).
    OneOf { pids: Vec<u32>, what: String },
    /// Every one of these processes is a culprit.
    AllOf { pids: Vec<u32>, what: String },
    /// pmon-server alone was held up (`what` says how): no culprit, and this cause.
    Held { cause: &'static str, what: String },
}

/// Runs `scenario` (as root) in `setup` and fails unless pmon named the expected culprit.
pub fn run(name: &str, setup: Setup, scenario: fn(Setup) -> Trial) {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "the {name} scenario makes a real stall and needs root (chrt, kill -STOP, cgroups); run it as root with \
         scripts/stall-lab or scripts/test"
    );
    let trial = scenario(setup);
    let verdict = judge(&trial);
    let clean = |s: &str| s.replace(['|', '\n'], " ");
    let setup = setup.name();
    println!(
        "LAB|{setup}|{name}|{}|{}|{}",
        clean(&trial.expected.describe()),
        clean(&verdict.got),
        if verdict.right { "yes" } else { "no" }
    );
    println!("LAB-INFO|{setup}|{name}|{}", clean(&verdict.info));
    assert!(
        verdict.right,
        "{name} ({setup}): expected {}, pmon named {}\n{}\nserver log:\n{}",
        trial.expected.describe(),
        verdict.got,
        verdict.info,
        trial.server.log()
    );
}

impl Expected {
    fn describe(&self) -> String {
        match self {
            // Many pids (a fork tree's) would swamp the table: `what` says how many.
            Expected::OneOf { pids, what } if pids.len() > 3 => what.clone(),
            Expected::OneOf { pids, what } => {
                let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
                format!("{what} (pid {})", pids.join(" or "))
            }
            Expected::AllOf { pids, what } => {
                let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
                format!("{what} (pids {}, all named)", pids.join(" and "))
            }
            Expected::Held { cause, what } => format!("none ({what}), cause {cause}"),
        }
    }

    /// Whether the event's culprits (in order) and cause are the right answer.
    fn right(&self, culprits: &[u32], cause: &str) -> bool {
        match self {
            Expected::OneOf { pids, .. } => culprits.first().is_some_and(|pid| pids.contains(pid)),
            Expected::AllOf { pids, .. } => pids.iter().all(|pid| culprits.contains(pid)),
            Expected::Held { cause: want, .. } => culprits.is_empty() && cause == *want,
        }
    }
}

struct Verdict {
    got: String,
    right: bool,
    info: String,
}

/// Waits for the stall's pause events and judges the longest one.
fn judge(trial: &Trial) -> Verdict {
    let server = &trial.server;
    let fresh = || server.pause_ids().difference(&trial.before).copied().collect::<Vec<u64>>();
    let deadline = std::time::Instant::now() + RECORDED_WITHIN;
    while fresh().is_empty() {
        if std::time::Instant::now() >= deadline {
            let got = format!("no pause event within {RECORDED_WITHIN:?}");
            return Verdict { got, right: false, info: String::new() };
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(SETTLE);
    let events: Vec<Value> = fresh()
        .iter()
        .map(|id| server.pmon_json(&["events", "show", &id.to_string(), "--json"])["event"].clone())
        .collect();
    let stall_ms = |e: &Value| e["stallMs"].as_f64().unwrap_or(0.0);
    let event = events.iter().max_by(|a, b| stall_ms(a).total_cmp(&stall_ms(b))).expect("at least one event");
    let culprits = event["culprits"].as_array().map_or(&[][..], Vec::as_slice);
    let pids: Vec<u32> = culprits.iter().map(pid).collect();
    let cause = event["cause"].as_str().unwrap_or("");
    // All the culprits asked for, or the first.
    let shown = match &trial.expected {
        Expected::AllOf { pids: all, .. } => all.len(),
        _ => 1,
    };
    let named: Vec<String> = culprits.iter().take(shown).map(|c| format!("{} (pid {})", command(c), pid(c))).collect();
    let got = if named.is_empty() { "none".to_string() } else { named.join(" and ") };
    let got = if cause.is_empty() { got } else { format!("{got}, cause {cause}") };
    let right = trial.expected.right(&pids, cause);
    let mut info = describe(&events, event, server.pid());
    if let Some(cgroup) = trial.cgroup.as_ref().filter(|c| c.path().starts_with("/sys/fs/cgroup/memory")) {
        let _ = write!(info, " {}", cgroup.pressure());
    }
    Verdict { got, right, info }
}

/// A culprit's pid: its rogue's, or where no rogue was scored, its usage's.
fn pid(culprit: &Value) -> u32 {
    let pid = if culprit["rogue"]["pid"].is_null() { &culprit["usage"]["pid"] } else { &culprit["rogue"]["pid"] };
    u32::try_from(json_u64(pid)).expect("pid fits")
}

fn command(culprit: &Value) -> &str {
    culprit["rogue"]["command"].as_str().or_else(|| culprit["usage"]["command"].as_str()).unwrap_or("?")
}

/// The events of the stall and what the judged one says, on one line.
fn describe(events: &[Value], judged: &Value, server_pid: u32) -> String {
    let mut info = format!("{} pause event(s), stallMs", events.len());
    for e in events {
        let _ = write!(info, " #{}={:.0}", json_u64(&e["id"]), e["stallMs"].as_f64().unwrap_or(0.0));
    }
    let _ = write!(info, "; judged #{}; culprits:", json_u64(&judged["id"]));
    for c in judged["culprits"].as_array().map_or(&[][..], Vec::as_slice).iter().take(3) {
        let pid = pid(c);
        let server = if pid == server_pid { " [pmon-server]" } else { "" };
        let _ = write!(info, " {} {pid}{server} why {:?};", command(c), c["why"].as_str().unwrap_or(""));
    }
    for field in ["cause", "causeDetail"] {
        if let Some(v) = judged[field].as_str() {
            let _ = write!(info, " {field}: {v};");
        }
    }
    for g in judged["groups"].as_array().map_or(&[][..], Vec::as_slice) {
        let _ = write!(
            info,
            " group {} {:?} root {} processes {} cpuMs {};",
            g["kind"].as_str().unwrap_or("?"),
            g["name"].as_str().unwrap_or(""),
            json_u64(&g["rootPid"]),
            g["processes"],
            g["cpuMs"]
        );
    }
    if judged["window"].is_object() {
        let _ = write!(info, " window {}", judged["window"]);
    }
    info
}
