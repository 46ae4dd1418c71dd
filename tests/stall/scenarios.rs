//! The stalls, each with a known culprit. Every scenario starts its own server, makes
//! its stall, waits for its hogs to end (or ends them) and hands over what to judge.

use std::time::Duration;

use crate::{
    cgroup::MemoryCgroup,
    hogs::Hog,
    lab::{Expected, Trial},
    server::Server,
};

/// Longest a hog may run past its own time-out before the scenario gives up on it.
const HOG_LIMIT: Duration = Duration::from_secs(20);

/// Two real-time hogs, one pinned per CPU, for `seconds`; returns once both ended.
fn starve(seconds: f64) -> Vec<u32> {
    let mut hogs = [Hog::realtime("0", seconds), Hog::realtime("1", seconds)];
    for hog in &mut hogs {
        hog.wait(HOG_LIMIT);
    }
    hogs.iter().map(Hog::pid).collect()
}

/// Two `chrt -f 50` busy loops, one per CPU, for 4 s: ordinary threads, the sentinel's
/// included, get only the fair server's ~50 ms a second, so every tick is ~0.95 s late.
pub fn rt_starvation() -> Trial {
    let server = Server::start();
    let before = server.pause_ids();
    let pids = starve(4.0);
    let expected = Expected::OneOf { pids, what: "a python3 real-time hog".into() };
    Trial { server, before, expected, cgroup: None }
}

/// The machine is starved for 2 s, then works normally for 12 s, then pmon-server alone
/// is stopped (SIGSTOP) for 3 s: no process froze the machine, and the hogs are long gone.
pub fn server_stopped() -> Trial {
    let server = Server::start();
    starve(2.0);
    std::thread::sleep(Duration::from_secs(12));
    let before = server.pause_ids();
    server.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    server.signal(libc::SIGCONT);
    Trial { server, before, expected: Expected::ServerSuspended, cgroup: None }
}

/// One real-time process with two busy threads (one per CPU) starves the machine for
/// 3 s and exits: it is gone when pmon looks for it.
pub fn culprit_exits() -> Trial {
    let server = Server::start();
    let before = server.pause_ids();
    let mut hog = Hog::realtime("0,1", 3.0);
    hog.wait(HOG_LIMIT);
    let expected = Expected::OneOf { pids: vec![hog.pid()], what: "the two-thread python3 real-time hog".into() };
    Trial { server, before, expected, cgroup: None }
}

/// A decoy at ordinary priority burns both CPUs and grows by 1.5 GB for 5 s, exits, and
/// 10 s later two real-time hogs starve the machine for 4 s.
pub fn decoy() -> Trial {
    let server = Server::start();
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
pub fn fork_tree() -> Trial {
    let server = Server::start();
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

/// pmon-server runs in a 400 MB memory cgroup whose OOM killer is off; a memory hog in
/// the same cgroup fills it. Reclaim takes the server's own code pages (file-backed:
/// there is no swap for anonymous memory), and every process of the cgroup that then
/// needs a page waits at the limit: the server freezes until the hog is killed, 3 s on.
/// (Plain thrashing, the OOM killer on, is no reliable stall: hogs of 330, 385 and
/// 392 MB in a 400 MB cgroup gave no stall, one 0.8 s stall, and an OOM kill at once.)
pub fn memory_cgroup() -> Trial {
    let cgroup = MemoryCgroup::frozen_at_limit(400);
    let server = Server::start_in_cgroup(cgroup.path());
    let before = server.pause_ids();
    let hog = Hog::memory_in(cgroup.path(), 4096);
    let deadline = std::time::Instant::now() + HOG_LIMIT;
    while !cgroup.under_oom() {
        assert!(std::time::Instant::now() < deadline, "the memory hog did not fill its cgroup within {HOG_LIMIT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(3));
    let expected = Expected::OneOf { pids: vec![hog.pid()], what: "the python3 memory hog of the cgroup".into() };
    drop(hog);
    Trial { server, before, expected, cgroup: Some(cgroup) }
}
