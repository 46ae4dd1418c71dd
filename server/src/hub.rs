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
//!
//! A stream item goes out already encoded: a sample's `WatchSamplesResponse` is the
//! same for every watcher, so it is built and encoded once, by the first watcher that
//! needs it, and the others send the same bytes. Only `Missed` items, which differ per
//! watcher, are encoded by each.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, OnceLock, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{Stream, stream};
use pmon_proto::v1::{Missed, Sample, WatchSamplesResponse, watch_samples_response::Item};
use prost::{Message, bytes::Bytes};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::ring::Ring;

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
    ring: Ring<Arc<Published>>,
    /// `None` once the hub is closed: streams end and new watchers are refused.
    tx: Option<broadcast::Sender<Arc<Published>>>,
    last_sequence: Option<u64>,
}

/// A sample as the ring and every watcher share it.
#[derive(Debug)]
struct Published {
    sample: Arc<Sample>,
    /// Its stream item, encoded when a watcher first needs it (nobody pays for it
    /// while nobody watches).
    encoded: OnceLock<Bytes>,
}

impl Published {
    fn encoded(&self, instance: u64) -> Bytes {
        self.encoded
            .get_or_init(|| {
                let item = Item::Sample((*self.sample).clone());
                encode(WatchSamplesResponse {
                    sequence: self.sample.sequence,
                    server_instance: instance,
                    item: Some(item),
                })
            })
            .clone()
    }
}

fn encode(response: WatchSamplesResponse) -> Bytes {
    Bytes::from(response.encode_to_vec())
}

/// One stream item: a `WatchSamplesResponse` in its protobuf encoding, sent as it is.
#[derive(Debug, Clone)]
pub struct EncodedResponse(pub Bytes);

/// A new watcher: what it must see first, then its live receiver.
#[derive(Debug)]
pub struct Subscription {
    backlog: VecDeque<Arc<Published>>,
    rx: broadcast::Receiver<Arc<Published>>,
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
        let published = Arc::new(Published { sample, encoded: OnceLock::new() });
        inner.ring.push(at, Arc::clone(&published));
        if let Some(tx) = &inner.tx {
            // An error only means nobody is watching right now.
            let _ = tx.send(published);
        }
    }

    /// Registers a watcher. `after`: resume after this sequence number (a number beyond
    /// the newest sample, e.g. from before a server restart, counts as unset).
    /// `None` once the hub is closed.
    pub fn subscribe(&self, after: Option<u64>) -> Option<Subscription> {
        let inner = self.lock();
        let rx = inner.tx.as_ref()?.subscribe();
        let after = after.filter(|a| inner.last_sequence.is_some_and(|last| *a <= last));
        let backlog: VecDeque<Arc<Published>> =
            inner.ring.iter().filter(|p| after.is_none_or(|a| p.sample.sequence > a)).cloned().collect();
        // Sequences start at 1. Without `after`, the watcher wants the ring and what
        // follows, so the baseline is just before the ring (or the newest sample).
        let baseline = after.unwrap_or_else(|| match backlog.front() {
            Some(first) => first.sample.sequence - 1,
            None => inner.last_sequence.unwrap_or(0),
        });
        Some(Subscription { backlog, rx, baseline })
    }

    /// A copy of the ring as it is now, oldest first: what a pause freezes.
    pub fn frozen(&self) -> Vec<Arc<Sample>> {
        self.lock().ring.iter().map(|p| Arc::clone(&p.sample)).collect()
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
    pub fn into_stream(self, hub: Arc<Hub>) -> impl Stream<Item = EncodedResponse> + Send {
        struct State {
            sub: Subscription,
            last: u64,
            held: Option<Arc<Published>>,
            hub: Arc<Hub>,
        }
        let last = self.baseline;
        stream::unfold(State { sub: self, last, held: None, hub }, |mut st| async move {
            loop {
                let published = match st.held.take().or_else(|| st.sub.backlog.pop_front()) {
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
                let (last, sequence) = (st.last, published.sample.sequence);
                if sequence <= last {
                    continue;
                }
                if sequence > last + 1 {
                    // Report the gap first, then deliver the sample on the next poll.
                    let missed = Missed { first_sequence: last + 1, count: sequence - last - 1 };
                    st.last = sequence - 1;
                    st.held = Some(published);
                    let item = encode(WatchSamplesResponse {
                        sequence: st.last,
                        server_instance: st.hub.instance,
                        item: Some(Item::Missed(missed)),
                    });
                    return Some((EncodedResponse(item), st));
                }
                st.last = sequence;
                let item = published.encoded(st.hub.instance);
                return Some((EncodedResponse(item), st));
            }
        })
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
