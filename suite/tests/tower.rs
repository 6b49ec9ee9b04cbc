//! `CircuitBreakerLayer` in a real tower stack: `ServiceBuilder` with the layer over a
//! `service_fn` that counts the calls reaching it. Time is a `ManualClock`; nothing sleeps.
#![cfg(feature = "tower")]

use std::borrow::Cow;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "http")]
use breaker::tower::ResponseClassifier;
use breaker::tower::{CircuitBreaker, CircuitBreakerLayer};
use breaker::{CircuitOpen, Config, ManualClock, Outcome, Registry, State};
use tower::util::BoxCloneService;
use tower::{service_fn, BoxError, Layer, Service, ServiceBuilder, ServiceExt};

type Request = http::Request<()>;
type Response = http::Response<()>;

/// The upstream: answers with the status in `status`, or fails at the transport level (an `Err`)
/// when it is 0, and counts every call that reaches it.
#[derive(Clone, Default)]
struct Upstream {
    calls: Arc<AtomicUsize>,
    status: Arc<AtomicU16>,
}

impl Upstream {
    fn new() -> Self {
        let upstream = Upstream::default();
        upstream.set(200);
        upstream
    }

    fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn service(&self) -> BoxCloneService<Request, Response, BoxError> {
        let this = self.clone();
        BoxCloneService::new(service_fn(move |_req: Request| {
            let this = this.clone();
            async move {
                this.calls.fetch_add(1, Ordering::SeqCst);
                match this.status.load(Ordering::SeqCst) {
                    0 => Err(BoxError::from("connection refused")),
                    status => Ok(http::Response::builder().status(status).body(()).unwrap()),
                }
            }
        }))
    }
}

fn registry(clock: &ManualClock) -> Arc<Registry> {
    let config = Config::builder()
        .consecutive_failures(3)
        .open_for(Duration::from_secs(10))
        .jitter(0.0)
        .half_open_probes(1)
        .half_open_successes(1)
        .build()
        .unwrap();
    Arc::new(
        Registry::builder()
            .default_config(config)
            .clock(clock.clone())
            .build(),
    )
}

fn tenant_key(req: &Request) -> (Cow<'_, str>, Cow<'_, str>) {
    let tenant = req.headers().get("x-tenant").and_then(|v| v.to_str().ok());
    (
        Cow::Borrowed("billing"),
        Cow::Borrowed(tenant.unwrap_or("")),
    )
}

fn request(tenant: &str) -> Request {
    http::Request::builder()
        .header("x-tenant", tenant)
        .body(())
        .unwrap()
}

async fn send<S>(service: &mut S, tenant: &str) -> Result<Response, BoxError>
where
    S: Service<Request, Response = Response, Error = BoxError>,
{
    service.ready().await?.call(request(tenant)).await
}

fn rejection(err: &BoxError) -> &CircuitOpen {
    err.downcast_ref::<CircuitOpen>()
        .unwrap_or_else(|| panic!("expected a rejection, got {err}"))
}

#[tokio::test]
async fn trips_after_failures_and_rejects_without_calling_the_inner_service() {
    let clock = ManualClock::new();
    let registry = registry(&clock);
    let upstream = Upstream::new();
    let mut service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(tenant_key).registry(registry.clone()))
        .service(upstream.service());

    send(&mut service, "acme").await.unwrap();
    upstream.set(0);
    for _ in 0..3 {
        send(&mut service, "acme").await.unwrap_err();
    }
    assert_eq!(upstream.calls(), 4);
    assert_eq!(registry.circuit("billing", "acme").state(), State::Open);

    for _ in 0..5 {
        let err = send(&mut service, "acme").await.unwrap_err();
        let open = rejection(&err);
        assert_eq!((open.provider(), open.tenant()), ("billing", "acme"));
        assert_eq!(open.retry_after(), Some(Duration::from_secs(10)));
    }
    assert_eq!(
        upstream.calls(),
        4,
        "rejected calls never reach the service"
    );
}

/// `http::Response` classifies by status with the `http` feature.
#[cfg(feature = "http")]
#[tokio::test]
async fn ok_503_counts_as_failure_with_the_response_classifier() {
    let clock = ManualClock::new();
    let registry = registry(&clock);
    let upstream = Upstream::new();
    upstream.set(503);

    // The default classifier sees `Ok` responses: the circuit stays closed.
    let mut lenient = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(tenant_key).registry(registry.clone()))
        .service(upstream.service());
    for _ in 0..5 {
        assert_eq!(send(&mut lenient, "acme").await.unwrap().status(), 503);
    }
    assert_eq!(registry.circuit("billing", "acme").state(), State::Closed);

    let mut strict = ServiceBuilder::new()
        .layer(
            CircuitBreakerLayer::new(tenant_key)
                .registry(registry.clone())
                .classify(ResponseClassifier),
        )
        .service(upstream.service());
    for _ in 0..3 {
        assert_eq!(send(&mut strict, "globex").await.unwrap().status(), 503);
    }
    assert_eq!(registry.circuit("billing", "globex").state(), State::Open);
    rejection(&send(&mut strict, "globex").await.unwrap_err());

    // 429 trips too; a 404 is the caller's fault and does not.
    upstream.set(429);
    for _ in 0..3 {
        send(&mut strict, "initech").await.unwrap();
    }
    assert_eq!(registry.circuit("billing", "initech").state(), State::Open);
    upstream.set(404);
    for _ in 0..5 {
        send(&mut strict, "umbrella").await.unwrap();
    }
    assert_eq!(
        registry.circuit("billing", "umbrella").state(),
        State::Closed
    );
}

/// An `Ok(429)` that says when to come back opens the circuit at once for that long, with the
/// response classifier; the first two failures of a streak of three would not.
#[cfg(feature = "http")]
#[tokio::test]
async fn a_retry_after_header_opens_the_circuit_for_the_providers_time() {
    let clock = ManualClock::new();
    let registry = registry(&clock);
    let mut service = ServiceBuilder::new()
        .layer(
            CircuitBreakerLayer::new(tenant_key)
                .registry(registry.clone())
                .classify(ResponseClassifier),
        )
        .service(service_fn(|_req: Request| async {
            Ok::<_, BoxError>(
                http::Response::builder()
                    .status(429)
                    .header("retry-after", "45")
                    .body(())
                    .unwrap(),
            )
        }));
    assert_eq!(send(&mut service, "acme").await.unwrap().status(), 429);
    let err = send(&mut service, "acme").await.unwrap_err();
    assert_eq!(rejection(&err).retry_after(), Some(Duration::from_secs(45)));
}

#[tokio::test]
async fn tenants_are_isolated_by_key() {
    let clock = ManualClock::new();
    let registry = registry(&clock);
    let upstream = Upstream::new();
    upstream.set(0);
    let mut service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(tenant_key).registry(registry.clone()))
        .service(upstream.service());

    for _ in 0..3 {
        send(&mut service, "acme").await.unwrap_err();
    }
    rejection(&send(&mut service, "acme").await.unwrap_err());

    // The same upstream, now healthy, still serves another tenant.
    upstream.set(200);
    let before = upstream.calls();
    send(&mut service, "globex").await.unwrap();
    assert_eq!(upstream.calls(), before + 1);
    assert_eq!(registry.circuit("billing", "globex").state(), State::Closed);
    assert_eq!(registry.circuit("billing", "acme").state(), State::Open);
}

#[tokio::test]
async fn recovers_through_half_open_after_the_clock_advances() {
    let clock = ManualClock::new();
    let registry = registry(&clock);
    let upstream = Upstream::new();
    upstream.set(0);
    let mut service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(tenant_key).registry(registry.clone()))
        .service(upstream.service());
    for _ in 0..3 {
        send(&mut service, "acme").await.unwrap_err();
    }

    clock.advance(Duration::from_secs(4));
    let err = send(&mut service, "acme").await.unwrap_err();
    assert_eq!(rejection(&err).retry_after(), Some(Duration::from_secs(6)));

    upstream.set(200);
    clock.advance(Duration::from_secs(6));
    let calls = upstream.calls();
    send(&mut service, "acme").await.unwrap();
    assert_eq!(upstream.calls(), calls + 1, "the probe reached the service");
    assert_eq!(registry.circuit("billing", "acme").state(), State::Closed);
    send(&mut service, "acme").await.unwrap();
}

#[tokio::test]
async fn a_dropped_response_future_counts_as_abandoned() {
    let clock = ManualClock::new();
    let config = Config::builder()
        .consecutive_failures(1)
        .on_abandoned(Outcome::Failure)
        .build()
        .unwrap();
    let registry = Arc::new(
        Registry::builder()
            .default_config(config)
            .clock(clock)
            .build(),
    );
    let upstream = Upstream::new();
    let layer = CircuitBreakerLayer::new(tenant_key).registry(registry.clone());
    let mut service: CircuitBreaker<_, _> = layer.layer(upstream.service());

    let future = service.ready().await.unwrap().call(request("acme"));
    assert_eq!(registry.circuit("billing", "acme").state(), State::Closed);
    drop(future);
    assert_eq!(registry.circuit("billing", "acme").state(), State::Open);
    assert_eq!(upstream.calls(), 0, "the future was never polled");
}

#[tokio::test]
async fn a_closure_classifier_decides() {
    let clock = ManualClock::new();
    let registry = registry(&clock);
    let upstream = Upstream::new();
    upstream.set(0);
    // Transport errors of this upstream prove nothing: ignore them.
    let ignore_errors = |result: &Result<Response, BoxError>| match result {
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Ignored,
    };
    let mut service = ServiceBuilder::new()
        .layer(
            CircuitBreakerLayer::new(tenant_key)
                .registry(registry.clone())
                .classify(ignore_errors),
        )
        .service(upstream.service());
    for _ in 0..10 {
        send(&mut service, "acme").await.unwrap_err();
    }
    assert_eq!(upstream.calls(), 10);
    assert_eq!(registry.circuit("billing", "acme").state(), State::Closed);
}

/// An inner service that is not ready until its second `poll_ready`, and counts them.
#[derive(Clone, Default)]
struct SlowToReady {
    polls: Arc<AtomicUsize>,
}

impl Service<Request> for SlowToReady {
    type Response = Response;
    type Error = BoxError;
    type Future = std::future::Ready<Result<Response, BoxError>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        if self.polls.fetch_add(1, Ordering::SeqCst) == 0 {
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(Ok(()))
        }
    }

    fn call(&mut self, _req: Request) -> Self::Future {
        std::future::ready(Ok(http::Response::new(())))
    }
}

#[tokio::test]
async fn poll_ready_is_the_inner_services() {
    let registry = registry(&ManualClock::new());
    let inner = SlowToReady::default();
    let mut service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(tenant_key).registry(registry))
        .service(inner.clone());
    send(&mut service, "acme").await.unwrap();
    assert_eq!(inner.polls.load(Ordering::SeqCst), 2, "pending, then ready");
}
