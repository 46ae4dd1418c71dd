//! Every process is a zombie for a moment as it exits, until its parent reaps it; only a
//! zombie left unreaped for a while says something is wrong (a parent that does not
//! wait for its children). This remembers when each zombie was first seen.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use pmon_proto::v1::ProcessState;

use crate::collect::ProcessRecord;

/// When each current zombie was first seen as one.
#[derive(Debug, Default)]
pub struct Zombies {
    since: HashMap<u32, Instant>,
}

impl Zombies {
    /// The zombies of this sample that have been zombies for less than `grace`.
    pub fn young(&mut self, processes: &[ProcessRecord], now: Instant, grace: Duration) -> HashSet<u32> {
        let mut since = HashMap::with_capacity(self.since.len());
        let mut young = HashSet::new();
        for p in processes.iter().filter(|p| p.state == ProcessState::Zombie) {
            let first = self.since.get(&p.pid).copied().unwrap_or(now);
            since.insert(p.pid, first);
            if now.saturating_duration_since(first) < grace {
                young.insert(p.pid);
            }
        }
        self.since = since;
        young
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zombie(pid: u32) -> ProcessRecord {
        ProcessRecord { pid, state: ProcessState::Zombie, ..ProcessRecord::default() }
    }

    #[test]
    fn a_zombie_is_young_until_it_has_stayed_unreaped_for_the_grace_period() {
        let (t0, grace) = (Instant::now(), Duration::from_secs(5));
        let mut z = Zombies::default();
        let sleeping = ProcessRecord { pid: 3, state: ProcessState::Sleeping, ..ProcessRecord::default() };
        assert_eq!(z.young(&[zombie(1), sleeping.clone()], t0, grace), HashSet::from([1]));
        assert_eq!(z.young(&[zombie(1), zombie(2)], t0 + Duration::from_secs(4), grace), HashSet::from([1, 2]));
        assert_eq!(z.young(&[zombie(1), zombie(2)], t0 + Duration::from_secs(5), grace), HashSet::from([2]));
        // Reaped, then the pid is a zombie again later: a new one.
        assert_eq!(z.young(&[sleeping], t0 + Duration::from_secs(6), grace), HashSet::new());
        assert_eq!(z.young(&[zombie(1)], t0 + Duration::from_secs(7), grace), HashSet::from([1]));
    }
}
