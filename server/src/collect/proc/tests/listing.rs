//! Which processes a sample reads: listing /proc, reusing the last list, trying new
//! pids, and telling threads from processes.

use super::*;

#[test]
fn a_listing_that_fails_is_reported_and_the_next_sample_lists_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, away) = (dir.path().join("proc"), dir.path().join("away"));
    sync_tree(&fixture("before"), &root);
    let mut c = ProcCollector::with_units(&root, 100.0, 4096);
    let t0 = Instant::now();
    assert_eq!(c.collect_at(t0, SystemTime::UNIX_EPOCH).expect("first").processes.len(), 9);
    // The root cannot be listed, and loadavg cannot tell whether a new pid was handed
    // out: the collector must list, and fails.
    std::fs::rename(&root, &away).expect("move away");
    let loadavg = std::fs::read_to_string(away.join("loadavg")).expect("loadavg");
    std::fs::write(away.join("loadavg"), "").expect("loadavg");
    let e = c.collect_at(t0 + STEP, SystemTime::UNIX_EPOCH + STEP).expect_err("no listing").to_string();
    assert!(e.starts_with("cannot list processes in ") && e.contains("/proc"), "{e}");
    assert_eq!(c.health().last_problem.map(|p| p.1), Some(e));
    // Listable again with the same last pid as before the failure: the list lost with
    // the failure is made afresh all the same.
    std::fs::write(away.join("loadavg"), loadavg).expect("loadavg");
    std::fs::rename(&away, &root).expect("move back");
    let s = c.collect_at(t0 + 2 * STEP, SystemTime::UNIX_EPOCH + 2 * STEP).expect("third");
    assert_eq!(s.processes.len(), 9);
}

/// A collector over `root` that opens every file afresh, so that its listings are
/// counted, after the two fixture samples; the second sample with it.
fn counted_after_both(root: &Path) -> (ProcCollector, RawSample) {
    let mut c = ProcCollector::with_units(root, 100.0, 4096);
    c.files.keep_none();
    let (_, second) = collect_both(&mut c, root);
    (c, second)
}

fn pids(s: &RawSample) -> Vec<u32> {
    s.processes.iter().map(|p| p.pid).collect()
}

#[test]
fn the_listing_is_reused_until_a_new_pid_is_handed_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("proc");
    let (mut c, s) = counted_after_both(&root);
    assert_eq!(c.files.listings(), 2, "the last pid moved from 4242 to 1000");
    let t0 = Instant::now();
    let again = |c: &mut ProcCollector, n: u32| {
        let at = STEP * (2 + n);
        c.collect_at(t0 + at, SystemTime::UNIX_EPOCH + at).expect("sample")
    };

    // Same last pid: no listing, the same processes.
    assert_eq!(pids(&again(&mut c, 1)), pids(&s));
    assert_eq!(c.files.listings(), 2);
    // A process exits: still no listing, and it is gone.
    std::fs::remove_dir_all(root.join("600")).expect("exit 600");
    let after_exit = again(&mut c, 2);
    assert!(!pids(&after_exit).contains(&600));
    assert_eq!(pids(&after_exit).len(), s.processes.len() - 1);
    assert_eq!(c.files.listings(), 2);
    // A new pid handed out: listed again, the newcomer seen.
    std::fs::create_dir(root.join("1300")).expect("mkdir 1300");
    let stat = std::fs::read_to_string(root.join("1000/stat")).expect("stat of 1000");
    std::fs::write(root.join("1300/stat"), stat.replacen("1000 (newcomer)", "1300 (later)", 1)).expect("stat");
    std::fs::copy(root.join("1000/status"), root.join("1300/status")).expect("status");
    std::fs::write(root.join("loadavg"), "1.50 0.61 0.38 3/182 1300\n").expect("loadavg");
    assert!(pids(&again(&mut c, 3)).contains(&1300));
    assert_eq!(c.files.listings(), 3, "300 new pids: listed");
}

/// A copy of process 1000 in the tree as `pid`, in thread group `tgid`.
fn add_task(root: &Path, pid: u32, tgid: u32, last_pid: u32) {
    let dir = root.join(pid.to_string());
    std::fs::create_dir(&dir).expect("task directory");
    let stat = std::fs::read_to_string(root.join("1000/stat")).expect("stat of 1000");
    std::fs::write(dir.join("stat"), stat.replacen("1000 (newcomer)", &format!("{pid} (task)"), 1)).expect("stat");
    let status = std::fs::read_to_string(root.join("1000/status")).expect("status of 1000");
    std::fs::write(dir.join("status"), status.replacen("Tgid:\t1000", &format!("Tgid:\t{tgid}"), 1)).expect("status");
    std::fs::write(root.join("loadavg"), format!("1.50 0.61 0.38 3/182 {last_pid}\n")).expect("loadavg");
}

#[test]
fn a_few_new_pids_are_tried_without_listing_and_threads_left_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("proc");
    let (mut c, _) = counted_after_both(&root);
    assert_eq!(c.files.listings(), 2);
    let t0 = Instant::now();
    let mut n = 0;
    let mut again = |c: &mut ProcCollector| {
        n += 1;
        let at = STEP * (2 + n);
        c.collect_at(t0 + at, SystemTime::UNIX_EPOCH + at).expect("sample")
    };

    // Pids 1001 to 1004 handed out: 1002 is a process, 1001 and 1003 exited already,
    // 1004 is a thread of 1000 (it opens under /proc, unlisted).
    add_task(&root, 1002, 1002, 1004);
    add_task(&root, 1004, 1000, 1004);
    let s = again(&mut c);
    assert_eq!(c.files.listings(), 2, "four new pids are tried, not listed");
    assert!(pids(&s).contains(&1002));
    assert!(!pids(&s).contains(&1004), "a thread is not a process");
    assert_eq!(pids(&s).iter().filter(|p| **p == 1000).count(), 1);
    // The newcomer found so reads as a listed one's first reading does.
    let listed = ProcCollector::with_units(&root, 100.0, 4096).collect_at(t0, SystemTime::UNIX_EPOCH).expect("listed");
    let (tried, listed) = (find(&s, 1002), find(&listed, 1002));
    assert_eq!(tried.command, "task");
    assert_eq!(
        (&tried.command, tried.state, &tried.factors, tried.ppid),
        (&listed.command, listed.state, &listed.factors, listed.ppid)
    );
    // It is known from then on; the thread is not tried again.
    let s = again(&mut c);
    assert!(pids(&s).contains(&1002) && !pids(&s).contains(&1004));
    assert_eq!(c.files.listings(), 2);

    // A process given its pid on purpose leaves the last pid alone: the periodic
    // listing finds it.
    add_task(&root, 900_000, 900_000, 1004);
    let mut found_after = None;
    for i in 1..=pids::RELIST {
        if pids(&again(&mut c)).contains(&900_000) {
            found_after = Some(i);
            break;
        }
    }
    assert!(found_after.is_some(), "listed within {} samples", pids::RELIST);
    assert_eq!(c.files.listings(), 3);
}

#[cfg(target_os = "linux")]
#[test]
fn the_real_proc_sees_a_process_started_between_samples() {
    let mut c = ProcCollector::new("/proc");
    c.collect().expect("first");
    let mut child = std::process::Command::new("sleep").arg("60").spawn().expect("spawn sleep");
    // A thread's id comes from the same numbers and opens under /proc, unlisted.
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).expect("send tid");
        let _ = done_rx.recv();
    });
    let tid = u32::try_from(tid_rx.recv().expect("tid")).expect("positive tid");
    // Old enough for its readings to mean something (MIN_RATE_SPAN), young enough to
    // have been born since the first sample.
    std::thread::sleep(Duration::from_millis(100));
    let s = c.collect().expect("second");
    let seen = s.processes.iter().find(|p| p.pid == child.id()).cloned();
    child.kill().expect("kill");
    child.wait().expect("reap");
    done_tx.send(()).expect("end the thread");
    thread.join().expect("thread");
    assert!(!s.processes.iter().any(|p| p.pid == tid), "thread {tid} is no process");
    assert_eq!(s.processes.iter().filter(|p| p.pid == std::process::id()).count(), 1);
    let seen = seen.expect("a new process must be listed");
    let u = seen.usage.expect("born since the last sample: all it did is its usage");
    assert!(u.cpu <= u.span && u.span >= Duration::from_millis(20), "{u:?}");
}
