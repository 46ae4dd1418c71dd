//! The stall's own accounting on the real /proc: the CPU time of children that ran
//! unseen, found in their parent's reaped time.

use std::time::{Duration, Instant};

use super::{super::ProcCollector, Shell};
use crate::collect::Collector;

#[test]
fn a_child_that_ran_unseen_shows_in_its_parents_reaped_time() {
    // The shell's child counts to 200 000 (~0.3 s of CPU here, however loaded the
    // machine) and is reaped between the two samples, never read.
    let dir = tempfile::tempdir().expect("tempdir");
    let done = dir.path().join("done");
    let shell = Shell::start(&format!(
        "sleep 0.3; sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done'; touch '{}'; exec sleep 60",
        done.display()
    ));
    let mut c = ProcCollector::new("/proc");
    c.collect().expect("first");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done.exists() {
        assert!(Instant::now() < deadline, "the child did not finish within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = c.collect().expect("second");
    let found = s.processes.iter().find(|p| p.pid == shell.pid()).and_then(|p| p.usage).and_then(|u| u.reaped);
    drop(shell);
    let reaped = found.expect("the shell's reaped time");
    assert!(reaped.cpu >= Duration::from_millis(50), "{reaped:?}");
    assert_eq!(reaped.child, None, "the sleep read first was no runner: the unread child's time is the shell's");
}
