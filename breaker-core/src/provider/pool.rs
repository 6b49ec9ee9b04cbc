//! A provider's pooled window: the outcomes of all its tenants' circuits, counted in stripes so
//! that no cache line is written by every core, with the distinct tenants whose calls failed.
//!
//! The window is a ring of [`BUCKETS`] buckets. A time window `Time(d)` numbers its buckets by
//! the clock (`d / 8` each). A count window `Calls(n)` numbers them by a shared counter that only
//! a failure moves on (when the bucket holds at least `n / 8` calls), so successes never write a
//! shared line: buckets of a healthy provider grow large, and a decision reads the newest buckets
//! up to `n` calls (the bucket that crosses that line counted in part, at its own rate). So a
//! count window is an approximation of the last `n` calls, which a failure rate over a pool of
//! tenants can afford: a burst of failures fills buckets of `n / 8` failures each, and the old
//! successes it is weighed against are their bucket's average.
//!
//! Each counter word carries its bucket's number in its high bits, so a stale word reads as
//! empty without anyone clearing it, and a new bucket starts by overwriting it.
//! Successes, the common case, are counted with a load and a store to the thread's stripe (no
//! read-modify-write): two threads sharing a stripe (more threads than stripes) may lose one
//! of two counts made in the same instant. Failures use compare-and-swap, and are exact.

use std::cell::Cell;
use std::sync::OnceLock;

use crate::config::Window;
use crate::provider::settings::MAX_DISTINCT_TENANTS;
// std atomics, not `crate::sync`: the pool is counting, checked by its unit tests, not a loom model.
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Buckets of a pooled window.
pub(crate) const BUCKETS: u64 = 8;
/// Low bits of a counter word: the count; high bits: the bucket's number.
const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const STAMP_MASK: u64 = (1 << (64 - COUNT_BITS)) - 1;

/// One stripe: the counters of the threads that map to it, alone on their cache lines.
#[repr(align(128))]
struct Stripe {
    calls: [AtomicU64; BUCKETS as usize],
    failures: [AtomicU64; BUCKETS as usize],
}

/// The pooled window of one provider.
pub(crate) struct Pool {
    /// Time windows: µs per bucket; 0 for a count window.
    bucket_us: AtomicU64,
    /// Count windows: calls per bucket.
    quota: AtomicU64,
    /// Count windows: the window's size in calls.
    size: AtomicU64,
    /// Count windows: the number of the current bucket.
    gen: AtomicU64,
    stripes: Box<[Stripe]>,
    /// Tenants whose calls failed.
    failing: Tenants,
    /// Tenants whose calls came back with a `Retry-After`.
    waving: Tenants,
}

/// What a decision reads of the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) calls: u32,
    pub(crate) failures: u32,
    pub(crate) failing_tenants: u32,
    pub(crate) waving_tenants: u32,
}

impl Pool {
    pub(crate) fn new(window: Window) -> Pool {
        let pool = Pool {
            bucket_us: AtomicU64::new(0),
            quota: AtomicU64::new(1),
            size: AtomicU64::new(1),
            gen: AtomicU64::new(0),
            stripes: (0..stripes()).map(|_| Stripe::new()).collect(),
            failing: Tenants::new(),
            waving: Tenants::new(),
        };
        pool.set_window(window);
        pool
    }

    /// Makes `window` the pool's. Outcomes recorded meanwhile may land in either; a caller that
    /// changes the window clears the pool.
    pub(crate) fn set_window(&self, window: Window) {
        match window {
            Window::Time(d) => {
                let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                self.bucket_us
                    .store((us / BUCKETS).max(1), Ordering::Relaxed);
            }
            Window::Calls(n) => {
                self.quota
                    .store((u64::from(n) / BUCKETS).max(1), Ordering::Relaxed);
                self.size.store(u64::from(n), Ordering::Relaxed);
                self.bucket_us.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Forgets every outcome (a new closed stay of the provider circuit starts from nothing).
    pub(crate) fn clear(&self) {
        for s in self.stripes.iter() {
            for w in s.calls.iter().chain(s.failures.iter()) {
                w.store(0, Ordering::Relaxed);
            }
        }
        self.failing.clear();
        self.waving.clear();
    }

    /// The number of the current bucket.
    #[inline]
    fn bucket(&self, now_us: u64) -> u64 {
        match self.bucket_us.load(Ordering::Relaxed) {
            0 => self.gen.load(Ordering::Relaxed),
            us => now_us / us,
        }
    }

    /// Counts a success; `now_us` is read only by a time window.
    #[inline]
    pub(crate) fn success(&self, now_us: impl FnOnce() -> u64) {
        match self.bucket_us.load(Ordering::Relaxed) {
            0 => self.add_success(self.gen.load(Ordering::Relaxed)),
            us => self.add_success(now_us() / us),
        }
    }

    /// Counts a success in bucket `b`: a load and a store to this thread's stripe.
    #[inline]
    fn add_success(&self, b: u64) {
        let word = &self.stripe().calls[(b % BUCKETS) as usize];
        let w = word.load(Ordering::Relaxed);
        let new = if w >> COUNT_BITS == b & STAMP_MASK {
            w + 1
        } else {
            (b & STAMP_MASK) << COUNT_BITS | 1
        };
        word.store(new, Ordering::Relaxed);
    }

    /// Counts a failure of the tenant of hash `tenant` (a `Retry-After` if `waved`) and returns
    /// the window's totals with it.
    pub(crate) fn failure(&self, tenant: u32, waved: bool, now_us: u64) -> Totals {
        let mut b = self.bucket(now_us);
        if self.bucket_us.load(Ordering::Relaxed) == 0 {
            // A count window moves on here only: a full bucket (successes piled up since the
            // last failure, or a burst of failures) is closed before this failure goes in.
            let i = (b % BUCKETS) as usize;
            let current: u64 = self
                .stripes
                .iter()
                .map(|s| count(s.calls[i].load(Ordering::Relaxed), b))
                .sum();
            if current >= self.quota.load(Ordering::Relaxed) {
                self.next_bucket(b);
                b = self.bucket(now_us);
            }
        }
        let stripe = self.stripe();
        let i = (b % BUCKETS) as usize;
        add(&stripe.calls[i], b);
        add(&stripe.failures[i], b);
        self.failing.note(tenant, b);
        if waved {
            self.waving.note(tenant, b);
        }
        self.totals(b)
    }

    /// What the window holds at `now_us`.
    pub(crate) fn totals_at(&self, now_us: u64) -> Totals {
        self.totals(self.bucket(now_us))
    }

    /// The hashes of the distinct tenants whose calls failed in the window at `now_us` (a
    /// fleet's report: its replicas union them). Cold: read by a fleet's task, never a call.
    pub(crate) fn failing_at(&self, now_us: u64) -> Vec<u32> {
        self.failing.live(self.bucket(now_us))
    }

    fn totals(&self, b: u64) -> Totals {
        // Per bucket, newest first.
        let mut buckets = [(0u64, 0u64); BUCKETS as usize];
        for s in self.stripes.iter() {
            for (k, bucket) in buckets.iter_mut().enumerate() {
                let i = (b.wrapping_sub(k as u64) % BUCKETS) as usize;
                let at = b.wrapping_sub(k as u64);
                bucket.0 += count(s.calls[i].load(Ordering::Relaxed), at);
                bucket.1 += count(s.failures[i].load(Ordering::Relaxed), at);
            }
        }
        let (mut calls, mut failures) = (0u64, 0u64);
        let size = match self.bucket_us.load(Ordering::Relaxed) {
            0 => self.size.load(Ordering::Relaxed),
            _ => u64::MAX,
        };
        for (c, f) in buckets {
            // A success lost to a racing store could leave fewer calls than failures.
            let c = c.max(f);
            if calls + c <= size {
                calls += c;
                failures += f;
                continue;
            }
            // A count window holds the newest `size` calls: of the bucket that crosses that
            // line, the share that fits, at the bucket's own rate.
            let room = size - calls;
            failures += f * room / c;
            calls = size;
            break;
        }
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Totals {
            calls: clamp(calls),
            failures: clamp(failures),
            failing_tenants: self.failing.count(b),
            waving_tenants: self.waving.count(b),
        }
    }

    /// Moves a count window on from bucket `b` (unless someone did), dropping the oldest.
    fn next_bucket(&self, b: u64) {
        let _ = self
            .gen
            .compare_exchange(b, b + 1, Ordering::Relaxed, Ordering::Relaxed);
    }

    #[inline]
    fn stripe(&self) -> &Stripe {
        &self.stripes[stripe_index() & (self.stripes.len() - 1)]
    }
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

/// The stripes of a pool: a power of two, at least the number of cores (up to 64), so threads on
/// different cores mostly write different lines.
fn stripes() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(4, usize::from)
            .next_power_of_two()
            .clamp(2, 64)
    })
}

/// This thread's stripe number: handed out in turn as threads first record, so a pool of
/// threads spreads over the stripes.
#[inline]
fn stripe_index() -> usize {
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        let v = i.get();
        if v != usize::MAX {
            return v;
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let v = NEXT.fetch_add(1, Ordering::Relaxed) as usize;
        i.set(v);
        v
    })
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

    /// The hashes noted in the window at bucket `b`.
    fn live(&self, b: u64) -> Vec<u32> {
        let stamp = b & 0xFFFF_FFFF;
        self.slots
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .filter(|&e| e != 0 && live(e >> 32, stamp, 0xFFFF_FFFF))
            .map(|e| e as u32)
            .collect()
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
        let hashes = pool.failing_at(0);
        assert_eq!(hashes.len(), MAX_DISTINCT_TENANTS as usize);
        assert!(hashes.contains(&tenant_hash("a")) && hashes.contains(&tenant_hash("b")));
        assert!(
            pool.failing_at(16 * 1_000_000).is_empty(),
            "out of the window"
        );
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
    fn a_count_window_reads_only_its_newest_calls() {
        let pool = Pool::new(Window::Calls(80));
        // One huge bucket of successes (as many stripes make, each below its quota).
        for _ in 0..5 {
            for s in pool.stripes.iter() {
                let w = &s.calls[0];
                w.store(w.load(Ordering::Relaxed) + 200, Ordering::Relaxed);
            }
        }
        pool.next_bucket(0);
        for _ in 0..40 {
            pool.failure(tenant_hash("a"), false, 0);
        }
        let t = pool.totals_at(0);
        assert_eq!(t.calls, 80);
        assert_eq!(t.failures, 40, "{t:?}");
    }
}
