use super::*;

#[test]
fn many_children_of_one_parent_are_named_as_a_tree() {
    let mut r = Recent::default();
    let shell = ProcessRecord { pid: 100, command: "bash".into(), ppid: Some(1), ..ProcessRecord::default() };
    let make = ProcessRecord { pid: 200, command: "make".into(), ppid: Some(100), ..ProcessRecord::default() };
    for i in 0..4u32 {
        let children: Vec<ProcessRecord> =
            (0..3).map(|k| child_of(fifo(proc(300 + i * 3 + k, "cc1", 1000, 300, 0)), 200)).collect();
        let mut all = vec![shell.clone(), make.clone()];
        all.extend(children);
        r.add(t(f64::from(i)), &all, &waiting(f64::from(i)), &mut |_| None);
    }
    let v = attribute(&stall(1.0, 3.0), &r, &[], Duration::from_secs(1), SERVER, None);
    assert_eq!(v.groups.len(), 1, "{:?}", v.groups);
    let g = &v.groups[0];
    assert_eq!(
        (g.kind.as_str(), g.name.as_str(), g.root_pid, g.processes),
        ("tree", "make[200] and 9 children", 200, 9)
    );
}

#[test]
fn a_tree_holds_together_after_the_processes_between_its_root_and_its_busy_leaves_exit() {
    // bash → timeout → sh busy loop, six times; by the time the escalation is
    // attributed, the loops and their timeouts are all gone, the loops last seen
    // orphaned.
    let bash = ProcessRecord { pid: 100, command: "bash".into(), ppid: Some(1), ..ProcessRecord::default() };
    let running = |i: u32| {
        let mut all = vec![bash.clone()];
        for k in 0..6u32 {
            let waiter =
                ProcessRecord { pid: 200 + k, command: "timeout".into(), ppid: Some(100), ..Default::default() };
            all.push(waiter);
            all.push(child_of(proc(300 + k, "sh", 1000, 330, 670), 200 + k));
        }
        (f64::from(i), all)
    };
    let mut samples: Vec<(f64, Vec<ProcessRecord>)> = (0..4).map(running).collect();
    // Each timeout died first: its loop was read once more, handed to init.
    let orphans = (0..6u32).map(|k| child_of(proc(300 + k, "sh", 1000, 330, 670), 1));
    samples.push((4.0, std::iter::once(bash.clone()).chain(orphans).collect()));
    samples.push((5.0, vec![bash.clone()]));
    let r = recent(samples);
    let blamed = escalation((t(1.0), t(5.0)), Duration::from_secs(1), (&r, &[]), SERVER, None);
    let g: Vec<(&str, u32)> = blamed.groups.iter().map(|g| (g.name.as_str(), g.root_pid)).collect();
    assert_eq!(g, [("bash[100] and 6 children", 100)], "{:?}", blamed.groups);
}
