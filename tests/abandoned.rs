//! A permit dropped without a report: cancelled futures, panics, early returns.

use std::time::Duration;

use breaker::{Circuit, Config, ManualClock, Outcome, State};

fn tripped(on_abandoned: Outcome) -> (Circuit, ManualClock) {
    let clock = ManualClock::new();
    let config = Config::builder()
        .consecutive_failures(1)
        .on_abandoned(on_abandoned)
        .build()
        .unwrap();
    let c = Circuit::with_clock(config, clock.clone());
    c.try_acquire().unwrap().failure();
    clock.advance(Duration::from_secs(30));
    (c, clock)
}

#[test]
fn dropped_permit_counts_as_failure_by_default() {
    let c = Circuit::with_clock(
        Config::builder().consecutive_failures(2).build().unwrap(),
        ManualClock::new(),
    );
    drop(c.try_acquire().unwrap());
    drop(c.try_acquire().unwrap());
    assert_eq!(c.state(), State::Open);
}

#[test]
fn dropped_probe_reopens_by_default_and_frees_its_slot() {
    let (c, _) = tripped(Outcome::Failure);
    drop(c.try_acquire().unwrap());
    assert_eq!(c.state(), State::Open);
}

#[test]
fn dropped_probe_counted_as_ignored_frees_the_slot() {
    let (c, _) = tripped(Outcome::Ignored);
    for _ in 0..10 {
        drop(c.try_acquire().expect("the slot was freed"));
        assert_eq!(c.state(), State::HalfOpen);
    }
    c.try_acquire().unwrap().success();
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn dropped_probe_counted_as_success_closes() {
    let (c, _) = tripped(Outcome::Success);
    drop(c.try_acquire().unwrap());
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn panic_while_holding_a_probe_never_wedges_half_open() {
    let (c, _) = tripped(Outcome::Ignored);
    let c2 = c.clone();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _permit = c2.try_acquire().unwrap();
        panic!("the call panicked");
    }));
    assert!(result.is_err());
    assert!(
        c.try_acquire().is_ok(),
        "the probe slot was released during unwinding"
    );
}

#[tokio::test(start_paused = true)]
async fn cancelled_future_counts_as_abandoned() {
    let (c, _) = tripped(Outcome::Ignored);
    let c2 = c.clone();
    let call = async move {
        let permit = c2.try_acquire().unwrap();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        permit.success();
    };
    assert!(tokio::time::timeout(Duration::from_secs(1), call)
        .await
        .is_err());
    assert_eq!(c.state(), State::HalfOpen);
    assert!(
        c.try_acquire().is_ok(),
        "the cancelled probe freed its slot"
    );
}
