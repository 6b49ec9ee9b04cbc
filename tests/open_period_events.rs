//! A transition into `Open` tells listeners how long the circuit stays open: the trip's period,
//! compounded on a re-trip. Every other transition (and an operator's `force_open`, which lasts
//! until a reset) carries none.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use breaker::{Config, Event, ManualClock, Registry, State};

#[test]
fn openings_carry_their_compounded_open_period() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let clock = ManualClock::new();
    let registry = Registry::builder()
        .default_config(
            Config::builder()
                .consecutive_failures(1)
                .open_for(Duration::from_secs(10))
                .backoff_multiplier(2.0)
                .build()
                .unwrap(),
        )
        .clock(clock.clone())
        .listener(move |event: &Event<'_>| {
            if let Event::Transition { to, open_for, .. } = event {
                log.lock().unwrap().push((*to, *open_for));
            }
        })
        .build();
    let c = registry.circuit("openai", "acme");
    c.try_acquire().unwrap().failure();
    clock.advance(Duration::from_secs(10));
    c.try_acquire().unwrap().failure(); // the probe fails: open again, for twice as long
    clock.advance(Duration::from_secs(20));
    c.try_acquire().unwrap().success();
    c.force_open();
    c.reset();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (State::Open, Some(Duration::from_secs(10))),
            (State::HalfOpen, None),
            (State::Open, Some(Duration::from_secs(20))),
            (State::HalfOpen, None),
            (State::Closed, None),
            (State::ForcedOpen, None),
            (State::Closed, None),
        ]
    );
}
