use std::time::Duration;

use super::*;
use crate::collect::proc::parse;

const TICK: Duration = Duration::from_millis(100);
const GIB: u64 = 1 << 30;

fn calm() -> Figures {
    Figures {
        psi_some_micros: Some(1_000_000),
        meminfo: parse::MemInfo { available: Some(20 * GIB), total: Some(24 * GIB), ..parse::MemInfo::default() },
        group: GroupFigures { usage: Some(100 << 20), limit: Some(400 << 20) },
    }
}

#[test]
fn calm_memory_asks_for_nothing() {
    let mut now = calm();
    now.psi_some_micros = Some(1_000_000 + 9_000);
    now.meminfo.available = Some(20 * GIB - (1 << 30));
    now.group.usage = Some(120 << 20);
    assert_eq!(rising(&calm(), &now, TICK), None, "9 ms of stall, 1 GiB taken, 20 MiB in the group");
}

#[test]
fn each_fast_move_asks_for_a_sample_and_says_why() {
    let mut psi = calm();
    psi.psi_some_micros = Some(1_000_000 + 12_000);
    assert_eq!(rising(&calm(), &psi, TICK).as_deref(), Some("tasks waited 12 ms for memory within one tick"));
    let mut fell = calm();
    fell.meminfo.available = Some(18 * GIB);
    assert_eq!(rising(&calm(), &fell, TICK).as_deref(), Some("available memory fell 2048 MiB within one tick"));
    let mut taken = calm();
    taken.group.usage = Some(258 << 20);
    assert_eq!(rising(&calm(), &taken, TICK).as_deref(), Some("its memory group took 158 MiB within one tick"));
}

#[test]
fn figures_that_cannot_be_read_are_no_change() {
    let unknown = Figures::default();
    assert_eq!(rising(&unknown, &calm(), TICK), None);
    assert_eq!(rising(&calm(), &unknown, TICK), None);
    // A group without a limit (v2 "max" does not parse): growth is no share of it.
    let (mut before, mut now) = (calm(), calm());
    before.group.limit = None;
    now.group.limit = None;
    now.group.usage = Some(8 * GIB);
    assert_eq!(rising(&before, &now, TICK), None);
}

#[test]
fn a_burst_is_followed_tick_by_tick_but_lasting_pressure_is_not_sampled_every_tick() {
    let dir = tempfile::tempdir().expect("tempdir");
    let usage = dir.path().join("sys/fs/cgroup/memory/lab/memory.usage_in_bytes");
    std::fs::create_dir_all(usage.parent().expect("parent")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("proc/self")).expect("mkdir");
    std::fs::write(dir.path().join("proc/self/cgroup"), "4:memory:/lab\n").expect("write");
    std::fs::write(
        dir.path().join("proc/self/mountinfo"),
        "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
    )
    .expect("write");
    std::fs::write(usage.with_file_name("memory.limit_in_bytes"), "400000000\n").expect("write");
    std::fs::write(&usage, "0\n").expect("write");
    let group = held::HeldReader::open(dir.path()).memory_group();
    assert!(group.is_some(), "the fixture's memory group");
    let mut urges = Urges::open(dir.path(), group);
    let mut asked = Vec::new();
    // The group takes 100 MB a tick for ten ticks of 100 ms.
    for i in 1..=10u64 {
        std::fs::write(&usage, format!("{}\n", i * 100_000_000)).expect("write");
        asked.push(urges.tick(Duration::from_millis(i * 100), TICK).is_some());
    }
    assert_eq!(asked.iter().filter(|a| **a).count(), 3, "three in the burst, then none within 5 s: {asked:?}");
    assert!(asked[0] && asked[1] && asked[2], "{asked:?}");
    std::fs::write(&usage, "2000000000\n").expect("write");
    assert!(urges.tick(Duration::from_millis(5200), TICK).is_some(), "5 s on, it may ask again");
}

#[test]
fn the_watch_reads_a_machine_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write(
        "proc/pressure/memory",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=88797\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=100\n",
    );
    write("proc/meminfo", "MemTotal:       24000000 kB\nMemFree:         1000 kB\nMemAvailable:   20000000 kB\n");
    write("proc/self/cgroup", "4:memory:/lab\n0::/\n");
    write("proc/self/mountinfo", "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n");
    write("sys/fs/cgroup/memory/lab/memory.usage_in_bytes", "419430400\n");
    write("sys/fs/cgroup/memory/lab/memory.limit_in_bytes", "419430400\n");
    write("sys/fs/cgroup/memory/lab/memory.failcnt", "1571\n");
    let f = MemoryWatch::open(dir.path(), held::HeldReader::open(dir.path()).memory_group()).read();
    assert_eq!(
        f,
        Figures {
            psi_some_micros: Some(88_797),
            meminfo: parse::MemInfo {
                available: Some(20_000_000 * 1024),
                total: Some(24_000_000 * 1024),
                ..parse::MemInfo::default()
            },
            group: GroupFigures { usage: Some(400 << 20), limit: Some(400 << 20) },
        }
    );
    // No such machine: nothing known, nothing asked.
    assert_eq!(MemoryWatch::open(&dir.path().join("none"), None).read(), Figures::default());
}
