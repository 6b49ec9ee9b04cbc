//! Transitions allocate nothing and leak nothing. A peer's lock-free breaker leaked the old state
//! on every transition (1.2 GiB after 20M); here the state is one `u64` swapped in place, and this
//! binary's counting allocator holds that to account for every kind of transition, both window
//! kinds, stale permits and two threads flapping at once.
//!
//! Counting allocations is exact where resident memory is noisy, so `cargo test` checks counts
//! over 200k transitions; `BREAKER_STRESS=1` runs 10M and also compares resident memory.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use breaker_core::{Circuit, Config, ManualClock, Outcome, Window};

struct Counting;

thread_local! {
    /// Only the churn itself is counted. Thread start-up and tear-down (names, packets, the
    /// list of thread-local destructors that a worker's first use of a thread-local allocates
    /// and its exit frees) and the test harness's own threads are not: counting them made the
    /// byte balance depend on when a finished thread got round to freeing its bookkeeping.
    static MEASURED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn measured() -> bool {
    MEASURED.try_with(|m| m.get()).unwrap_or(false)
}

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if measured() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Relaxed);
            ALLOCS.fetch_add(1, Relaxed);
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
            ALLOCS.fetch_add(1, Relaxed);
        }
        // SAFETY: as for `dealloc`; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn circuits(clock: &ManualClock) -> Vec<Circuit> {
    let base = || {
        Config::builder()
            .open_for(Duration::from_millis(1))
            .max_open_for(Duration::from_millis(8))
            .half_open_probes(2)
            .jitter(0.3)
    };
    [
        base().consecutive_failures(1),
        base().failure_rate(0.5, Window::Calls(4)).minimum_calls(2),
        base()
            .failure_rate(0.5, Window::Time(Duration::from_millis(16)))
            .slow_calls(Duration::from_micros(500), 0.5)
            .minimum_calls(2),
    ]
    .into_iter()
    .map(|b| Circuit::with_clock(b.build().unwrap(), clock.clone()))
    .collect()
}

/// Drives `c` through every kind of transition once per round; returns the transitions made.
fn churn(c: &Circuit, clock: &ManualClock, rounds: u64) -> u64 {
    let mut transitions = 0;
    for i in 0..rounds {
        // A permit from the closed stay, recorded after the circuit has moved on.
        let stale = c.try_acquire().ok();
        // closed -> open (the rate policies need two failures)
        while let Ok(p) = c.try_acquire() {
            p.failure();
        }
        transitions += 1;
        if let Some(left) = c.retry_after() {
            clock.advance(left);
        }
        // open -> half-open, then half-open -> open or -> closed
        if let Ok(probe) = c.try_acquire() {
            transitions += 1;
            clock.advance(Duration::from_micros(i % 1000));
            probe.record(if i % 3 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success
            });
            transitions += 1;
        }
        drop(stale);
        // The operator's transitions.
        match i % 4 {
            0 => c.force_open(),
            1 => c.disable(),
            2 => c.metrics_only(),
            _ => {}
        }
        if let Ok(p) = c.try_acquire() {
            p.ignore();
        }
        c.reset();
        transitions += 2;
        let _ = c.metrics();
    }
    transitions
}

#[test]
fn transitions_allocate_and_leak_nothing() {
    let stress = std::env::var_os("BREAKER_STRESS").is_some();
    let clock = ManualClock::new();
    let circuits = circuits(&clock);
    // Warm up outside the measurement: thread-locals (the jitter PRNG), lazy statics.
    for c in &circuits {
        churn(c, &clock, 10);
    }
    // Roughly five transitions per round and circuit.
    let rounds = if stress {
        700_000
    } else {
        14_000 / u64::from(scale())
    };
    let rss_before = stress.then(resident_bytes).flatten();
    let (allocs, live) = (ALLOCS.load(Relaxed), LIVE_BYTES.load(Relaxed));

    let mut transitions = 0;
    std::thread::scope(|s| {
        // Two threads on the same circuits: concurrent transitions allocate nothing either.
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    // This thread's own thread-locals (the jitter PRNG) first, uncounted.
                    for c in &circuits {
                        churn(c, &clock, 10);
                    }
                    MEASURED.with(|m| m.set(true));
                    let mut n = 0;
                    for c in &circuits {
                        n += churn(c, &clock, rounds / 2);
                    }
                    MEASURED.with(|m| m.set(false));
                    n
                })
            })
            .collect();
        transitions = workers.into_iter().map(|w| w.join().unwrap()).sum::<u64>();
    });
    let allocations = ALLOCS.load(Relaxed) - allocs;
    let leaked = LIVE_BYTES.load(Relaxed) - live;

    eprintln!("{transitions} transitions, {allocations} allocations, {leaked} bytes kept");
    // A floor that says the loop did its work, not a count to meet exactly: the two threads race
    // for the same circuits' probes, so how many of their attempts move a circuit depends on the
    // scheduling. The count is about 200,000 (200,026 to 200,544 in three runs here), and the
    // previous floor was that very number: 199,550 failed a CI run on a busy host. What this
    // test asserts is below: no allocation, no leak.
    assert!(
        transitions
            >= if stress {
                10_000_000
            } else {
                150_000 / u64::from(scale())
            },
        "{transitions} transitions"
    );
    // Issue 22: the first time two threads reject on one circuit at once, its rejection counter
    // makes its per-core stripes (one allocation of at most 16 lines of 128 bytes), and the
    // first time two threads record into a window at once, the window makes its (a time
    // window: one allocation of at most 16 rings of 384 bytes; a count window: three, its
    // heads, rings and their index): once for the circuit's life, freed with it. Each thread
    // racing to make them allocates, the losers free theirs at once. Nothing else may allocate
    // or stay.
    assert!(
        allocations <= circuits.len() * 2 * (1 + 3),
        "{allocations} allocations over {transitions} transitions"
    );
    assert!(
        leaked <= allocations as isize * 16 * 384,
        "{leaked} bytes still live after {transitions} transitions ({allocations} stripes)"
    );

    if let (Some(before), Some(after)) = (rss_before, resident_bytes()) {
        // Noisy, so only a gross leak counts: 1 byte per transition would be 10 MB.
        assert!(
            after < before + (8 << 20),
            "resident memory grew from {before} to {after} bytes over {transitions} transitions"
        );
    }
}

/// Resident set size on Linux, from /proc; `None` elsewhere.
fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// `BREAKER_SCALE=n` divides the work by `n` (valgrind runs these at a tenth or less).
fn scale() -> u32 {
    std::env::var("BREAKER_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1u32)
        .max(1)
}
