//! A loop of one hot-path case, to count its instructions with callgrind (which, unlike a clock,
//! a busy host does not change): run it for two iteration counts and divide the difference.
//!
//! ```sh
//! cargo bench -p breaker-suite --bench instructions --no-run   # prints the binary's path
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null BINARY rejection 100000
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null BINARY rejection 200000
//! ```
//!
//! `(Ir of 200000 - Ir of 100000) / 100000` is the case's instructions per call. Cases:
//! `rejection` (an open circuit), `rate_calls` and `rate_time` (10 % failures under a
//! failure-rate window `Calls(100)` / `Time(10s)`, which never reaches its threshold), `held`
//! (a closed circuit, all Ok), `tenants16` (16 tenants of one provider through the registry,
//! all Ok), `annotated` (a `#[circuit_breaker]` async fn, one tenant, all Ok, polled once) and
//! `unannotated` (the same fn without the attribute).

use std::hint::black_box;
use std::time::Duration;

use breaker::{circuit_breaker, Circuit, Config, Outcome, Window};

mod common;
use common::ready;

#[derive(Debug)]
struct ApiError;

impl From<breaker::CircuitOpen> for ApiError {
    fn from(_: breaker::CircuitOpen) -> Self {
        ApiError
    }
}

async fn unannotated(tenant: &str, x: u64) -> Result<u64, ApiError> {
    black_box(tenant);
    black_box(Ok(x))
}

#[circuit_breaker(provider = "bench", tenant = tenant)]
async fn annotated(tenant: &str, x: u64) -> Result<u64, ApiError> {
    black_box(tenant);
    black_box(Ok(x))
}

fn rated(window: Window) -> Circuit {
    Circuit::new(Config::builder().failure_rate(0.5, window).build().unwrap())
}

fn run_rated(c: &Circuit, n: u64) -> u64 {
    let mut acc = 0u64;
    for i in 0..n {
        if let Ok(p) = c.try_acquire_scoped() {
            let fail = black_box(i) % 10 == 0;
            p.record(if fail {
                Outcome::Failure
            } else {
                Outcome::Success
            });
            acc += 1;
        }
    }
    acc
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "rejection".into());
    // Criterion-style flags (`--bench`) when run by `cargo bench`: run nothing.
    let Ok(n) = args.next().unwrap_or_default().parse::<u64>() else {
        return;
    };
    let acc = match case.as_str() {
        "rejection" => {
            let c = Circuit::new(Config::builder().consecutive_failures(1).build().unwrap());
            c.try_acquire().unwrap().failure();
            (0..n)
                .map(|_| u64::from(black_box(&c).try_acquire().is_err()))
                .sum()
        }
        "rate_calls" => run_rated(&rated(Window::Calls(100)), n),
        "rate_time" => run_rated(&rated(Window::Time(Duration::from_secs(10))), n),
        "tenants16" => {
            let registry = breaker::Registry::builder().build();
            let names: Vec<String> = (0..16).map(|t| format!("tenant-{t:02}")).collect();
            (0..n)
                .map(|i| {
                    let tenant = &names[(black_box(i) % 16) as usize];
                    match registry.acquire("bench", tenant, None) {
                        Ok(p) => {
                            p.success();
                            1
                        }
                        Err(_) => 0,
                    }
                })
                .sum()
        }
        "annotated" => (0..n)
            .map(|i| ready(annotated(black_box("tenant-1"), i)).unwrap_or(0) & 1)
            .sum(),
        "unannotated" => (0..n)
            .map(|i| ready(unannotated(black_box("tenant-1"), i)).unwrap_or(0) & 1)
            .sum(),
        "held" => {
            let c = Circuit::new(Config::default());
            (0..n)
                .map(|_| match black_box(&c).try_acquire_scoped() {
                    Ok(p) => {
                        p.success();
                        1
                    }
                    Err(_) => 0,
                })
                .sum()
        }
        other => panic!("unknown case {other}"),
    };
    println!("{case} {n}: {acc}");
}
