//! The count window: the last `n` outcomes, split over per-core stripes once threads record into
//! it at once.
//!
//! Uncontended, the window is one ring of `n` one-byte slots, exactly the last `n` outcomes. The
//! first record whose compare-and-swap of the ring's head loses to another thread's gives the
//! window `s` stripes (`stripe::stripes()`, at most `n / minimum_calls` so that one stripe alone
//! can still reach `minimum_calls`, a power of two; a window too small for two is never
//! striped), each a ring of `ceil(n / s)` slots with its own head and counts on lines of its own,
//! and every record from then on goes to its thread's stripe: no line another core writes.
//!
//! What "the last `n` calls" becomes then: **the last `ceil(n / s)` calls recorded through each
//! stripe**, summed. With threads calling at similar rates this is the last `n` calls; a thread
//! that stops calling leaves its stripe's last outcomes in the window until it calls again or
//! the circuit's window is next cleared (a trip, a close, a reset), where an unstriped window
//! would have slid them out. The window restarts empty when it stripes (like a retuning: the
//! outcomes recorded before count no more). Totals are summed from every stripe, reading lines
//! other cores write, only where a decision may trip: after every slow call; after a success
//! while its stripe holds fewer than `minimum_calls` calls (the only successes that can bring
//! the window to it; any other lowers both rates); and after a failure as
//! [`Trips::failure_may_trip`] says of its stripe.

#[cfg(test)]
use super::totals::FAILURE_CHECK;
use super::totals::{Totals, Trips};
use crate::once_box::OnceBox;
use crate::stripe;
use crate::sync::{AtomicU64, AtomicU8, Ordering};

const SLOT_COUNTED: u8 = 1;
const SLOT_FAILURE: u8 = 2;
const SLOT_SLOW: u8 = 4;

/// Failures and slow calls live in one word so that one atomic add moves both. Each half carries
/// a bias of 2^30: while a record that evicted a slot has not yet applied its delta, a half may
/// dip below its true value, and the bias keeps that dip from borrowing from the other half.
const BIAS: u64 = 1 << 30;
const COUNTS_ZERO: u64 = BIAS | (BIAS << 32);

/// A ring's head and counts. `head` counts records ever made; record `k` lives in slot
/// `k % len`, so a new record evicts exactly the one `len` records older, and the counts are
/// adjusted by the difference: a success replacing a success writes nothing but the slot and
/// head.
#[derive(Debug)]
struct Head {
    head: AtomicU64,
    counts: AtomicU64,
}

impl Head {
    fn new() -> Head {
        Head {
            head: AtomicU64::new(0),
            counts: AtomicU64::new(COUNTS_ZERO),
        }
    }

    /// Whether a plain success would change nothing: a full ring of plain successes.
    #[inline]
    fn all_successes(&self, len: usize) -> bool {
        self.counts.load(Ordering::Acquire) == COUNTS_ZERO
            && self.head.load(Ordering::Acquire) >= len as u64
    }

    /// Puts `new` in the slot of record `k` and applies the difference to the counts.
    #[inline]
    fn put(&self, slots: &[AtomicU8], k: u64, new: u8) {
        let idx = (k % slots.len() as u64) as usize;
        let old = slots[idx].swap(new, Ordering::AcqRel);
        let df = i64::from(new & SLOT_FAILURE != 0) - i64::from(old & SLOT_FAILURE != 0);
        let ds = i64::from(new & SLOT_SLOW != 0) - i64::from(old & SLOT_SLOW != 0);
        if df != 0 || ds != 0 {
            // Two's-complement wrapping add applies both signed deltas at once; the bias keeps
            // each half in range (see `BIAS`).
            let delta = (df as u64).wrapping_add((ds as u64) << 32);
            self.counts.fetch_add(delta, Ordering::AcqRel);
        }
    }

    #[inline]
    fn add_to(&self, t: &mut Totals, len: usize) {
        let calls = self.head.load(Ordering::Acquire).min(len as u64) as u32;
        let c = self.counts.load(Ordering::Acquire);
        let half = |v: u64| (v & 0xffff_ffff).saturating_sub(BIAS).min(u64::from(calls)) as u32;
        t.calls = t.calls.saturating_add(calls);
        t.failures = t.failures.saturating_add(half(c));
        t.slow = t.slow.saturating_add(half(c >> 32));
    }

    fn clear(&self, slots: &[AtomicU8]) {
        self.head.store(0, Ordering::Release);
        // Evict slot by slot, as a record does, instead of storing zeros: a record racing the
        // clear (an in-flight call finishing during `reset`) applies its delta against what it
        // swapped out, so the counts stay equal to the slots' contents. Plain stores let such a
        // record leave a failure counted that no slot held, so the next success tripped the
        // circuit (tests/loom.rs, `reset_racing_a_record_leaves_no_phantom_failure`).
        for s in slots {
            let old = s.swap(0, Ordering::AcqRel);
            let delta =
                u64::from(old & SLOT_FAILURE != 0) | (u64::from(old & SLOT_SLOW != 0) << 32);
            if delta != 0 {
                self.counts.fetch_sub(delta, Ordering::AcqRel);
            }
        }
    }
}

/// A stripe's head, on a line of its own.
#[derive(Debug)]
#[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), repr(align(128)))]
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    repr(align(64))
)]
struct Line(Head);

fn slot(failure: bool, slow: bool) -> u8 {
    SLOT_COUNTED | if failure { SLOT_FAILURE } else { 0 } | if slow { SLOT_SLOW } else { 0 }
}

/// The stripes of a striped window: `heads.len()` rings of `len` slots, ring `i` at
/// `slots[i * stride..][..len]` (`stride` rounds `len` up to whole lines).
#[derive(Debug)]
struct Stripes {
    heads: Box<[Line]>,
    slots: Box<[AtomicU8]>,
    len: usize,
    stride: usize,
}

impl Stripes {
    fn new(count: usize, len: usize) -> Stripes {
        let line = std::mem::align_of::<Line>();
        let stride = len.div_ceil(line) * line;
        Stripes {
            heads: (0..count).map(|_| Line(Head::new())).collect(),
            // One line more at the end, so that the last ring does not share its last line
            // with whatever the allocator puts after it.
            slots: (0..count * stride + line)
                .map(|_| AtomicU8::new(0))
                .collect(),
            len,
            stride,
        }
    }

    #[inline]
    fn ring(&self, i: usize) -> (&Head, &[AtomicU8]) {
        (&self.heads[i].0, &self.slots[i * self.stride..][..self.len])
    }
}

/// The last `n` outcomes (see the module's documentation for a striped window).
#[derive(Debug)]
pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    head: Head,
    /// How many stripes the window may make (1: never).
    stripes_max: usize,
    /// Made when the window is striped.
    stripes: OnceBox<Stripes>,
}

impl CountWindow {
    pub(crate) fn new(n: u32, minimum_calls: u32) -> Self {
        let n = n.max(1);
        let fit = (n / minimum_calls.max(1)).max(1) as usize;
        // The largest power of two within both bounds.
        let stripes_max = 1 << (stripe::stripes().min(fit).ilog2());
        CountWindow {
            slots: (0..n).map(|_| AtomicU8::new(0)).collect(),
            head: Head::new(),
            stripes_max,
            stripes: OnceBox::new(),
        }
    }

    /// Records one outcome. Returns whether the caller should check the rates now: always,
    /// until the window is striped.
    #[cfg(test)]
    pub(crate) fn record(&self, failure: bool, slow: bool) -> bool {
        self.record_for(failure, slow, &Trips::ALWAYS)
    }

    /// [`record`](Self::record) for a policy that trips as `trips` says (which a striped
    /// window's checks follow: see the module's documentation).
    #[inline]
    pub(crate) fn record_for(&self, failure: bool, slow: bool, trips: &Trips) -> bool {
        let Some(stripes) = self.stripes.get() else {
            if !failure && !slow && self.head.all_successes(self.slots.len()) {
                // A full window of plain successes stays one after another plain success:
                // evicting a success for a success changes nothing, so a healthy circuit's
                // records write no shared cache line (threads sharing it never contend).
                return true;
            }
            let k = self.head.head.load(Ordering::Acquire);
            if self
                .head
                .head
                .compare_exchange(k, k + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return self.record_contended(failure, slow, trips);
            }
            self.head.put(&self.slots, k, slot(failure, slow));
            return true;
        };
        Self::record_striped(stripes, failure, slow, trips)
    }

    /// [`record`](Self::record) into this thread's stripe, out of line: the unstriped path
    /// stays small where it is inlined.
    #[inline(never)]
    fn record_striped(stripes: &Stripes, failure: bool, slow: bool, trips: &Trips) -> bool {
        let (head, slots) = stripes.ring(stripe::index() & (stripes.heads.len() - 1));
        if !failure && !slow && head.all_successes(slots.len()) {
            return false;
        }
        let k = head.head.fetch_add(1, Ordering::AcqRel);
        head.put(slots, k, slot(failure, slow));
        if slow {
            return true;
        }
        if !failure {
            // The stripe's calls in the window before this one.
            return trips.success_may_trip(k.min(slots.len() as u64));
        }
        // The stripe's own counts, on the line this thread just wrote; failures sampled by
        // record index (a stripe's failure count goes down as well as up).
        let mut own = Totals::default();
        head.add_to(&mut own, slots.len());
        trips.failure_may_trip(k, u64::from(own.failures), u64::from(own.calls))
    }

    /// A record whose compare-and-swap of the head lost to another: stripes the window (unless
    /// that happened meanwhile) and records into this thread's stripe.
    #[cold]
    #[inline(never)]
    fn record_contended(&self, failure: bool, slow: bool, trips: &Trips) -> bool {
        if self.stripes_max == 1 {
            // Too small to stripe: contend on the one ring.
            let k = self.head.head.fetch_add(1, Ordering::AcqRel);
            self.head.put(&self.slots, k, slot(failure, slow));
            return true;
        }
        let len = self.slots.len().div_ceil(self.stripes_max);
        self.stripes
            .get_or_init(|| Stripes::new(self.stripes_max, len));
        self.record_for(failure, slow, trips);
        true
    }

    /// Inlined for the unstriped window's few loads; a striped one sums out of line.
    #[inline]
    pub(crate) fn totals(&self) -> Totals {
        let mut t = Totals::default();
        let Some(stripes) = self.stripes.get() else {
            self.head.add_to(&mut t, self.slots.len());
            return t;
        };
        Self::striped_totals(stripes)
    }

    #[inline(never)]
    fn striped_totals(stripes: &Stripes) -> Totals {
        let mut t = Totals::default();
        for i in 0..stripes.heads.len() {
            let (head, slots) = stripes.ring(i);
            head.add_to(&mut t, slots.len());
        }
        t
    }

    pub(crate) fn clear(&self) {
        self.head.clear(&self.slots);
        if let Some(stripes) = self.stripes.get() {
            for i in 0..stripes.heads.len() {
                let (head, slots) = stripes.ring(i);
                head.clear(slots);
            }
        }
    }

    /// The length of each stripe's ring (0 before the window is striped).
    #[cfg(test)]
    pub(crate) fn striped_len(&self) -> usize {
        self.stripes.get().map_or(0, |s| s.len)
    }

    /// Whether the window has made its stripes (for tests of when memory is spent).
    #[cfg(test)]
    pub(crate) fn is_striped(&self) -> bool {
        self.stripes.get().is_some()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn one_thread_never_stripes() {
        let w = CountWindow::new(100, 10);
        for i in 0..1000 {
            assert!(w.record(i % 10 == 0, false));
        }
        assert!(!w.is_striped());
        assert_eq!((w.totals().calls, w.totals().failures), (100, 10));
    }

    #[test]
    fn stripes_are_few_enough_for_one_to_reach_minimum_calls() {
        for (n, min) in [(100, 10), (20, 10), (10, 10), (1000, 1), (7, 3)] {
            let w = CountWindow::new(n, min);
            let len = (n as usize).div_ceil(w.stripes_max);
            assert!(w.stripes_max.is_power_of_two());
            assert!(len >= min as usize, "{n} calls, {min} minimum");
            assert!(w.stripes_max <= stripe::stripes());
        }
        assert_eq!(CountWindow::new(10, 10).stripes_max, 1);
    }

    #[test]
    fn striped_totals_sum_every_stripe() {
        let w = Arc::new(CountWindow::new(64, 1));
        w.record_contended(true, false, &Trips::ALWAYS);
        if w.stripes_max == 1 {
            return; // a one-core host: nothing to stripe
        }
        assert!(w.is_striped());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        w.record(true, false);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Every stripe used holds its last `len` records (the one the first record went to, at
        // least), all failures; the window restarted when it striped.
        let len = 64 / w.stripes_max as u32;
        let t = w.totals();
        assert!(t.calls >= len && t.calls <= 64, "{t:?}");
        assert_eq!((t.failures, t.slow), (t.calls, 0));
        w.clear();
        assert_eq!(w.totals(), Totals::default());
    }

    #[test]
    fn a_striped_window_checks_the_records_that_may_trip() {
        let w = CountWindow::new(64, 10);
        w.record_contended(false, false, &Trips::ALWAYS);
        if w.stripes_max == 1 {
            return;
        }
        let t = Trips {
            minimum_calls: 10,
            failure_rate: Some(0.5),
        };
        // This thread's stripe restarted empty when it striped, then took the striping call:
        // nine more successes may bring it to `minimum_calls` and check, later ones not.
        let checks: Vec<bool> = (0..20).map(|_| w.record_for(false, false, &t)).collect();
        assert!(checks[..9].iter().all(|&c| c), "{checks:?}");
        assert!(!checks[9..].iter().any(|&c| c), "{checks:?}");
        assert!(w.record_for(false, true, &t), "a slow call checks");
        // Failures: each checks when the stripe's ring, with it, holds failures at half its
        // calls or more, and at one record index in four otherwise.
        let len = w.striped_len();
        // The striping call, twenty successes and the slow call, none a failure.
        let mut outcomes = vec![false; 22];
        for _ in 0..40 {
            let k = outcomes.len() as u64;
            outcomes.push(true);
            let recent = &outcomes[outcomes.len().saturating_sub(len)..];
            let failures = recent.iter().filter(|&&f| f).count();
            let at = failures as f64 >= 0.5 * recent.len() as f64;
            let expected = at || k % u64::from(FAILURE_CHECK) == 0;
            assert_eq!(w.record_for(true, false, &t), expected, "record {k}");
        }
        assert!(w.record_for(true, false, &Trips::ALWAYS));
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use loom::sync::Arc;
    use loom::thread;

    use super::*;

    /// Two threads record into a window of 4 that holds a failure: whether a lost
    /// compare-and-swap stripes it or not, and whoever does, the counts match the slots (no
    /// failure counted that no slot holds, none lost). Some executions must stripe.
    #[test]
    fn racing_records_and_striping_keep_counts_true() {
        use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        static STRIPED: AtomicUsize = AtomicUsize::new(0);
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(3);
        }
        builder.check(|| {
            let w = Arc::new(CountWindow::new(4, 1));
            w.record(true, false);
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let w = w.clone();
                    thread::spawn(move || {
                        w.record(true, true);
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            let t = w.totals();
            let striped = w.is_striped();
            if striped {
                // The window restarted when it striped: the records that went to the stripes
                // (one or both of the threads') are all there, nothing else.
                assert!(t.calls >= 1 && t.calls <= 2, "{t:?}");
                assert_eq!((t.failures, t.slow), (t.calls, t.calls));
            } else {
                assert_eq!((t.calls, t.failures, t.slow), (3, 3, 2));
            }
            RUNS.fetch_add(1, Relaxed);
            if striped {
                STRIPED.fetch_add(1, Relaxed);
            }
        });
        let (runs, striped) = (RUNS.load(Relaxed), STRIPED.load(Relaxed));
        assert!(
            striped > 0 && striped < runs,
            "{striped} of {runs} executions striped"
        );
    }
}
