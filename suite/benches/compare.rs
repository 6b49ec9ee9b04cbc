//! `breaker` side by side with its peers and a bare call, in one run.
//!
//! ```text
//! cargo bench -p breaker-suite --bench compare                        # everything (a few minutes)
//! cargo bench -p breaker-suite --bench compare -- held                # one group, by name filter
//! BREAKER_BENCH_QUICK=1 cargo bench -p breaker-suite --bench compare  # shorter samples
//! ```
//!
//! Every case is timed with criterion; at the end a table prints each case as a ratio to the bare
//! call of the same run, so numbers from noisy or different machines stay comparable. Memory per
//! circuit is counted by a counting global allocator, not timed. See BENCHMARKS.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, RwLock};
use std::time::{Duration, Instant};

use breaker::{circuit_breaker, Circuit, CircuitOpen, Config, Registry, Window};
use criterion::Criterion;

mod common;
use common::ready;

// ---------------------------------------------------------------------------------------------
// Counting allocator, for bytes per circuit.

struct Counting;
static BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---------------------------------------------------------------------------------------------
// The work being protected, and the reference design the project started from.

#[derive(Debug)]
struct ApiError;

impl From<CircuitOpen> for ApiError {
    fn from(_: CircuitOpen) -> Self {
        ApiError
    }
}

#[inline(never)]
fn work(x: u64) -> Result<u64, ApiError> {
    Ok(black_box(x).wrapping_mul(3))
}

#[inline(never)]
fn flaky(x: u64) -> Result<u64, ApiError> {
    // 10 % failures, deterministic.
    if x % 10 == 0 {
        Err(ApiError)
    } else {
        Ok(black_box(x).wrapping_mul(3))
    }
}

async fn unannotated(tenant: &str, x: u64) -> Result<u64, ApiError> {
    black_box(tenant);
    work(x)
}

#[circuit_breaker(provider = "bench", tenant = tenant)]
async fn annotated(tenant: &str, x: u64) -> Result<u64, ApiError> {
    black_box(tenant);
    work(x)
}

/// A faithful small copy of the reference design: a mutex around each circuit's state, a
/// `RwLock<HashMap<(String, String), Arc<_>>>` tracker, two `String`s allocated per lookup.
mod reference {
    use super::*;

    enum State {
        Closed { failures: u32 },
        Open { until: Instant },
        HalfOpen,
    }

    pub struct RefCircuit {
        state: Mutex<State>,
    }

    impl RefCircuit {
        pub fn new() -> Self {
            RefCircuit {
                state: Mutex::new(State::Closed { failures: 0 }),
            }
        }

        pub fn call<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Option<Result<T, E>> {
            {
                let mut s = self.state.lock().unwrap();
                match *s {
                    State::Open { until } if Instant::now() < until => return None,
                    State::Open { .. } => *s = State::HalfOpen,
                    _ => {}
                }
            }
            let r = f();
            let mut s = self.state.lock().unwrap();
            *s = match (&*s, r.is_ok()) {
                (_, true) => State::Closed { failures: 0 },
                (State::Closed { failures }, false) if failures + 1 < 5 => State::Closed {
                    failures: failures + 1,
                },
                _ => State::Open {
                    until: Instant::now() + Duration::from_secs(30),
                },
            };
            Some(r)
        }
    }

    #[derive(Default)]
    pub struct Tracker {
        map: RwLock<HashMap<(String, String), Arc<RefCircuit>>>,
    }

    impl Tracker {
        pub fn get(&self, tenant: &str, provider: &str) -> Arc<RefCircuit> {
            let key = (tenant.to_string(), provider.to_string());
            if let Some(c) = self.map.read().unwrap().get(&key) {
                return c.clone();
            }
            self.map
                .write()
                .unwrap()
                .entry(key)
                .or_insert_with(|| Arc::new(RefCircuit::new()))
                .clone()
        }

        pub fn len(&self) -> usize {
            self.map.read().unwrap().len()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Measurement: criterion times each case; we keep each sample's per-call time for the ratio table.

static RESULTS: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

fn keep(name: &str, iters: u64, elapsed: Duration) -> Duration {
    let per_call = elapsed.as_nanos() as f64 / iters as f64;
    RESULTS
        .lock()
        .unwrap()
        .entry(name.to_string())
        .or_default()
        .push(per_call);
    elapsed
}

fn bench(c: &mut Criterion, group: &str, name: &str, mut f: impl FnMut(u64) -> u64) {
    let id = format!("{group}/{name}");
    c.bench_function(&id, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let mut acc = 0u64;
            for i in 0..iters {
                acc = acc.wrapping_add(f(i));
            }
            black_box(acc);
            keep(&id, iters, start.elapsed())
        })
    });
}

/// `threads` threads run `f` concurrently; the time is the slowest thread's, per call.
fn bench_threads<F>(c: &mut Criterion, group: &str, name: &str, threads: usize, f: F)
where
    F: Fn(u64) -> u64 + Sync,
{
    let id = format!("{group}/{name}");
    c.bench_function(&id, |b| {
        b.iter_custom(|iters| {
            let barrier = Barrier::new(threads);
            let slowest = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let (f, barrier) = (&f, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            let start = Instant::now();
                            let mut acc = 0u64;
                            for i in 0..iters {
                                acc =
                                    acc.wrapping_add(f(i.wrapping_mul(threads as u64) + t as u64));
                            }
                            black_box(acc);
                            start.elapsed()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .max()
                    .unwrap()
            });
            keep(&id, iters, slowest)
        })
    });
}

/// `bytes` of cache lines, each line's first word the index of the next line of one random
/// cycle through all of them.
fn chase_cycle(bytes: usize) -> Vec<u64> {
    let n = bytes / 64;
    let mut order: Vec<u64> = (0..n as u64).collect();
    for i in (1..n).rev() {
        order.swap(i, (xorshift(i as u64) % (i as u64 + 1)) as usize);
    }
    let mut lines = vec![0u64; n * 8];
    for w in 0..n {
        lines[order[w] as usize * 8] = order[(w + 1) % n];
    }
    lines
}

fn xorshift(i: u64) -> u64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 33)
}

// ---------------------------------------------------------------------------------------------

fn main() {
    if let Some(n) = std::env::var_os(RSS_CHILD) {
        return rss_child(n.to_str().and_then(|n| n.parse().ok()).unwrap_or(1_000_000));
    }
    let quick = std::env::var_os("BREAKER_BENCH_QUICK").is_some();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(if quick { 100 } else { 500 }))
        .measurement_time(Duration::from_millis(if quick { 300 } else { 2000 }))
        .sample_size(if quick { 10 } else { 30 })
        .configure_from_args();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    // Held circuit, closed, every call succeeds, one thread.
    let g = "held";
    bench(&mut c, g, "bare", |i| work(i).unwrap_or(0));
    let circuit = Circuit::new(Config::default());
    bench(&mut c, g, "breaker", |i| {
        let permit = circuit.try_acquire_scoped().unwrap();
        let r = work(i);
        permit.success();
        r.unwrap_or(0)
    });
    // The owned, `'static` permit: a hazard in a slot the thread owns (two plain stores), no
    // reference count.
    bench(&mut c, g, "breaker_owned", |i| {
        let permit = circuit.try_acquire().unwrap();
        let r = work(i);
        permit.success();
        r.unwrap_or(0)
    });
    let fs = failsafe::Config::new().build();
    bench(&mut c, g, "failsafe", |i| {
        use failsafe::CircuitBreaker;
        fs.call(|| work(i)).unwrap_or(0)
    });
    let rc = recloser::Recloser::default();
    bench(&mut c, g, "recloser", |i| rc.call(|| work(i)).unwrap_or(0));
    let rf = reference::RefCircuit::new();
    bench(&mut c, g, "reference", |i| {
        rf.call(|| work(i)).and_then(Result::ok).unwrap_or(0)
    });

    // The attribute on an async fn, through the global registry, one hot tenant.
    let g = "annotated";
    bench(&mut c, g, "unannotated", |i| {
        ready(unannotated("tenant-1", i)).unwrap_or(0)
    });
    bench(&mut c, g, "breaker", |i| {
        ready(annotated("tenant-1", i)).unwrap_or(0)
    });
    let tracker = reference::Tracker::default();
    bench(&mut c, g, "reference", |i| {
        let circuit = tracker.get("tenant-1", "bench");
        circuit.call(|| work(i)).and_then(Result::ok).unwrap_or(0)
    });

    // A closed circuit's success through a registry, with and without a fleet attached (issue
    // 11: the fleet is reached from transitions only, so the two must cost the same). The fleet
    // here does nothing: no store is in the way of a measurement of the call path.
    let g = "fleet";
    struct Idle;
    impl breaker::fleet::Fleet for Idle {
        fn attach(&self, _: breaker::fleet::FleetLink) {}
        fn publish(&self, _: &breaker::fleet::Change<'_>) {}
    }
    for (name, registry) in [
        ("registry", Registry::builder().build()),
        (
            "registry_with_fleet",
            Registry::builder().fleet(Idle).build(),
        ),
    ] {
        bench(&mut c, g, name, |i| {
            let permit = registry.acquire("bench", "tenant-1", None).unwrap();
            let r = work(i);
            permit.success();
            r.unwrap_or(0)
        });
    }

    // The same with 100,000 tenants chosen at random.
    let g = "tenants_100k";
    let tenants: Vec<String> = (0..100_000).map(|i| format!("tenant-{i}")).collect();
    let pick = |i: u64| tenants[(xorshift(i) % tenants.len() as u64) as usize].as_str();
    for t in &tenants {
        ready(annotated(t, 1)).ok();
        tracker.get(t, "bench");
    }
    bench(&mut c, g, "unannotated", |i| {
        ready(unannotated(pick(i), i)).unwrap_or(0)
    });
    bench(&mut c, g, "breaker", |i| {
        ready(annotated(pick(i), i)).unwrap_or(0)
    });
    bench(&mut c, g, "reference", |i| {
        let circuit = tracker.get(pick(i), "bench");
        circuit.call(|| work(i)).and_then(Result::ok).unwrap_or(0)
    });
    // Not a breaker: what one read of a cache line that is not in cache costs on this machine,
    // each read depending on the one before (a random cycle through 16 MiB, about the size of
    // 100,000 circuits and their table). Anything that must read a cold tenant's state pays
    // at least this once a call, so it bounds the ratio a design can reach here.
    let lines = chase_cycle(16 << 20);
    let mut at = 0usize;
    bench(&mut c, g, "memory_read", |_| {
        at = lines[at * 8] as usize;
        at as u64
    });
    drop(lines);

    // Rejection while open.
    let g = "rejection";
    let open = Circuit::new(Config::builder().consecutive_failures(1).build().unwrap());
    open.try_acquire().unwrap().failure();
    bench(&mut c, g, "breaker", |_| {
        u64::from(open.try_acquire().is_err())
    });
    let fs_open = failsafe::Config::new().build();
    {
        use failsafe::CircuitBreaker;
        while fs_open.is_call_permitted() {
            let _ = fs_open.call(|| Err::<(), _>(ApiError));
        }
    }
    bench(&mut c, g, "failsafe", |_| {
        use failsafe::CircuitBreaker;
        u64::from(fs_open.call(|| work(1)).is_err())
    });
    let rc_open = recloser::Recloser::custom().closed_len(1).build();
    for _ in 0..3 {
        let _ = rc_open.call(|| Err::<(), _>(ApiError));
    }
    bench(&mut c, g, "recloser", |_| {
        u64::from(rc_open.call(|| work(1)).is_err())
    });
    let rf_open = reference::RefCircuit::new();
    for _ in 0..5 {
        rf_open.call(|| Err::<(), _>(ApiError));
    }
    bench(&mut c, g, "reference", |_| {
        u64::from(rf_open.call(|| work(1)).is_none())
    });

    // Every core on one shared circuit.
    let g = format!("threads_{cores}");
    let g = g.as_str();
    bench(&mut c, g, "bare_1t", |i| work(i).unwrap_or(0));
    let shared = Circuit::new(Config::default());
    let breaker_call = |i: u64| {
        let permit = shared.try_acquire_scoped().unwrap();
        let r = work(i);
        permit.success();
        r.unwrap_or(0)
    };
    bench(&mut c, g, "breaker_1t", breaker_call);
    bench_threads(&mut c, g, "breaker", cores, breaker_call);
    let owned_call = |i: u64| {
        let permit = shared.try_acquire().unwrap();
        let r = work(i);
        permit.success();
        r.unwrap_or(0)
    };
    bench(&mut c, g, "breaker_owned_1t", owned_call);
    bench_threads(&mut c, g, "breaker_owned", cores, owned_call);
    // The attribute's path: a registry lookup and a `'static` permit that pins an epoch
    // (thread-local stores) instead of counting references on the shared circuit.
    let threads_registry = Registry::builder().build();
    let registry_call = |i: u64| {
        let permit = threads_registry.acquire("bench", "tenant-1", None).unwrap();
        let r = work(i);
        permit.success();
        r.unwrap_or(0)
    };
    bench(&mut c, g, "breaker_registry_1t", registry_call);
    bench_threads(&mut c, g, "breaker_registry", cores, registry_call);
    let fs_shared = failsafe::Config::new().build();
    let fs_call = |i: u64| {
        use failsafe::CircuitBreaker;
        fs_shared.call(|| work(i)).unwrap_or(0)
    };
    bench(&mut c, g, "failsafe_1t", fs_call);
    bench_threads(&mut c, g, "failsafe", cores, fs_call);
    let rc_shared = recloser::Recloser::default();
    let rc_call = |i: u64| rc_shared.call(|| work(i)).unwrap_or(0);
    bench(&mut c, g, "recloser_1t", rc_call);
    bench_threads(&mut c, g, "recloser", cores, rc_call);
    let rf_shared = reference::RefCircuit::new();
    let rf_call = |i: u64| rf_shared.call(|| work(i)).and_then(Result::ok).unwrap_or(0);
    bench(&mut c, g, "reference_1t", rf_call);
    bench_threads(&mut c, g, "reference", cores, rf_call);

    // Every core, 10 % failures, failure-rate window (which never reaches its threshold).
    let rated = Circuit::new(
        Config::builder()
            .failure_rate(0.5, Window::Calls(100))
            .build()
            .unwrap(),
    );
    let rated_call = |i: u64| match rated.try_acquire_scoped() {
        Ok(permit) => {
            let r = flaky(i);
            permit.record(if r.is_ok() {
                breaker::Outcome::Success
            } else {
                breaker::Outcome::Failure
            });
            r.unwrap_or(0)
        }
        Err(_) => 0,
    };
    let windowed = Circuit::new(
        Config::builder()
            .failure_rate(0.5, Window::Calls(100))
            .build()
            .unwrap(),
    );
    let windowed_call = |i: u64| {
        let permit = windowed.try_acquire_scoped().unwrap();
        let r = work(i);
        permit.success();
        r.unwrap_or(0)
    };
    bench(&mut c, g, "breaker_window_1t", windowed_call);
    bench_threads(&mut c, g, "breaker_window", cores, windowed_call);
    bench(&mut c, g, "breaker_rate_1t", rated_call);
    bench_threads(&mut c, g, "breaker_rate", cores, rated_call);
    // The same under a time window (issue 22).
    let rated_time = Circuit::new(
        Config::builder()
            .failure_rate(0.5, Window::Time(Duration::from_secs(10)))
            .build()
            .unwrap(),
    );
    let rated_time_call = |i: u64| match rated_time.try_acquire_scoped() {
        Ok(permit) => {
            let r = flaky(i);
            permit.record(if r.is_ok() {
                breaker::Outcome::Success
            } else {
                breaker::Outcome::Failure
            });
            r.unwrap_or(0)
        }
        Err(_) => 0,
    };
    bench(&mut c, g, "breaker_rate_time_1t", rated_time_call);
    bench_threads(&mut c, g, "breaker_rate_time", cores, rated_time_call);
    // Every core rejected by one open circuit: a sick provider's fast-fail path (issue 22).
    let reject_call = |_: u64| u64::from(open.try_acquire_scoped().is_err());
    bench(&mut c, g, "breaker_reject_1t", reject_call);
    bench_threads(&mut c, g, "breaker_reject", cores, reject_call);
    // 16 tenants of one provider, each call a registry lookup of one of them (the attribute's
    // path): what the tenants share through their provider must not make cores contend.
    let tenants_registry = Registry::builder().build();
    let tenant_names: Vec<String> = (0..16).map(|t| format!("tenant-{t:02}")).collect();
    let tenants_call = |i: u64| {
        let tenant = &tenant_names[(xorshift(i) % 16) as usize];
        let permit = tenants_registry.acquire("bench", tenant, None).unwrap();
        let r = work(i);
        permit.success();
        r.unwrap_or(0)
    };
    bench(&mut c, g, "breaker_tenants16_1t", tenants_call);
    bench_threads(&mut c, g, "breaker_tenants16", cores, tenants_call);
    let rc_rated = recloser::Recloser::default();
    let rc_rated_call = |i: u64| rc_rated.call(|| flaky(i)).unwrap_or(0);
    bench(&mut c, g, "recloser_rate_1t", rc_rated_call);
    bench_threads(&mut c, g, "recloser_rate", cores, rc_rated_call);

    c.final_summary();
    print_ratios(cores);
    print_memory(if quick { 100_000 } else { 1_000_000 });
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn print_ratios(cores: usize) {
    let mut results = RESULTS.lock().unwrap();
    let mut med: BTreeMap<String, f64> = BTreeMap::new();
    for (k, v) in results.iter_mut() {
        med.insert(k.clone(), median(v));
    }
    let bare = med.get("held/bare").copied().unwrap_or(f64::NAN);
    println!("\n== ratios to a bare call ({bare:.2} ns), {cores} cores, median of samples ==");
    println!("{:<36} {:>12} {:>10}", "case", "ns/call", "× bare");
    for (k, ns) in &med {
        println!("{k:<36} {ns:>12.2} {:>10.1}", ns / bare);
    }
    let get = |k: &str| med.get(k).copied().unwrap_or(f64::NAN);
    println!("\n== targets ==");
    println!(
        "held breaker - bare             = {:>8.2} ns (target ≤ 5)",
        get("held/breaker") - bare
    );
    println!(
        "annotated - unannotated         = {:>8.2} ns (target ≤ 20)",
        get("annotated/breaker") - get("annotated/unannotated")
    );
    println!(
        "100k tenants: reference/breaker = {:>8.2} ×  (target ≥ 6)",
        get("tenants_100k/reference") / get("tenants_100k/breaker")
    );
    println!(
        "  one uncached read here        = {:>8.2} ns: reference / that = {:.2} ×, the most a design reading one cold line a call could reach",
        get("tenants_100k/memory_read"),
        get("tenants_100k/reference") / get("tenants_100k/memory_read")
    );
    println!(
        "rejection                       = {:>8.2} ns (target ≤ 20)",
        get("rejection/breaker")
    );
    let g = format!("threads_{cores}");
    for name in [
        "breaker",
        "breaker_owned",
        "breaker_registry",
        "breaker_window",
        "breaker_rate",
        "breaker_rate_time",
        "breaker_reject",
        "breaker_tenants16",
        "failsafe",
        "recloser",
        "recloser_rate",
        "reference",
    ] {
        println!(
            "{cores} threads / 1 thread, {name:<14}= {:>8.2} ×  (target for breaker ≤ 1.5 on 16 cores, ≤ 1.3 on 2)",
            get(&format!("{g}/{name}")) / get(&format!("{g}/{name}_1t"))
        );
    }
}

fn registry_bytes(names: &[String], make: impl Fn(&Registry, &str)) -> f64 {
    let registry = Registry::builder().build();
    make(&registry, "warm-up");
    let before = BYTES.load(Ordering::SeqCst);
    for t in names {
        make(&registry, t);
    }
    assert_eq!(registry.len(), names.len() + 1);
    (BYTES.load(Ordering::SeqCst) - before) as f64 / names.len() as f64
}

fn tenant_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("tenant-{i:07}")).collect()
}

/// Set (to the number of circuits) in a child run of this bench that measures one registry's
/// resident memory alone: in this process, the cases before it and the registries measured
/// before it have left freed memory the allocator would reuse, and RSS would not see it grow.
const RSS_CHILD: &str = "BREAKER_BENCH_RSS_CHILD";

/// The process's resident set in bytes (`VmRSS` of `/proc/self/status`, the resident pages of
/// `/proc/self/statm` in kB); `None` off Linux.
fn resident_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The child run: `n` circuits made by calls in a fresh process, then bytes resident per
/// circuit on stdout.
fn rss_child(n: usize) {
    let names = tenant_names(n);
    let registry = Registry::builder().build();
    registry
        .acquire("bench", "warm-up", None)
        .unwrap()
        .success();
    let before = resident_bytes();
    for t in &names {
        registry.acquire("bench", t, None).unwrap().success();
    }
    assert_eq!(registry.len(), n + 1);
    if let (Some(before), Some(after)) = (before, resident_bytes()) {
        println!("rss_per_circuit {}", (after - before) as f64 / n as f64);
    }
}

/// Bytes resident per circuit for `n` circuits made by calls, measured in a child process.
fn rss_per_circuit(n: usize) -> Option<f64> {
    let out = std::process::Command::new(std::env::current_exe().ok()?)
        .env(RSS_CHILD, n.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .ok()?;
    let out = String::from_utf8(out.stdout).ok()?;
    out.lines()
        .find_map(|l| l.strip_prefix("rss_per_circuit "))?
        .parse()
        .ok()
}

fn print_memory(n: usize) {
    let names = tenant_names(n);

    // Made the way `#[circuit_breaker]` makes them (a call), and the way an admin lookup does
    // (`Registry::circuit`, which hands out a handle to the same circuit).
    let by_calls = registry_bytes(&names, |r, t| {
        r.acquire("bench", t, None).unwrap().success();
    });
    let by_lookups = registry_bytes(&names, |r, t| {
        r.circuit("bench", t);
    });
    let resident = rss_per_circuit(n).map_or("n/a".to_string(), |b| format!("{b:.1}"));

    let tracker = reference::Tracker::default();
    tracker.get("warm-up", "bench");
    let before = BYTES.load(Ordering::SeqCst);
    for t in &names {
        tracker.get(t, "bench");
    }
    let theirs = (BYTES.load(Ordering::SeqCst) - before) as f64 / n as f64;
    assert_eq!(tracker.len(), n + 1);

    println!("\n== bytes per (provider, tenant) circuit with {n} circuits, names of 14 bytes ==");
    println!(
        "breaker registry   {by_calls:>8.1} allocated, {resident:>8} resident (target ≤ 96 both), made by calls"
    );
    println!("breaker registry   {by_lookups:>8.1} allocated, made by Registry::circuit");
    println!("reference tracker  {theirs:>8.1} allocated");
}
