//! Groups scored beside processes (SPEC §3.2, §3.10 "Groups"): a storm of small
//! processes under one parent — a build with `-j48`, a shell loop forking workers —
//! scores as one rogue, `make[4120] and 48 children`, from its members' sums. The tree
//! is found the way attribution finds the tree that shares a freeze's blame.

use std::collections::HashMap;

use pmon_proto::{
    config::Config,
    v1::{Factor, ProcessFactors, ProcessGroup, ProcessState, Rogue},
};

use super::score;
use crate::{
    attribution::trees::{self, Tree},
    collect::ProcessRecord,
};

/// A tree scores as a group only once its members use this much CPU together (percent
/// of one core): below it, a group of idle helpers would crowd the rogue table.
const MIN_CPU_PERCENT: f64 = 50.0;

/// The tree that holds most of the sample's CPU, as a rogue, if there is one; `server`
/// is pmon-server's pid (neither it, what it started, nor its ancestors form a group).
pub fn rogue(processes: &[ProcessRecord], elapsed_secs: Option<f64>, config: &Config, server: u32) -> Option<Rogue> {
    let parents: HashMap<u32, (Option<u32>, usize)> =
        processes.iter().enumerate().map(|(i, p)| (p.pid, (p.ppid, i))).collect();
    let consumers = processes.iter().filter_map(|p| p.factors.cpu_percent.filter(|c| *c > 0.0).map(|c| (p.pid, c)));
    let lineage = |pid: u32| trees::ancestry(pid, |p| parents.get(&p).and_then(|(ppid, _)| *ppid));
    let Tree { root, members, weight } = trees::heaviest(consumers, lineage, server, MIN_CPU_PERCENT)?;
    let root_record = parents.get(&root).map(|(_, i)| &processes[*i]);
    let member_records = members.iter().filter_map(|pid| parents.get(pid).map(|(_, i)| &processes[*i]));
    let record = ProcessRecord {
        pid: root,
        command: root_record.map_or_else(|| "?".to_string(), |r| r.command.clone()),
        // A group runs while its members do: the running multiplier, no state factor.
        state: ProcessState::Running,
        factors: sum(root_record.into_iter().chain(member_records)),
        ppid: root_record.and_then(|r| r.ppid),
        scheduling: None,
        kernel_thread: false,
        usage: None,
    };
    let (score, explanation) = score::score(&record, &config.scoring);
    let suspect = config.suspects.matches(&record.command);
    Some(Rogue {
        pid: root,
        group: Some(ProcessGroup {
            kind: "tree".into(),
            name: trees::tree_name(&record.command, root, members.len()),
            processes: u32::try_from(members.len()).unwrap_or(u32::MAX),
            cpu_ms: elapsed_secs.map_or(0.0, |s| weight / 100.0 * s * 1000.0),
            root_pid: root,
        }),
        command: record.command,
        state: ProcessState::Running as i32,
        score,
        selected_by: vec![Factor::Cpu as i32],
        factors: Some(record.factors),
        explanation,
        suspect,
    })
}

/// The members' factors added up; a factor none of them has stays unavailable.
fn sum<'a>(records: impl Iterator<Item = &'a ProcessRecord>) -> ProcessFactors {
    fn add<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        }
    }
    records.fold(ProcessFactors::default(), |acc, r| {
        let f = &r.factors;
        ProcessFactors {
            cpu_percent: add(acc.cpu_percent, f.cpu_percent),
            pageins_per_sec: add(acc.pageins_per_sec, f.pageins_per_sec),
            mem_bytes: add(acc.mem_bytes, f.mem_bytes),
            cmprs_bytes: add(acc.cmprs_bytes, f.cmprs_bytes),
            csw_per_sec: add(acc.csw_per_sec, f.csw_per_sec),
            sysbsd_per_sec: add(acc.sysbsd_per_sec, f.sysbsd_per_sec),
            threads: add(acc.threads, f.threads),
            disk_read_bytes_per_sec: add(acc.disk_read_bytes_per_sec, f.disk_read_bytes_per_sec),
            disk_write_bytes_per_sec: add(acc.disk_write_bytes_per_sec, f.disk_write_bytes_per_sec),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, ppid: u32, command: &str, cpu: f64) -> ProcessRecord {
        ProcessRecord {
            pid,
            command: command.into(),
            state: ProcessState::Running,
            factors: ProcessFactors { cpu_percent: Some(cpu), mem_bytes: Some(1 << 20), ..Default::default() },
            ppid: Some(ppid),
            scheduling: None,
            kernel_thread: false,
            usage: None,
        }
    }

    #[test]
    fn a_storm_of_small_children_is_one_rogue_named_by_its_parent() {
        let mut processes =
            vec![process(1, 0, "init", 0.0), process(100, 1, "sshd", 0.1), process(4120, 100, "bash", 0.5)];
        processes.extend((0..48).map(|i| process(5000 + i, 4120, "sh", 4.1)));
        processes.push(process(900, 1, "pmon-server", 1.0));
        let rogue = rogue(&processes, Some(2.0), &Config::default(), 900).expect("the storm is a group");
        let group = rogue.group.as_ref().expect("a group rogue");
        assert_eq!(group.name, "bash[4120] and 48 children");
        assert_eq!((rogue.pid, group.processes), (4120, 48));
        let cpu = rogue.factors.and_then(|f| f.cpu_percent).expect("cpu summed");
        assert!((cpu - (48.0 * 4.1 + 0.5)).abs() < 1e-6, "{cpu}");
        assert_eq!(rogue.factors.and_then(|f| f.mem_bytes), Some(49 << 20));
        assert!((group.cpu_ms - 48.0 * 4.1 / 100.0 * 2000.0).abs() < 1e-6, "{}", group.cpu_ms);
        // cpu 197 % caps at the cpu weight, times the running multiplier.
        assert!((rogue.score - (25.0 + 15.0 * 49.0 / 8192.0) * 0.9).abs() < 1e-6, "{}", rogue.score);
    }

    #[test]
    fn one_busy_process_or_a_light_tree_is_no_group() {
        let busy = vec![process(1, 0, "init", 0.0), process(10, 1, "bash", 0.0), process(11, 10, "hog", 100.0)];
        assert_eq!(rogue(&busy, Some(1.0), &Config::default(), 999), None);
        let light: Vec<_> = std::iter::once(process(10, 1, "bash", 0.0))
            .chain((0..10).map(|i| process(20 + i, 10, "helper", 2.0)))
            .collect();
        assert_eq!(rogue(&light, Some(1.0), &Config::default(), 999), None, "10 × 2 % is below the group minimum");
    }

    #[test]
    fn what_the_server_started_and_its_ancestors_are_never_a_group() {
        let mut processes = vec![process(50, 1, "systemd", 0.0), process(60, 50, "pmon-server", 1.0)];
        processes.extend((0..5).map(|i| process(70 + i, 60, "sudo", 30.0)));
        processes.extend((0..5).map(|i| process(80 + i, 50, "worker", 30.0)));
        // The workers sit under systemd, the server's parent: no root holds them.
        assert_eq!(rogue(&processes, Some(1.0), &Config::default(), 60), None);
    }
}
