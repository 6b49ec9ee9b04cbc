//! `timeout`: a call that never answers trips the circuit at its deadline, whatever its caller's
//! patience, and the caller gets a `CircuitOpen` whose `is_timeout()` is true; a caller that
//! leaves before the deadline is not the provider's failure (`on_cancel`). Issue 20. Paused
//! tokio time drives both the deadline and the circuit's clock (`TokioClock`); each test has its
//! own registry (its own runtime, its own paused clock).
#![cfg(feature = "tokio")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use breaker::{
    circuit_breaker, CircuitOpen, Config, Event, Outcome, Registry, State, TokioClock,
    DEFAULT_TENANT,
};

#[derive(Debug)]
enum Error {
    Open(CircuitOpen),
}

impl From<CircuitOpen> for Error {
    fn from(open: CircuitOpen) -> Self {
        Error::Open(open)
    }
}

/// A registry on tokio's clock whose listener writes down timeouts and transitions.
fn registry(config: Config) -> (Registry, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let registry = Registry::builder()
        .clock(TokioClock)
        .default_config(config)
        .listener(move |e: &Event<'_>| match e {
            Event::TimedOut { timeout, .. } => log
                .lock()
                .unwrap()
                .push(format!("timed out after {timeout:?}")),
            Event::Transition { from, to, .. } => {
                log.lock().unwrap().push(format!("{from} -> {to}"))
            }
            _ => {}
        })
        .build();
    (registry, seen)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Answers after `answer_after`.
#[circuit_breaker(provider = "hung", registry = registry, consecutive_failures = 2, open_for = "10s", timeout = "2s")]
async fn hung(registry: &Registry, answer_after: Duration) -> Result<u32, Error> {
    tokio::time::sleep(answer_after).await;
    Ok(1)
}

fn timed_out(r: Result<u32, Error>) -> CircuitOpen {
    match r {
        Err(Error::Open(open)) => open,
        Ok(v) => panic!("answered {v}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_hung_call_times_out_at_its_deadline_and_trips_the_circuit() {
    let (registry, seen) = registry(Config::default());
    let start = tokio::time::Instant::now();
    let open = timed_out(hung(&registry, secs(3600)).await);
    assert!(open.is_timeout());
    assert_eq!(start.elapsed(), secs(2), "at the deadline, not later");
    assert_eq!(
        open.state(),
        State::Closed,
        "one timeout of the two that trip"
    );
    assert_eq!(open.retry_after(), None);
    assert_eq!(
        open.to_string(),
        "call timed out for provider `hung`, tenant `default`"
    );
    // An answer within the deadline is a success, as usual (and resets the streak).
    assert_eq!(hung(&registry, secs(1)).await.unwrap(), 1);
    assert!(timed_out(hung(&registry, secs(3600)).await).is_timeout());
    let tripped = timed_out(hung(&registry, secs(3600)).await);
    assert!(tripped.is_timeout());
    assert_eq!(
        tripped.state(),
        State::Open,
        "the second timeout in a row trips"
    );
    assert_eq!(tripped.retry_after(), Some(secs(10)));
    // Now the circuit refuses at once: a rejection, not a timeout.
    let start = tokio::time::Instant::now();
    let rejected = timed_out(hung(&registry, secs(1)).await);
    assert!(!rejected.is_timeout());
    assert_eq!(rejected.state(), State::Open);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "timed out after Some(2s)",
            "timed out after Some(2s)",
            "timed out after Some(2s)",
            "closed -> open",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_caller_leaving_before_the_deadline_is_not_the_providers_failure() {
    let (registry, seen) = registry(Config::default());
    for _ in 0..5 {
        // The caller gives up after 1 s; the call's own deadline is 2 s.
        assert!(tokio::time::timeout(secs(1), hung(&registry, secs(3600)))
            .await
            .is_err());
    }
    let circuit = registry.get("hung", DEFAULT_TENANT).unwrap();
    assert_eq!(
        circuit.state(),
        State::Closed,
        "five callers left: on_cancel ignores them"
    );
    assert_eq!(circuit.metrics().consecutive_failures, 0);
    assert!(seen.lock().unwrap().is_empty());
}

#[circuit_breaker(provider = "strict", registry = registry, consecutive_failures = 2, timeout = "2s", on_cancel = "failure")]
async fn strict(registry: &Registry) -> Result<u32, Error> {
    std::future::pending::<()>().await;
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn on_cancel_says_what_a_caller_leaving_counts_as() {
    let (registry, _) = registry(Config::default());
    for _ in 0..2 {
        assert!(tokio::time::timeout(secs(1), strict(&registry))
            .await
            .is_err());
    }
    assert_eq!(
        registry.get("strict", DEFAULT_TENANT).unwrap().state(),
        State::Open
    );
}

/// The site declares a deadline; the registry's config (`configure`, a config file) retunes it
/// like any other setting.
#[circuit_breaker(provider = "configured", registry = registry, timeout = "60s")]
async fn configured(registry: &Registry, answer_after: Duration) -> Result<u32, Error> {
    tokio::time::sleep(answer_after).await;
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn the_registry_retunes_a_sites_deadline() {
    let (registry, _) = registry(Config::default());
    // The attribute's 60 s: a 30 s answer is waited for.
    assert_eq!(configured(&registry, secs(30)).await.unwrap(), 1);
    registry.configure(
        "configured",
        Config::builder()
            .consecutive_failures(1)
            .timeout(secs(5))
            .build()
            .unwrap(),
    );
    let start = tokio::time::Instant::now();
    let open = timed_out(configured(&registry, secs(30)).await);
    assert!(open.is_timeout());
    assert_eq!(start.elapsed(), secs(5));
    assert_eq!(open.state(), State::Open);
    // Retuned without a deadline: waited for again (once the circuit is closed).
    registry.configure("configured", Config::default());
    registry.get("configured", DEFAULT_TENANT).unwrap().reset();
    assert_eq!(configured(&registry, secs(300)).await.unwrap(), 1);
}

/// A panic in the body is no caller leaving: with a deadline set it still counts as
/// `on_abandoned` (a failure by default).
#[circuit_breaker(provider = "panicky", registry = registry, consecutive_failures = 1, timeout = "2s")]
async fn panicky(registry: &Registry) -> Result<u32, Error> {
    panic!("the body panicked")
}

#[tokio::test(start_paused = true)]
async fn a_panic_under_a_deadline_counts_as_on_abandoned() {
    let (registry, _) = registry(Config::default());
    let registry = Arc::new(registry);
    let r = registry.clone();
    let joined = tokio::spawn(async move { panicky(&r).await }).await;
    assert!(joined.is_err(), "the panic reached the task");
    assert_eq!(
        registry.get("panicky", DEFAULT_TENANT).unwrap().state(),
        State::Open
    );
}

/// A manual permit with a timer of the caller's own.
#[tokio::test(start_paused = true)]
async fn permit_time_out_records_a_failure_and_returns_the_error() {
    let (registry, seen) = registry(
        Config::builder()
            .consecutive_failures(1)
            .on_abandoned(Outcome::Ignored)
            .build()
            .unwrap(),
    );
    let permit = registry.acquire("manual", "acme", None).unwrap();
    assert_eq!(permit.deadline(), None, "no deadline configured");
    let open = permit.time_out();
    assert!(open.is_timeout());
    assert_eq!(open.state(), State::Open);
    assert_eq!(
        *seen.lock().unwrap(),
        ["timed out after None", "closed -> open"]
    );
}
