//! Retries compose *inside* the breaker: a logical call takes one permit and retries transient
//! errors under it, so the circuit sees one outcome per logical call; a rejection is not retried
//! on the retry's own schedule but after `CircuitOpen::retry_after`, read through
//! `retry_after_hint` by backon's `adjust` hook. Sleeps advance a `ManualClock`.

use std::fmt;
use std::future::{ready, Ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ConstantBuilder, Retryable};
use breaker::{
    circuit_breaker, retry_after_hint, CircuitOpen, Classify, Config, ManualClock, Outcome,
    Registry, State, Window,
};

#[derive(Debug)]
enum ApiError {
    Open(CircuitOpen),
    Unavailable,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Open(_) => f.write_str("rejected by the breaker"),
            ApiError::Unavailable => f.write_str("503 service unavailable"),
        }
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ApiError::Open(open) => Some(open),
            ApiError::Unavailable => None,
        }
    }
}

impl From<CircuitOpen> for ApiError {
    fn from(open: CircuitOpen) -> Self {
        ApiError::Open(open)
    }
}

impl Classify for ApiError {
    fn classify(&self) -> Outcome {
        match self {
            ApiError::Open(open) => open.classify(),
            ApiError::Unavailable => Outcome::Failure,
        }
    }
}

/// The provider: fails its next `failures` attempts with a 503, then answers.
#[derive(Default)]
struct Upstream {
    attempts: AtomicUsize,
    failures: AtomicUsize,
}

impl Upstream {
    fn fail_next(&self, n: usize) {
        self.failures.store(n, Ordering::SeqCst);
    }

    fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    async fn attempt(&self) -> Result<&'static str, ApiError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            Err(ApiError::Unavailable)
        } else {
            Ok("answer")
        }
    }
}

/// A backon sleeper that moves the circuit's clock instead of waiting, and remembers each sleep.
#[derive(Clone)]
struct Sleeps {
    clock: ManualClock,
    taken: Arc<Mutex<Vec<Duration>>>,
}

impl Sleeps {
    fn new(clock: &ManualClock) -> Self {
        Sleeps {
            clock: clock.clone(),
            taken: Arc::default(),
        }
    }

    fn sleeper(&self) -> impl Fn(Duration) -> Ready<()> + 'static {
        let this = self.clone();
        move |d| {
            this.taken.lock().unwrap().push(d);
            this.clock.advance(d);
            ready(())
        }
    }

    fn taken(&self) -> Vec<Duration> {
        std::mem::take(&mut self.taken.lock().unwrap())
    }
}

/// One logical call: one permit, and up to 3 attempts under it, 100 ms apart.
#[circuit_breaker(provider = "llm", tenant = "acme", registry = registry)]
async fn complete(
    registry: &Registry,
    upstream: &Upstream,
    sleeps: &Sleeps,
) -> Result<&'static str, ApiError> {
    (|| upstream.attempt())
        .retry(
            ConstantBuilder::default()
                .with_delay(Duration::from_millis(100))
                .with_max_times(2),
        )
        .sleep(sleeps.sleeper())
        .when(|e| matches!(e, ApiError::Unavailable))
        .await
}

/// Trips after 2 failed logical calls; a count window that never trips records every outcome.
fn registry(clock: &ManualClock) -> Registry {
    let config = Config::builder()
        .consecutive_failures(2)
        .failure_rate(1.0, Window::Calls(100))
        .minimum_calls(100)
        .open_for(Duration::from_secs(30))
        .build()
        .unwrap();
    Registry::builder()
        .default_config(config)
        .clock(clock.clone())
        .build()
}

#[tokio::test]
async fn one_permit_covers_the_whole_retry_budget() {
    let clock = ManualClock::new();
    let registry = registry(&clock);
    let (upstream, sleeps) = (Upstream::default(), Sleeps::new(&clock));
    let circuit = || registry.circuit("llm", "acme");

    // Two transient failures are absorbed by the retries: one success for the circuit.
    upstream.fail_next(2);
    assert_eq!(
        complete(&registry, &upstream, &sleeps).await.unwrap(),
        "answer"
    );
    assert_eq!(upstream.attempts(), 3);
    let m = circuit().metrics();
    assert_eq!((m.calls_in_window, m.failures_in_window), (1, 0));
    assert_eq!(sleeps.taken(), [Duration::from_millis(100); 2]);

    // A call whose every attempt fails is one failure, not three: the circuit stays closed.
    upstream.fail_next(usize::MAX);
    assert!(matches!(
        complete(&registry, &upstream, &sleeps).await,
        Err(ApiError::Unavailable)
    ));
    assert_eq!(upstream.attempts(), 6);
    let m = circuit().metrics();
    assert_eq!((m.calls_in_window, m.failures_in_window), (2, 1));
    assert_eq!(m.state, State::Closed);

    // The second failed logical call trips it; the next is rejected before any attempt.
    complete(&registry, &upstream, &sleeps).await.unwrap_err();
    assert_eq!(circuit().state(), State::Open);
    let err = complete(&registry, &upstream, &sleeps).await.unwrap_err();
    assert!(matches!(err, ApiError::Open(_)));
    assert_eq!(upstream.attempts(), 9, "a rejected call makes no attempt");
}

#[tokio::test]
async fn a_rejection_comes_back_after_its_retry_after() {
    let clock = ManualClock::new();
    let registry = registry(&clock);
    let (upstream, sleeps) = (Upstream::default(), Sleeps::new(&clock));

    upstream.fail_next(usize::MAX);
    for _ in 0..2 {
        complete(&registry, &upstream, &sleeps).await.unwrap_err();
    }
    assert_eq!(registry.circuit("llm", "acme").state(), State::Open);
    sleeps.taken();
    clock.advance(Duration::from_secs(12));
    upstream.fail_next(0);
    let attempts = upstream.attempts();

    // The caller's own loop retries only rejections, and only when the breaker says so; its
    // 1 s schedule would have sent 18 useless calls.
    let rejections = AtomicUsize::new(0);
    let outer = Sleeps::new(&clock);
    let answer = (|| complete(&registry, &upstream, &sleeps))
        .retry(
            ConstantBuilder::default()
                .with_delay(Duration::from_secs(1))
                .with_max_times(30),
        )
        .when(|e| matches!(e, ApiError::Open(_)))
        .adjust(|e, backoff| retry_after_hint(e).or(backoff))
        .notify(|_, _| {
            rejections.fetch_add(1, Ordering::SeqCst);
        })
        .sleep(outer.sleeper())
        .await;

    assert_eq!(answer.unwrap(), "answer");
    assert_eq!(rejections.into_inner(), 1);
    assert_eq!(
        outer.taken(),
        [Duration::from_secs(18)],
        "slept exactly retry_after"
    );
    assert_eq!(
        upstream.attempts(),
        attempts + 1,
        "only the probe reached the provider"
    );
    assert_eq!(registry.circuit("llm", "acme").state(), State::Closed);
}

#[test]
fn the_hint_is_found_through_wrapping_errors() {
    let clock = ManualClock::new();
    let registry = registry(&clock);
    let circuit = registry.circuit("llm", "acme");
    for _ in 0..2 {
        circuit.try_acquire().unwrap().failure();
    }
    clock.advance(Duration::from_secs(10));
    let open = circuit.try_acquire().unwrap_err();
    let twenty = Some(Duration::from_secs(20));

    assert_eq!(retry_after_hint(&open), twenty);
    assert_eq!(retry_after_hint(&ApiError::from(open.clone())), twenty);
    assert_eq!(
        retry_after_hint(&std::io::Error::from(open.clone())),
        twenty
    );
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(ApiError::from(open));
    assert_eq!(retry_after_hint(&*boxed), twenty);
    assert_eq!(retry_after_hint(&ApiError::Unavailable), None);

    circuit.force_open();
    let forced = ApiError::from(circuit.try_acquire().unwrap_err());
    assert_eq!(retry_after_hint(&forced), None, "unknown, not made up");
}
