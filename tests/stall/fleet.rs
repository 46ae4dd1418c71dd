//! The fleet path on a real freeze: a real Prometheus scrapes two real pmon servers
//! (with the shipped rules) while the machine is starved, and sees both count the
//! pause and `PmonPauseRecorded` fire for both.

#[path = "../shared/prometheus.rs"]
mod prom;

use std::time::{Duration, Instant};

use crate::{
    hogs::Hog,
    server::{Server, Setup},
};

#[test]
#[ignore = "makes a real stall: needs root (chrt) and starves the machine; run one at a time by scripts/test"]
fn prometheus_alerts_on_a_real_freeze() {
    let ports = [prom::free_port(), prom::free_port()];
    let targets: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let servers: Vec<Server> = targets.iter().map(|t| Server::start_with(Setup::Lab, &["--metrics", t])).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_prometheus, address) = prom::start(dir.path(), &targets);
    prom::wait_up(&address, 2, Duration::from_secs(60));
    let before: Vec<_> = servers.iter().map(Server::pause_ids).collect();

    // Both CPUs taken by real-time busy loops for 3 s: the whole machine freezes.
    let mut hogs = [Hog::realtime("0", 3.0), Hog::realtime("1", 3.0)];
    for hog in &mut hogs {
        hog.wait(Duration::from_secs(20));
    }
    for (server, before) in servers.iter().zip(&before) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.pause_ids().len() == before.len() {
            assert!(Instant::now() < deadline, "no pause recorded:\n{}", server.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counted = prom::query(&address, "pmon_pauses_total");
        let firing = prom::query(&address, "ALERTS{alertname=\"PmonPauseRecorded\",alertstate=\"firing\"}");
        if counted.len() == 2 && counted.iter().all(|(_, v)| *v >= 1.0) && firing.len() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "pauses counted {counted:?}, alerts firing {firing:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
