//! Feature `stream`: `first_item_timeout` and `idle_timeout` (issue 21, rule 4). A late first
//! item, a gap, or a late end is a failure, recorded when the late item arrives or when the
//! stream is dropped, whichever comes first; the items still pass, untouched.
#![cfg(feature = "stream")]

mod streams;

use std::task::Poll;
use std::time::Duration;

use breaker::stream::Guarded;
use breaker::{Circuit, Config, ManualClock, Outcome, Window};
use streams::{poll, Feed};

const S: Duration = Duration::from_secs(1);

fn circuit(first: Duration, idle: Duration) -> (Circuit, ManualClock) {
    let clock = ManualClock::new();
    let config = Config::builder()
        .failure_rate(1.0, Window::Calls(100))
        .minimum_calls(100)
        .first_item_timeout(first)
        .idle_timeout(idle)
        .build()
        .unwrap();
    (Circuit::with_clock(config, clock.clone()), clock)
}

fn counted(c: &Circuit) -> (u32, u32) {
    let m = c.metrics();
    (m.calls_in_window, m.failures_in_window)
}

#[test]
fn a_first_item_later_than_first_item_timeout_is_a_failure_when_it_arrives() {
    let (c, clock) = circuit(10 * S, 60 * S);
    let feed = Feed::default();
    let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    clock.advance(11 * S);
    assert_eq!(
        counted(&c),
        (0, 0),
        "no timer: nothing until the item or a drop"
    );
    feed.push(Ok("late"));
    assert_eq!(
        poll(&mut s),
        Poll::Ready(Some(Ok("late"))),
        "the item still passes"
    );
    assert_eq!(counted(&c), (1, 1));
    feed.push(Ok("more"));
    feed.end();
    assert_eq!(poll(&mut s), Poll::Ready(Some(Ok("more"))));
    assert_eq!(poll(&mut s), Poll::Ready(None));
    assert_eq!(counted(&c), (1, 1), "recorded once");
}

#[test]
fn a_first_item_at_the_timeout_is_on_time() {
    let (c, clock) = circuit(10 * S, 60 * S);
    let feed = Feed::default();
    let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    clock.advance(10 * S);
    feed.push(Ok("a"));
    feed.end();
    let _ = poll(&mut s);
    let _ = poll(&mut s);
    assert_eq!(counted(&c), (1, 0));
}

#[test]
fn a_stall_after_the_first_item_is_a_failure_at_the_late_item() {
    let (c, clock) = circuit(10 * S, 5 * S);
    let feed = Feed::default();
    let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    for _ in 0..3 {
        clock.advance(4 * S);
        feed.push(Ok("tok"));
        let _ = poll(&mut s);
    }
    assert_eq!(counted(&c), (0, 0), "gaps of 4 s are fine");
    clock.advance(6 * S);
    feed.push(Ok("tok"));
    let _ = poll(&mut s);
    assert_eq!(counted(&c), (1, 1));
}

#[test]
fn an_end_after_a_long_gap_is_a_failure() {
    let (c, clock) = circuit(10 * S, 5 * S);
    let feed = Feed::default();
    let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    feed.push(Ok("tok"));
    let _ = poll(&mut s);
    clock.advance(6 * S);
    feed.end();
    let _ = poll(&mut s);
    assert_eq!(counted(&c), (1, 1));
}

#[test]
fn a_drop_after_the_timeout_passed_is_a_failure_whatever_on_cancel_says() {
    // Stalled before the first item, dropped by a consumer that gave up: a failure.
    let (c, clock) = circuit(10 * S, 5 * S);
    let feed = Feed::default();
    let s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    clock.advance(11 * S);
    drop(s);
    assert_eq!(counted(&c), (1, 1));

    // Stalled mid-stream (on_cancel would be ignored): a failure.
    let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    feed.push(Ok("tok"));
    let _ = poll(&mut s);
    clock.advance(6 * S);
    drop(s);
    assert_eq!(counted(&c), (2, 2));

    // Dropped mid-stream within the idle timeout: on_cancel (ignored).
    let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    feed.push(Ok("tok"));
    let _ = poll(&mut s);
    clock.advance(4 * S);
    drop(s);
    assert_eq!(counted(&c), (2, 2));
}

#[test]
fn a_late_err_item_is_the_timeouts_failure() {
    let clock = ManualClock::new();
    let config = Config::builder()
        .consecutive_failures(100)
        .first_item_timeout(S)
        .build()
        .unwrap();
    let c = Circuit::with_clock(config, clock.clone());
    let feed = Feed::default();
    // The error alone would be ignored; its lateness makes the call a failure.
    let mut s = Guarded::with_classifier(c.try_acquire().unwrap(), feed.stream(), |_: &_| {
        Outcome::Ignored
    });
    clock.advance(2 * S);
    feed.push(Err(breaker::ErrorClass::Unknown));
    let _ = poll(&mut s);
    assert_eq!(c.metrics().consecutive_failures, 1);
}

#[test]
fn without_timeouts_a_slow_stream_is_judged_only_by_its_items() {
    let clock = ManualClock::new();
    let config = Config::builder()
        .failure_rate(1.0, Window::Calls(100))
        .minimum_calls(100)
        .build()
        .unwrap();
    let c = Circuit::with_clock(config, clock.clone());
    let feed = Feed::default();
    let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    clock.advance(3600 * S);
    feed.push(Ok("a"));
    feed.end();
    let _ = poll(&mut s);
    let _ = poll(&mut s);
    assert_eq!(counted(&c), (1, 0));
}

#[test]
fn the_timeouts_are_config_settings() {
    let config = Config::builder()
        .first_item_timeout(10 * S)
        .idle_timeout(30 * S)
        .on_cancel(Outcome::Failure)
        .build()
        .unwrap();
    assert_eq!(config.first_item_timeout(), Some(10 * S));
    assert_eq!(config.idle_timeout(), Some(30 * S));
    assert_eq!(config.on_cancel(), Outcome::Failure);
    let err = Config::builder()
        .idle_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "idle_timeout");
    let err = Config::builder()
        .first_item_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "first_item_timeout");
}
