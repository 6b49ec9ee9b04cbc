//! Sliding windows of outcomes for the rate policies. Both are lock-free, O(1) per record and
//! bounded in memory: the count window keeps one byte per slot, the time window a fixed ring of
//! buckets whatever the call rate.

use std::sync::Arc;

use crate::config::Window;
use crate::flight::Flight;
use crate::sync::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Totals over the window at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub calls: u32,
    pub failures: u32,
    pub slow: u32,
}

impl Totals {
    pub(crate) fn failure_rate(&self) -> f64 {
        ratio(self.failures, self.calls)
    }
    pub(crate) fn slow_rate(&self) -> f64 {
        ratio(self.slow, self.calls)
    }
}

fn ratio(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part.min(whole)) as f64 / whole as f64
    }
}

/// The window of one circuit.
// The circuit keeps its recorder boxed already, so the variants' size difference costs nothing;
// boxing the time window as well would add a second pointer chase to every record.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Recorder {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Recorder {
    pub(crate) fn new(window: Window) -> Self {
        match window {
            Window::Calls(n) => Recorder::Count(CountWindow::new(n)),
            Window::Time(d) => {
                let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                Recorder::Time(TimeWindow::new(us))
            }
        }
    }

    /// Whether the window needs the clock on every record.
    pub(crate) fn is_timed(&self) -> bool {
        matches!(self, Recorder::Time(_))
    }

    #[inline]
    pub(crate) fn record(&self, failure: bool, slow: bool, now_us: u64) {
        match self {
            Recorder::Count(w) => w.record(failure, slow),
            Recorder::Time(w) => w.record(failure, slow, now_us),
        }
    }

    pub(crate) fn totals(&self, now_us: u64) -> Totals {
        match self {
            Recorder::Count(w) => w.totals(),
            Recorder::Time(w) => w.totals(now_us),
        }
    }

    pub(crate) fn clear(&self) {
        match self {
            Recorder::Count(w) => w.clear(),
            Recorder::Time(w) => w.clear(),
        }
    }
}

/// A circuit's window, which a retuned config may replace by a new, empty one of another kind or
/// size (or by none). A replaced window stays allocated, linked from its successor, until the
/// circuit is dropped: a record that read the old window just before the swap still writes valid
/// memory, and nothing has to learn when the last such record is over. Each retuning that
/// changes the window costs its size once per circuit, for the circuit's life.
///
/// The node also carries the circuit's calls in flight ([`Flight`]) when its policy keeps them:
/// made once, and handed on to every later node, so that it lives as long as the circuit.
pub(crate) struct WindowSlot {
    /// The current window's node; null when the circuit never had one.
    current: AtomicPtr<WindowNode>,
}

struct WindowNode {
    recorder: Option<Recorder>,
    /// What `recorder` was made for, to tell whether a new config changes it.
    spec: Option<Window>,
    /// The node this one replaced (owned by this one), or null.
    older: *mut WindowNode,
    /// The circuit's calls in flight, shared by every node from the first that needed it on:
    /// null, or from `Arc::into_raw` (a strong count this node owns). Set once.
    flight: AtomicPtr<Flight>,
}

impl WindowSlot {
    /// A slot holding a new window for `spec`, or none, and the calls in flight if `flight`.
    pub(crate) fn new(spec: Option<Window>, flight: bool) -> Self {
        let current = match (spec, flight) {
            (None, false) => std::ptr::null_mut(),
            _ => WindowNode::boxed(spec, std::ptr::null_mut(), flight.then(Arc::default)),
        };
        WindowSlot {
            current: AtomicPtr::new(current),
        }
    }

    /// The current window, if any.
    #[inline]
    pub(crate) fn get(&self) -> Option<&Recorder> {
        let node = self.current.load(Ordering::Acquire);
        // SAFETY: a non-null `current` was published by `new` or `set` from `Box::into_raw`, and
        // every node stays allocated until the slot is dropped (replaced nodes are owned by
        // their successors), which cannot happen while `&self` is alive.
        unsafe { node.as_ref() }.and_then(|n| n.recorder.as_ref())
    }

    /// The circuit's calls in flight, if a policy ever needed them.
    #[inline]
    pub(crate) fn flight(&self) -> Option<&Flight> {
        let node = self.current.load(Ordering::Acquire);
        // SAFETY: as in `get`.
        unsafe { node.as_ref() }.and_then(WindowNode::flight)
    }

    /// What the current window was made for (`None`: no window).
    pub(crate) fn spec(&self) -> Option<Window> {
        let node = self.current.load(Ordering::Acquire);
        // SAFETY: as in `get`.
        unsafe { node.as_ref() }.and_then(|n| n.spec)
    }

    /// Makes the window a new, empty one for `spec` (or none), unless it is already made for
    /// `spec`; with the calls in flight of the current node, or new ones if `flight` and there
    /// are none yet (given to the current node when its window stays).
    pub(crate) fn set(&self, spec: Option<Window>, flight: bool) {
        let mut current = self.current.load(Ordering::Acquire);
        loop {
            // SAFETY: as in `get`.
            let node = unsafe { current.as_ref() };
            let current_spec = node.and_then(|n| n.spec);
            if current_spec == spec && (node.is_some() || !flight) {
                if let (true, Some(node)) = (flight, node) {
                    node.ensure_flight();
                }
                return;
            }
            let kept = node
                .and_then(WindowNode::flight_arc)
                .or_else(|| flight.then(Arc::default));
            let node = WindowNode::boxed(spec, current, kept);
            match self
                .current
                .compare_exchange(current, node, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => {
                    // SAFETY: `node` was never published; it does not own `current` yet, so its
                    // link is cleared before it is freed.
                    unsafe {
                        (*node).older = std::ptr::null_mut();
                        drop(Box::from_raw(node));
                    }
                    current = actual;
                }
            }
        }
    }
}

impl WindowNode {
    fn boxed(
        spec: Option<Window>,
        older: *mut WindowNode,
        flight: Option<Arc<Flight>>,
    ) -> *mut WindowNode {
        Box::into_raw(Box::new(WindowNode {
            recorder: spec.map(Recorder::new),
            spec,
            older,
            flight: AtomicPtr::new(
                flight.map_or(std::ptr::null_mut(), |f| Arc::into_raw(f).cast_mut()),
            ),
        }))
    }

    fn flight(&self) -> Option<&Flight> {
        // SAFETY: null or from `Arc::into_raw`, whose strong count this node holds until it is
        // dropped, which cannot happen while `&self` is alive.
        unsafe { self.flight.load(Ordering::Acquire).as_ref() }
    }

    /// Another strong count of this node's calls in flight, for the node that replaces it.
    fn flight_arc(&self) -> Option<Arc<Flight>> {
        let p = self.flight.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        // SAFETY: `p` came from `Arc::into_raw` and this node holds a strong count of it (see
        // `flight`); the count taken here is given to the `Arc` made from it.
        unsafe {
            Arc::increment_strong_count(p);
            Some(Arc::from_raw(p))
        }
    }

    /// Gives this node calls in flight if it has none. A retuning racing the swap of this node
    /// may hand the next node none: its circuit then counts from a new `Flight` at its next
    /// retuning (a bound briefly too loose, never a count that leaks or underflows).
    fn ensure_flight(&self) {
        if !self.flight.load(Ordering::Acquire).is_null() {
            return;
        }
        let new = Arc::into_raw(Arc::new(Flight::new())).cast_mut();
        if self
            .flight
            .compare_exchange(
                std::ptr::null_mut(),
                new,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            // SAFETY: `new` came from `Arc::into_raw` above and was never published.
            drop(unsafe { Arc::from_raw(new) });
        }
    }
}

impl Drop for WindowNode {
    fn drop(&mut self) {
        let p = self.flight.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: from `Arc::into_raw`, this node's strong count, given back once.
            drop(unsafe { Arc::from_raw(p) });
        }
    }
}

impl Drop for WindowSlot {
    fn drop(&mut self) {
        let mut node = self.current.load(Ordering::Acquire);
        while !node.is_null() {
            // SAFETY: every node of the chain came from `Box::into_raw` and is owned by the slot
            // (the newest) or by its successor; `&mut self` means no one reads them any more.
            let boxed = unsafe { Box::from_raw(node) };
            node = boxed.older;
        }
    }
}

// SAFETY: the slot owns its nodes, which hold only a `Recorder` and a `Flight` (atomics: `Send +
// Sync`) and the link to the node they own; `&WindowSlot` only ever gives `&Recorder`/`&Flight`.
unsafe impl Send for WindowSlot {}
// SAFETY: as above.
unsafe impl Sync for WindowSlot {}

impl std::fmt::Debug for WindowSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WindowSlot").field(&self.get()).finish()
    }
}

const SLOT_COUNTED: u8 = 1;
const SLOT_FAILURE: u8 = 2;
const SLOT_SLOW: u8 = 4;

/// Failures and slow calls live in one word so that one atomic add moves both. Each half carries
/// a bias of 2^30: while a record that evicted a slot has not yet applied its delta, a half may
/// dip below its true value, and the bias keeps that dip from borrowing from the other half.
const BIAS: u64 = 1 << 30;
const COUNTS_ZERO: u64 = BIAS | (BIAS << 32);

/// The last `n` outcomes. `head` counts records ever made; record `k` lives in slot `k % n`, so a
/// new record evicts exactly the one `n` records older, and the totals are adjusted by the
/// difference: a success replacing a success writes nothing but the slot and head.
#[derive(Debug)]
pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    head: AtomicU64,
    counts: AtomicU64,
}

impl CountWindow {
    fn new(n: u32) -> Self {
        CountWindow {
            slots: (0..n.max(1)).map(|_| AtomicU8::new(0)).collect(),
            head: AtomicU64::new(0),
            counts: AtomicU64::new(COUNTS_ZERO),
        }
    }

    fn record(&self, failure: bool, slow: bool) {
        if !failure
            && !slow
            && self.counts.load(Ordering::Acquire) == COUNTS_ZERO
            && self.head.load(Ordering::Acquire) >= self.slots.len() as u64
        {
            // A full window of plain successes stays one after another plain success: evicting
            // a success for a success changes nothing, so a healthy circuit's records write no
            // shared cache line (threads sharing it never contend).
            return;
        }
        let new = SLOT_COUNTED
            | if failure { SLOT_FAILURE } else { 0 }
            | if slow { SLOT_SLOW } else { 0 };
        let k = self.head.fetch_add(1, Ordering::AcqRel);
        let idx = (k % self.slots.len() as u64) as usize;
        let old = self.slots[idx].swap(new, Ordering::AcqRel);
        let df = i64::from(new & SLOT_FAILURE != 0) - i64::from(old & SLOT_FAILURE != 0);
        let ds = i64::from(new & SLOT_SLOW != 0) - i64::from(old & SLOT_SLOW != 0);
        if df != 0 || ds != 0 {
            // Two's-complement wrapping add applies both signed deltas at once; the bias keeps
            // each half in range (see `BIAS`).
            let delta = (df as u64).wrapping_add((ds as u64) << 32);
            self.counts.fetch_add(delta, Ordering::AcqRel);
        }
    }

    fn totals(&self) -> Totals {
        let n = self.slots.len() as u64;
        let calls = self.head.load(Ordering::Acquire).min(n) as u32;
        let c = self.counts.load(Ordering::Acquire);
        let half = |v: u64| (v & 0xffff_ffff).saturating_sub(BIAS).min(u64::from(calls)) as u32;
        Totals {
            calls,
            failures: half(c),
            slow: half(c >> 32),
        }
    }

    fn clear(&self) {
        self.head.store(0, Ordering::Release);
        // Evict slot by slot, as a record does, instead of storing zeros: a record racing the
        // clear (an in-flight call finishing during `reset`) applies its delta against what it
        // swapped out, so the counts stay equal to the slots' contents. Plain stores let such a
        // record leave a failure counted that no slot held, so the next success tripped the
        // circuit (tests/loom.rs, `reset_racing_a_record_leaves_no_phantom_failure`).
        for s in self.slots.iter() {
            let old = s.swap(0, Ordering::AcqRel);
            let delta =
                u64::from(old & SLOT_FAILURE != 0) | (u64::from(old & SLOT_SLOW != 0) << 32);
            if delta != 0 {
                self.counts.fetch_sub(delta, Ordering::AcqRel);
            }
        }
    }
}

/// Number of buckets of a time window: the window slides in steps of 1/16 of its length.
pub(crate) const BUCKETS: usize = 16;

#[derive(Debug)]
struct Bucket {
    /// `epoch + 1` of the bucket's current interval; 0 when never used.
    epoch: AtomicU64,
    calls: AtomicU32,
    failures: AtomicU32,
    slow: AtomicU32,
}

/// The outcomes of the last `len` microseconds, in [`BUCKETS`] buckets of `len / BUCKETS`.
///
/// A bucket is recycled by the first record of a new interval that maps to it (a CAS on its
/// epoch). A record racing that recycle, in the same microsecond the interval turns, may be lost:
/// the window is approximate at bucket edges, never unbounded and never stuck.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    width_us: u64,
    buckets: [Bucket; BUCKETS],
}

impl TimeWindow {
    fn new(len_us: u64) -> Self {
        TimeWindow {
            width_us: (len_us / BUCKETS as u64).max(1),
            buckets: std::array::from_fn(|_| Bucket {
                epoch: AtomicU64::new(0),
                calls: AtomicU32::new(0),
                failures: AtomicU32::new(0),
                slow: AtomicU32::new(0),
            }),
        }
    }

    fn record(&self, failure: bool, slow: bool, now_us: u64) {
        let tag = now_us / self.width_us + 1;
        let b = &self.buckets[(tag % BUCKETS as u64) as usize];
        let mut seen = b.epoch.load(Ordering::Acquire);
        while seen < tag {
            match b
                .epoch
                .compare_exchange_weak(seen, tag, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    b.calls.store(0, Ordering::Release);
                    b.failures.store(0, Ordering::Release);
                    b.slow.store(0, Ordering::Release);
                    seen = tag;
                }
                Err(actual) => seen = actual,
            }
        }
        if seen != tag {
            // A whole ring newer than this record's time: it fell out of the window already.
            return;
        }
        b.calls.fetch_add(1, Ordering::AcqRel);
        if failure {
            b.failures.fetch_add(1, Ordering::AcqRel);
        }
        if slow {
            b.slow.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn totals(&self, now_us: u64) -> Totals {
        let newest = now_us / self.width_us + 1;
        let oldest = newest.saturating_sub(BUCKETS as u64 - 1);
        let mut t = Totals::default();
        for b in &self.buckets {
            let e = b.epoch.load(Ordering::Acquire);
            if e >= oldest && e <= newest && e != 0 {
                t.calls = t.calls.saturating_add(b.calls.load(Ordering::Acquire));
                t.failures = t
                    .failures
                    .saturating_add(b.failures.load(Ordering::Acquire));
                t.slow = t.slow.saturating_add(b.slow.load(Ordering::Acquire));
            }
        }
        // A record racing a bucket's recycle can land its failure after the recycle zeroed the
        // bucket's calls but not its own: never report more failures (or slow calls) than calls.
        t.failures = t.failures.min(t.calls);
        t.slow = t.slow.min(t.calls);
        t
    }

    fn clear(&self) {
        for b in &self.buckets {
            b.epoch.store(0, Ordering::Release);
            b.calls.store(0, Ordering::Release);
            b.failures.store(0, Ordering::Release);
            b.slow.store(0, Ordering::Release);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn count_window_slides() {
        let w = Recorder::new(Window::Calls(4));
        w.record(true, false, 0);
        for _ in 0..3 {
            w.record(false, false, 0);
        }
        let t = w.totals(0);
        assert_eq!((t.calls, t.failures), (4, 1));
        assert_eq!(t.failure_rate(), 0.25);
        w.record(false, false, 0);
        assert_eq!(
            w.totals(0).failure_rate(),
            0.0,
            "the fifth success evicts the failure"
        );
    }

    #[test]
    fn count_window_after_1000_successes_trips_on_the_window_not_the_history() {
        let w = Recorder::new(Window::Calls(10));
        for _ in 0..1000 {
            w.record(false, false, 0);
        }
        for _ in 0..5 {
            w.record(true, true, 0);
        }
        let t = w.totals(0);
        assert_eq!((t.calls, t.failures, t.slow), (10, 5, 5));
    }

    #[test]
    fn time_window_forgets_old_buckets() {
        let len = Duration::from_secs(16).as_micros() as u64;
        let w = Recorder::new(Window::Time(Duration::from_secs(16)));
        w.record(true, false, 0);
        w.record(false, false, 1_000_000);
        assert_eq!(w.totals(1_000_000).calls, 2);
        // 16 one-second buckets: at t = 16 s the bucket of t = 0 has slid out.
        let t = w.totals(len);
        assert_eq!((t.calls, t.failures), (1, 0));
        // Far in the future, a record reuses the ring.
        w.record(true, false, 10 * len);
        let t = w.totals(10 * len);
        assert_eq!((t.calls, t.failures), (1, 1));
    }

    #[test]
    fn clear_empties_both_kinds() {
        for window in [Window::Calls(3), Window::Time(Duration::from_secs(1))] {
            let w = Recorder::new(window);
            w.record(true, true, 5);
            w.clear();
            assert_eq!(w.totals(5), Totals::default());
        }
    }
}
