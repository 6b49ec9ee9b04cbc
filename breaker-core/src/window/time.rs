//! The time window: the outcomes of the last `len` microseconds in [`BUCKETS`] buckets, striped
//! per core once threads record into it at once.
//!
//! A record is one compare-and-swap on its bucket's counts while the window is uncontended; the
//! first one that fails (another thread recorded in between) gives the window a set of buckets
//! per stripe ([`stripe::stripes`], one per core up to 16), and from then on a record writes
//! only its thread's stripe: no line another core writes. Totals sum every stripe's buckets of
//! the window's span, so they count every outcome as an unstriped window would, at the price of
//! reading the stripes, which lie on lines their threads write: a striped window sums them only
//! where a check may trip it (see [`record_striped`](TimeWindow::record_striped)). Memory:
//! `stripes() × 384` bytes more per window that saw contention, for its life.

#[cfg(test)]
use super::totals::FAILURE_CHECK;
use super::totals::{Totals, Trips};
use crate::stripe;
use crate::sync::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// Number of buckets of a time window: the window slides in steps of 1/16 of its length.
pub(crate) const BUCKETS: usize = 16;

/// Calls in the high half of a bucket's `counts`, failures in the low half, so that one atomic
/// add moves both and no reader sees a failure without its call. Calls overflow first (there are
/// never more failures), out of the word: a bucket of 2^32 calls wraps as a `u32` count did.
const CALL: u64 = 1 << 32;

#[derive(Debug)]
struct Bucket {
    /// `epoch + 1` of the bucket's current interval; 0 when never used.
    epoch: AtomicU64,
    /// Calls (high 32 bits) and failures (low 32 bits).
    counts: AtomicU64,
    slow: AtomicU32,
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            epoch: AtomicU64::new(0),
            counts: AtomicU64::new(0),
            slow: AtomicU32::new(0),
        }
    }

    fn clear(&self) {
        self.epoch.store(0, Ordering::Release);
        self.counts.store(0, Ordering::Release);
        self.slow.store(0, Ordering::Release);
    }
}

/// A ring of buckets.
#[derive(Debug)]
struct Ring([Bucket; BUCKETS]);

/// One stripe's ring, on lines of its own.
#[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), repr(align(128)))]
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    repr(align(64))
)]
#[derive(Debug)]
struct Padded(Ring);

impl Ring {
    fn new() -> Ring {
        Ring(std::array::from_fn(|_| Bucket::new()))
    }

    /// The bucket of `tag` (`epoch + 1`), recycled for it if it held an older interval; `None`
    /// when it holds a newer one (the record fell out of the window already).
    #[inline]
    fn bucket(&self, tag: u64) -> Option<&Bucket> {
        let b = &self.0[(tag % BUCKETS as u64) as usize];
        let mut seen = b.epoch.load(Ordering::Acquire);
        while seen < tag {
            match b
                .epoch
                .compare_exchange_weak(seen, tag, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    b.counts.store(0, Ordering::Release);
                    b.slow.store(0, Ordering::Release);
                    seen = tag;
                }
                Err(actual) => seen = actual,
            }
        }
        (seen == tag).then_some(b)
    }

    /// Adds the buckets of `oldest..=newest` to `t`.
    fn add_to(&self, t: &mut Totals, oldest: u64, newest: u64) {
        for b in &self.0 {
            let e = b.epoch.load(Ordering::Acquire);
            if e >= oldest && e <= newest && e != 0 {
                let c = b.counts.load(Ordering::Acquire);
                t.calls = t.calls.saturating_add((c >> 32) as u32);
                t.failures = t.failures.saturating_add(c as u32);
                t.slow = t.slow.saturating_add(b.slow.load(Ordering::Acquire));
            }
        }
    }
}

/// The outcomes of the last `len` microseconds, in [`BUCKETS`] buckets of `len / BUCKETS`.
///
/// A bucket is recycled by the first record of a new interval that maps to it (a CAS on its
/// epoch). A record racing that recycle, in the same microsecond the interval turns, may be lost:
/// the window is approximate at bucket edges, never unbounded and never stuck.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    width_us: u64,
    /// The ring every record goes to until the window is striped; summed with the stripes
    /// after that, until its buckets age out.
    ring: Ring,
    /// `stripe::stripes()` rings, made the first time two records met; null until then.
    stripes: AtomicPtr<Padded>,
}

impl TimeWindow {
    pub(crate) fn new(len_us: u64) -> Self {
        // As `stripe::Counter::new`: the stripe count is fixed before any record needs it.
        stripe::stripes();
        TimeWindow {
            width_us: (len_us / BUCKETS as u64).max(1),
            ring: Ring::new(),
            stripes: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// How stale a clock reading given to [`record`](Self::record) may be: a quarter of a
    /// bucket, so a coarse clock moves a record by at most 1/64 of the window.
    pub(crate) fn tolerance_us(&self) -> u64 {
        self.width_us / 4
    }

    /// Records one outcome at `now_us`. Returns whether the caller should check the rates now
    /// (always, until the window is striped; see the module's documentation after).
    #[cfg(test)]
    pub(crate) fn record(&self, failure: bool, slow: bool, now_us: u64) -> bool {
        self.record_for(failure, slow, now_us, &Trips::ALWAYS)
    }

    /// [`record`](Self::record) for a policy that trips as `trips` says. A success that is not
    /// slow asks for no check when its bucket (its stripe's, once striped) held at least
    /// `minimum_calls` calls before it. Such a success lowers both rates and cannot be the one
    /// that brings the window to `minimum_calls` (its own bucket had them), and it is not the
    /// first record of its interval (that one recycles the bucket, which then held none), which
    /// is when older buckets age out. So every check it skips would have found what the last
    /// check found, or less. Slow calls always check, and so do failures until the window is
    /// striped; then see [`record_striped`](Self::record_striped).
    #[inline]
    pub(crate) fn record_for(&self, failure: bool, slow: bool, now_us: u64, trips: &Trips) -> bool {
        let minimum_calls = trips.minimum_calls;
        let tag = now_us / self.width_us + 1;
        let add = CALL + u64::from(failure);
        let stripes = self.stripes.load(Ordering::Acquire);
        if stripes.is_null() {
            let Some(b) = self.ring.bucket(tag) else {
                return true;
            };
            let c = b.counts.load(Ordering::Acquire);
            if b.counts
                .compare_exchange(c, c.wrapping_add(add), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                if slow {
                    b.slow.fetch_add(1, Ordering::AcqRel);
                }
                return failure || slow || c >> 32 < u64::from(minimum_calls.max(1));
            }
            return self.record_contended(tag, add, slow);
        }
        // SAFETY: a non-null `stripes` holds `stripe::stripes()` rings published by
        // `record_contended`, freed only when the window is dropped, which `&self` rules out.
        Self::record_striped(
            unsafe { &(*stripes.add(stripe::index())).0 },
            tag,
            add,
            slow,
            trips,
        )
    }

    /// [`record`](Self::record) into this thread's stripe, out of line: the unstriped path
    /// stays small where it is inlined.
    ///
    /// A check sums every stripe, reading lines the other threads write (and taking them from
    /// those cores), so a striped window asks for one only where it may trip: a success as
    /// [`record_for`](Self::record_for) says; a failure as [`Trips::failure_may_trip`] says of
    /// its stripe's bucket (the first failure of each included).
    #[inline(never)]
    fn record_striped(ring: &Ring, tag: u64, add: u64, slow: bool, trips: &Trips) -> bool {
        let failure = add & 0xffff_ffff != 0;
        let Some(b) = ring.bucket(tag) else {
            return true;
        };
        let before = b.counts.fetch_add(add, Ordering::AcqRel);
        if slow {
            b.slow.fetch_add(1, Ordering::AcqRel);
            return true;
        }
        let (calls, failures) = (before >> 32, u64::from(before as u32));
        if !failure {
            return trips.success_may_trip(calls);
        }
        // The bucket's counts with this failure: no sum of the stripe's other buckets.
        trips.failure_may_trip(failures, failures + 1, calls + 1)
    }

    /// A record whose compare-and-swap lost to another: stripes the window (unless that
    /// happened meanwhile) and records into this thread's stripe.
    #[cold]
    #[inline(never)]
    fn record_contended(&self, tag: u64, add: u64, slow: bool) -> bool {
        let mut stripes = self.stripes.load(Ordering::Acquire);
        if stripes.is_null() {
            let fresh = alloc_rings();
            match self.stripes.compare_exchange(
                std::ptr::null_mut(),
                fresh,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => stripes = fresh,
                Err(actual) => {
                    // SAFETY: never published, made by `alloc_rings`.
                    unsafe { free_rings(fresh) };
                    stripes = actual;
                }
            }
        }
        // SAFETY: as in `record`.
        let ring = unsafe { &(*stripes.add(stripe::index())).0 };
        if let Some(b) = ring.bucket(tag) {
            b.counts.fetch_add(add, Ordering::AcqRel);
            if slow {
                b.slow.fetch_add(1, Ordering::AcqRel);
            }
        }
        true
    }

    #[inline(never)]
    pub(crate) fn totals(&self, now_us: u64) -> Totals {
        let newest = now_us / self.width_us + 1;
        let oldest = newest.saturating_sub(BUCKETS as u64 - 1);
        let mut t = Totals::default();
        self.ring.add_to(&mut t, oldest, newest);
        for ring in self.rings() {
            ring.0.add_to(&mut t, oldest, newest);
        }
        // A record racing a bucket's recycle can land its slow call after the recycle zeroed the
        // bucket's calls: never report more failures (or slow calls) than calls.
        t.failures = t.failures.min(t.calls);
        t.slow = t.slow.min(t.calls);
        t
    }

    pub(crate) fn clear(&self) {
        for b in &self.ring.0 {
            b.clear();
        }
        for ring in self.rings() {
            for b in &ring.0 .0 {
                b.clear();
            }
        }
    }

    /// The stripes' rings, none before the window is striped.
    fn rings(&self) -> &[Padded] {
        let stripes = self.stripes.load(Ordering::Acquire);
        if stripes.is_null() {
            return &[];
        }
        // SAFETY: as in `record`.
        unsafe { std::slice::from_raw_parts(stripes, stripe::stripes()) }
    }

    /// Whether the window has made its stripes (for tests of when memory is spent).
    #[cfg(test)]
    pub(crate) fn is_striped(&self) -> bool {
        !self.stripes.load(Ordering::Acquire).is_null()
    }
}

impl Drop for TimeWindow {
    fn drop(&mut self) {
        let stripes = self.stripes.load(Ordering::Acquire);
        if !stripes.is_null() {
            // SAFETY: published by `record_contended` from `alloc_rings`; `&mut self` means no
            // one records any more.
            unsafe { free_rings(stripes) };
        }
    }
}

fn alloc_rings() -> *mut Padded {
    let rings: Box<[Padded]> = (0..stripe::stripes())
        .map(|_| Padded(Ring::new()))
        .collect();
    Box::into_raw(rings).cast::<Padded>()
}

/// # Safety
/// `rings` came from `alloc_rings` and is not used afterwards.
unsafe fn free_rings(rings: *mut Padded) {
    // SAFETY: the caller's contract; `stripes()` is fixed for the process.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(rings, stripe::stripes())) });
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn one_thread_never_stripes_and_checks_every_record() {
        let w = TimeWindow::new(16_000_000);
        for i in 0..100 {
            assert!(w.record(i % 10 == 0, false, i * 1000));
        }
        assert!(!w.is_striped());
        let t = w.totals(100_000);
        assert_eq!((t.calls, t.failures), (100, 10));
    }

    #[test]
    fn striped_totals_count_every_record_of_every_thread() {
        let w = Arc::new(TimeWindow::new(16_000_000));
        // Striped the way a lost compare-and-swap stripes it, then records from many threads.
        w.record_contended(1, CALL, false);
        assert!(w.is_striped());
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        w.record(i % 10 == 0, i % 20 == 0, t * 1000 + i);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let t = w.totals(20_000);
        assert_eq!((t.calls, t.failures, t.slow), (40_001, 4_000, 2_000));
        // Time still slides: the stripes' buckets age out like the ring's.
        assert_eq!(w.totals(100_000_000), Totals::default());
        w.record(true, false, 100_000_000);
        assert_eq!(w.totals(100_000_000).failures, 1);
        w.clear();
        assert_eq!(w.totals(100_000_000), Totals::default());
    }

    fn trips(minimum_calls: u32, failure_rate: Option<f64>) -> Trips {
        Trips {
            minimum_calls,
            failure_rate,
        }
    }

    #[test]
    fn a_striped_window_checks_the_successes_that_may_trip() {
        let w = TimeWindow::new(16_000_000);
        w.record_contended(1, CALL, false);
        let t = trips(10, Some(0.5));
        // This thread's stripe: its bucket of interval 0 holds the call that striped the
        // window, so the next nine successes may bring the window to `minimum_calls` (10) and
        // check; later ones cannot.
        let checks: Vec<bool> = (0..64).map(|_| w.record_for(false, false, 0, &t)).collect();
        assert!(checks[..9].iter().all(|&c| c), "{checks:?}");
        assert!(!checks[9..].iter().any(|&c| c), "{checks:?}");
        assert!(w.record_for(false, true, 0, &t), "a slow call checks");
        // The first record of a new interval recycles the bucket (older ones may age out): it
        // checks again.
        assert!(w.record_for(false, false, 1_000_000, &t));
    }

    #[test]
    fn a_striped_stripe_below_the_threshold_checks_one_failure_in_a_few() {
        let w = TimeWindow::new(16_000_000);
        w.record_contended(1, CALL, false);
        let t = trips(10, Some(0.5));
        for _ in 0..99 {
            w.record_for(false, false, 0, &t);
        }
        // 100 calls in this stripe, then failures at well under half of them.
        let checks: Vec<bool> = (0..16).map(|_| w.record_for(true, false, 0, &t)).collect();
        let expected: Vec<bool> = (0..16).map(|i| i % FAILURE_CHECK == 0).collect();
        assert_eq!(checks, expected);
        // Without a failure-rate policy every failure checks.
        assert!(w.record_for(true, false, 0, &trips(10, None)));
    }

    #[test]
    fn a_striped_bucket_at_the_threshold_checks_every_failure() {
        let w = TimeWindow::new(16_000_000);
        w.record_contended(1, CALL, false);
        let t = trips(10, Some(0.5));
        // The bucket: 1 call, then failures: at or over half from the first failure on.
        assert!((0..16).all(|_| w.record_for(true, false, 0, &t)));
        // A new interval's bucket: 40 successes, then failures; the k-th makes k failures of
        // 40 + k calls, at half from k = 40 on; before that, one failure in four of the bucket
        // checks, the first included. (The stripe's older bucket, all failures, is not asked.)
        for _ in 0..40 {
            w.record_for(false, false, 2_000_000, &t);
        }
        let later: Vec<bool> = (0..50)
            .map(|_| w.record_for(true, false, 2_000_000, &t))
            .collect();
        let expected: Vec<bool> = (1..=50)
            .map(|k| k >= 40 || (k - 1) % FAILURE_CHECK == 0)
            .collect();
        assert_eq!(later, expected);
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use loom::sync::Arc;
    use loom::thread;

    use super::*;

    /// Two threads record a success and a failure each into a window that holds a failure:
    /// whether a lost compare-and-swap stripes the window or not, and whoever stripes it, the
    /// totals count every record once. Some executions must stripe.
    #[test]
    fn racing_records_and_striping_lose_nothing() {
        use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        static STRIPED: AtomicUsize = AtomicUsize::new(0);
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(3);
        }
        builder.check(|| {
            let w = Arc::new(TimeWindow::new(16_000_000));
            w.record(true, false, 0);
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let w = w.clone();
                    thread::spawn(move || {
                        w.record(false, false, 5);
                        w.record(true, true, 10);
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            let t = w.totals(10);
            assert_eq!((t.calls, t.failures, t.slow), (5, 3, 2));
            RUNS.fetch_add(1, Relaxed);
            if w.is_striped() {
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
