//! Feature `stream`: `#[circuit_breaker(stream)]` on functions returning a stream (issue 21):
//! both return shapes (`impl Stream`, `Pin<Box<dyn Stream + Send + 'a>>`), async and sync, the
//! call's own `Err` recorded at once, the stream judged when it ends, `classify_item`, the
//! attribute's timeouts and `on_cancel`, and a half-open probe judged on its stream.
#![cfg(feature = "stream")]

mod streams;

use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use breaker::stream::Stream;
use breaker::{
    circuit_breaker, CircuitOpen, Classify, ErrorClass, ManualClock, Outcome, Registry, State,
    DEFAULT_TENANT,
};
use streams::{poll, Feed};

#[derive(Debug)]
enum ApiError {
    Open(CircuitOpen),
    Status(u16),
}

impl From<CircuitOpen> for ApiError {
    fn from(e: CircuitOpen) -> Self {
        ApiError::Open(e)
    }
}

impl Classify for ApiError {
    fn classify(&self) -> Outcome {
        match self {
            ApiError::Open(_) => Outcome::Ignored,
            ApiError::Status(code) => ErrorClass::from_status(*code).outcome(),
        }
    }
}

fn registry() -> (Registry, ManualClock) {
    let clock = ManualClock::new();
    (Registry::builder().clock(clock.clone()).build(), clock)
}

/// `Err(status)` before any stream (the provider answered with an error status), else the feed.
#[circuit_breaker(provider = "impl", registry = reg, consecutive_failures = 1, stream)]
async fn tokens(
    reg: &Registry,
    status: u16,
    feed: &Feed,
) -> Result<impl Stream<Item = Result<&'static str, ErrorClass>> + Send, ApiError> {
    if status >= 400 {
        return Err(ApiError::Status(status));
    }
    Ok(feed.stream())
}

#[allow(clippy::type_complexity)] // the signature a user writes, spelled out on purpose
#[circuit_breaker(provider = "boxed", registry = reg, consecutive_failures = 1, stream)]
fn boxed<'a>(
    reg: &Registry,
    feed: &'a Feed,
) -> Result<Pin<Box<dyn Stream<Item = Result<&'static str, ErrorClass>> + Send + 'a>>, ApiError> {
    let _borrowed = feed;
    Ok(Box::pin(feed.stream()))
}

fn state(reg: &Registry, provider: &str) -> State {
    reg.get(provider, DEFAULT_TENANT).unwrap().state()
}

#[tokio::test]
async fn an_impl_stream_is_judged_when_it_ends() {
    let (reg, _) = registry();
    let feed = Feed::default();
    let mut s = tokens(&reg, 200, &feed).await.unwrap();
    feed.push(Ok("a"));
    feed.push(Err(ErrorClass::ServerError));
    assert_eq!(poll(&mut s), Poll::Ready(Some(Ok("a"))));
    assert_eq!(
        state(&reg, "impl"),
        State::Closed,
        "returning the stream proves nothing"
    );
    assert_eq!(
        poll(&mut s),
        Poll::Ready(Some(Err(ErrorClass::ServerError)))
    );
    assert_eq!(
        state(&reg, "impl"),
        State::Open,
        "the failure mid-stream trips"
    );
    // Rejected while open, as any annotated call.
    match tokens(&reg, 200, &feed).await {
        Err(ApiError::Open(open)) => assert!(open.retry_after().is_some()),
        _ => panic!("not rejected"),
    }
}

#[test]
fn the_future_and_the_stream_are_send() {
    fn send<T: Send>(_: &T) {}
    let (reg, _) = registry();
    let feed = Feed::default();
    let call = tokens(&reg, 200, &feed);
    send(&call);
}

#[tokio::test]
async fn the_calls_own_error_is_recorded_at_once() {
    let (reg, _) = registry();
    let feed = Feed::default();
    assert!(matches!(
        tokens(&reg, 400, &feed).await,
        Err(ApiError::Status(400))
    ));
    assert_eq!(state(&reg, "impl"), State::Closed, "a 400 is the caller's");
    assert!(tokens(&reg, 503, &feed).await.is_err());
    assert_eq!(state(&reg, "impl"), State::Open);
}

#[test]
fn a_boxed_stream_is_boxed_again_around_the_guard() {
    let (reg, _) = registry();
    let feed = Feed::default();
    let mut s = boxed(&reg, &feed).unwrap();
    feed.push(Ok("a"));
    feed.end();
    assert_eq!(s.size_hint(), (1, Some(7)));
    assert_eq!(poll(&mut s), Poll::Ready(Some(Ok("a"))));
    assert_eq!(poll(&mut s), Poll::Ready(None));
    drop(s);
    let m = reg.get("boxed", DEFAULT_TENANT).unwrap().metrics();
    assert_eq!((m.state, m.consecutive_failures), (State::Closed, 0));

    // Dropped before its first item: on_abandoned, a failure.
    drop(boxed(&reg, &feed).unwrap());
    assert_eq!(state(&reg, "boxed"), State::Open);
}

fn ignore_5xx(e: &ErrorClass) -> Outcome {
    match e {
        ErrorClass::ServerError => Outcome::Ignored,
        other => other.outcome(),
    }
}

#[circuit_breaker(
    provider = "classify_item",
    registry = reg,
    consecutive_failures = 1,
    stream,
    classify_item = ignore_5xx
)]
fn classified(
    reg: &Registry,
    feed: &Feed,
) -> Result<impl Stream<Item = Result<&'static str, ErrorClass>>, ApiError> {
    Ok(feed.stream())
}

#[test]
fn classify_item_judges_the_items() {
    let (reg, _) = registry();
    let feed = Feed::default();
    let mut s = classified(&reg, &feed).unwrap();
    feed.push(Err(ErrorClass::ServerError));
    let _ = poll(&mut s);
    assert_eq!(state(&reg, "classify_item"), State::Closed);
    let mut s = classified(&reg, &feed).unwrap();
    feed.push(Err(ErrorClass::Network));
    let _ = poll(&mut s);
    assert_eq!(state(&reg, "classify_item"), State::Open);
}

#[circuit_breaker(
    provider = "timeouts",
    registry = reg,
    consecutive_failures = 1,
    stream,
    first_item_timeout = "10s",
    idle_timeout = "5s",
    on_cancel = "failure"
)]
fn timed(
    reg: &Registry,
    feed: &Feed,
) -> Result<impl Stream<Item = Result<&'static str, ErrorClass>>, ApiError> {
    Ok(feed.stream())
}

#[test]
fn the_attributes_timeouts_and_on_cancel_apply() {
    let (reg, clock) = registry();
    let feed = Feed::default();
    let mut s = timed(&reg, &feed).unwrap();
    clock.advance(Duration::from_secs(11));
    feed.push(Ok("late"));
    assert_eq!(poll(&mut s), Poll::Ready(Some(Ok("late"))));
    assert_eq!(
        state(&reg, "timeouts"),
        State::Open,
        "first token after 11 s"
    );

    let (reg, clock) = registry();
    let mut s = timed(&reg, &feed).unwrap();
    feed.push(Ok("a"));
    let _ = poll(&mut s);
    clock.advance(Duration::from_secs(1));
    drop(s);
    assert_eq!(
        state(&reg, "timeouts"),
        State::Open,
        "on_cancel = \"failure\""
    );
}

#[circuit_breaker(provider = "probe", registry = reg, consecutive_failures = 1, open_for = "10s", stream)]
async fn probe_call(
    reg: &Registry,
    feed: &Feed,
) -> Result<impl Stream<Item = Result<&'static str, ErrorClass>> + Send + Unpin, ApiError> {
    Ok(feed.stream())
}

#[tokio::test]
async fn a_half_open_probe_is_judged_on_its_stream() {
    let (reg, clock) = registry();
    let feed = Feed::default();
    let mut s = probe_call(&reg, &feed).await.unwrap();
    feed.push(Err(ErrorClass::ServerError));
    let _ = poll(&mut s);
    assert_eq!(state(&reg, "probe"), State::Open);
    clock.advance(Duration::from_secs(10));

    let mut probe = probe_call(&reg, &feed).await.unwrap();
    feed.push(Ok("a"));
    let _ = poll(&mut probe);
    assert_eq!(
        state(&reg, "probe"),
        State::HalfOpen,
        "a token does not close it"
    );
    assert!(
        matches!(probe_call(&reg, &feed).await, Err(ApiError::Open(_))),
        "the stream still holds the probe slot"
    );
    feed.end();
    let _ = poll(&mut probe);
    assert_eq!(state(&reg, "probe"), State::Closed);
}
