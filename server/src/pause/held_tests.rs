use std::{path::Path, time::Duration};

use super::*;

/// The cgroup v1 layout of this kind of machine (a tmpfs of v1 hierarchies plus the
/// unified one), trimmed.
const HYBRID_MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
const V2_MOUNTS: &str =
    "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    dir
}

const STAT: &str =
    "cpu  100 0 50 9000 10 0 5 250 0 0\ncpu0 50 0 25 4500 5 0 2 125 0 0\ncpu1 50 0 25 4500 5 0 3 125 0 0\nintr 1 2 3\n";

#[test]
fn hybrid_v1_throttling_and_freezer_are_found_through_mountinfo() {
    let root = tree(&[
        ("proc/self/cgroup", "5:freezer:/lab\n4:memory:/lab\n3:cpu:/lab/quota\n2:cpuacct:/\n0::/\n"),
        ("sys/fs/cgroup/memory/lab/memory.failcnt", "17\n"),
        ("proc/self/mountinfo", HYBRID_MOUNTS),
        ("proc/stat", STAT),
        ("sys/fs/cgroup/cpu/lab/quota/cpu.stat", "nr_periods 40\nnr_throttled 12\nthrottled_time 1500000000\n"),
        ("sys/fs/cgroup/freezer/lab/freezer.state", "THAWED\n"),
    ]);
    let r = HeldReader::open(root.path());
    let before = r.read();
    assert_eq!(before.throttled, Some(Duration::from_millis(750)), "1.5 s summed over the 2 CPUs");
    assert_eq!(before.steal, Some(Duration::from_millis(1250)), "250 ticks of USER_HZ over 2 CPUs");
    std::fs::write(
        root.path().join("sys/fs/cgroup/cpu/lab/quota/cpu.stat"),
        "nr_periods 70\nnr_throttled 40\nthrottled_time 4400000000\n",
    )
    .expect("write");
    let held = r.held(&before, &r.read());
    assert_eq!(held.throttled, Some(Duration::from_millis(1450)), "2.9 s more, over 2 CPUs");
    assert_eq!(held.steal, Some(Duration::ZERO));
    assert_eq!(
        held.limit_hits,
        Some((0, root.path().join("sys/fs/cgroup/memory/lab/memory.failcnt").display().to_string()))
    );
    assert_eq!(held.freezer.as_deref(), Some("cgroup v1 freezer /lab"));
    assert!(held.unknown.is_empty(), "{:?}", held.unknown);
}

#[test]
fn v2_reads_throttled_usec_and_cgroup_freeze() {
    let root = tree(&[
        ("proc/self/cgroup", "0::/user.slice/pmon.service\n"),
        ("proc/self/mountinfo", V2_MOUNTS),
        ("proc/stat", STAT),
        ("sys/fs/cgroup/user.slice/pmon.service/cpu.stat", "usage_usec 9\nnr_throttled 3\nthrottled_usec 700000\n"),
        ("sys/fs/cgroup/user.slice/pmon.service/cgroup.freeze", "0\n"),
        ("sys/fs/cgroup/user.slice/pmon.service/memory.events", "low 0\nhigh 0\nmax 31\noom 2\noom_kill 2\n"),
    ]);
    let r = HeldReader::open(root.path());
    assert_eq!(r.read().throttled, Some(Duration::from_millis(350)));
    assert_eq!(r.read().limit_hits, Some(31), "memory.events: its max line");
    let held = r.held(&r.read(), &r.read());
    assert_eq!(held.freezer.as_deref(), Some("cgroup v2 cgroup.freeze of /user.slice/pmon.service"));
}

#[test]
fn the_root_group_cannot_be_frozen() {
    // The kernel gives the root group no freezer file, in v1 and v2 alike.
    let root = tree(&[
        ("proc/self/cgroup", "5:freezer:/\n3:cpu:/\n0::/\n"),
        ("proc/self/mountinfo", HYBRID_MOUNTS),
        ("proc/stat", STAT),
        ("sys/fs/cgroup/cpu/cpu.stat", "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n"),
        ("sys/fs/cgroup/freezer/tasks", "1\n"),
    ]);
    let r = HeldReader::open(root.path());
    let held = r.held(&r.read(), &r.read());
    assert_eq!((held.freezer, held.throttled), (None, Some(Duration::ZERO)));
}

#[test]
fn a_container_mount_shows_its_subtree_at_its_top() {
    let mounts = "50 40 0:26 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n";
    let root = tree(&[
        ("proc/self/cgroup", "0::/docker/abc\n"),
        ("proc/self/mountinfo", mounts),
        ("proc/stat", STAT),
        ("sys/fs/cgroup/cpu.stat", "nr_throttled 1\nthrottled_usec 10\n"),
        ("sys/fs/cgroup/cgroup.freeze", "0\n"),
    ]);
    let r = HeldReader::open(root.path());
    assert_eq!(r.read().throttled, Some(Duration::from_micros(5)));
    let held = r.held(&r.read(), &r.read());
    assert_eq!(held.freezer.as_deref(), Some("cgroup v2 cgroup.freeze of /docker/abc"), "the container's own group");
    // In a cgroup namespace the group reads as "/", and it can still be frozen.
    let ns = tree(&[
        ("proc/self/cgroup", "0::/\n"),
        ("proc/self/mountinfo", "50 40 0:26 / /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n"),
        ("proc/stat", STAT),
        ("sys/fs/cgroup/cgroup.freeze", "0\n"),
    ]);
    let r = HeldReader::open(ns.path());
    assert!(r.held(&r.read(), &r.read()).freezer.is_some());
    // A path is below a mount root by whole components only.
    let other = tree(&[
        ("proc/self/cgroup", "0::/docker/abcd\n"),
        ("proc/self/mountinfo", mounts),
        ("proc/stat", STAT),
        ("sys/fs/cgroup/docker/abcd/cpu.stat", "throttled_usec 4\n"),
    ]);
    assert_eq!(HeldReader::open(other.path()).read().throttled, Some(Duration::from_micros(2)));
}

#[test]
fn the_groups_are_found_again_when_the_server_is_moved() {
    let mut files = vec![("proc/self/cgroup", "3:cpu:/a\n"), ("proc/self/mountinfo", HYBRID_MOUNTS)];
    files.extend([("proc/stat", STAT), ("sys/fs/cgroup/cpu/a/cpu.stat", "throttled_time 2000\n")]);
    files.push(("sys/fs/cgroup/cpu/b/cpu.stat", "throttled_time 8000\n"));
    let root = tree(&files);
    let r = HeldReader::open(root.path());
    let before = r.read();
    std::fs::write(root.path().join("proc/self/cgroup"), "3:cpu:/b\n").expect("write");
    let after = r.read();
    assert_eq!(after.throttled, Some(Duration::from_nanos(4000)), "b's figure, read from b");
    let held = r.held(&before, &after);
    assert_eq!(held.throttled, None, "two groups' counters are not one growth");
    assert!(held.unknown.iter().any(|u| u.contains("moved to another group")), "{:?}", held.unknown);
}

#[test]
fn missing_unreadable_or_garbled_files_leave_none_with_a_reason() {
    // No cgroups at all, and a garbled /proc/stat.
    let root = tree(&[("proc/self/cgroup", ""), ("proc/self/mountinfo", ""), ("proc/stat", "cpu x y\n")]);
    let r = HeldReader::open(root.path());
    let held = r.held(&r.read(), &r.read());
    assert_eq!((held.throttled, held.steal, held.freezer.as_deref()), (None, None, None));
    let why = held.unknown.join("; ");
    assert!(why.contains("throttling: pmon-server is in no group of the cpu controller"), "{why}");
    assert!(why.contains("steal:") && why.contains("proc/stat"), "{why}");
    assert!(why.contains("freezer:"), "{why}");

    // A cpu.stat that lost its figure, and no /proc at all.
    let garbled = tree(&[
        ("proc/self/cgroup", "3:cpu:/lab\n"),
        ("proc/self/mountinfo", HYBRID_MOUNTS),
        ("sys/fs/cgroup/cpu/lab/cpu.stat", "nr_periods 4\nthrottled_time many\n"),
    ]);
    let r = HeldReader::open(garbled.path());
    let held = r.held(&r.read(), &r.read());
    assert_eq!(held.throttled, None);
    assert!(held.unknown.iter().any(|u| u.contains("cpu.stat unreadable or garbled")), "{:?}", held.unknown);
    let nothing = HeldReader::open(Path::new("/nonexistent-root"));
    let held = nothing.held(&nothing.read(), &nothing.read());
    assert_eq!(held.unknown.len(), 4, "throttling, memory limit, steal, freezer: {:?}", held.unknown);
}

#[test]
#[cfg(target_os = "linux")]
fn this_machine_reads_without_error() {
    let r = HeldReader::open(Path::new("/"));
    let c = r.read();
    assert!(c.steal.is_some(), "/proc/stat has a cpu line");
}

#[test]
fn oom_kills_are_counted_across_the_freeze_and_unknown_without_the_counter() {
    let root = tree(&[
        ("proc/self/cgroup", "0::/\n"),
        ("proc/self/mountinfo", V2_MOUNTS),
        ("proc/stat", STAT),
        ("proc/vmstat", "pgfault 10\noom_kill 3\nthp_fault_alloc 0\n"),
    ]);
    let r = HeldReader::open(root.path());
    let before = r.read();
    std::fs::write(root.path().join("proc/vmstat"), "pgfault 99\noom_kill 5\n").expect("write");
    assert_eq!(r.held(&before, &r.read()).oom_kills, Some(2));
    // A kernel before 4.13 has no such line: unknown, never 0.
    std::fs::write(root.path().join("proc/vmstat"), "pgfault 120\n").expect("write");
    assert_eq!(r.held(&before, &r.read()).oom_kills, None);
}
