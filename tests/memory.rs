//! Memory and allocation budgets, counted by a global allocator (sizes and counts, not timings),
//! and resident memory per circuit, read from the kernel in a child process of its own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::Mutex;

use breaker::{Config, ManualClock, Registry, Window};

struct Counting;

thread_local! {
    /// Only the thread under measurement counts: the test harness allocates on its own threads
    /// (reporting finished tests) whenever it likes.
    static MEASURED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn measured() -> bool {
    MEASURED.try_with(|m| m.get()).unwrap_or(false)
}

static BYTES: AtomicIsize = AtomicIsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
/// The counters are process-wide: tests that read them run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if measured() {
            BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if measured() {
            BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if measured() {
            BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` with this thread's allocations counted.
fn counted<T>(f: impl FnOnce() -> T) -> T {
    MEASURED.with(|m| m.set(true));
    let out = f();
    MEASURED.with(|m| m.set(false));
    out
}

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCS.load(Ordering::SeqCst);
    counted(f);
    ALLOCS.load(Ordering::SeqCst) - before
}

const N: usize = 1_000_000;

fn names() -> Vec<String> {
    (0..N).map(|i| format!("tenant-{i:07}")).collect()
}

fn registry() -> Registry {
    Registry::builder().clock(ManualClock::new()).build()
}

/// Bytes a registry allocates per circuit, its copy of the tenant name included, for `N`
/// circuits made by `make`.
fn bytes_per_circuit(make: impl Fn(&Registry, &str)) -> f64 {
    let names = names();
    let registry = registry();
    make(&registry, "warm-up");
    let before = BYTES.load(Ordering::SeqCst);
    counted(|| {
        for n in &names {
            make(&registry, n);
        }
    });
    // The arrays the table outgrew were freed by the creating calls themselves (each collects
    // after its pin is released), so they are not counted.
    let used = BYTES.load(Ordering::SeqCst) - before;
    assert_eq!(registry.len(), N + 1);
    used as f64 / N as f64
}

/// Circuits as `#[circuit_breaker]` makes them: the table's share (10.6 bytes a circuit at a
/// million circuits; 10.5 to 13.1 from ten thousand up, as its groups fill from 70 % to 7/8
/// between rebuilds) and the circuit (72 bytes with its reference count; tenant names of up to
/// 23 bytes are stored inline): 82.6 measured (98.6 before the counts of trips and rejections
/// moved to a record made at a circuit's first trip). Issue 22's goal is 96.
#[test]
fn bytes_per_circuit_made_by_calls_stay_within_budget() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let per_circuit = bytes_per_circuit(|registry, tenant| {
        registry
            .acquire("anthropic", tenant, None)
            .unwrap()
            .success()
    });
    println!("{per_circuit:.1} bytes per circuit made by calls");
    assert!(per_circuit <= 88.0, "{per_circuit:.1} bytes per circuit");
}

/// `Registry::circuit` hands out a handle to the circuit the table holds: nothing more is made
/// or kept per circuit than for calls.
#[test]
fn bytes_per_circuit_made_by_lookups_stay_within_budget() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let per_circuit = bytes_per_circuit(|registry, tenant| {
        registry.circuit("anthropic", tenant);
    });
    println!("{per_circuit:.1} bytes per circuit made by `Registry::circuit`");
    assert!(per_circuit <= 88.0, "{per_circuit:.1} bytes per circuit");
}

/// A circuit that has tripped keeps the record of its trips, stays and rejections (24 bytes),
/// made by its first trip: 106.6 measured. The default registry here trips at the fifth
/// consecutive failure, so each circuit fails five times.
#[test]
fn bytes_per_tripped_circuit_stay_within_budget() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let per_circuit = bytes_per_circuit(|registry, tenant| {
        while let Ok(permit) = registry.acquire("anthropic", tenant, None) {
            permit.failure();
        }
    });
    println!("{per_circuit:.1} bytes per tripped circuit");
    assert!(per_circuit <= 112.0, "{per_circuit:.1} bytes per circuit");
}

/// Set in the child process of [`resident_bytes_per_circuit_stay_within_budget`], which
/// measures there.
const RSS_CHILD: &str = "BREAKER_MEMORY_RSS_CHILD";

/// The process's resident set in bytes (`VmRSS` of `/proc/self/status`: the resident pages of
/// `/proc/self/statm`, in kB).
fn resident_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<usize>().ok())
        .expect("VmRSS");
    kb * 1024
}

/// What circuits made by calls take of the machine's memory, allocator overhead included: the
/// circuit's 72 bytes take an 80-byte chunk of the allocator, and the table its 10.6 bytes a
/// circuit (its arrays are whole pages, all written): 90.6 measured (106.6 with the 88-byte
/// circuit of before, a 96-byte chunk). Issue 22's goal is 96.
/// Measured in a fresh process of this test binary running this test alone (other tests, and
/// the memory they freed for the allocator to reuse, would blur it); there, with the same
/// binary, the figure comes out the same to the byte run after run. The budget, the issue's
/// goal, leaves 5.4 MB for pages the kernel may round up (transparent huge pages set to
/// `always` back whole 2 MB pages; here they are `madvise`).
/// Linux only.
#[test]
fn resident_bytes_per_circuit_stay_within_budget() {
    if std::env::var_os(RSS_CHILD).is_some() {
        let names = names();
        let registry = registry();
        registry
            .acquire("anthropic", "warm-up", None)
            .unwrap()
            .success();
        let before = resident_bytes();
        for n in &names {
            registry.acquire("anthropic", n, None).unwrap().success();
        }
        let after = resident_bytes();
        assert_eq!(registry.len(), N + 1);
        println!("rss_per_circuit {}", (after - before) as f64 / N as f64);
        return;
    }
    if !cfg!(target_os = "linux") {
        return;
    }
    let me = std::env::current_exe().unwrap();
    let out = std::process::Command::new(me)
        .args([
            "resident_bytes_per_circuit_stay_within_budget",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(RSS_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}");
    let per_circuit: f64 = stdout
        .lines()
        .find_map(|l| l.split("rss_per_circuit ").nth(1))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no measurement in {stdout}"));
    println!("{per_circuit:.1} bytes resident per circuit made by calls");
    assert!(
        per_circuit <= 96.0,
        "{per_circuit:.1} bytes resident per circuit"
    );
}

#[test]
fn hot_paths_allocate_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let registry = Registry::builder()
        .default_config(Config::builder().consecutive_failures(1).build().unwrap())
        .clock(ManualClock::new())
        .build();
    let rated = Config::builder()
        .failure_rate(0.5, Window::Calls(10))
        .build()
        .unwrap();
    registry.configure("rated", rated);
    registry.circuit("openai", "acme");
    registry.circuit("rated", "acme");
    let n = allocations_during(|| {
        for _ in 0..1000 {
            registry
                .circuit("openai", "acme")
                .try_acquire()
                .unwrap()
                .success();
            registry.acquire("openai", "acme", None).unwrap().success();
            registry.acquire("rated", "acme", None).unwrap().success();
            registry.acquire("rated", "acme", None).unwrap().ignore();
        }
    });
    assert_eq!(n, 0, "lookups, permits and records of existing circuits");

    registry.acquire("openai", "acme", None).unwrap().failure();
    let n = allocations_during(|| {
        for _ in 0..1000 {
            let err = registry.acquire("openai", "acme", None).unwrap_err();
            assert!(err.retry_after().is_some());
        }
    });
    assert_eq!(n, 0, "rejections while open");
}

#[test]
fn transitions_allocate_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let clock = ManualClock::new();
    let circuit = breaker::Circuit::with_clock(
        Config::builder()
            .consecutive_failures(1)
            .half_open_probes(2)
            .build()
            .unwrap(),
        clock.clone(),
    );
    // A thread's first permit takes its first slots (one allocation, kept for the thread's
    // life): not a transition.
    circuit.try_acquire().unwrap().success();
    // The circuit's first trip makes its record of trips and rejections: one allocation, kept
    // for the circuit's life (the stripe count its counter needs was fixed when the circuit
    // was made).
    let first_trip = allocations_during(|| circuit.try_acquire().unwrap().failure());
    assert_eq!(
        first_trip, 1,
        "the first trip makes the circuit's record, and only that"
    );
    clock.advance(circuit.retry_after().unwrap());
    circuit.try_acquire().unwrap().success();
    let n = allocations_during(|| {
        for i in 0..10_000 {
            circuit.try_acquire().unwrap().failure(); // closed -> open
            clock.advance(circuit.retry_after().unwrap());
            let probe = circuit.try_acquire().unwrap(); // open -> half-open
            if i % 2 == 0 {
                probe.success(); // half-open -> closed
            } else {
                probe.failure(); // half-open -> open
                circuit.reset();
            }
        }
    });
    assert_eq!(n, 0);
}

/// While a provider-wide circuit is open, a tenant's rejections count in its own circuit too:
/// the first makes the tenant's record (one allocation, kept for its life, as a trip's), the
/// later ones none.
#[test]
fn provider_wide_rejections_make_the_tenants_record_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let wide = breaker::ProviderWide::builder()
        .failure_rate(0.5)
        .window(Window::Time(std::time::Duration::from_secs(10)))
        .minimum_calls(20)
        .build()
        .unwrap();
    let registry = Registry::builder()
        .clock(ManualClock::new())
        .provider_wide("openai", wide)
        .build();
    let acme = registry.circuit("openai", "acme");
    registry.acquire("openai", "acme", None).unwrap().success();
    registry.provider_circuit("openai").unwrap().force_open();
    let first = allocations_during(|| {
        let err = registry.acquire("openai", "acme", None).unwrap_err();
        assert!(err.is_provider_wide());
    });
    assert_eq!(first, 1, "the tenant's record");
    let n = allocations_during(|| {
        for _ in 0..1000 {
            assert!(registry.acquire("openai", "acme", None).is_err());
        }
    });
    assert_eq!(n, 0, "later rejections");
    assert_eq!(acme.metrics().rejected, 1001);
    assert_eq!(
        acme.state(),
        breaker::State::Closed,
        "its own circuit never tripped"
    );
}

#[test]
fn raising_events_allocates_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let clock = ManualClock::new();
    let seen = std::sync::Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    let registry = Registry::builder()
        .default_config(Config::builder().consecutive_failures(1).build().unwrap())
        .clock(clock.clone())
        .listener(move |_: &breaker::Event<'_>| {
            count.fetch_add(1, Ordering::Relaxed);
        })
        .build();
    let circuit = registry.circuit("openai", "acme");
    // The circuit's first trip makes its record of trips and rejections (one allocation, kept
    // for the circuit's life).
    circuit.try_acquire().unwrap().failure();
    clock.advance(circuit.retry_after().unwrap());
    circuit.try_acquire().unwrap().success();
    seen.store(0, Ordering::Relaxed);
    let n = allocations_during(|| {
        for _ in 0..1000 {
            circuit.try_acquire().unwrap().success();
            circuit.try_acquire().unwrap().failure(); // closed -> open
            assert!(circuit.try_acquire().is_err()); // rejected
            clock.advance(circuit.retry_after().unwrap());
            circuit.try_acquire().unwrap().success(); // open -> half-open -> closed
        }
    });
    assert_eq!(n, 0, "transitions and rejections with a listener");
    assert_eq!(seen.load(Ordering::Relaxed), 4000);
}
