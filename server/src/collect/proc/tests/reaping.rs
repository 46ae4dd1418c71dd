//! The stall's own accounting on the real /proc: the CPU time of children that ran
//! unseen, found in their parent's reaped time.

use std::time::Duration;

use super::super::ProcCollector;
use crate::collect::Collector;

#[test]
fn a_child_that_ran_unseen_shows_in_its_parents_reaped_time() {
    // The shell's child burns ~0.4 s and is reaped between the two samples, never read.
    let mut shell = std::process::Command::new("sh")
        .args(["-c", "sleep 0.3; timeout 0.4 sh -c 'while :; do :; done'; exec sleep 60"])
        .spawn()
        .expect("spawn sh");
    let mut c = ProcCollector::new("/proc");
    c.collect().expect("first");
    std::thread::sleep(Duration::from_millis(1200));
    let s = c.collect().expect("second");
    let found = s.processes.iter().find(|p| p.pid == shell.id()).and_then(|p| p.usage).and_then(|u| u.reaped);
    shell.kill().expect("kill");
    shell.wait().expect("reap");
    let reaped = found.expect("the shell's reaped time");
    assert!(reaped.cpu >= Duration::from_millis(250), "{reaped:?}");
    assert_eq!(reaped.child, None, "the sleep read first was no runner: the unread child's time is the shell's");
}
