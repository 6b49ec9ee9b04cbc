//! Feature `stream`: a half-open probe that returns a stream stays the probe until the stream is
//! judged (issue 21, rule 6), and `probe_timeout` still frees a slot held by a stream that never
//! finishes.
#![cfg(feature = "stream")]

mod streams;

use std::time::Duration;

use breaker::stream::Guarded;
use breaker::{Circuit, Config, ErrorClass, ManualClock, State};
use streams::{poll, Feed};

const S: Duration = Duration::from_secs(1);

/// A circuit that tripped and whose open period of 10 s is over: the next call is the probe.
fn half_open() -> (Circuit, ManualClock) {
    let clock = ManualClock::new();
    let config = Config::builder()
        .consecutive_failures(1)
        .open_for(10 * S)
        .probe_timeout(30 * S)
        .build()
        .unwrap();
    let c = Circuit::with_clock(config, clock.clone());
    c.try_acquire().unwrap().failure();
    clock.advance(10 * S);
    (c, clock)
}

#[test]
fn a_probe_stream_stays_the_probe_until_it_ends() {
    let (c, _clock) = half_open();
    let feed = Feed::default();
    let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    assert!(s.is_probe());
    feed.push(Ok("a"));
    let _ = poll(&mut s);
    assert_eq!(
        c.state(),
        State::HalfOpen,
        "one token does not close the circuit"
    );
    assert!(
        c.try_acquire().is_err(),
        "the stream still holds the probe slot"
    );
    feed.end();
    let _ = poll(&mut s);
    assert_eq!(c.state(), State::Closed);
    assert!(!s.is_probe());
}

#[test]
fn a_probe_stream_failing_mid_stream_reopens_the_circuit() {
    let (c, _clock) = half_open();
    let feed = Feed::default();
    let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    feed.push(Ok("a"));
    feed.push(Err(ErrorClass::ServerError));
    let _ = poll(&mut s);
    let _ = poll(&mut s);
    assert_eq!(c.state(), State::Open);
    assert_eq!(c.retry_after(), Some(20 * S), "backoff doubled");
}

#[test]
fn a_probe_stream_cancelled_by_its_client_frees_the_slot() {
    let (c, _clock) = half_open();
    let feed = Feed::default();
    let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    feed.push(Ok("a"));
    let _ = poll(&mut s);
    drop(s); // on_cancel: ignored
    assert_eq!(c.state(), State::HalfOpen);
    let next = c.try_acquire().expect("the slot is free for a new probe");
    next.success();
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn a_probe_stream_that_never_finishes_is_let_go_after_probe_timeout() {
    let (c, clock) = half_open();
    let feed = Feed::default();
    let mut s = Guarded::new(c.try_acquire().unwrap(), feed.stream());
    feed.push(Ok("a"));
    let _ = poll(&mut s);
    clock.advance(29 * S);
    assert!(c.try_acquire().is_err());
    clock.advance(S);
    // The hung probe counts as on_abandoned (a failure): reopened on the next backoff step.
    assert_eq!(c.try_acquire().unwrap_err().retry_after(), Some(20 * S));
    // Its late end changes nothing.
    feed.end();
    let _ = poll(&mut s);
    drop(s);
    assert_eq!(c.state(), State::Open);
}
