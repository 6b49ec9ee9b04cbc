//! Features `tower` + `tokio`: `CircuitBreakerLayer::timeout` races each response future against
//! its circuit's deadline, and `CircuitBreakerLayer::max_in_flight` refuses requests beyond the
//! limit at once without calling the inner service (issue 20). On paused tokio time.
#![cfg(all(feature = "tower", feature = "tokio"))]

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use breaker::tower::CircuitBreakerLayer;
use breaker::{CircuitOpen, Config, Registry, State, TokioClock};
use tower::{service_fn, BoxError, Service, ServiceBuilder, ServiceExt};

type Key = fn(&Duration) -> (Cow<'_, str>, Cow<'_, str>);

fn key(_: &Duration) -> (Cow<'static, str>, Cow<'static, str>) {
    (Cow::Borrowed("llm"), Cow::Borrowed("acme"))
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A stack whose inner service answers after the request's duration, counting its calls.
fn stack(
    layer: CircuitBreakerLayer<Key>,
    calls: Arc<AtomicUsize>,
) -> impl Service<Duration, Response = u32, Error = BoxError, Future: Send> + Clone {
    ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(move |answer_after: Duration| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(answer_after).await;
                Ok::<_, BoxError>(1)
            }
        }))
}

fn open_of(e: BoxError) -> CircuitOpen {
    *e.downcast::<CircuitOpen>().expect("a CircuitOpen")
}

fn registry() -> Arc<Registry> {
    Arc::new(Registry::builder().clock(TokioClock).build())
}

#[tokio::test(start_paused = true)]
async fn a_hung_call_times_out_at_the_layers_deadline_and_trips_the_circuit() {
    let registry = registry();
    let layer = CircuitBreakerLayer::new(key as Key)
        .registry(registry.clone())
        .config(Config::builder().consecutive_failures(2).build().unwrap())
        .timeout(secs(2));
    let calls = Arc::new(AtomicUsize::new(0));
    let service = stack(layer, calls.clone());
    // In time: an answer.
    assert_eq!(service.clone().oneshot(secs(1)).await.unwrap(), 1);
    let start = tokio::time::Instant::now();
    let open = open_of(service.clone().oneshot(secs(3600)).await.unwrap_err());
    assert!(open.is_timeout());
    assert_eq!(start.elapsed(), secs(2), "at the deadline");
    let open = open_of(service.clone().oneshot(secs(3600)).await.unwrap_err());
    assert!(open.is_timeout());
    assert_eq!(
        open.state(),
        State::Open,
        "the second timeout in a row trips"
    );
    // Now refused at once, without calling the inner service.
    let open = open_of(service.clone().oneshot(secs(1)).await.unwrap_err());
    assert!(!open.is_timeout() && open.state() == State::Open);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        registry.get("llm", "acme").unwrap().config().timeout(),
        Some(secs(2))
    );
}

#[tokio::test(start_paused = true)]
async fn a_caller_leaving_before_the_layers_deadline_is_not_a_failure() {
    let registry = registry();
    let layer = CircuitBreakerLayer::new(key as Key)
        .registry(registry.clone())
        .config(Config::builder().consecutive_failures(1).build().unwrap())
        .timeout(secs(10));
    let service = stack(layer, Arc::new(AtomicUsize::new(0)));
    for _ in 0..3 {
        let left = tokio::time::timeout(secs(1), service.clone().oneshot(secs(3600))).await;
        assert!(left.is_err());
    }
    assert_eq!(
        registry.get("llm", "acme").unwrap().state(),
        State::Closed,
        "on_cancel: ignored"
    );
}

#[tokio::test(start_paused = true)]
async fn requests_beyond_max_in_flight_are_refused_at_once_and_places_come_back() {
    let registry = registry();
    let layer = CircuitBreakerLayer::new(key as Key)
        .registry(registry.clone())
        .max_in_flight(2);
    let calls = Arc::new(AtomicUsize::new(0));
    let service = stack(layer, calls.clone());
    let a = tokio::spawn(service.clone().oneshot(secs(3600)));
    let b = tokio::spawn(service.clone().oneshot(secs(1)));
    tokio::time::sleep(Duration::from_millis(1)).await;
    let full = open_of(service.clone().oneshot(Duration::ZERO).await.unwrap_err());
    assert!(full.is_full());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the inner service was not called"
    );
    // `b` answers, `a` is cancelled: both places come back.
    assert_eq!(b.await.unwrap().unwrap(), 1);
    a.abort();
    assert!(a.await.unwrap_err().is_cancelled());
    let (c, d) = (
        service.clone().oneshot(Duration::ZERO),
        service.clone().oneshot(Duration::ZERO),
    );
    let (c, d) = tokio::join!(c, d);
    assert_eq!((c.unwrap(), d.unwrap()), (1, 1));
    let circuit = registry.get("llm", "acme").unwrap();
    assert_eq!(circuit.state(), State::Closed);
    assert_eq!(circuit.config().max_in_flight(), Some(2));
}

#[tokio::test(start_paused = true)]
async fn layer_options_out_of_range_are_taken_at_the_nearest_valid_value() {
    let registry = registry();
    let service = stack(
        CircuitBreakerLayer::new(key as Key)
            .registry(registry.clone())
            .timeout(Duration::ZERO)
            .max_in_flight(0),
        Arc::new(AtomicUsize::new(0)),
    );
    assert_eq!(service.oneshot(Duration::ZERO).await.unwrap(), 1);
    // The circuit was made by the layer, on its config.
    let config = registry.get("llm", "acme").unwrap().config().clone();
    assert_eq!(config.timeout(), Some(Duration::from_millis(1)));
    assert_eq!(config.max_in_flight(), Some(1));
}
