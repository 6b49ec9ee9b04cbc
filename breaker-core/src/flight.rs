//! Calls in flight, kept only for circuits whose policy asks for them (`max_in_flight`, or the
//! slow-call policy): a bulkhead count, and a ring of counters of the calls still out by the
//! epoch they started in, so that "a call older than the slow-call threshold is still in flight"
//! is found by the next admission with a couple of loads, while the call still hangs, with no
//! timer per call.
//!
//! A pure part, like the windows: it knows nothing of the circuit. The circuit keeps one
//! `Flight` per circuit, made the first time its policy needs it and kept for the circuit's life
//! (a retuning never replaces it), so a permit always gives back what it took to the same
//! counters. A permit remembers what it took in the high bits of its start time ([`HELD`],
//! [`TRACKED`], [`SPENT`]), so a permit that took nothing (made before a retuning turned these
//! on) gives nothing back: the counts never underflow and never leak.

use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// In a ticket's start time: the permit holds a bulkhead slot.
pub(crate) const HELD: u64 = 1 << 63;
/// In a ticket's start time: the permit is counted in the ring under its start epoch.
pub(crate) const TRACKED: u64 = 1 << 62;
/// In a ticket's start time: the call was already counted as slow while in flight; its own
/// outcome is not recorded again.
pub(crate) const SPENT: u64 = 1 << 61;
/// Every mark: the start time proper is what is left.
pub(crate) const MARKS: u64 = HELD | TRACKED | SPENT;

/// Ring slots: one cache line. An epoch's calls are found overdue at most `RING - 1` epochs
/// after it began.
pub(crate) const RING: usize = 8;

/// A ring slot: its epoch (low 32 bits of the epoch number) in the high half, [`DEAD`] once its
/// calls were counted (or the circuit moved on), and the count of its calls still out below.
const DEAD: u64 = 1 << 31;
const COUNT: u64 = DEAD - 1;

fn pack(epoch: u32, dead: bool, count: u64) -> u64 {
    (u64::from(epoch) << 32) | if dead { DEAD } else { 0 } | count
}

fn epoch_of(w: u64) -> u32 {
    (w >> 32) as u32
}

fn live(w: u64) -> bool {
    w & DEAD == 0
}

/// How many epochs after its start epoch a call is certainly older than `threshold_us`: it
/// started before the end of its epoch, so after `n` whole epochs more it is older than
/// `(n - 1) * epoch_us`. Never more than `RING - 1` (the ring holds no older epoch): a threshold
/// retuned to more than three times the one the epochs were cut for is then met early.
pub(crate) fn overdue_after(threshold_us: u64, epoch_us: u64) -> u32 {
    let whole = threshold_us.div_ceil(epoch_us.max(1));
    (whole + 1).min(RING as u64 - 1) as u32
}

/// The calls of `slot` if its epoch began at least `after` epochs before `now_epoch`.
fn take_slot(slot: &AtomicU64, now_epoch: u64, after: u32) -> u32 {
    let mut w = slot.load(Ordering::Acquire);
    loop {
        if !live(w) || w & COUNT == 0 {
            return 0;
        }
        if ((now_epoch as u32).wrapping_sub(epoch_of(w)) as i32) < after as i32 {
            return 0;
        }
        match slot.compare_exchange(
            w,
            pack(epoch_of(w), true, 0),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => return (w & COUNT) as u32,
            Err(actual) => w = actual,
        }
    }
}

/// What a tracked call's release found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Left {
    /// Taken out of its epoch's count: its outcome is recorded as usual.
    Released,
    /// Its epoch was counted as overdue meanwhile (or the circuit moved on): it was counted
    /// already, so its outcome is not.
    Counted,
}

/// The calls in flight on one circuit.
pub(crate) struct Flight {
    /// Calls holding a bulkhead slot.
    held: AtomicU32,
    /// The length of an epoch in µs, set once by the first tracked admission (0 until then).
    epoch_us: AtomicU64,
    /// The latest epoch whose admissions looked for overdue calls (one of them did).
    checked: AtomicU64,
    ring: [AtomicU64; RING],
}

impl Flight {
    pub(crate) fn new() -> Self {
        Flight {
            held: AtomicU32::new(0),
            epoch_us: AtomicU64::new(0),
            checked: AtomicU64::new(0),
            // Each slot dead, at an epoch before any real one (8 before its first), so that the
            // first call of every epoch takes it.
            ring: std::array::from_fn(|i| {
                AtomicU64::new(pack((i as u32).wrapping_sub(RING as u32), true, 0))
            }),
        }
    }

    /// Takes a bulkhead slot unless `max` are held. Lock-free: a CAS that fails only because
    /// another call took or gave back a slot meanwhile.
    #[inline]
    pub(crate) fn try_hold(&self, max: u32) -> bool {
        let mut n = self.held.load(Ordering::Relaxed);
        loop {
            if n >= max {
                return false;
            }
            match self
                .held
                .compare_exchange(n, n + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => n = actual,
            }
        }
    }

    /// Gives back a slot taken by [`try_hold`](Self::try_hold). Never below zero: a permit
    /// whose slot was taken in a `Flight` that a racing retuning left behind (see
    /// `WindowSlot::set`) must not wrap the count of this one into a bulkhead full for ever.
    #[inline]
    pub(crate) fn release(&self) {
        let mut n = self.held.load(Ordering::Relaxed);
        while n > 0 {
            match self
                .held
                .compare_exchange(n, n - 1, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => n = actual,
            }
        }
    }

    /// Bulkhead slots held now.
    pub(crate) fn held(&self) -> u32 {
        self.held.load(Ordering::Relaxed)
    }

    /// The epoch length, fixed by the first caller to `threshold_us / 2` (at least 1 µs).
    #[inline]
    pub(crate) fn epoch_us(&self, threshold_us: u64) -> u64 {
        let e = self.epoch_us.load(Ordering::Relaxed);
        if e != 0 {
            return e;
        }
        let want = (threshold_us / 2).max(1);
        match self
            .epoch_us
            .compare_exchange(0, want, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => want,
            Err(set) => set,
        }
    }

    /// The epoch length as set (1 if never set: only a tracked call asks, and its admission set
    /// it).
    #[inline]
    pub(crate) fn epoch_len(&self) -> u64 {
        self.epoch_us.load(Ordering::Relaxed).max(1)
    }

    /// Counts a call started in `epoch`. Returns whether it was counted (not when its slot
    /// holds a later epoch, which only a clock far behind another thread's can see, nor when
    /// `epoch` was [`forget`](Self::forget)ed after some of its calls started, nor at a full
    /// count) and the calls of an older epoch that this one's slot still held: those are
    /// overdue, and now the caller's to count.
    pub(crate) fn enter(&self, epoch: u64) -> (bool, u32) {
        let tag = epoch as u32;
        let slot = &self.ring[epoch as usize % RING];
        let mut w = slot.load(Ordering::Acquire);
        loop {
            let (next, overdue) = if epoch_of(w) == tag && live(w) {
                if w & COUNT == COUNT {
                    return (false, 0);
                }
                (w + 1, 0)
            } else if tag.wrapping_sub(epoch_of(w)) as i32 > 0 {
                // An older epoch: its calls still out are overdue.
                let overdue = if live(w) { (w & COUNT) as u32 } else { 0 };
                (pack(tag, false, 1), overdue)
            } else {
                // This epoch's calls were forgotten (a reset, a close) after some had started:
                // those could not be told from new ones, so the epoch's later calls go
                // untracked. Or a later epoch, seen through a clock behind another thread's.
                return (false, 0);
            };
            match slot.compare_exchange(w, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return (true, overdue),
                Err(actual) => w = actual,
            }
        }
    }

    /// Takes out the calls started at least `after` epochs before `now_epoch` that are still in
    /// flight: they are overdue, and the caller's to count. The first caller of each epoch looks
    /// at the ring (one line); every other caller of that epoch, one load.
    #[inline]
    pub(crate) fn take_overdue(&self, now_epoch: u64, after: u32) -> u32 {
        let seen = self.checked.load(Ordering::Relaxed);
        if now_epoch.wrapping_sub(seen) as i64 <= 0 {
            return 0;
        }
        if self
            .checked
            .compare_exchange(seen, now_epoch, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            // Another caller of this epoch looks.
            return 0;
        }
        self.ring
            .iter()
            .map(|slot| take_slot(slot, now_epoch, after))
            .sum()
    }

    /// Takes a call started in `epoch` out of the ring, where [`enter`](Self::enter) counted it.
    pub(crate) fn leave(&self, epoch: u64) -> Left {
        let tag = epoch as u32;
        let slot = &self.ring[epoch as usize % RING];
        let mut w = slot.load(Ordering::Acquire);
        loop {
            if epoch_of(w) != tag || !live(w) {
                return Left::Counted;
            }
            if w & COUNT == 0 {
                // Only a call counted before a `forget` and released after its epoch's slot
                // was used again can find its epoch empty: it was not counted anew.
                return Left::Released;
            }
            match slot.compare_exchange(w, w - 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Left::Released,
                Err(actual) => w = actual,
            }
        }
    }

    /// Forgets every call in the ring: the circuit moved to a new stay, whose window their
    /// outcomes no longer belong to. Their releases find their epoch dead.
    pub(crate) fn forget(&self) {
        for slot in &self.ring {
            slot.fetch_or(DEAD, Ordering::AcqRel);
        }
    }

    /// Calls counted in the ring now (for tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn tracked(&self) -> u64 {
        self.ring
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .filter(|w| live(*w))
            .map(|w| w & COUNT)
            .sum()
    }
}

impl Default for Flight {
    fn default() -> Self {
        Flight::new()
    }
}

impl std::fmt::Debug for Flight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flight")
            .field("held", &self.held())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_bulkhead_holds_at_most_max() {
        let f = Flight::new();
        assert!(f.try_hold(2) && f.try_hold(2));
        assert!(!f.try_hold(2));
        f.release();
        assert!(f.try_hold(2));
        assert_eq!(f.held(), 2);
    }

    #[test]
    fn a_call_out_for_the_threshold_is_found_once() {
        let f = Flight::new();
        let e = f.epoch_us(500_000);
        assert_eq!(e, 250_000);
        let after = overdue_after(500_000, e);
        assert_eq!(after, 3);
        assert_eq!(f.enter(10), (true, 0));
        assert_eq!(f.enter(10), (true, 0));
        // Two epochs later the calls may be younger than the threshold: not yet.
        assert_eq!(f.take_overdue(12, after), 0);
        assert_eq!(f.take_overdue(13, after), 2);
        assert_eq!(f.take_overdue(14, after), 0);
        // Found however late the next admission comes.
        assert_eq!(f.enter(15), (true, 0));
        assert_eq!(f.take_overdue(40, after), 1);
        assert_eq!(f.leave(10), Left::Counted);
        assert_eq!(f.leave(15), Left::Counted);
        assert_eq!(f.tracked(), 0);
    }

    #[test]
    fn one_admission_per_epoch_looks() {
        let f = Flight::new();
        assert_eq!(f.enter(1), (true, 0));
        assert_eq!(f.take_overdue(2, 3), 0);
        assert_eq!(f.take_overdue(5, 3), 1);
        assert_eq!(f.enter(5), (true, 0));
        assert_eq!(f.take_overdue(5, 0), 0, "epoch 5 looked already");
        assert_eq!(f.take_overdue(4, 0), 0, "a clock behind looks at nothing");
    }

    #[test]
    fn a_call_released_in_time_is_not_counted() {
        let f = Flight::new();
        assert_eq!(f.enter(10), (true, 0));
        assert_eq!(f.leave(10), Left::Released);
        assert_eq!(f.take_overdue(13, 3), 0);
        assert_eq!(f.tracked(), 0);
    }

    #[test]
    fn reusing_a_slot_hands_over_its_overdue_calls() {
        let f = Flight::new();
        assert_eq!(f.enter(1), (true, 0));
        // Nobody looked in between: epoch 9 takes slot 1 and the call of epoch 1 with it.
        assert_eq!(f.enter(1 + RING as u64), (true, 1));
        assert_eq!(f.leave(1), Left::Counted);
        assert_eq!(f.leave(1 + RING as u64), Left::Released);
    }

    #[test]
    fn forgotten_calls_are_never_counted() {
        let f = Flight::new();
        assert_eq!(f.enter(0), (true, 0), "epoch 0 is tracked like any other");
        assert_eq!(f.enter(5), (true, 0));
        f.forget();
        // Epoch 5 goes on untracked: a new call could not be told from a forgotten one.
        assert_eq!(f.enter(5), (false, 0));
        assert_eq!(f.take_overdue(9, 3), 0);
        assert_eq!(f.leave(5), Left::Counted);
        assert_eq!(f.leave(0), Left::Counted);
        assert_eq!(f.enter(6), (true, 0));
        assert_eq!(f.enter(5 + RING as u64), (true, 0));
    }

    #[test]
    fn overdue_after_is_capped_by_the_ring() {
        assert_eq!(overdue_after(10, 5), 3);
        assert_eq!(overdue_after(11, 5), 4);
        assert_eq!(overdue_after(1_000, 5), RING as u32 - 1);
    }
}

/// loom models of the counts (`RUSTFLAGS="--cfg loom" cargo test -p breaker-core --lib
/// --release flight`): concurrent admissions and releases never leak or underflow a count, and
/// the bulkhead never holds more than its limit.
#[cfg(all(test, loom))]
mod loom_models {
    use loom::sync::Arc;
    use loom::thread;

    use super::*;

    /// Bounded like the other models (see `tests/loom.rs`): unbounded, three threads on CAS
    /// loops do not finish; the races here need at most two preemptions.
    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(3);
        }
        builder.check(f);
    }

    #[test]
    fn the_bulkhead_never_admits_more_than_max_and_gives_every_slot_back() {
        model(|| {
            let f = Arc::new(Flight::new());
            let inside = Arc::new(AtomicU32::new(0));
            let threads: Vec<_> = (0..3)
                .map(|_| {
                    let (f, inside) = (f.clone(), inside.clone());
                    thread::spawn(move || {
                        if f.try_hold(2) {
                            let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                            assert!(n <= 2, "{n} calls inside a bulkhead of 2");
                            inside.fetch_sub(1, Ordering::SeqCst);
                            f.release();
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(f.held(), 0);
        });
    }

    #[test]
    fn tracked_calls_are_released_or_counted_exactly_once() {
        model(|| {
            let f = Arc::new(Flight::new());
            let counted = Arc::new(AtomicU32::new(0));
            // Two calls of epoch 0 race a harvest at epoch 3 and each other's release.
            let calls: Vec<_> = (0..2)
                .map(|_| {
                    let (f, counted) = (f.clone(), counted.clone());
                    thread::spawn(move || {
                        if f.enter(0).0 && f.leave(0) == Left::Counted {
                            counted.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            let harvested = f.take_overdue(3, 3);
            for t in calls {
                t.join().unwrap();
            }
            // Whatever the harvest took is exactly what the releases found counted: nothing is
            // counted twice or lost, and the ring is empty afterwards.
            assert_eq!(harvested, counted.load(Ordering::SeqCst));
            assert_eq!(f.take_overdue(4, 3), 0);
            let w = f.ring[0].load(Ordering::SeqCst);
            assert!(!live(w) || w & COUNT == 0);
        });
    }
}
