//! A provider's pooled window: the outcomes of all its tenants' circuits, counted in stripes so
//! that no cache line is written by every core, with the distinct tenants whose calls failed.
//!
//! A time window `Time(d)` is a ring of [`BUCKETS`] buckets numbered by the clock (`d / 8`
//! each). Each counter word carries its bucket's number in its high bits, so a stale word reads
//! as empty without anyone clearing it, and a new bucket starts by overwriting it.
//!
//! A count window `Calls(n)` numbers calls instead: each stripe keeps a running total of the
//! calls its threads made, and the pool's call count `C` is their sum. A success only adds one
//! to its stripe's total; a failure, at call number `C`, goes into the bucket `C / q` (`q` =
//! `n / 7` calls, so the last `n` calls span at most eight buckets). A decision weighs the
//! failures of the buckets that the last `n` calls cover (the oldest of them in part, at its
//! own rate) against `min(n, C - base)` calls, where `base` is `C` when the provider circuit's
//! closed stay began. So the calls are counted exactly and the failures are placed to within a
//! bucket.
//!
//! Successes, the common case, are counted with a load and a store to the thread's stripe (no
//! read-modify-write): two threads sharing a stripe (more threads than stripes) may lose one
//! of two counts made in the same instant. Failures use compare-and-swap, and are exact.

use crate::config::Window;
use crate::provider::settings::MAX_DISTINCT_TENANTS;
use crate::stripe::MAX_STRIPES;
// std atomics, not `crate::sync`: the pool is counting, checked by its unit tests, not a loom model.
use std::sync::atomic::{AtomicU64, Ordering};

/// Buckets of a pooled window.
pub(crate) const BUCKETS: u64 = 8;
/// Low bits of a counter word: the count; high bits: the bucket's number.
const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const STAMP_MASK: u64 = (1 << (64 - COUNT_BITS)) - 1;

/// One stripe: the counters of the threads that map to it, alone on their cache lines.
#[repr(align(128))]
struct Stripe {
    /// Time windows: calls per bucket; count windows: `calls[0]` is the stripe's running total.
    calls: [AtomicU64; BUCKETS as usize],
    failures: [AtomicU64; BUCKETS as usize],
}

/// The pooled window of one provider, made when its provider-wide circuit is first configured.
/// Every policy the provider hands out caches a pointer to it (`PoolLink`), so that the call
/// path's success reaches the thread's stripe in three dependent loads (policy, pool, stripe).
pub(crate) struct Pool {
    /// What a success on the call path reads first: [`PAUSED`], 0 (a count window) or the µs
    /// per bucket of a time window (`bucket_us`).
    mode: AtomicU64,
    /// Time windows: µs per bucket; 0 for a count window.
    bucket_us: AtomicU64,
    /// Count windows: calls per bucket.
    quota: AtomicU64,
    /// Count windows: the window's size in calls.
    size: AtomicU64,
    /// Count windows: the call count when the pool was last cleared.
    base: AtomicU64,
    /// As many as a striped counter can use ([`MAX_STRIPES`]), in the pool itself (one load
    /// less on the call path), so that a thread's index needs no bounds check; on fewer cores
    /// only the first `stripe::stripes()` are written.
    stripes: [Stripe; MAX_STRIPES],
    /// Tenants whose calls failed.
    failing: Tenants,
    /// Tenants whose calls came back with a `Retry-After`.
    waving: Tenants,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("paused", &self.is_paused())
            .finish_non_exhaustive()
    }
}

/// [`Pool::mode`] while the provider circuit is not closed (or not known to be closed in the
/// stay the pool counts for): successes take the slow path, which checks.
const PAUSED: u64 = u64::MAX;

/// What a decision reads of the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) calls: u32,
    pub(crate) failures: u32,
    pub(crate) failing_tenants: u32,
    pub(crate) waving_tenants: u32,
}

impl Pool {
    /// A pool of `window`, counting.
    pub(crate) fn new(window: Window) -> Pool {
        let pool = Pool {
            mode: AtomicU64::new(PAUSED),
            bucket_us: AtomicU64::new(0),
            quota: AtomicU64::new(1),
            size: AtomicU64::new(1),
            base: AtomicU64::new(0),
            stripes: std::array::from_fn(|_| Stripe::new()),
            failing: Tenants::new(),
            waving: Tenants::new(),
        };
        pool.set_window(window);
        pool.resume();
        pool
    }

    /// Makes `window` the pool's. Outcomes recorded meanwhile may land in either; a caller that
    /// changes the window clears the pool.
    pub(crate) fn set_window(&self, window: Window) {
        match window {
            Window::Time(d) => {
                let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                // Below `PAUSED`, which no window of a valid config comes near.
                let us = (us / BUCKETS).clamp(1, PAUSED - 1);
                self.bucket_us.store(us, Ordering::Relaxed);
            }
            Window::Calls(n) => {
                self.quota
                    .store(u64::from(n).div_ceil(BUCKETS - 1).max(1), Ordering::Relaxed);
                self.size.store(u64::from(n), Ordering::Relaxed);
                self.bucket_us.store(0, Ordering::Relaxed);
            }
        }
        if self.mode.load(Ordering::Relaxed) != PAUSED {
            self.resume();
        }
    }

    /// Sends successes to the slow path (the provider circuit left its closed stay), which
    /// [`resume`](Self::resume)s once it finds the circuit closed again. A success racing a
    /// change of state may be counted in the stay it did not belong to: one count.
    #[inline]
    pub(crate) fn pause(&self) {
        if self.mode.load(Ordering::Relaxed) != PAUSED {
            self.mode.store(PAUSED, Ordering::Relaxed);
        }
    }

    /// Counts successes on the call path again.
    pub(crate) fn resume(&self) {
        self.mode
            .store(self.bucket_us.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Whether successes take the slow path.
    pub(crate) fn is_paused(&self) -> bool {
        self.mode.load(Ordering::Relaxed) == PAUSED
    }

    /// Forgets every outcome (a new closed stay of the provider circuit starts from nothing).
    pub(crate) fn clear(&self) {
        // Count windows keep their running totals and start from the count now.
        self.base.store(self.calls(), Ordering::Relaxed);
        for s in self.stripes.iter() {
            let calls = match self.bucket_us.load(Ordering::Relaxed) {
                0 => &s.calls[1..],
                _ => &s.calls[..],
            };
            for w in calls.iter().chain(s.failures.iter()) {
                w.store(0, Ordering::Relaxed);
            }
        }
        self.failing.clear();
        self.waving.clear();
    }

    /// The number of the current bucket, and (count windows) the call count it was read at.
    fn bucket(&self, now_us: u64) -> (u64, u64) {
        match self.bucket_us.load(Ordering::Relaxed) {
            0 => {
                let c = self.calls();
                (c / self.quota.load(Ordering::Relaxed), c)
            }
            us => (now_us / us, 0),
        }
    }

    /// Counts a success, the call path's: `false` when the pool is paused (or idle) and the
    /// success is the slow path's to count. `now_us` is read only by a time window.
    #[inline(always)]
    pub(crate) fn success(&self, now_us: impl FnOnce() -> u64) -> bool {
        let mode = self.mode.load(Ordering::Relaxed);
        if mode == 0 {
            let total = &self.stripe().calls[0];
            total.store(total.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            return true;
        }
        match time_bucket(mode, now_us) {
            Some(b) => add_success(self.stripe(), b),
            None => return false,
        }
        true
    }

    /// Counts a success whatever the mode: the slow path's.
    pub(crate) fn count_success(&self, now_us: u64) {
        match self.bucket_us.load(Ordering::Relaxed) {
            0 => add_exact(&self.stripe().calls[0]),
            us => add_success(self.stripe(), now_us / us),
        }
    }

    /// Counts a failure of the tenant of hash `tenant` (a `Retry-After` if `waved`) and returns
    /// the window's totals with it.
    pub(crate) fn failure(&self, tenant: u32, waved: bool, now_us: u64) -> Totals {
        let (b, _) = self.bucket(now_us);
        let stripe = self.stripe();
        let i = (b % BUCKETS) as usize;
        match self.bucket_us.load(Ordering::Relaxed) {
            0 => add_exact(&stripe.calls[0]),
            _ => add(&stripe.calls[i], b),
        }
        add(&stripe.failures[i], b);
        self.failing.note(tenant, b);
        if waved {
            self.waving.note(tenant, b);
        }
        self.totals_at(now_us)
    }

    /// What the window holds at `now_us`.
    pub(crate) fn totals_at(&self, now_us: u64) -> Totals {
        let (b, c) = self.bucket(now_us);
        let (calls, failures) = match self.bucket_us.load(Ordering::Relaxed) {
            0 => self.count_totals(b, c),
            _ => self.time_totals(b),
        };
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Totals {
            calls: clamp(calls),
            failures: clamp(failures),
            failing_tenants: self.failing.count(b),
            waving_tenants: self.waving.count(b),
        }
    }

    /// A count window's calls and failures at call count `c` (bucket `b`): the last `size`
    /// calls of the stay, with the failures of the buckets they cover, the oldest in part.
    fn count_totals(&self, b: u64, c: u64) -> (u64, u64) {
        let q = self.quota.load(Ordering::Relaxed);
        let calls = c
            .saturating_sub(self.base.load(Ordering::Relaxed))
            .min(self.size.load(Ordering::Relaxed));
        let start = c - calls;
        let mut failures = 0;
        for k in 0..BUCKETS.min(b + 1) {
            let at = b - k;
            let f: u64 = self
                .stripes
                .iter()
                .map(|s| {
                    count(
                        s.failures[(at % BUCKETS) as usize].load(Ordering::Relaxed),
                        at,
                    )
                })
                .sum();
            let (from, to) = (at * q, (at + 1) * q);
            if to <= start {
                break;
            }
            failures += if from >= start {
                f
            } else {
                f * (to - start) / q
            };
        }
        // Failures are counted exactly, successes may lose a count to a racing store.
        (calls.max(failures), failures)
    }

    /// The calls of a count window: the sum of the stripes' running totals.
    fn calls(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.calls[0].load(Ordering::Relaxed))
            .sum()
    }

    /// A time window's calls and failures in the buckets up to `b`.
    fn time_totals(&self, b: u64) -> (u64, u64) {
        let (mut calls, mut failures) = (0u64, 0u64);
        for s in self.stripes.iter() {
            for k in 0..BUCKETS {
                let at = b.wrapping_sub(k);
                let i = (at % BUCKETS) as usize;
                let f = count(s.failures[i].load(Ordering::Relaxed), at);
                // A success lost to a racing store could leave fewer calls than failures.
                calls += count(s.calls[i].load(Ordering::Relaxed), at).max(f);
                failures += f;
            }
        }
        (calls, failures)
    }

    #[inline(always)]
    fn stripe(&self) -> &Stripe {
        // The index is below `stripe::stripes()`, at most `MAX_STRIPES` (a power of two): the
        // mask changes nothing but spares the bounds check.
        &self.stripes[crate::stripe::index() & (MAX_STRIPES - 1)]
    }
}

/// Adds one to `word`, exactly (a count window's total, for a failure or a slow-path success).
fn add_exact(word: &AtomicU64) {
    word.fetch_add(1, Ordering::Relaxed);
}

/// The bucket of a success of a pool in `mode`, not a count window's: `None` when paused. Out of
/// line: the count window's path (the default) pays nothing for it.
#[inline(never)]
fn time_bucket(mode: u64, now_us: impl FnOnce() -> u64) -> Option<u64> {
    (mode != PAUSED).then(|| now_us() / mode)
}

/// Counts a success in bucket `b`: a load and a store to the thread's stripe.
#[inline(always)]
fn add_success(stripe: &Stripe, b: u64) {
    let word = &stripe.calls[(b % BUCKETS) as usize];
    let w = word.load(Ordering::Relaxed);
    let new = if w >> COUNT_BITS == b & STAMP_MASK {
        w + 1
    } else {
        (b & STAMP_MASK) << COUNT_BITS | 1
    };
    word.store(new, Ordering::Relaxed);
}

impl Stripe {
    fn new() -> Stripe {
        Stripe {
            calls: std::array::from_fn(|_| AtomicU64::new(0)),
            failures: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Adds one to the counter `word` of bucket `b`, exactly.
fn add(word: &AtomicU64, b: u64) {
    let stamp = b & STAMP_MASK;
    let mut w = word.load(Ordering::Relaxed);
    loop {
        let new = if w >> COUNT_BITS == stamp {
            w + 1
        } else {
            stamp << COUNT_BITS | 1
        };
        match word.compare_exchange_weak(w, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => w = actual,
        }
    }
}

/// The count of `word` if it belongs to bucket `b`.
fn count(word: u64, b: u64) -> u64 {
    if word >> COUNT_BITS == b & STAMP_MASK {
        word & COUNT_MASK
    } else {
        0
    }
}

/// Whether the bucket stamped `stamp` is one of the last [`BUCKETS`] at `current` (stamps wrap
/// at `mask`).
fn live(stamp: u64, current: u64, mask: u64) -> bool {
    current.wrapping_sub(stamp) & mask < BUCKETS
}

/// A bounded set of tenant hashes, each with the last bucket it was seen in: distinct tenants
/// in the window, up to [`MAX_DISTINCT_TENANTS`] (enough: a decision only asks whether there are
/// at least `distinct_tenants`, which is at most that). Never one entry per call: a tenant seen
/// again refreshes its entry.
struct Tenants {
    /// `bucket << 32 | hash`, or 0 when free.
    slots: Box<[AtomicU64]>,
}

impl Tenants {
    fn new() -> Tenants {
        Tenants {
            slots: (0..MAX_DISTINCT_TENANTS)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    fn clear(&self) {
        for s in self.slots.iter() {
            s.store(0, Ordering::Relaxed);
        }
    }

    /// Notes that tenant `hash` failed in bucket `b`. When the set holds as many live tenants as
    /// it can, a new one is not noted: the count is at its cap anyway.
    fn note(&self, hash: u32, b: u64) {
        let stamp = b & 0xFFFF_FFFF;
        let entry = stamp << 32 | u64::from(hash);
        // A few rounds at most: each lost race means another tenant took a slot.
        for _ in 0..4 {
            let mut free = None;
            for slot in self.slots.iter() {
                let e = slot.load(Ordering::Relaxed);
                if e != 0 && e as u32 == hash {
                    if e >> 32 != stamp {
                        let _ =
                            slot.compare_exchange(e, entry, Ordering::Relaxed, Ordering::Relaxed);
                    }
                    return;
                }
                if free.is_none() && (e == 0 || !live(e >> 32, stamp, 0xFFFF_FFFF)) {
                    free = Some((slot, e));
                }
            }
            let Some((slot, e)) = free else { return };
            if slot
                .compare_exchange(e, entry, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Distinct tenants noted in the window at bucket `b`.
    fn count(&self, b: u64) -> u32 {
        let stamp = b & 0xFFFF_FFFF;
        self.slots
            .iter()
            .filter(|s| {
                let e = s.load(Ordering::Relaxed);
                e != 0 && live(e >> 32, stamp, 0xFFFF_FFFF)
            })
            .count() as u32
    }
}

/// A tenant's hash for the sets: the same for the same name in every process (a fleet's
/// replicas agree), never 0 (a free slot).
pub(crate) fn tenant_hash(tenant: &str) -> u32 {
    use std::hash::BuildHasher;
    let h = foldhash::fast::FixedState::with_seed(0x9e37_79b9_7f4a_7c15).hash_one(tenant);
    ((h >> 32) as u32 ^ h as u32) | 1
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_time_window_forgets_buckets_older_than_its_length() {
        let pool = Pool::new(Window::Time(Duration::from_secs(8)));
        let s = 1_000_000;
        for _ in 0..10 {
            pool.success(|| 0);
        }
        let t = pool.failure(tenant_hash("a"), false, 3 * s);
        assert_eq!((t.calls, t.failures, t.failing_tenants), (11, 1, 1));
        // At 8 s the bucket of 0 s is gone; the failure of 3 s stays until 11 s.
        let t = pool.totals_at(8 * s);
        assert_eq!((t.calls, t.failures, t.failing_tenants), (1, 1, 1));
        let t = pool.totals_at(11 * s);
        assert_eq!((t.calls, t.failures, t.failing_tenants), (0, 0, 0));
    }

    #[test]
    fn distinct_tenants_are_counted_once_each_and_bounded() {
        let pool = Pool::new(Window::Time(Duration::from_secs(8)));
        for _ in 0..5 {
            pool.failure(tenant_hash("a"), false, 0);
        }
        let t = pool.failure(tenant_hash("b"), true, 0);
        assert_eq!((t.failures, t.failing_tenants, t.waving_tenants), (6, 2, 1));
        for i in 0..1000 {
            pool.failure(tenant_hash(&format!("t{i}")), false, 0);
        }
        assert_eq!(pool.totals_at(0).failing_tenants, MAX_DISTINCT_TENANTS);
        pool.clear();
        assert_eq!(pool.totals_at(0), Totals::default());
    }

    #[test]
    fn a_count_window_holds_about_its_size() {
        let pool = Pool::new(Window::Calls(80));
        for _ in 0..1000 {
            pool.success(|| 0);
        }
        // The 1,000 successes are one bucket, closed by the failure: 79 of them count.
        let t = pool.failure(tenant_hash("a"), false, 0);
        assert_eq!((t.calls, t.failures), (80, 1), "{t:?}");
        for _ in 0..40 {
            pool.failure(tenant_hash("a"), false, 0);
        }
        let t = pool.totals_at(0);
        assert!((39..=41).contains(&t.failures) && t.calls <= 80, "{t:?}");
    }

    #[test]
    fn a_count_window_forgets_failures_older_than_its_last_calls() {
        let pool = Pool::new(Window::Calls(70));
        for _ in 0..10 {
            pool.failure(tenant_hash("a"), false, 0);
        }
        assert_eq!(pool.totals_at(0).failures, 10);
        // 30 calls later the failures are still in the last 70; 100 calls later none is.
        for _ in 0..30 {
            pool.success(|| 0);
        }
        assert_eq!(
            (pool.totals_at(0).calls, pool.totals_at(0).failures),
            (40, 10)
        );
        for _ in 0..70 {
            pool.success(|| 0);
        }
        let t = pool.totals_at(0);
        assert_eq!(
            (t.calls, t.failures, t.failing_tenants),
            (70, 0, 0),
            "{t:?}"
        );
    }

    #[test]
    fn a_cleared_count_window_counts_from_the_clearing() {
        let pool = Pool::new(Window::Calls(50));
        for _ in 0..500 {
            pool.success(|| 0);
        }
        pool.failure(tenant_hash("a"), false, 0);
        pool.clear();
        assert_eq!(pool.totals_at(0), Totals::default());
        for _ in 0..5 {
            pool.success(|| 0);
        }
        let t = pool.failure(tenant_hash("b"), false, 0);
        assert_eq!((t.calls, t.failures, t.failing_tenants), (6, 1, 1), "{t:?}");
    }

    #[test]
    fn a_paused_pool_leaves_successes_to_the_slow_path() {
        let pool = Pool::new(Window::Calls(50));
        pool.pause();
        assert!(!pool.success(|| 0));
        pool.count_success(0);
        pool.resume();
        assert!(pool.success(|| 0));
        assert_eq!(pool.totals_at(0).calls, 2);
    }
}
