//! Feature `stream`: a guarded stream is judged when it ends, fails, or is dropped, exactly once
//! (issue 21, rules 1, 2, 3 and 5), and no panic of the stream wedges its circuit.
#![cfg(feature = "stream")]

mod streams;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::Poll;
use std::time::Duration;

use breaker::stream::{Guarded, Stream};
use breaker::{Circuit, Config, ConfigBuilder, ErrorClass, ManualClock, Outcome, State, Window};
use streams::{poll, Feed};

/// A circuit that never trips and counts what it was told: (outcomes, failures) in its window.
fn counting(b: ConfigBuilder) -> Circuit {
    let config = b
        .failure_rate(1.0, Window::Calls(100))
        .minimum_calls(100)
        .build()
        .unwrap();
    Circuit::with_clock(config, ManualClock::new())
}

fn counted(c: &Circuit) -> (u32, u32) {
    let m = c.metrics();
    (m.calls_in_window, m.failures_in_window)
}

#[test]
fn ends_after_ok_items_is_one_success_recorded_at_the_end() {
    let c = counting(Config::builder());
    let feed = Feed::default();
    let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    assert_eq!(poll(&mut s), Poll::Pending);
    feed.push(Ok("a"));
    feed.push(Ok("b"));
    assert_eq!(poll(&mut s), Poll::Ready(Some(Ok("a"))));
    assert_eq!(poll(&mut s), Poll::Ready(Some(Ok("b"))));
    assert_eq!(
        counted(&c),
        (0, 0),
        "nothing recorded while the stream runs"
    );
    assert!(!s.is_judged());
    feed.end();
    assert_eq!(poll(&mut s), Poll::Ready(None));
    assert_eq!(counted(&c), (1, 0));
    assert!(s.is_judged());
    // Polled again after its end, or dropped: nothing more is recorded.
    feed.end();
    assert_eq!(poll(&mut s), Poll::Ready(None));
    drop(s);
    assert_eq!(counted(&c), (1, 0));
}

#[test]
fn an_empty_stream_is_a_success() {
    let c = counting(Config::builder());
    let feed = Feed::default();
    feed.end();
    let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    assert_eq!(poll(&mut s), Poll::Ready(None));
    assert_eq!(counted(&c), (1, 0));
}

#[test]
fn an_err_item_is_recorded_at_once_and_later_items_pass_unrecorded() {
    let c = counting(Config::builder());
    let feed = Feed::default();
    let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    feed.push(Ok("a"));
    feed.push(Err(ErrorClass::ServerError));
    feed.push(Ok("b"));
    feed.push(Err(ErrorClass::Network));
    feed.end();
    assert_eq!(poll(&mut s), Poll::Ready(Some(Ok("a"))));
    assert_eq!(
        poll(&mut s),
        Poll::Ready(Some(Err(ErrorClass::ServerError)))
    );
    assert_eq!(counted(&c), (1, 1), "the failure, at once");
    assert_eq!(poll(&mut s), Poll::Ready(Some(Ok("b"))));
    assert_eq!(poll(&mut s), Poll::Ready(Some(Err(ErrorClass::Network))));
    assert_eq!(poll(&mut s), Poll::Ready(None));
    drop(s);
    assert_eq!(counted(&c), (1, 1), "recorded exactly once");
}

#[test]
fn an_err_item_counts_as_its_classification() {
    for (err, want) in [
        (ErrorClass::InvalidRequest, (1, 0)), // success: the caller's fault
        (ErrorClass::Unknown, (0, 0)),        // ignored
        (ErrorClass::Timeout, (1, 1)),        // failure
    ] {
        let c = counting(Config::builder());
        let feed = Feed::default();
        let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
        feed.push(Err(err));
        let _ = poll(&mut s);
        assert!(s.is_judged());
        drop(s);
        assert_eq!(counted(&c), want, "{err:?}");
    }
}

#[test]
fn an_err_item_with_retry_after_opens_for_the_providers_time() {
    let c = Circuit::with_clock(Config::default(), ManualClock::new());
    let feed = Feed::default();
    let mut s =
        Guarded::with_classifier(c.try_acquire().unwrap(), feed.stream(), |_: &ErrorClass| {
            Outcome::RetryAfter(Duration::from_secs(42))
        });
    feed.push(Err(ErrorClass::RateLimited));
    let _ = poll(&mut s);
    assert_eq!(c.state(), State::Open);
    assert_eq!(c.retry_after(), Some(Duration::from_secs(42)));
}

#[test]
fn a_classifier_function_judges_the_errors() {
    let c = counting(Config::builder());
    let feed = Feed::default();
    let ignore_all = |_: &ErrorClass| Outcome::Ignored;
    let mut s = Guarded::with_classifier(c.try_acquire().unwrap(), feed.stream(), ignore_all);
    feed.push(Err(ErrorClass::ServerError));
    let _ = poll(&mut s);
    assert!(s.is_judged());
    assert_eq!(counted(&c), (0, 0));
}

#[test]
fn dropped_before_its_first_item_counts_as_on_abandoned() {
    let c = counting(Config::builder());
    let feed = Feed::default();
    let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    assert_eq!(poll(&mut s), Poll::Pending);
    drop(s);
    assert_eq!(
        counted(&c),
        (1, 1),
        "default on_abandoned: a failure (the provider hung)"
    );

    let c = counting(Config::builder().on_abandoned(Outcome::Ignored));
    drop(Guarded::new(c.try_acquire().unwrap(), feed.stream()));
    assert_eq!(counted(&c), (0, 0));
}

#[test]
fn dropped_after_its_first_item_counts_as_on_cancel() {
    let c = counting(Config::builder());
    let feed = Feed::default();
    let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    feed.push(Ok("a"));
    let _ = poll(&mut s);
    drop(s);
    assert_eq!(
        counted(&c),
        (0, 0),
        "default on_cancel: ignored (the client went away)"
    );

    let c = counting(Config::builder().on_cancel(Outcome::Failure));
    let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    feed.push(Ok("a"));
    let _ = poll(&mut s);
    drop(s);
    assert_eq!(counted(&c), (1, 1));
}

#[test]
fn the_stream_is_never_altered() {
    let c = counting(Config::builder());
    let feed = Feed::default();
    let bare: Vec<_> = {
        let items = [Ok("x"), Err(ErrorClass::Auth), Ok("y")];
        for i in items {
            feed.push(i);
        }
        feed.end();
        items.into_iter().map(Some).chain([None]).collect()
    };
    let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    assert_eq!(s.size_hint(), (1, Some(7)), "the inner stream's size_hint");
    let seen: Vec<_> = (0..4)
        .map(|_| match poll(&mut s) {
            Poll::Ready(item) => item,
            Poll::Pending => panic!("pending"),
        })
        .collect();
    assert_eq!(seen, bare);
}

#[test]
fn a_panicking_poll_counts_as_on_abandoned_and_frees_the_probe() {
    let clock = ManualClock::new();
    let config = Config::builder()
        .consecutive_failures(1)
        .open_for(Duration::from_secs(10))
        .build()
        .unwrap();
    let c = Circuit::with_clock(config, clock.clone());
    c.try_acquire().unwrap().failure();
    clock.advance(Duration::from_secs(10));
    let feed = Feed::default();
    let mut inner = feed.stream();
    inner.panic_on_poll = true;
    let mut s = Guarded::new(c.try_acquire().unwrap(), inner);
    assert!(s.is_probe());
    let panicked = catch_unwind(AssertUnwindSafe(move || {
        let _ = poll(&mut s);
    }));
    assert!(panicked.is_err());
    // The probe's permit counted as on_abandoned (a failure): open again, backoff doubled.
    assert_eq!(c.state(), State::Open);
    assert_eq!(c.retry_after(), Some(Duration::from_secs(20)));
}

#[test]
fn a_panicking_drop_of_the_stream_is_recorded_first() {
    let c = counting(Config::builder().on_cancel(Outcome::Failure));
    let feed = Feed::default();
    let mut inner = feed.stream();
    inner.panic_on_drop = true;
    let mut s = Guarded::new(c.try_acquire().unwrap(), inner);
    feed.push(Ok("a"));
    let _ = poll(&mut s);
    assert!(catch_unwind(AssertUnwindSafe(move || drop(s))).is_err());
    assert_eq!(
        counted(&c),
        (1, 1),
        "on_cancel recorded before the stream's drop ran"
    );
}

#[test]
fn a_long_stream_is_not_slow_when_its_first_item_was_fast() {
    let clock = ManualClock::new();
    let config = Config::builder()
        .slow_calls(Duration::from_secs(2), 1.0)
        .window(Window::Calls(10))
        .minimum_calls(10)
        .build()
        .unwrap();
    let c = Circuit::with_clock(config, clock.clone());
    let slow = |c: &Circuit| c.metrics().slow_in_window;

    // First item after 1 s, then a minute of tokens: not slow.
    let feed = Feed::default();
    let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    clock.advance(Duration::from_secs(1));
    feed.push(Ok("a"));
    let _ = poll(&mut s);
    clock.advance(Duration::from_secs(60));
    feed.end();
    let _ = poll(&mut s);
    assert_eq!((c.metrics().calls_in_window, slow(&c)), (1, 0));

    // First item after 3 s: slow, however short the rest.
    let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    clock.advance(Duration::from_secs(3));
    feed.push(Ok("a"));
    feed.end();
    let _ = poll(&mut s);
    let _ = poll(&mut s);
    assert_eq!((c.metrics().calls_in_window, slow(&c)), (2, 1));
}
