//! Counting from many cores without writing a cache line another core writes.
//!
//! A counter that every thread bumps with one `fetch_add` on one word makes that word's cache
//! line travel between cores on every count: on a 16-core host a rejection of an open circuit
//! cost 46 times its one-thread time that way (issue 22). Here a count goes to the caller's
//! *stripe*, a cache line of its own chosen by a per-thread index, and readers sum the stripes.
//!
//! Stripes cost memory (a padded line each), and most counters never see two threads at once,
//! so they are made only when contention is seen: until then a [`Counter`] is one word, counted
//! with a compare-and-swap, and the first compare-and-swap that fails (another thread counted
//! in between) installs the stripes, carrying the count over. No count is lost on the way
//! (`loom_models` below, and `tests/loom.rs` on the real rejection path).
//!
//! This file is a leaf: it knows nothing of circuits or windows.

use crate::sync::{AtomicU64, Ordering};

/// The most stripes a striped counter keeps: enough to give each core of a 16-core host a line
/// of its own, bounded so that a striped counter stays within 2 KiB.
pub(crate) const MAX_STRIPES: usize = 16;

/// How many stripes counters keep in this process: the available parallelism rounded up to a
/// power of two, at most [`MAX_STRIPES`]. Fixed on first use (a counter's stripes are freed
/// with this count); two under loom, so the models see both a shared and a private stripe.
#[cfg(not(loom))]
pub(crate) fn stripes() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static STRIPES: AtomicUsize = AtomicUsize::new(0);
    let n = STRIPES.load(Ordering::Relaxed);
    if n != 0 {
        return n;
    }
    let n = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .next_power_of_two()
        .min(MAX_STRIPES);
    // Racing first uses compute the same value; the first store wins either way.
    match STRIPES.compare_exchange(0, n, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => n,
        Err(first) => first,
    }
}

#[cfg(loom)]
pub(crate) fn stripes() -> usize {
    2
}

/// The calling thread's stripe, below [`stripes`]: threads are numbered in the order they first
/// ask, so up to `stripes()` threads each get a line of their own, and more share them evenly.
#[cfg(not(loom))]
#[inline]
pub(crate) fn index() -> usize {
    use std::cell::Cell;
    std::thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    let i = INDEX.with(Cell::get);
    if i != usize::MAX {
        return i;
    }
    first_index(&INDEX)
}

#[cfg(not(loom))]
#[cold]
#[inline(never)]
fn first_index(key: &'static std::thread::LocalKey<std::cell::Cell<usize>>) -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let i = NEXT.fetch_add(1, Ordering::Relaxed) & (stripes() - 1);
    key.with(|k| k.set(i));
    i
}

/// Under loom, the model thread's number in its execution (0 for the main thread), which is
/// the same in every execution, as a model's behaviour must be.
#[cfg(loom)]
pub(crate) fn index() -> usize {
    let id = format!("{:?}", loom::thread::current().id());
    let n: usize = id
        .trim_start_matches("ThreadId(")
        .trim_end_matches(')')
        .parse()
        .unwrap_or(0);
    n & (stripes() - 1)
}

/// One stripe: a counter alone on its cache line (two lines where the hardware prefetches
/// lines in pairs, as crossbeam's `CachePadded` does).
#[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), repr(align(128)))]
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    repr(align(64))
)]
pub(crate) struct Line(pub(crate) AtomicU64);

/// Marks a [`Counter`] word that holds the address of its stripes (lines are aligned, so an
/// address never has this bit).
const STRIPED: u64 = 1;

/// An exact event count that threads may bump concurrently: one word (`count << 1`) until two
/// threads are seen counting at once, then [`stripes`] lines, one per thread where there are
/// that many cores, summed when read. Kept for the counter's life once made.
pub(crate) struct Counter {
    word: AtomicU64,
}

impl Counter {
    pub(crate) fn new() -> Counter {
        // Fixes the stripe count now, off every measured path: the first reading of the
        // available parallelism may allocate (it reads cgroup files), which the first
        // contended count must not.
        stripes();
        Counter {
            word: AtomicU64::new(0),
        }
    }

    /// Counts one. Writes only the counter's own word while it is uncontended, and only this
    /// thread's stripe once it is striped.
    #[inline]
    pub(crate) fn incr(&self) {
        // Acquire: a striped word's lines were initialised before it was published.
        let w = self.word.load(Ordering::Acquire);
        if w & STRIPED == 0 {
            if self
                .word
                .compare_exchange(w, w.wrapping_add(2), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
            return self.incr_contended();
        }
        // SAFETY: a striped word holds the address of lines published by `incr_contended`,
        // freed only when the counter is dropped, which `&self` rules out.
        unsafe { line(w, index()) }.fetch_add(1, Ordering::Relaxed);
    }

    /// [`incr`](Self::incr) after another thread counted in between: stripes the counter,
    /// unless that happened meanwhile, and counts in this thread's stripe.
    #[cold]
    #[inline(never)]
    fn incr_contended(&self) {
        let mut w = self.word.load(Ordering::Acquire);
        let mut fresh: Option<*mut Line> = None;
        while w & STRIPED == 0 {
            let lines = *fresh.get_or_insert_with(alloc_lines);
            // SAFETY: `lines` is ours (not published yet), `stripes()` long.
            unsafe { &*lines }.0.store(w >> 1, Ordering::Relaxed);
            let striped = (lines.expose_provenance() as u64) | STRIPED;
            // Release: the carried count and the lines' zeroes before the address.
            match self
                .word
                .compare_exchange(w, striped, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    fresh = None;
                    w = striped;
                }
                Err(actual) => w = actual,
            }
        }
        if let Some(unused) = fresh {
            // SAFETY: never published, made by `alloc_lines`.
            unsafe { free_lines(unused) };
        }
        // SAFETY: as in `incr`.
        unsafe { line(w, index()) }.fetch_add(1, Ordering::Relaxed);
    }

    /// The count: exact once the threads counting are done; while they count, somewhere between
    /// the counts completed before the call and those completed by its end.
    pub(crate) fn sum(&self) -> u64 {
        let w = self.word.load(Ordering::Acquire);
        if w & STRIPED == 0 {
            return w >> 1;
        }
        (0..stripes())
            // SAFETY: as in `incr`.
            .map(|i| unsafe { line(w, i) }.load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }

    /// Whether the counter has made its stripes (for tests of when memory is spent).
    #[cfg(test)]
    pub(crate) fn is_striped(&self) -> bool {
        self.word.load(Ordering::Acquire) & STRIPED != 0
    }
}

impl Default for Counter {
    fn default() -> Self {
        Counter::new()
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        let w = self.word.load(Ordering::Acquire);
        if w & STRIPED != 0 {
            // SAFETY: published by `incr_contended` from `alloc_lines`; `&mut self` means no one
            // counts any more.
            unsafe {
                free_lines(std::ptr::with_exposed_provenance_mut(
                    (w & !STRIPED) as usize,
                ))
            };
        }
    }
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Counter").field(&self.sum()).finish()
    }
}

/// Line `i` of the stripes whose address a striped word `w` holds.
///
/// # Safety
/// `w` must be a striped word read from a live counter, and `i < stripes()`.
#[inline]
unsafe fn line<'a>(w: u64, i: usize) -> &'a AtomicU64 {
    let lines: *const Line = std::ptr::with_exposed_provenance((w & !STRIPED) as usize);
    // SAFETY: the caller's contract: `lines` is `stripes()` initialised lines, alive as long as
    // the counter, and `i` is in range.
    unsafe { &(*lines.add(i)).0 }
}

/// [`stripes`] zeroed lines, as a thin pointer.
pub(crate) fn alloc_lines() -> *mut Line {
    let lines: Box<[Line]> = (0..stripes()).map(|_| Line(AtomicU64::new(0))).collect();
    Box::into_raw(lines).cast::<Line>()
}

/// Frees what [`alloc_lines`] made.
///
/// # Safety
/// `lines` came from `alloc_lines` and is not used afterwards.
pub(crate) unsafe fn free_lines(lines: *mut Line) {
    // SAFETY: the caller's contract; `stripes()` is fixed for the process, so this is the
    // length it was made with.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(lines, stripes())) });
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn one_thread_counts_in_one_word() {
        let c = Counter::new();
        for _ in 0..1000 {
            c.incr();
        }
        assert_eq!(c.sum(), 1000);
        assert!(!c.is_striped(), "no contention, no stripes");
    }

    #[test]
    fn threads_lose_no_count() {
        let c = Arc::new(Counter::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        c.incr();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.sum(), 400_000);
    }

    #[test]
    fn striping_carries_the_count_over() {
        let c = Counter::new();
        for _ in 0..7 {
            c.incr();
        }
        c.incr_contended();
        assert!(c.is_striped());
        assert_eq!(c.sum(), 8);
        c.incr();
        c.incr_contended();
        assert_eq!(c.sum(), 10);
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use loom::sync::Arc;
    use loom::thread;

    use super::*;

    /// Two threads count twice each on a counter that already counted once: whichever of them
    /// stripes it (or neither), the sum is exact, and the carried count is not counted twice.
    /// Some executions must stripe, or the model proved nothing about striping.
    #[test]
    fn racing_counts_and_striping_lose_nothing() {
        use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        static STRIPED: AtomicUsize = AtomicUsize::new(0);
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(3);
        }
        builder.check(|| {
            let c = Arc::new(Counter::new());
            c.incr();
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let c = c.clone();
                    thread::spawn(move || {
                        c.incr();
                        c.incr();
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(c.sum(), 5);
            RUNS.fetch_add(1, Relaxed);
            if c.is_striped() {
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
