//! Listener events: every transition once with its reason, rejections, slow calls.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use breaker::{Config, Event, ManualClock, Reason, Registry, State, Window};

/// A registry whose listener writes each event as one line.
fn recording(config: Config, clock: &ManualClock) -> (Registry, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let registry = Registry::builder()
        .default_config(config)
        .clock(clock.clone())
        .listener(move |event: &Event<'_>| {
            let line = match event {
                Event::Transition {
                    provider,
                    tenant,
                    from,
                    to,
                    reason,
                    ..
                } => format!("{provider}/{tenant}: {from} -> {to} ({reason})"),
                Event::Rejected {
                    provider,
                    tenant,
                    state,
                    retry_after,
                    ..
                } => format!("{provider}/{tenant}: rejected {state} {retry_after:?}"),
                Event::SlowCall {
                    provider,
                    tenant,
                    elapsed,
                    threshold,
                    ..
                } => format!("{provider}/{tenant}: slow {elapsed:?} > {threshold:?}"),
                _ => unreachable!("no other events yet"),
            };
            sink.lock().unwrap().push(line);
        })
        .build();
    (registry, log)
}

fn take(log: &Mutex<Vec<String>>) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn a_full_cycle_reports_each_transition_once_with_its_reason() {
    let clock = ManualClock::new();
    let config = Config::builder()
        .consecutive_failures(2)
        .open_for(Duration::from_secs(10))
        .build()
        .unwrap();
    let (r, log) = recording(config, &clock);
    let c = r.circuit("openai", "acme");

    c.try_acquire().unwrap().failure();
    assert!(take(&log).is_empty(), "one failure is no transition");
    c.try_acquire().unwrap().failure();
    assert_eq!(
        take(&log),
        ["openai/acme: closed -> open (consecutive_failures)"]
    );

    assert!(c.try_acquire().is_err());
    assert_eq!(take(&log), ["openai/acme: rejected open Some(10s)"]);

    clock.advance(Duration::from_secs(10));
    assert_eq!(c.state(), State::HalfOpen);
    assert!(take(&log).is_empty(), "reading the state moves nothing");
    let probe = c.try_acquire().unwrap();
    assert_eq!(
        take(&log),
        ["openai/acme: open -> half_open (open_period_elapsed)"]
    );
    assert!(c.try_acquire().is_err());
    assert_eq!(take(&log), ["openai/acme: rejected half_open None"]);
    probe.failure();
    assert_eq!(
        take(&log),
        ["openai/acme: half_open -> open (probe_failed)"]
    );

    clock.advance(Duration::from_secs(20)); // the open period doubled
    c.try_acquire().unwrap().success();
    assert_eq!(
        take(&log),
        [
            "openai/acme: open -> half_open (open_period_elapsed)",
            "openai/acme: half_open -> closed (probes_succeeded)",
        ]
    );
}

#[test]
fn rate_trips_name_the_rate() {
    let clock = ManualClock::new();
    let config = Config::builder()
        .failure_rate(0.5, Window::Calls(4))
        .minimum_calls(4)
        .build()
        .unwrap();
    let (r, log) = recording(config, &clock);
    let c = r.circuit("openai", "acme");
    for ok in [true, false, true, false] {
        let p = c.try_acquire().unwrap();
        if ok {
            p.success()
        } else {
            p.failure()
        }
    }
    assert_eq!(take(&log), ["openai/acme: closed -> open (failure_rate)"]);
}

#[test]
fn slow_calls_are_reported_and_name_the_slow_rate_when_they_trip() {
    let clock = ManualClock::new();
    let config = Config::builder()
        .slow_calls(Duration::from_secs(2), 0.5)
        .window(Window::Calls(2))
        .minimum_calls(2)
        .build()
        .unwrap();
    let (r, log) = recording(config, &clock);
    let c = r.circuit("openai", "acme");
    for took in [Duration::from_secs(1), Duration::from_secs(3)] {
        let p = c.try_acquire().unwrap();
        clock.advance(took);
        p.success();
    }
    assert_eq!(
        take(&log),
        [
            "openai/acme: slow 3s > 2s",
            "openai/acme: closed -> open (slow_call_rate)",
        ]
    );
}

#[test]
fn operator_switches_are_transitions_but_a_reset_of_a_closed_circuit_is_not() {
    let clock = ManualClock::new();
    let (r, log) = recording(Config::default(), &clock);
    let c = r.circuit("openai", "acme");
    c.reset();
    assert!(take(&log).is_empty());
    c.force_open();
    assert!(c.try_acquire().is_err());
    c.metrics_only();
    c.disable();
    c.reset();
    assert_eq!(
        take(&log),
        [
            "openai/acme: closed -> forced_open (operator)",
            "openai/acme: rejected forced_open None",
            "openai/acme: forced_open -> metrics_only (operator)",
            "openai/acme: metrics_only -> disabled (operator)",
            "openai/acme: disabled -> closed (operator)",
        ]
    );
}

#[test]
fn events_carry_their_circuit_and_other_circuits_stay_silent() {
    let clock = ManualClock::new();
    let config = Config::builder().consecutive_failures(1).build().unwrap();
    let (r, log) = recording(config, &clock);
    r.circuit("openai", "globex")
        .try_acquire()
        .unwrap()
        .success();
    r.circuit("anthropic", "acme")
        .try_acquire()
        .unwrap()
        .failure();
    assert_eq!(
        take(&log),
        ["anthropic/acme: closed -> open (consecutive_failures)"]
    );
}

#[test]
fn every_listener_sees_every_event_in_registration_order() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let (a, b) = (order.clone(), order.clone());
    let r = Registry::builder()
        .default_config(Config::builder().consecutive_failures(1).build().unwrap())
        .listener(move |e: &Event<'_>| a.lock().unwrap().push(("a", e.tenant().to_owned())))
        .listener(move |e: &Event<'_>| b.lock().unwrap().push(("b", e.tenant().to_owned())))
        .build();
    r.circuit("p", "t").try_acquire().unwrap().failure();
    assert_eq!(
        *order.lock().unwrap(),
        [("a", "t".to_owned()), ("b", "t".to_owned())]
    );
}

#[test]
fn the_winner_of_a_concurrent_trip_emits_it_exactly_once() {
    let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = opened.clone();
    let r = Registry::builder()
        .default_config(Config::builder().consecutive_failures(1).build().unwrap())
        .clock(ManualClock::new())
        .listener(move |e: &Event<'_>| {
            if let Event::Transition {
                to: State::Open,
                reason,
                ..
            } = e
            {
                assert_eq!(*reason, Reason::ConsecutiveFailures);
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .build();
    let c = r.circuit("p", "t");
    // Every permit is taken while closed, so all of them race to trip the same stay.
    let mut permits: Vec<_> = (0..64).map(|_| c.try_acquire().unwrap()).collect();
    std::thread::scope(|s| {
        while !permits.is_empty() {
            let chunk = permits.split_off(permits.len() - 16);
            s.spawn(move || {
                for p in chunk {
                    p.failure();
                }
            });
        }
    });
    assert_eq!(opened.load(std::sync::atomic::Ordering::Relaxed), 1);
}
