//! The dashboard's listener: transitions as server-sent event frames, fanned out through one
//! bounded queue, and the last few transitions of each circuit for the page's timelines.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use breaker_core::{Event, Reason};
use serde::Serialize;
use tokio::sync::broadcast;

/// Transitions kept per circuit for its timeline.
const STEPS_PER_CIRCUIT: usize = 8;
/// Circuits whose timelines are kept: those that moved last. At 100,000 tenants a provider's
/// outage moves them all; the page shows the open ones first, and a timeline of a few hundred
/// bytes each caps this at a few MiB.
const TIMELINES: usize = 10_000;

/// The events a [`Dashboard`](super::Dashboard) streams to browsers: register
/// [`listener`](Feed::listener) on the registry's builder and give the feed to the dashboard.
///
/// Every browser reads the same bounded queue ([`capacity`](Feed::with_capacity) frames, 1024
/// unless set): a browser that reads slowly, or a connection that stalled, loses the oldest
/// frames it had not read (counted in [`dropped`](Feed::dropped), and told to the page, which
/// reloads), never blocks the call that made a transition, and never grows the server's memory.
///
/// ```
/// use std::sync::Arc;
/// use breaker::dashboard::{Dashboard, Feed};
/// use breaker::Registry;
///
/// let feed = Feed::new();
/// let registry = Arc::new(Registry::builder().listener(feed.listener()).build());
/// let dashboard: axum::Router = Dashboard::new(registry).feed(feed).router();
/// ```
#[derive(Clone)]
pub struct Feed(pub(crate) Arc<Shared>);

pub(crate) struct Shared {
    tx: broadcast::Sender<Frame>,
    timelines: Mutex<Timelines>,
    dropped: AtomicU64,
    capacity: usize,
}

/// One server-sent event, serialized once by the listener and shared by every subscriber.
pub(crate) type Frame = Arc<(&'static str, String)>;

/// One transition of a circuit, as the JSON API and the events carry it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Step {
    pub(crate) from: &'static str,
    pub(crate) to: &'static str,
    pub(crate) reason: &'static str,
    /// Into `open`: the period of this trip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) open_for_ms: Option<u64>,
    /// Into `open`: the backoff level.
    pub(crate) level: u32,
    /// Wall-clock time, milliseconds since the Unix epoch (the browser shows "12 s ago").
    pub(crate) at_ms: u64,
}

#[derive(Serialize)]
struct TransitionData<'a> {
    provider: &'a str,
    tenant: &'a str,
    #[serde(flatten)]
    step: &'a Step,
}

/// A provider's tenants → (sequence number of its last step, its last steps, oldest first).
type Tenants = HashMap<Box<str>, (u64, VecDeque<Step>)>;

#[derive(Default)]
struct Timelines {
    by_provider: HashMap<&'static str, Tenants>,
    /// Circuits in the order they last moved, with the sequence number of that move: entries
    /// whose number is no longer the circuit's are stale and skipped.
    order: VecDeque<(u64, &'static str, Box<str>)>,
    len: usize,
    seq: u64,
}

impl Timelines {
    fn push(&mut self, provider: &'static str, tenant: &str, step: Step) {
        self.seq += 1;
        let seq = self.seq;
        let tenants = self.by_provider.entry(provider).or_default();
        match tenants.get_mut(tenant) {
            Some((last, steps)) => {
                *last = seq;
                if steps.len() == STEPS_PER_CIRCUIT {
                    steps.pop_front();
                }
                steps.push_back(step);
            }
            None => {
                tenants.insert(tenant.into(), (seq, VecDeque::from([step])));
                self.len += 1;
            }
        }
        self.order.push_back((seq, provider, tenant.into()));
        while self.len > TIMELINES {
            let Some((seq, provider, tenant)) = self.order.pop_front() else {
                break;
            };
            let Some(tenants) = self.by_provider.get_mut(provider) else {
                continue;
            };
            if tenants.get(&*tenant).is_some_and(|(last, _)| *last == seq) {
                tenants.remove(&*tenant);
                self.len -= 1;
                if tenants.is_empty() {
                    self.by_provider.remove(provider);
                }
            }
        }
        // Stale entries of circuits that moved again: drop them before they outnumber the rest.
        if self.order.len() > 2 * TIMELINES.max(self.len) {
            let by_provider = &self.by_provider;
            self.order.retain(|(seq, provider, tenant)| {
                by_provider
                    .get(provider)
                    .and_then(|t| t.get(&**tenant))
                    .is_some_and(|(last, _)| last == seq)
            });
        }
    }

    fn get(&self, provider: &str, tenant: &str) -> Option<&VecDeque<Step>> {
        self.by_provider
            .get(provider)?
            .get(tenant)
            .map(|(_, steps)| steps)
    }
}

impl Feed {
    /// A feed whose queue holds 1024 frames.
    pub fn new() -> Feed {
        Feed::with_capacity(1024)
    }

    /// A feed whose queue holds `capacity` frames, rounded up to a power of two: what a browser
    /// that stopped reading may fall behind by before it loses the oldest.
    ///
    /// ```
    /// use breaker::dashboard::Feed;
    ///
    /// assert_eq!(Feed::with_capacity(64).capacity(), 64);
    /// assert_eq!(Feed::with_capacity(100).capacity(), 128);
    /// ```
    pub fn with_capacity(capacity: usize) -> Feed {
        let capacity = capacity.max(1).next_power_of_two();
        let (tx, _) = broadcast::channel(capacity);
        Feed(Arc::new(Shared {
            tx,
            timelines: Mutex::default(),
            dropped: AtomicU64::new(0),
            capacity,
        }))
    }

    /// How many frames a subscriber may fall behind by.
    pub fn capacity(&self) -> usize {
        self.0.capacity
    }

    /// Frames that subscribers lost because they fell behind, all subscribers together, since
    /// the feed was made.
    ///
    /// ```
    /// use breaker::dashboard::Feed;
    ///
    /// assert_eq!(Feed::new().dropped(), 0);
    /// ```
    pub fn dropped(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }

    /// The listener to register with
    /// [`RegistryBuilder::listener`](crate::RegistryBuilder::listener). It keeps transitions
    /// (rejections and slow calls, which come with every call of an open or slow provider, are
    /// left to the tracing and metrics listeners) and costs the thread that made one a short
    /// lock and one JSON serialization; it never waits for a browser.
    ///
    /// ```
    /// use breaker::dashboard::Feed;
    /// use breaker::Registry;
    ///
    /// let feed = Feed::new();
    /// let registry = Registry::builder().listener(feed.listener()).build();
    /// # let _ = registry;
    /// ```
    pub fn listener(&self) -> impl Fn(&Event<'_>) + Send + Sync + 'static {
        let shared = Arc::clone(&self.0);
        move |event: &Event<'_>| {
            if let Event::Transition {
                provider,
                tenant,
                from,
                to,
                reason,
                open_for,
                level,
                ..
            } = *event
            {
                let step = Step {
                    from: from.as_str(),
                    to: to.as_str(),
                    reason: reason_str(reason),
                    open_for_ms: open_for.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    level,
                    at_ms: now_ms(),
                };
                shared.transition(provider, tenant, step);
            }
        }
    }
}

impl Shared {
    fn transition(&self, provider: &'static str, tenant: &str, step: Step) {
        let data = TransitionData {
            provider,
            tenant,
            step: &step,
        };
        let frame = serde_json::to_string(&data).map(|data| Arc::new(("transition", data)));
        lock(&self.timelines).push(provider, tenant, step);
        if let Ok(frame) = frame {
            self.publish(frame);
        }
    }

    /// Queues `frame` for every subscriber; with none, it is simply dropped.
    pub(crate) fn publish(&self, frame: Frame) {
        let _ = self.tx.send(frame);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Frame> {
        self.tx.subscribe()
    }

    pub(crate) fn count_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// The last transitions of (`provider`, `tenant`), oldest first, if it moved lately.
    pub(crate) fn timeline(&self, provider: &str, tenant: &str) -> Vec<Step> {
        lock(&self.timelines)
            .get(provider, tenant)
            .map(|steps| steps.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// A listener that panicked while holding the lock left whole timelines behind (each push
/// finishes its own edits before the next), so a poisoned lock is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn reason_str(reason: Reason) -> &'static str {
    reason.as_str()
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new()
    }
}

impl fmt::Debug for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feed")
            .field("capacity", &self.capacity())
            .field("subscribers", &self.0.tx.receiver_count())
            .field("dropped", &self.dropped())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(level: u32) -> Step {
        Step {
            from: "closed",
            to: "open",
            reason: "failure_rate",
            open_for_ms: Some(1000),
            level,
            at_ms: 0,
        }
    }

    #[test]
    fn timelines_keep_the_last_steps_of_the_circuits_that_moved_last() {
        let mut t = Timelines::default();
        for level in 0..20 {
            t.push("p", "a", step(level));
        }
        let steps = t.get("p", "a").unwrap();
        assert_eq!(steps.len(), STEPS_PER_CIRCUIT);
        assert_eq!(steps.back().unwrap().level, 19);
        for i in 0..TIMELINES + 10 {
            t.push("p", &format!("t{i}"), step(0));
        }
        assert_eq!(t.len, TIMELINES);
        assert!(
            t.get("p", "a").is_none(),
            "the circuit that moved first went"
        );
        assert!(t.get("p", "t9").is_none());
        assert!(t.get("p", "t10").is_some());
        assert!(t.order.len() <= 2 * TIMELINES);
    }

    #[test]
    fn a_circuit_that_keeps_moving_does_not_grow_the_order() {
        let mut t = Timelines::default();
        for level in 0..(5 * TIMELINES as u32) {
            t.push("p", "flapping", step(level));
        }
        assert_eq!(t.len, 1);
        assert!(t.order.len() <= 2 * TIMELINES);
    }
}
