//! `Registry::configure` retunes a provider's existing circuits from their next call, keeping
//! their state: open periods keep their deadline; backoff level, failure streak and probes in
//! flight are kept; thresholds, durations, probe counts and the slow-call policy are the new
//! config's from the next decision on; a window whose kind or size changes restarts empty.

use std::time::Duration;

use breaker::{circuit_breaker, CircuitOpen, Config, ManualClock, Registry, State, Window};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn registry() -> (Registry, ManualClock) {
    let clock = ManualClock::new();
    (Registry::builder().clock(clock.clone()).build(), clock)
}

fn consecutive(n: u32) -> Config {
    Config::builder().consecutive_failures(n).build().unwrap()
}

/// The newcomer's report: `configure(5)`, use a tenant, `configure(2)`: the tenant still
/// tripped at 5.
#[test]
fn a_hot_tenant_trips_at_the_new_threshold() {
    let (registry, _) = registry();
    registry.configure("openai", consecutive(5));
    let c = registry.circuit("openai", "acme");
    c.try_acquire().unwrap().success();
    registry.configure("openai", consecutive(2));
    assert_eq!(c.config().consecutive_failures(), Some(2));
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Closed);
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Open);
}

#[test]
fn the_failure_streak_is_kept() {
    let (registry, _) = registry();
    registry.configure("openai", consecutive(5));
    let c = registry.circuit("openai", "acme");
    for _ in 0..3 {
        c.try_acquire().unwrap().failure();
    }
    registry.configure("openai", consecutive(4));
    assert_eq!(c.metrics().consecutive_failures, 3);
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Open, "3 kept + 1 reaches the new 4");
}

/// An open period keeps its deadline; the next trip takes the new `open_for` at the kept level.
#[test]
fn a_running_open_period_keeps_its_deadline_and_the_backoff_level_is_kept() {
    let (registry, clock) = registry();
    let old = Config::builder()
        .consecutive_failures(1)
        .open_for(secs(30))
        .build()
        .unwrap();
    registry.configure("openai", old);
    let c = registry.circuit("openai", "acme");
    c.try_acquire().unwrap().failure(); // level 0: 30 s
    clock.advance(secs(30));
    c.try_acquire().unwrap().failure(); // probe fails, level 1: 60 s
    assert_eq!(c.retry_after(), Some(secs(60)));
    clock.advance(secs(20));

    let new = Config::builder()
        .consecutive_failures(1)
        .open_for(secs(5))
        .build()
        .unwrap();
    registry.configure("openai", new);
    assert_eq!(c.retry_after(), Some(secs(40)), "the deadline did not move");
    clock.advance(secs(40));
    c.try_acquire().unwrap().failure(); // probe fails again: level 2 of the new schedule
    assert_eq!(c.retry_after(), Some(secs(20)), "5 s × 2²");
}

/// The example: a re-trip at level 1 after retuning to `open_for(5s)`, backoff 2: 10 s.
#[test]
fn a_re_trip_at_level_one_uses_the_new_open_for() {
    let (registry, clock) = registry();
    let c = registry.circuit("openai", "acme");
    registry.configure("openai", consecutive(1));
    c.try_acquire().unwrap().failure(); // level 0, the default 30 s
    assert_eq!(c.retry_after(), Some(secs(30)));
    registry.configure(
        "openai",
        Config::builder()
            .consecutive_failures(1)
            .open_for(secs(5))
            .backoff_multiplier(2.0)
            .build()
            .unwrap(),
    );
    clock.advance(secs(30));
    c.try_acquire().unwrap().failure();
    assert_eq!(c.retry_after(), Some(secs(10)));
}

#[test]
fn probes_in_flight_are_kept_and_the_new_probe_count_applies() {
    let (registry, clock) = registry();
    registry.configure("openai", consecutive(1));
    let c = registry.circuit("openai", "acme");
    c.try_acquire().unwrap().failure();
    clock.advance(secs(30));
    let first = c.try_acquire().unwrap();
    assert!(c.try_acquire().is_err(), "one probe at a time");

    registry.configure(
        "openai",
        Config::builder()
            .consecutive_failures(1)
            .half_open_probes(2)
            .build()
            .unwrap(),
    );
    let second = c.try_acquire().expect("a second probe slot");
    assert!(c.try_acquire().is_err());
    first.success(); // still counts: the half-open stay it belongs to goes on
    assert_eq!(c.state(), State::HalfOpen, "two successes needed now");
    second.success();
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn a_window_of_another_size_restarts_empty_and_the_same_window_is_kept() {
    let (registry, _) = registry();
    let rate = |w: Window| {
        Config::builder()
            .failure_rate(0.5, w)
            .minimum_calls(4)
            .build()
            .unwrap()
    };
    registry.configure("openai", rate(Window::Calls(10)));
    let c = registry.circuit("openai", "acme");
    c.try_acquire().unwrap().success();
    c.try_acquire().unwrap().failure();
    assert_eq!(c.metrics().calls_in_window, 2);

    // Same window, another threshold: the outcomes are kept.
    registry.configure(
        "openai",
        Config::builder()
            .failure_rate(0.9, Window::Calls(10))
            .minimum_calls(4)
            .build()
            .unwrap(),
    );
    assert_eq!(c.metrics().calls_in_window, 2);

    registry.configure("openai", rate(Window::Calls(20)));
    assert_eq!(c.metrics().calls_in_window, 0, "restarted empty");
    for _ in 0..2 {
        c.try_acquire().unwrap().success();
        c.try_acquire().unwrap().failure();
    }
    assert_eq!(c.state(), State::Open, "2 of 4 in the new window");

    registry.configure("openai", rate(Window::Time(secs(60))));
    assert_eq!(c.metrics().calls_in_window, 0, "another kind: empty");
}

#[test]
fn a_plain_circuit_retuned_to_a_rate_records_its_successes() {
    let (registry, _) = registry();
    let c = registry.circuit("openai", "acme");
    c.try_acquire().unwrap().success();
    registry.configure(
        "openai",
        Config::builder()
            .failure_rate(0.5, Window::Calls(4))
            .build()
            .unwrap(),
    );
    for _ in 0..3 {
        c.try_acquire().unwrap().success();
    }
    c.try_acquire().unwrap().failure();
    let m = c.metrics();
    assert_eq!((m.calls_in_window, m.failures_in_window), (4, 1));
    assert_eq!(m.state, State::Closed, "1 of 4 is below 0.5");

    // And back: no window, five failures in a row.
    registry.configure("openai", consecutive(5));
    assert_eq!(c.metrics().calls_in_window, 0);
    for _ in 0..4 {
        c.try_acquire().unwrap().failure();
    }
    assert_eq!(c.state(), State::Closed);
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Open);
}

#[test]
fn a_slow_call_policy_applies_to_calls_admitted_after_it() {
    let (registry, clock) = registry();
    let c = registry.circuit("openai", "acme");
    clock.advance(secs(100));
    let before = c.try_acquire().unwrap(); // admitted untimed
    registry.configure(
        "openai",
        Config::builder()
            .slow_calls(secs(2), 1.0)
            .minimum_calls(1)
            .window(Window::Calls(1))
            .build()
            .unwrap(),
    );
    before.success();
    assert_eq!(c.metrics().slow_in_window, 0, "never timed, so never slow");
    let after = c.try_acquire().unwrap();
    clock.advance(secs(3));
    after.success();
    assert_eq!(c.state(), State::Open, "slow under the new policy");
}

#[test]
fn configure_from_retunes_existing_circuits() {
    let (registry, _) = registry();
    let c = registry.circuit("anthropic", "acme");
    registry.configure_from([("anthropic", consecutive(1))]);
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Open);
}

#[derive(Debug)]
struct Down;

impl From<CircuitOpen> for Down {
    fn from(_: CircuitOpen) -> Self {
        Down
    }
}

#[circuit_breaker(provider = "tuned", tenant = tenant, registry = registry, consecutive_failures = 5)]
fn call(registry: &Registry, tenant: &str) -> Result<(), Down> {
    Err(Down)
}

#[test]
fn circuits_made_with_site_arguments_switch_to_the_registrys_config() {
    let (registry, _) = registry();
    let _ = call(&registry, "acme");
    let c = registry.get("tuned", "acme").unwrap();
    assert_eq!(c.config().consecutive_failures(), Some(5));
    registry.configure("tuned", consecutive(2));
    assert_eq!(c.config().consecutive_failures(), Some(2));
    let _ = call(&registry, "acme");
    assert_eq!(c.state(), State::Open, "1 kept + 1 reaches the new 2");
}

#[test]
fn many_retunings_keep_the_latest() {
    let (registry, _) = registry();
    let c = registry.circuit("openai", "acme");
    for n in 1..=1000 {
        registry.configure("openai", consecutive(1001 - n));
    }
    assert_eq!(c.config().consecutive_failures(), Some(1));
    assert_eq!(
        registry
            .circuit("openai", "later")
            .config()
            .consecutive_failures(),
        Some(1)
    );
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Open);
}

/// Regression: with the consecutive policy retuned away, successes no longer reset the streak
/// (the record path skips it), so the streak froze: reported by `consecutive_failures` (documented
/// 0 without the policy) and brought back by a later retuning, where one failure after 1000
/// successes tripped a streak of 5.
#[test]
fn a_streak_is_not_kept_across_a_retuning_without_the_consecutive_policy() {
    let (registry, _) = registry();
    registry.configure("p", consecutive(5));
    let c = registry.circuit("p", "t");
    for _ in 0..4 {
        c.try_acquire().unwrap().failure();
    }
    registry.configure(
        "p",
        Config::builder()
            .failure_rate(0.5, Window::Calls(10))
            .minimum_calls(4)
            .build()
            .unwrap(),
    );
    assert_eq!(c.metrics().consecutive_failures, 0);
    for _ in 0..1000 {
        c.try_acquire().unwrap().success();
    }
    registry.configure("p", consecutive(5));
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Closed, "1 failure after 1000 successes");
    assert_eq!(c.metrics().consecutive_failures, 1);
}

fn half_of_ten() -> Config {
    Config::builder()
        .failure_rate(0.5, Window::Calls(10))
        .minimum_calls(4)
        .build()
        .unwrap()
}

/// Regression: a circuit made detached at the cap (the registry does not store it, so
/// `configure` never visits it) took a retuning's thresholds through its policy chain but kept
/// its old window (none): 10 failures of 10 at `failure_rate(0.5)` left it closed.
#[test]
fn a_detached_circuit_takes_a_retunings_window() {
    let clock = ManualClock::new();
    let registry = Registry::builder()
        .clock(clock.clone())
        .max_circuits(1)
        .build();
    let _a = registry.circuit("p", "a");
    let b = registry.circuit("p", "b");
    assert_eq!(registry.len(), 1, "b is detached");
    registry.configure("p", half_of_ten());
    assert_eq!(b.config().failure_rate(), Some(0.5));
    for _ in 0..10 {
        if let Ok(p) = b.try_acquire() {
            p.failure();
        }
    }
    assert_eq!(
        b.state(),
        State::Open,
        "10 failures of 10 at failure_rate 0.5"
    );
}

/// Regression: the same for a circuit removed from the registry while a caller holds it.
#[test]
fn a_removed_circuit_takes_a_retunings_window() {
    let (registry, _) = registry();
    let b = registry.circuit("p", "b");
    assert!(registry.remove("p", "b"));
    registry.configure("p", half_of_ten());
    assert_eq!(b.config().failure_rate(), Some(0.5));
    for _ in 0..10 {
        if let Ok(p) = b.try_acquire() {
            p.failure();
        }
    }
    assert_eq!(
        b.state(),
        State::Open,
        "10 failures of 10 at failure_rate 0.5"
    );
}
