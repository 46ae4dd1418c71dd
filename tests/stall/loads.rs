//! The stress lab's loads: each bounded in time, each with the tier it should reach
//! and whom an escalation should name. Quiet loads must stay SENTINEL: high CPU alone
//! is not stress, contention is.

use std::{any::Any, path::Path, process::Command};

use crate::{
    cgroup::Cgroup,
    hogs::{Hog, python},
    stress::{Load, Named},
};

/// Nothing but the machine's own: SENTINEL.
pub fn idle() -> Load {
    Load { hogs: vec![], seconds: 8.0, expected: "SENTINEL", named: Named::Nobody, _keep: vec![] }
}

/// A person at a shell: a directory walk every 0.3 s for 10 s. SENTINEL.
pub fn light() -> Load {
    let walk = "end=$(( $(date +%s) + 10 )); while [ $(date +%s) -lt $end ]; do \
                find /usr -maxdepth 3 > /dev/null; sleep 0.3; done";
    let hog = Hog::spawn(Command::new("sh").args(["-c", walk]));
    Load { hogs: vec![hog], seconds: 10.0, expected: "SENTINEL", named: Named::Nobody, _keep: vec![] }
}

/// One busy loop on two CPUs for 10 s: busy, yet nobody waits. SENTINEL.
pub fn one_hog() -> Load {
    Load { hogs: vec![Hog::busy_loop(10)], seconds: 10.0, expected: "SENTINEL", named: Named::Nobody, _keep: vec![] }
}

/// What `make -j48` does: a shell with 48 busy children for 12 s. ELEVATED, the shell's
/// tree named.
pub fn build_storm() -> Load {
    let storm = "for i in $(seq 48); do timeout -s KILL 12 sh -c 'while :; do :; done' & done; wait";
    let hog = Hog::spawn(Command::new("bash").args(["-c", storm]));
    let shell = hog.pid();
    Load {
        hogs: vec![hog],
        seconds: 12.0,
        expected: "ELEVATED",
        named: Named::OneOf { pids: vec![shell], command: "", what: format!("bash[{shell}] and its 48 children") },
        _keep: vec![],
    }
}

/// Eight separate busy loops on two CPUs for 12 s: four waiting for each CPU. ELEVATED,
/// a loop (or their parent, this test) named.
pub fn hog_fleet() -> Load {
    let hogs: Vec<Hog> = (0..8).map(|_| Hog::busy_loop(12)).collect();
    let mut pids: Vec<u32> = hogs.iter().map(Hog::pid).collect();
    pids.push(std::process::id());
    Load {
        hogs,
        seconds: 12.0,
        expected: "ELEVATED",
        named: Named::OneOf { pids, command: "sh", what: "a busy loop or their parent".into() },
        _keep: vec![],
    }
}

/// Two writers of direct (uncached) I/O for 12 s: every write waits for the disk.
/// ELEVATED, a writer named.
pub fn io_flood() -> Load {
    let dir = tempfile::tempdir_in("/var/tmp").expect("a directory on disk");
    let hogs: Vec<Hog> = (0..2)
        .map(|i| {
            let out = format!("of={}", dir.path().join(format!("flood{i}")).display());
            Hog::spawn(Command::new("timeout").args(["-s", "KILL", "12", "dd", "if=/dev/zero", &out]).args([
                "bs=1M",
                "count=100000",
                "oflag=direct",
                "status=none",
            ]))
        })
        .collect();
    Load {
        hogs,
        seconds: 12.0,
        expected: "ELEVATED",
        named: Named::OneOf { pids: vec![], command: "dd", what: "a dd writer".into() },
        _keep: vec![Box::new(dir)],
    }
}

/// A memory cgroup of 256 MB (OOM killer on, as a unit's `MemoryMax`), a process in it
/// holding 200 MB and reading an 800 MB file over and over for 12 s: the group's cache
/// is reclaimed and read again. ELEVATED, the reader named.
pub fn memory_squeeze() -> Load {
    let dir = tempfile::tempdir_in("/var/tmp").expect("a directory on disk");
    let file = dir.path().join("big");
    // Written around the page cache, so every read of it in the group goes to the disk.
    let out = format!("of={}", file.display());
    let made =
        Command::new("dd").args(["if=/dev/zero", &out, "bs=1M", "count=800", "oflag=direct", "status=none"]).status();
    assert!(made.expect("dd").success(), "cannot write the squeeze's file");
    let squeeze = r#"
import sys, time
end = time.monotonic() + 12
held = bytearray(200 << 20)
for i in range(0, len(held), 4096): held[i] = 1
while time.monotonic() < end:
    with open(sys.argv[1], "rb") as f:
        while f.read(1 << 20) and time.monotonic() < end: pass
"#;
    in_memory_group((squeeze, &file), "ELEVATED", "the reader", Box::new(dir))
}

/// Thrashing: 1 GB of swap switched on, a memory cgroup of 256 MB, and a process in it
/// touching 400 MB of its own memory over and over for 12 s: every pass swaps it out
/// and in again. CRITICAL, the thrasher named.
pub fn thrash() -> Load {
    let swap = Swap::on(1024);
    let thrash = r#"
import sys, time
end = time.monotonic() + 12
touched = bytearray(400 << 20)
while time.monotonic() < end:
    for i in range(0, len(touched), 4096): touched[i] = (touched[i] + 1) & 255
"#;
    in_memory_group((thrash, Path::new("-")), "CRITICAL", "the thrasher", Box::new(swap))
}

/// A 12-second load: python3 running `script` with `arg` in a new 256 MB memory group;
/// it should reach `expected`, naming the process (`role`). `after` (a file, the swap)
/// goes once the group and its process are gone.
fn in_memory_group((script, arg): (&str, &Path), expected: &'static str, role: &str, after: Box<dyn Any>) -> Load {
    let cgroup = Cgroup::memory_limited(256);
    let hog = in_cgroup(cgroup.path(), script, arg);
    let pid = hog.pid();
    Load {
        hogs: vec![hog],
        seconds: 12.0,
        expected,
        named: Named::OneOf { pids: vec![pid], command: "", what: format!("{role} [{pid}]") },
        // Dropped in order: the group (and its process) first.
        _keep: vec![Box::new(cgroup), after],
    }
}

/// A real-time busy loop and an ordinary one, both on CPU 1, for 10 s: the ordinary one
/// gets only what the kernel's fair server leaves it. CRITICAL, the real-time one named.
pub fn rt_starvation() -> Load {
    let rt = Hog::realtime("1", 10.0);
    let starved = Hog::ordinary("1", 10.0, 0);
    let pid = rt.pid();
    Load {
        hogs: vec![rt, starved],
        seconds: 10.0,
        expected: "CRITICAL",
        // By pid: the starved loop is a python3 too.
        named: Named::OneOf { pids: vec![pid], command: "", what: format!("the real-time loop [{pid}]") },
        _keep: vec![],
    }
}

/// python3 running `script` with `arg`, inside the cgroup-v1 directory `cgroup` (the
/// pid stays the same: `sh` execs python).
fn in_cgroup(cgroup: &Path, script: &str, arg: &Path) -> Hog {
    Hog::spawn(
        Command::new("sh")
            .args(["-c", r#"echo $$ > "$1/cgroup.procs" && shift && exec "$@""#, "sh"])
            .arg(cgroup)
            .arg(python())
            .args(["-c", script])
            .arg(arg),
    )
}

/// A swap file, on while it lives.
struct Swap {
    file: tempfile::TempPath,
}

impl Swap {
    fn on(mb: u64) -> Swap {
        let file = tempfile::NamedTempFile::new_in("/var/tmp").expect("a swap file").into_temp_path();
        let path = file.to_str().expect("utf-8 path").to_string();
        for (tool, args) in [
            ("fallocate", vec!["-l".to_string(), format!("{mb}M"), path.clone()]),
            ("mkswap", vec![path.clone()]),
            ("swapon", vec![path.clone()]),
        ] {
            let out = Command::new(tool).args(&args).output().unwrap_or_else(|e| panic!("{tool}: {e}"));
            assert!(out.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Swap { file }
    }
}

impl Drop for Swap {
    fn drop(&mut self) {
        let _ = Command::new("swapoff").arg(&*self.file).status();
    }
}
