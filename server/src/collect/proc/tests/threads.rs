//! The run delay of every thread on the real /proc: a process's waits are its
//! threads' summed, not its main thread's alone.

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
