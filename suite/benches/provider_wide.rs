//! The cost of provider-wide circuits on the call path (issue 19), as a plain program so that
//! `valgrind --tool=callgrind` can count instructions per call (timings on a shared host are
//! noise; counts are not):
//!
//! ```text
//! cargo bench -p breaker-suite --bench provider_wide --no-run
//! valgrind --tool=callgrind <bench binary> annotated plain 100000   # and 200000; the difference / 100,000
//! valgrind --tool=callgrind <bench binary> annotated wide 100000
//! valgrind --tool=callgrind <bench binary> annotated bare 100000    # the function without the attribute
//! <bench binary> threads plain 20000000 [threads]                    # one tenant a thread, ns per call
//! <bench binary> threads wide 20000000 [threads]
//! ```
//!
//! `annotated`: an `async fn` with `#[circuit_breaker(provider, tenant)]` through the global
//! registry, polled once, one hot tenant, every call a success (the `annotated` case of
//! `compare.rs`); `plain` installs a registry without provider-wide config, `wide` one with a
//! provider-wide circuit on the provider. `threads`: one thread per core (at least 2) unless
//! given, each calling its own tenant of the one provider, timed.

use std::hint::black_box;
use std::time::Instant;

use breaker::{circuit_breaker, CircuitOpen, ProviderWide, Registry};

mod common;
use common::ready;

#[derive(Debug)]
struct ApiError;

impl From<CircuitOpen> for ApiError {
    fn from(_: CircuitOpen) -> Self {
        ApiError
    }
}

#[inline(never)]
fn work(x: u64) -> Result<u64, ApiError> {
    Ok(black_box(x).wrapping_mul(31))
}

#[circuit_breaker(provider = "bench", tenant = tenant)]
async fn annotated(tenant: &str, x: u64) -> Result<u64, ApiError> {
    black_box(tenant);
    work(x)
}

/// The same function without the attribute: what the annotated call costs over it is the
/// breaker's (mode `bare`).
async fn bare(tenant: &str, x: u64) -> Result<u64, ApiError> {
    black_box(tenant);
    work(x)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`: nothing to do then but prove the program runs.
    let (case, mode, n) = match args.as_slice() {
        [case, mode, n, ..] => (case.as_str(), mode.as_str(), n.parse::<u64>().unwrap()),
        _ => ("annotated", "wide", 1000),
    };
    let mut builder = Registry::builder();
    match mode {
        "plain" | "bare" => {}
        "wide" => builder = builder.provider_wide("bench", ProviderWide::default()),
        other => panic!("mode `plain`, `wide` or `bare`, not {other}"),
    }
    builder.install_global().unwrap();
    match case {
        "annotated" => {
            let mut sum = 0;
            for i in 0..n {
                sum += if mode == "bare" {
                    ready(bare("tenant-1", i)).unwrap()
                } else {
                    ready(annotated("tenant-1", i)).unwrap()
                };
            }
            black_box(sum);
        }
        "threads" => {
            let threads = args.get(3).map_or_else(
                || {
                    std::thread::available_parallelism()
                        .map_or(2, usize::from)
                        .max(2)
                },
                |t| t.parse().unwrap(),
            );
            let start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..threads {
                    s.spawn(move || {
                        let tenant = format!("tenant-{t}");
                        let mut sum = 0;
                        for i in 0..n {
                            sum += if mode == "bare" {
                                ready(bare(&tenant, i)).unwrap()
                            } else {
                                ready(annotated(&tenant, i)).unwrap()
                            };
                        }
                        black_box(sum);
                    });
                }
            });
            let ns = start.elapsed().as_nanos() as f64 / n as f64;
            println!("{threads} threads, {mode}: {ns:.2} ns per call per thread");
        }
        other => panic!("case `annotated` or `threads`, not {other}"),
    }
}
