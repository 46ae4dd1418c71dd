//! The watcher hub: the ring buffer plus a bounded broadcast to every watcher.
//!
//! ```text
//! sampler thread ── publish ──► [ lock: ring.push + broadcast.send ] ──► watcher streams
//!                                 ▲
//! WatchSamples ── subscribe ──────┘ (same lock: copy ring + subscribe)
//! ```
//!
//! Publishing and subscribing take the same short lock, so a new watcher's snapshot and
//! its live receiver meet exactly: no gap, no duplicate. The broadcast never blocks the
//! sampler; a watcher that falls more than its queue behind loses the oldest samples
//! and its stream reports them as one `Missed` item, found from the gap in sequence
//! numbers.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{Stream, stream};
use pmon_proto::v1::{Missed, Sample, WatchSamplesResponse, watch_samples_response::Item};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::engine::ring::Ring;

/// Shared between the sampler (publisher) and the gRPC service (subscribers).
#[derive(Debug)]
pub struct Hub {
    inner: Mutex<Inner>,
    missed: AtomicU64,
    /// This run's `server_instance`, stamped on every stream item.
    instance: u64,
}

#[derive(Debug)]
struct Inner {
    ring: Ring<Arc<Sample>>,
    /// `None` once the hub is closed: streams end and new watchers are refused.
    tx: Option<broadcast::Sender<Arc<Sample>>>,
    last_sequence: Option<u64>,
}

/// A new watcher: what it must see first, then its live receiver.
#[derive(Debug)]
pub struct Subscription {
    backlog: VecDeque<Arc<Sample>>,
    rx: broadcast::Receiver<Arc<Sample>>,
    /// The sequence number just before the first one this watcher must get; a later
    /// sample that does not follow on is a gap to report.
    baseline: u64,
}

impl Hub {
    /// A hub keeping `ring` of history, with a queue of `queue` samples per watcher,
    /// for the server run identified by `instance`.
    pub fn new(ring: Duration, queue: usize, instance: u64) -> Self {
        let (tx, _) = broadcast::channel(queue.max(1));
        Self {
            inner: Mutex::new(Inner { ring: Ring::new(ring), tx: Some(tx), last_sequence: None }),
            missed: AtomicU64::new(0),
            instance,
        }
    }

    /// This run's `server_instance`.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The critical sections cannot panic half-way; a poisoned lock's data is intact.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a sample taken at `at` to the ring and sends it to every watcher. Never
    /// waits for a watcher.
    pub fn publish(&self, at: Instant, sample: Arc<Sample>) {
        let mut inner = self.lock();
        inner.last_sequence = Some(sample.sequence);
        inner.ring.push(at, Arc::clone(&sample));
        if let Some(tx) = &inner.tx {
            // An error only means nobody is watching right now.
            let _ = tx.send(sample);
        }
    }

    /// Registers a watcher. `after`: resume after this sequence number (a number beyond
    /// the newest sample, e.g. from before a server restart, counts as unset).
    /// `None` once the hub is closed.
    pub fn subscribe(&self, after: Option<u64>) -> Option<Subscription> {
        let inner = self.lock();
        let rx = inner.tx.as_ref()?.subscribe();
        let after = after.filter(|a| inner.last_sequence.is_some_and(|last| *a <= last));
        let backlog: VecDeque<Arc<Sample>> =
            inner.ring.iter().filter(|s| after.is_none_or(|a| s.sequence > a)).cloned().collect();
        // Sequences start at 1. Without `after`, the watcher wants the ring and what
        // follows, so the baseline is just before the ring (or the newest sample).
        let baseline = after.unwrap_or_else(|| match backlog.front() {
            Some(first) => first.sequence - 1,
            None => inner.last_sequence.unwrap_or(0),
        });
        Some(Subscription { backlog, rx, baseline })
    }

    /// A copy of the ring as it is now, oldest first: what a pause freezes.
    pub fn frozen(&self) -> Vec<Arc<Sample>> {
        self.lock().ring.iter().cloned().collect()
    }

    /// Watchers connected now.
    pub fn watchers(&self) -> usize {
        self.lock().tx.as_ref().map_or(0, broadcast::Sender::receiver_count)
    }

    /// Samples lost by slow watchers since start, summed over watchers.
    pub fn missed_total(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }

    /// Ends every stream (after what it has queued) and refuses new watchers.
    pub fn close(&self) {
        self.lock().tx = None;
    }
}

impl Subscription {
    /// The watcher's stream: the backlog, then live samples, with `Missed` items for
    /// gaps. Ends when the hub closes.
    pub fn into_stream(self, hub: Arc<Hub>) -> impl Stream<Item = WatchSamplesResponse> + Send {
        struct State {
            sub: Subscription,
            last: u64,
            held: Option<Arc<Sample>>,
            hub: Arc<Hub>,
        }
        let last = self.baseline;
        stream::unfold(State { sub: self, last, held: None, hub }, |mut st| async move {
            loop {
                let sample = match st.held.take().or_else(|| st.sub.backlog.pop_front()) {
                    Some(s) => s,
                    None => match st.sub.rx.recv().await {
                        Ok(s) => s,
                        Err(RecvError::Lagged(n)) => {
                            st.hub.missed.fetch_add(n, Ordering::Relaxed);
                            continue;
                        }
                        Err(RecvError::Closed) => return None,
                    },
                };
                let last = st.last;
                if sample.sequence <= last {
                    continue;
                }
                if sample.sequence > last + 1 {
                    // Report the gap first, then deliver the sample on the next poll.
                    let missed = Missed { first_sequence: last + 1, count: sample.sequence - last - 1 };
                    st.last = sample.sequence - 1;
                    st.held = Some(sample);
                    let item = WatchSamplesResponse {
                        sequence: st.last,
                        server_instance: st.hub.instance,
                        item: Some(Item::Missed(missed)),
                    };
                    return Some((item, st));
                }
                st.last = sample.sequence;
                let item = WatchSamplesResponse {
                    sequence: sample.sequence,
                    server_instance: st.hub.instance,
                    item: Some(Item::Sample((*sample).clone())),
                };
                return Some((item, st));
            }
        })
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
