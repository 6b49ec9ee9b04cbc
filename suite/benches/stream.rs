//! The cost per item of a guarded stream (`breaker::stream::Guarded`) over the bare stream.
//!
//! ```text
//! cargo bench -p breaker-suite --bench stream                        # criterion, then a table
//! BREAKER_BENCH_QUICK=1 cargo bench -p breaker-suite --bench stream  # shorter samples
//! ```
//!
//! Each iteration takes a permit (the guarded cases), wraps a stream of `ITEMS` ready items and
//! polls it to its end, where the outcome is recorded once; the time is divided by the items.
//! Cases: `bare` (the stream alone), `guarded` (no timeouts: the clock is never read per item),
//! `guarded_idle` (`first_item_timeout` and `idle_timeout` set: the clock is read at every item).
//!
//! For instruction counts, which a loaded machine does not change, run one case outside
//! criterion under callgrind, at two lengths, and divide the difference by the extra items:
//!
//! ```text
//! BREAKER_STREAM_CASE=guarded BREAKER_STREAM_ITEMS=1000000 \
//!     valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/deps/stream-<hash>
//! ```

use std::hint::black_box;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use breaker::stream::{Guarded, Stream};
use breaker::{Circuit, Config, ErrorClass};
use criterion::Criterion;

/// Items per stream in the criterion cases.
const ITEMS: u64 = 1_000;

/// `n` ready items, `Ok(0)`, `Ok(1)`, ..., then the end.
struct Ready {
    next: u64,
    n: u64,
}

impl Stream for Ready {
    type Item = Result<u64, ErrorClass>;

    #[inline]
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.next == self.n {
            return Poll::Ready(None);
        }
        self.next += 1;
        Poll::Ready(Some(Ok(black_box(self.next))))
    }
}

/// Polls `s` to its end; the sum of its items.
#[inline(never)]
fn drain<S: Stream<Item = Result<u64, ErrorClass>> + Unpin>(mut s: S) -> u64 {
    let mut cx = Context::from_waker(Waker::noop());
    let mut sum = 0u64;
    while let Poll::Ready(Some(item)) = Pin::new(&mut s).poll_next(&mut cx) {
        sum = sum.wrapping_add(item.unwrap_or(0));
    }
    sum
}

#[derive(Clone, Copy)]
enum Case {
    Bare,
    Guarded,
    GuardedIdle,
}

impl Case {
    const ALL: [Case; 3] = [Case::Bare, Case::Guarded, Case::GuardedIdle];

    fn name(self) -> &'static str {
        match self {
            Case::Bare => "bare",
            Case::Guarded => "guarded",
            Case::GuardedIdle => "guarded_idle",
        }
    }

    fn circuit(self) -> Circuit {
        let config = match self {
            Case::GuardedIdle => Config::builder()
                .first_item_timeout(Duration::from_secs(10))
                .idle_timeout(Duration::from_secs(30))
                .build()
                .expect("a valid config"),
            _ => Config::default(),
        };
        Circuit::new(config)
    }

    /// One stream of `n` items, guarded as the case says, polled to its end.
    fn run(self, circuit: &Circuit, n: u64) -> u64 {
        let stream = Ready { next: 0, n };
        match self {
            Case::Bare => drain(stream),
            Case::Guarded | Case::GuardedIdle => {
                let permit = circuit.try_acquire().expect("closed");
                drain(Guarded::new(permit, stream))
            }
        }
    }
}

static RESULTS: Mutex<Vec<(&str, Vec<f64>)>> = Mutex::new(Vec::new());

fn main() {
    // One case, outside criterion, for callgrind.
    if let Some(case) = std::env::var_os("BREAKER_STREAM_CASE") {
        let case = Case::ALL
            .into_iter()
            .find(|c| case == c.name())
            .expect("BREAKER_STREAM_CASE: bare, guarded or guarded_idle");
        let n = std::env::var("BREAKER_STREAM_ITEMS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1_000_000);
        let circuit = case.circuit();
        black_box(case.run(&circuit, n));
        assert_eq!(circuit.metrics().consecutive_failures, 0);
        return;
    }

    let quick = std::env::var_os("BREAKER_BENCH_QUICK").is_some();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(if quick { 100 } else { 500 }))
        .measurement_time(Duration::from_millis(if quick { 300 } else { 2000 }))
        .sample_size(if quick { 10 } else { 30 })
        .configure_from_args();
    for case in Case::ALL {
        let circuit = case.circuit();
        c.bench_function(&format!("stream/{}", case.name()), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let mut acc = 0u64;
                for _ in 0..iters {
                    acc = acc.wrapping_add(case.run(&circuit, ITEMS));
                }
                black_box(acc);
                let elapsed = start.elapsed();
                let per_item = elapsed.as_nanos() as f64 / (iters * ITEMS) as f64;
                let mut results = RESULTS.lock().unwrap();
                match results.iter_mut().find(|(name, _)| *name == case.name()) {
                    Some((_, v)) => v.push(per_item),
                    None => results.push((case.name(), vec![per_item])),
                }
                elapsed
            })
        });
    }

    let mut results = RESULTS.lock().unwrap();
    let mut median = |name: &str| {
        let v = &mut results.iter_mut().find(|(n, _)| *n == name)?.1;
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    };
    let bare = median("bare").unwrap_or(f64::NAN);
    println!("\n== ns per item, streams of {ITEMS} ready items, median of samples ==");
    println!("{:<14} {:>10} {:>14}", "case", "ns/item", "over bare");
    println!("{:<14} {bare:>10.2} {:>14}", "bare", "-");
    for name in ["guarded", "guarded_idle"] {
        let ns = median(name).unwrap_or(f64::NAN);
        println!("{name:<14} {ns:>10.2} {:>14.2}", ns - bare);
    }
    println!("(target: guarded - bare <= 5 ns per item)");
}
