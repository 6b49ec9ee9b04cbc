//! Provider names seen once (a tower layer keyed by upstream host, say) cost nothing once their
//! circuits are gone: the entry (its table, policy and locks, about 600 bytes) is dropped by the
//! registry's sweeps, and sweeps then walk only the providers left. Only the interned name stays
//! for the life of the process, because rejections carry it as a `&'static str`.
//!
//! Counted by this binary's allocator (bytes, not timings).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::Duration;

use breaker_core::{ManualClock, Registry};

struct Counting;

thread_local! {
    /// Only the thread under test counts: the harness allocates on its own threads.
    static MEASURED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn measured() -> bool {
    MEASURED.try_with(|m| m.get()).unwrap_or(false)
}

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if measured() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Relaxed);
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if measured() {
            LIVE_BYTES.fetch_sub(layout.size() as isize, Relaxed);
        }
        // SAFETY: `ptr` came from `System.alloc` with this layout (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if measured() {
            LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        }
        // SAFETY: as for `dealloc`; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Uses `n` providers never seen before (one call each), then lets two sweeps drop them.
fn churn(r: &Registry, round: usize, n: usize) {
    for i in 0..n {
        r.acquire(&format!("host-{round:03}-{i:05}.example"), "t", None)
            .unwrap()
            .success();
    }
    // Used since creation: the first sweep spares the circuits, the second drops them, the
    // third the entries (empty at two sweeps in a row).
    for _ in 0..3 {
        r.evict_idle();
    }
    assert_eq!(r.len(), 0);
}

#[test]
fn provider_entries_were_never_freed() {
    const N: usize = 10_000;
    let r = Registry::builder()
        .clock(ManualClock::new())
        .idle_ttl(Duration::from_secs(60))
        .build();
    MEASURED.with(|m| m.set(true));
    // Warm-up: the provider map and the name set reach their working size.
    churn(&r, 0, N);
    let before = LIVE_BYTES.load(Relaxed);
    for round in 1..=4 {
        churn(&r, round, N);
    }
    let per_provider = (LIVE_BYTES.load(Relaxed) - before) as f64 / (4 * N) as f64;
    MEASURED.with(|m| m.set(false));
    // The name's bytes (22 here) and its slot in the interning set, plus what the epoch has not
    // freed yet: 43 bytes measured; 513 when entries were kept.
    assert!(
        per_provider < 96.0,
        "{per_provider:.0} bytes kept per provider seen once"
    );
}
