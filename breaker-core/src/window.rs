//! Sliding windows of outcomes for the rate policies. Both are lock-free, O(1) per record and
//! bounded in memory: the count window keeps one byte per slot, the time window a fixed ring of
//! buckets whatever the call rate.

mod count;
mod time;
mod totals;

use std::sync::Arc;

use self::count::CountWindow;
use self::time::TimeWindow;
pub(crate) use self::totals::{Totals, Trips};
use crate::config::Window;
use crate::flight::Flight;
use crate::sync::{AtomicPtr, Ordering};

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
    /// A window for `window`; a count window sizes its stripes so that one alone can hold
    /// `minimum_calls` outcomes.
    pub(crate) fn new(window: Window, minimum_calls: u32) -> Self {
        match window {
            Window::Calls(n) => Recorder::Count(CountWindow::new(n, minimum_calls)),
            Window::Time(d) => {
                let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                Recorder::Time(TimeWindow::new(us))
            }
        }
    }

    /// How stale the clock reading given to [`record`](Self::record) may be (`None`: the
    /// window reads no clock), so that the caller may pass a coarse one.
    pub(crate) fn tolerance_us(&self) -> Option<u64> {
        match self {
            Recorder::Count(_) => None,
            Recorder::Time(w) => Some(w.tolerance_us()),
        }
    }

    /// Records one outcome. Returns whether the caller should check the rates now: always,
    /// except in a striped window (see `window/count.rs` and `window/time.rs`).
    #[cfg(test)]
    pub(crate) fn record(&self, failure: bool, slow: bool, now_us: u64) -> bool {
        self.record_for(failure, slow, now_us, &Trips::ALWAYS)
    }

    /// [`record`](Self::record) for a policy that trips as `trips` says, which lets a window
    /// skip checks that cannot trip it (see `window/time.rs` and `window/count.rs`).
    #[inline]
    pub(crate) fn record_for(&self, failure: bool, slow: bool, now_us: u64, trips: &Trips) -> bool {
        match self {
            Recorder::Count(w) => w.record_for(failure, slow, trips),
            Recorder::Time(w) => w.record_for(failure, slow, now_us, trips),
        }
    }

    /// Inlined, so that the count window's few loads stay in the caller; the time window's sum
    /// is a call of its own.
    #[inline]
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
    /// A slot holding a new window for `spec`, or none (`minimum_calls`: see
    /// [`Recorder::new`]), and the calls in flight if `flight`.
    pub(crate) fn new(spec: Option<Window>, minimum_calls: u32, flight: bool) -> Self {
        let current = match (spec, flight) {
            (None, false) => std::ptr::null_mut(),
            _ => WindowNode::boxed(
                spec,
                minimum_calls,
                std::ptr::null_mut(),
                flight.then(Arc::default),
            ),
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
    /// are none yet (given to the current node when its window stays). A new `minimum_calls`
    /// alone keeps the window (and how it is striped).
    pub(crate) fn set(&self, spec: Option<Window>, minimum_calls: u32, flight: bool) {
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
            let node = WindowNode::boxed(spec, minimum_calls, current, kept);
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
        minimum_calls: u32,
        older: *mut WindowNode,
        flight: Option<Arc<Flight>>,
    ) -> *mut WindowNode {
        Box::into_raw(Box::new(WindowNode {
            recorder: spec.map(|w| Recorder::new(w, minimum_calls)),
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn count_window_slides() {
        let w = Recorder::new(Window::Calls(4), 1);
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
        let w = Recorder::new(Window::Calls(10), 1);
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
        let w = Recorder::new(Window::Time(Duration::from_secs(16)), 1);
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
            let w = Recorder::new(window, 1);
            w.record(true, true, 5);
            w.clear();
            assert_eq!(w.totals(5), Totals::default());
        }
    }
}
