//! The stalls, each with a known culprit (or none). Every scenario starts its own server
//! in the setup it is given, makes its stall, waits for its hogs to end (or ends them)
//! and hands over what to judge. Where a scenario varies (how long, which CPU, how
//! many), [`vary`] picks a different setting from run to run, so that no one lucky
//! setting passes every run; the expected answer says which was made.

use std::time::{Duration, SystemTime};

use crate::{
    cgroup::Cgroup,
    hogs::Hog,
    lab::{Expected, Trial},
    server::{Server, Setup},
};

/// Longest a hog may run past its own time-out before the scenario gives up on it.
const HOG_LIMIT: Duration = Duration::from_secs(20);

/// One of `choices`, a different one from run to run (the clock's nanoseconds).
fn vary<T: Copy>(choices: &[T]) -> T {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    choices[nanos as usize % choices.len()]
}

/// Two real-time hogs, one pinned per CPU, for `seconds`; returns once both ended.
fn starve(seconds: f64) -> Vec<u32> {
    let mut hogs = [Hog::realtime("0", seconds), Hog::realtime("1", seconds)];
    for hog in &mut hogs {
        hog.wait(HOG_LIMIT);
    }
    hogs.iter().map(Hog::pid).collect()
}

/// Two `chrt -f 50` busy loops, one per CPU, for 4 or 5 s: ordinary threads, the
/// sentinel's included, get only the fair server's ~50 ms a second, so every tick is
/// ~0.95 s late.
pub fn rt_starvation(setup: Setup) -> Trial {
    let server = Server::start(setup);
    let before = server.pause_ids();
    let seconds = vary(&[4.0, 5.0]);
    let pids = starve(seconds);
    let expected = Expected::OneOf { pids, what: format!("a python3 real-time hog of {seconds} s") };
    Trial { server, before, expected, cgroup: None }
}

/// Several equal culprits: two real-time hogs, one per CPU, for 2.5, 3 or 4 s: both
/// consumed the whole stall, so both are named.
pub fn equal_hogs(setup: Setup) -> Trial {
    let server = Server::start(setup);
    let before = server.pause_ids();
    let seconds = vary(&[2.5, 3.0, 4.0]);
    let pids = starve(seconds);
    let expected = Expected::AllOf { pids, what: format!("both python3 real-time hogs of {seconds} s") };
    Trial { server, before, expected, cgroup: None }
}

/// The machine is starved for 2 s, then works normally for 12 s, then pmon-server alone
/// is stopped (SIGSTOP) for 3 s: no process froze the machine, and the hogs are long gone.
pub fn server_stopped(setup: Setup) -> Trial {
    let server = Server::start(setup);
    starve(2.0);
    std::thread::sleep(Duration::from_secs(12));
    let before = server.pause_ids();
    server.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    server.signal(libc::SIGCONT);
    let expected = Expected::Held { cause: "STALL_CAUSE_SERVER_SUSPENDED", what: "stopped 3 s".into() };
    Trial { server, before, expected, cgroup: None }
}

/// pmon-server's own cgroup (the v1 freezer, as `docker pause` and systemd's freeze use)
/// is frozen for 2, 3 or 4 s while one ordinary busy loop runs on either CPU and nobody
/// waits for anything: not a machine freeze, and the busy loop is no culprit.
pub fn server_frozen(setup: Setup) -> Trial {
    let freezer = Cgroup::freezer();
    let server = Server::start_in_cgroup(setup, freezer.path());
    let (seconds, cpu) = (vary(&[2.0, 3.0, 4.0]), vary(&["0", "1"]));
    let mut busy = Hog::ordinary(cpu, seconds + 4.0, 0);
    std::thread::sleep(Duration::from_secs(2));
    let before = server.pause_ids();
    freezer.freeze(true);
    std::thread::sleep(Duration::from_secs_f64(seconds));
    freezer.freeze(false);
    busy.wait(HOG_LIMIT);
    let what = format!("frozen {seconds} s beside a busy loop on CPU {cpu}");
    Trial::held(server, before, ("STALL_CAUSE_SERVER_FROZEN", what), freezer)
}

/// pmon-server's cgroup may use 50 ms of CPU a second; an ordinary busy loop in the same
/// group takes it all for 3 or 4 s: the server is held up by its quota, the machine is not.
pub fn server_throttled(setup: Setup) -> Trial {
    let quota = Cgroup::cpu_quota(50, 1000);
    let server = Server::start_in_cgroup(setup, quota.path());
    let before = server.pause_ids();
    let (seconds, cpu) = (vary(&[3.0, 4.0]), vary(&["0", "1"]));
    let mut busy = Hog::ordinary_in(quota.path(), cpu, seconds);
    busy.wait(HOG_LIMIT);
    let what = format!("throttled by a busy loop of {seconds} s in its own group");
    Trial::held(server, before, ("STALL_CAUSE_SERVER_THROTTLED", what), quota)
}

/// One real-time process with two busy threads (one per CPU) starves the machine for
/// 3 s and exits: it is gone when pmon looks for it.
pub fn culprit_exits(setup: Setup) -> Trial {
    let server = Server::start(setup);
    let before = server.pause_ids();
    let mut hog = Hog::realtime("0,1", 3.0);
    hog.wait(HOG_LIMIT);
    let expected = Expected::OneOf { pids: vec![hog.pid()], what: "the two-thread python3 real-time hog".into() };
    Trial { server, before, expected, cgroup: None }
}

/// A decoy at ordinary priority burns both CPUs and grows by 1.5 GB for 5 s, exits, and
/// 10 s later two real-time hogs starve the machine for 4 s.
pub fn decoy(setup: Setup) -> Trial {
    let server = Server::start(setup);
    let mut decoy = Hog::ordinary("0,1", 5.0, 1500);
    decoy.wait(HOG_LIMIT);
    std::thread::sleep(Duration::from_secs(10));
    let before = server.pause_ids();
    let pids = starve(4.0);
    let what = format!("a python3 real-time hog, not the decoy {}", decoy.pid());
    Trial { server, before, expected: Expected::OneOf { pids, what }, cgroup: None }
}

/// A real-time bash parent spawns 0.4 s real-time children, a pair (one per CPU) every
/// 0.2 s, for 4 s: no child lives long, the tree as a whole starves the machine.
pub fn fork_tree(setup: Setup) -> Trial {
    let server = Server::start(setup);
    let before = server.pause_ids();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("children");
    let mut parent = Hog::fork_tree(4, 0.4, 0.2, &file);
    parent.wait(HOG_LIMIT);
    let children: Vec<u32> = std::fs::read_to_string(&file)
        .expect("the parent wrote its children's pids")
        .lines()
        .map(|l| l.parse().expect("a pid"))
        .collect();
    let what = format!("the bash parent {} or one of its {} children", parent.pid(), children.len());
    let pids = std::iter::once(parent.pid()).chain(children).collect();
    Trial { server, before, expected: Expected::OneOf { pids, what }, cgroup: None }
}

/// pmon-server shares a 400 MB memory cgroup (its OOM killer off) with a shell whose
/// 4, 5 or 6 children take 250, 200 or 170 MB each at once: together they fill it within a
/// fraction of a second, between two samples at the defaults, and freeze everything in
/// it for 3 s. One of the shell's tree is to blame.
pub fn memory_burst(setup: Setup) -> Trial {
    let cgroup = Cgroup::memory_frozen_at_limit(400);
    let server = Server::start_in_cgroup(setup, cgroup.path());
    let before = server.pause_ids();
    let (count, mb) = vary(&[(4, 250), (5, 200), (6, 170)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("children");
    let shell = Hog::memory_burst_in(cgroup.path(), count, mb, &file);
    let deadline = std::time::Instant::now() + HOG_LIMIT;
    while !cgroup.at_limit() {
        assert!(std::time::Instant::now() < deadline, "the burst did not fill its cgroup within {HOG_LIMIT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(3));
    let children: Vec<u32> = std::fs::read_to_string(&file)
        .expect("the shell wrote its children's pids")
        .lines()
        .map(|l| l.parse().expect("a pid"))
        .collect();
    let what = format!("the shell {} or one of its {count} children of {mb} MB", shell.pid());
    let pids = std::iter::once(shell.pid()).chain(children).collect();
    drop(shell);
    Trial { server, before, expected: Expected::OneOf { pids, what }, cgroup: Some(cgroup) }
}

/// pmon-server runs in a 400 MB memory cgroup whose OOM killer is off; a memory hog in
/// the same cgroup fills it. Reclaim takes the server's own code pages (file-backed:
/// there is no swap for anonymous memory), and every process of the cgroup that then
/// needs a page waits at the limit: the server freezes until the hog is killed, 3 s on.
/// (Plain thrashing, the OOM killer on, is no reliable stall: hogs of 330, 385 and
/// 392 MB in a 400 MB cgroup gave no stall, one 0.8 s stall, and an OOM kill at once.)
pub fn memory_cgroup(setup: Setup) -> Trial {
    let cgroup = Cgroup::memory_frozen_at_limit(400);
    let server = Server::start_in_cgroup(setup, cgroup.path());
    let before = server.pause_ids();
    let hog = Hog::memory_in(cgroup.path(), 4096);
    let deadline = std::time::Instant::now() + HOG_LIMIT;
    while !cgroup.at_limit() {
        assert!(std::time::Instant::now() < deadline, "the memory hog did not fill its cgroup within {HOG_LIMIT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(3));
    let expected = Expected::OneOf { pids: vec![hog.pid()], what: "the python3 memory hog of the cgroup".into() };
    drop(hog);
    Trial { server, before, expected, cgroup: Some(cgroup) }
}
