//! The stress lab: real loads at the defaults, as an ordinary user, and the tier each
//! one drives pmon to, how soon, and whom the escalation names.
//!
//! ```text
//! load ─► fresh pmon-server (nobody, defaults) ─► status polled every 0.25 s (the timeline)
//!      ─► the load ends ─► the escalation's culprits and groups == expected?
//! STRESS|load|expected tier|tier reached|seconds to reach it|named|yes or no
//! STRESS-INFO|load|the tier changes, the highest stress and why
//! ```
//!
//! `scripts/stress-lab` gathers the rows into its table. The loads are in
//! [`loads`](crate::loads).

use std::{
    fmt::Write as _,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    hogs::Hog,
    server::{Server, Setup, json_u64},
};

/// How often the tier is read while a load runs.
const POLL: Duration = Duration::from_millis(250);
/// A load must reach its tier within this long of starting.
const REACHED_WITHIN: f64 = 8.0;

/// A load running, and the right answer for it.
pub struct Load {
    /// Its processes; killed when the load is dropped.
    pub hogs: Vec<Hog>,
    /// How long it runs.
    pub seconds: f64,
    /// The highest tier it should drive pmon to.
    pub expected: &'static str,
    /// Whom an escalation should name.
    pub named: Named,
    /// Whatever must live as long as the load (a cgroup, a swap file).
    pub _keep: Vec<Box<dyn std::any::Any>>,
}

/// The right culprit of a load's escalation.
pub enum Named {
    /// No escalation, so nobody.
    Nobody,
    /// The first culprit is one of these pids or is named `command` (when not empty:
    /// for loads whose processes' pids are not known, and no other process of that
    /// name runs), or a group's root is one of these pids; `what` says who in words.
    OneOf { pids: Vec<u32>, command: &'static str, what: String },
}

/// One reading of the server's status.
struct Reading {
    at: f64,
    tier: String,
    stress: f64,
    machine: String,
    top: String,
}

/// Runs `load` against a fresh server at the defaults and prints its row; panics
/// (after printing) when the tier or the culprit is wrong.
pub fn run(name: &str, load: fn() -> Load) {
    // SAFETY: geteuid has no preconditions and cannot fail.
    assert!(unsafe { libc::geteuid() } == 0, "the stress lab needs root (setpriv, cgroups, chrt, swapon)");
    let server = Server::start(Setup::Defaults);
    let before = escalation_ids(&server);
    let started = Instant::now();
    let mut load = load();
    let mut timeline = Vec::new();
    while started.elapsed().as_secs_f64() < load.seconds + 1.0 {
        timeline.push(read(&server, started));
        std::thread::sleep(POLL);
    }
    for hog in &mut load.hogs {
        hog.wait(Duration::from_secs(30));
    }
    let ids: Vec<u64> = escalation_ids(&server).into_iter().filter(|id| !before.contains(id)).collect();
    let event = ids.first().map(|id| server.pmon_json(&["events", "show", &id.to_string(), "--json"])["event"].clone());
    let reached = highest(&timeline);
    let reached_at = timeline.iter().find(|r| r.tier == reached).map_or(0.0, |r| r.at);
    let named = event.as_ref().map_or_else(|| "nobody".to_string(), first_named);
    let right_tier = reached == load.expected && (reached == "SENTINEL" || reached_at <= REACHED_WITHIN);
    let right_name = match (&load.named, &event) {
        (Named::Nobody, None) => true,
        (Named::Nobody, Some(_)) | (Named::OneOf { .. }, None) => false,
        (Named::OneOf { pids, command, .. }, Some(e)) => names(e, pids, command),
    };
    let right = right_tier && right_name;
    let what = match &load.named {
        Named::Nobody => "nobody".to_string(),
        Named::OneOf { what, .. } => what.clone(),
    };
    let when = if reached == "SENTINEL" { "-".to_string() } else { format!("{reached_at:.1} s") };
    println!(
        "STRESS|{name}|{}|{reached}|{when}|{what} / pmon: {named}|{}",
        load.expected,
        if right { "yes" } else { "no" }
    );
    println!("STRESS-INFO|{name}|{}", summary(&timeline, ids.len()));
    if let Some(e) = &event {
        println!("STRESS-INFO|{name}|escalation: {}", blamed(e));
    }
    assert!(right, "{name}: expected {} naming {what}; reached {reached} at {when}, named {named}", load.expected);
}

fn escalation_ids(server: &Server) -> Vec<u64> {
    let page = server.pmon_json(&["events", "--kind", "escalation", "--limit", "1000", "--json"]);
    let mut ids: Vec<u64> =
        page["events"].as_array().map_or(&[][..], Vec::as_slice).iter().map(|e| json_u64(&e["id"])).collect();
    ids.sort_unstable();
    ids
}

fn read(server: &Server, started: Instant) -> Reading {
    let status = server.pmon_json(&["status", "--json"]);
    let top = &status["topRogue"];
    let top = match top["group"]["name"].as_str() {
        Some(group) => group.to_string(),
        None => format!("{}[{}]", top["command"].as_str().unwrap_or("-"), json_u64(&top["pid"])),
    };
    Reading {
        at: started.elapsed().as_secs_f64(),
        tier: status["tier"].as_str().unwrap_or("SENTINEL").trim_start_matches("TIER_").to_string(),
        stress: status["stress"].as_f64().unwrap_or(0.0),
        machine: status["machine"]["reason"].as_str().unwrap_or("").to_string(),
        top,
    }
}

fn rank(tier: &str) -> u8 {
    match tier {
        "CRITICAL" => 3,
        "ELEVATED" => 2,
        _ => 1,
    }
}

fn highest(timeline: &[Reading]) -> String {
    timeline.iter().map(|r| r.tier.as_str()).max_by_key(|t| rank(t)).unwrap_or("SENTINEL").to_string()
}

/// The escalation's first group, else its first culprit, in words.
fn first_named(event: &Value) -> String {
    let group = event["groups"].as_array().and_then(|g| g.first()).and_then(|g| g["name"].as_str());
    let culprit = event["culprits"].as_array().and_then(|c| c.first()).map(|c| {
        let u = &c["usage"];
        format!("{}[{}]", u["command"].as_str().unwrap_or("?"), json_u64(&u["pid"]))
    });
    match (group, culprit) {
        (Some(g), Some(c)) => format!("{g} (first culprit {c})"),
        (Some(g), None) => g.to_string(),
        (None, Some(c)) => c,
        (None, None) => "no culprit".into(),
    }
}

fn names(event: &Value, pids: &[u32], command: &str) -> bool {
    let as_array = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let first = as_array(&event["culprits"]).into_iter().next();
    let by_culprit = first.is_some_and(|c| {
        let u = &c["usage"];
        pids.contains(&(json_u64(&u["pid"]) as u32)) || (!command.is_empty() && u["command"].as_str() == Some(command))
    });
    let by_group = as_array(&event["groups"]).iter().any(|g| pids.contains(&(json_u64(&g["rootPid"]) as u32)));
    by_culprit || by_group
}

/// The escalation's groups and first culprits with their why.
fn blamed(event: &Value) -> String {
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let groups: Vec<String> = list(&event["groups"]).iter().map(|g| g["name"].as_str().unwrap_or("?").into()).collect();
    let culprits: Vec<String> = list(&event["culprits"])
        .iter()
        .take(3)
        .map(|c| {
            let u = &c["usage"];
            format!(
                "{}[{}] ({})",
                u["command"].as_str().unwrap_or("?"),
                json_u64(&u["pid"]),
                c["why"].as_str().unwrap_or("")
            )
        })
        .collect();
    format!("groups [{}]; culprits {}", groups.join(", "), culprits.join(" · "))
}

/// The tier changes with their time, and the highest stress with its reason and the
/// top rogue then.
fn summary(timeline: &[Reading], escalations: usize) -> String {
    let mut out = String::new();
    let mut tier = "SENTINEL";
    for r in timeline {
        if r.tier != tier {
            let _ = write!(out, "{:.1} s {} · ", r.at, r.tier);
            tier = &r.tier;
        }
    }
    if let Some(peak) = timeline.iter().max_by(|a, b| a.stress.total_cmp(&b.stress)) {
        let _ = write!(out, "peak stress {:.1} at {:.1} s ({}; top {})", peak.stress, peak.at, peak.machine, peak.top);
    }
    let _ = write!(out, " · {escalations} escalation(s)");
    out
}
