//! In-flight detection: with the slow-call policy, a call still in flight past the threshold is
//! counted as slow at the next admission, while it still hangs, so a provider that stopped
//! answering trips the circuit however patient its callers are; each such call is counted once
//! (its own outcome, when it comes, is not recorded again). Issue 20. On a `ManualClock`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use breaker::{Circuit, Config, Event, ManualClock, Permit, Registry, State, Window};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The gateway of the issue: slow above 500 ms, trip when half the last 20 calls are slow.
fn gateway() -> Config {
    Config::builder()
        .slow_calls(ms(500), 0.5)
        .window(Window::Calls(20))
        .minimum_calls(10)
        .build()
        .unwrap()
}

#[test]
fn a_hang_trips_the_circuit_within_a_second_while_the_calls_still_hang() {
    let clock = ManualClock::new();
    let circuit = Circuit::with_clock(gateway(), clock.clone());
    // Healthy traffic first: a call every 10 ms, answered in 100 ms.
    for _ in 0..50 {
        circuit.try_acquire().unwrap().success();
        clock.advance(ms(10));
    }
    // The provider hangs: 30 s clients keep every call in flight. A call every 10 ms.
    let mut hung: Vec<Permit> = Vec::new();
    let mut waited = Duration::ZERO;
    while circuit.state() == State::Closed {
        match circuit.try_acquire() {
            Ok(p) => hung.push(p),
            Err(open) => assert_eq!(open.state(), State::Open),
        }
        clock.advance(ms(10));
        waited += ms(10);
        assert!(waited < Duration::from_secs(30), "never tripped");
    }
    assert!(
        waited <= Duration::from_secs(1),
        "tripped {waited:?} after the hang began"
    );
    assert_eq!(circuit.metrics().times_opened, 1);
    // The hung calls end (their clients give up): they were counted already, and their outcomes
    // change nothing.
    let before = circuit.metrics();
    for p in hung {
        p.failure();
    }
    let after = circuit.metrics();
    assert_eq!(before.calls_in_window, after.calls_in_window);
    assert_eq!(before.slow_in_window, after.slow_in_window);
}

#[test]
fn an_overdue_call_is_counted_once_as_slow() {
    let clock = ManualClock::new();
    let config = Config::builder()
        .slow_calls(ms(500), 1.0)
        .window(Window::Calls(100))
        .minimum_calls(100)
        .build()
        .unwrap();
    let circuit = Circuit::with_clock(config, clock.clone());
    let hung = circuit.try_acquire().unwrap();
    let quick = circuit.try_acquire().unwrap();
    quick.success();
    // Within the threshold (and for up to half of it more) nothing is counted.
    clock.advance(ms(500));
    circuit.try_acquire().unwrap().success();
    assert_eq!(circuit.metrics().slow_in_window, 0);
    // Surely past it: the next admission counts the hung call, once.
    clock.advance(ms(250));
    circuit.try_acquire().unwrap().success();
    let m = circuit.metrics();
    assert_eq!((m.calls_in_window, m.slow_in_window), (4, 1));
    for _ in 0..3 {
        clock.advance(ms(250));
        circuit.try_acquire().unwrap().success();
    }
    assert_eq!(circuit.metrics().slow_in_window, 1, "counted once");
    // Its own outcome, when it comes, is not recorded again.
    hung.success();
    let m = circuit.metrics();
    assert_eq!((m.calls_in_window, m.slow_in_window), (7, 1));
}

#[test]
fn calls_that_answer_in_time_are_never_overdue() {
    let clock = ManualClock::new();
    let circuit = Circuit::with_clock(gateway(), clock.clone());
    for _ in 0..200 {
        let p = circuit.try_acquire().unwrap();
        clock.advance(ms(100));
        p.success();
    }
    let m = circuit.metrics();
    assert_eq!(m.slow_in_window, 0);
    assert_eq!(m.state, State::Closed);
}

#[test]
fn a_slow_answer_found_overdue_first_is_not_slow_twice() {
    let clock = ManualClock::new();
    let circuit = Circuit::with_clock(gateway(), clock.clone());
    let slow = circuit.try_acquire().unwrap();
    clock.advance(ms(800));
    circuit.try_acquire().unwrap().success(); // finds `slow` overdue
    clock.advance(ms(100));
    slow.success(); // 900 ms: slow, but counted already
    let m = circuit.metrics();
    assert_eq!((m.calls_in_window, m.slow_in_window), (2, 1));
}

#[test]
fn a_slow_answer_nobody_found_overdue_is_slow_when_it_comes() {
    let clock = ManualClock::new();
    let circuit = Circuit::with_clock(gateway(), clock.clone());
    let slow = circuit.try_acquire().unwrap();
    clock.advance(ms(600));
    slow.success();
    let m = circuit.metrics();
    assert_eq!((m.calls_in_window, m.slow_in_window), (1, 1));
}

#[test]
fn listeners_hear_of_overdue_calls() {
    let clock = ManualClock::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let registry = Registry::builder()
        .clock(clock.clone())
        .default_config(gateway())
        .listener(move |e: &Event<'_>| {
            if let Event::Overdue {
                calls, threshold, ..
            } = e
            {
                log.lock()
                    .unwrap()
                    .push(format!("{calls} over {threshold:?}"));
            }
        })
        .build();
    let hung: Vec<_> = (0..3)
        .map(|_| registry.acquire("llm", "acme", None).unwrap())
        .collect();
    clock.advance(ms(1000));
    registry.acquire("llm", "acme", None).unwrap().success();
    assert_eq!(*seen.lock().unwrap(), ["3 over 500ms"]);
    drop(hung);
}

#[test]
fn calls_of_a_stay_the_circuit_left_are_forgotten() {
    let clock = ManualClock::new();
    let circuit = Circuit::with_clock(gateway(), clock.clone());
    let hung = circuit.try_acquire().unwrap();
    circuit.force_open();
    circuit.reset();
    clock.advance(ms(1000));
    circuit.try_acquire().unwrap().success();
    let m = circuit.metrics();
    assert_eq!((m.calls_in_window, m.slow_in_window), (1, 0));
    hung.success();
    assert_eq!(circuit.metrics().calls_in_window, 1);
}

#[test]
fn a_hang_trips_the_circuit_even_when_the_hung_calls_fill_the_bulkhead() {
    let clock = ManualClock::new();
    let config = Config::builder()
        .slow_calls(ms(500), 0.5)
        .window(Window::Calls(4))
        .minimum_calls(2)
        .max_in_flight(2)
        .build()
        .unwrap();
    let circuit = Circuit::with_clock(config, clock.clone());
    let a = circuit.try_acquire().unwrap();
    let b = circuit.try_acquire().unwrap();
    assert!(circuit.try_acquire().unwrap_err().is_full());
    clock.advance(ms(1000));
    // Refused as full, but this admission decision finds both calls overdue: 2 slow of 2.
    assert!(circuit.try_acquire().unwrap_err().is_full());
    assert_eq!(circuit.state(), State::Open);
    assert_eq!(circuit.metrics().slow_in_window, 2);
    let open = circuit.try_acquire().unwrap_err();
    assert!(!open.is_full() && open.state() == State::Open);
    // Their outcomes, when they come, were counted already; their places come back.
    a.failure();
    b.success();
    assert_eq!(circuit.metrics().slow_in_window, 2);
    circuit.reset();
    let (_c, _d) = (
        circuit.try_acquire().unwrap(),
        circuit.try_acquire().unwrap(),
    );
    assert!(circuit.try_acquire().unwrap_err().is_full());
}
