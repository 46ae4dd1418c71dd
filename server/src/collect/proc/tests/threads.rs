//! The stall's own accounting on the real /proc: the waits of every thread, and the
//! CPU time of children that ran unseen, found in their parent's reaped time.

use std::time::{Duration, Instant};

use super::super::ProcCollector;
use crate::collect::Collector;

/// Pins the calling thread to CPU 0.
fn pin_to_cpu0() {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes within it, and
    // sched_setaffinity(0, …) only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        assert_eq!(libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set), 0, "pin to CPU 0");
    }
}

#[test]
fn the_waits_of_threads_other_than_the_main_one_count() {
    let mut c = ProcCollector::new("/proc");
    c.collect().expect("first");
    // Two threads spin for 0.4 s on one CPU: each waits for the other about half of it,
    // while the main thread sleeps (its own schedstat shows no wait). They live on until
    // the second sample: a thread that exits takes its waits with it.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let done_rx = std::sync::Arc::new(std::sync::Mutex::new(done_rx));
    let spin = || {
        let done = std::sync::Arc::clone(&done_rx);
        std::thread::spawn(move || {
            pin_to_cpu0();
            let start = Instant::now();
            let mut x = 0u64;
            while start.elapsed() < Duration::from_millis(400) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            // Ends when the sender is dropped.
            let _ = done.lock().map(|rx| rx.recv());
        })
    };
    let (a, b) = (spin(), spin());
    std::thread::sleep(Duration::from_millis(1000));
    let s = c.collect().expect("second");
    drop(done_tx);
    a.join().expect("spinner");
    b.join().expect("spinner");
    let me = s.processes.iter().find(|p| p.pid == std::process::id()).expect("self listed");
    let waited = me.usage.and_then(|u| u.run_delay).expect("run delay");
    assert!(waited >= Duration::from_millis(150), "the spinners waited for each other: {waited:?}");
}

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
