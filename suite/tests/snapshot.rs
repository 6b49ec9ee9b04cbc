//! The admin snapshot: every circuit with its state and metrics, filtered by provider and state,
//! and (feature `serde`) serialized for an endpoint.

use std::time::Duration;

use breaker::{Config, ManualClock, Registry, State};

/// openai/acme open, openai/globex closed, anthropic/acme open, anthropic/initech forced open.
fn registry(clock: &ManualClock) -> Registry {
    let r = Registry::builder()
        .default_config(
            Config::builder()
                .consecutive_failures(1)
                .open_for(Duration::from_secs(10))
                .build()
                .unwrap(),
        )
        .clock(clock.clone())
        .build();
    r.circuit("openai", "acme").try_acquire().unwrap().failure();
    r.circuit("openai", "globex")
        .try_acquire()
        .unwrap()
        .success();
    r.circuit("anthropic", "acme")
        .try_acquire()
        .unwrap()
        .failure();
    r.circuit("anthropic", "initech").force_open();
    r
}

fn keys(snapshot: Vec<breaker::CircuitSnapshot>) -> Vec<(String, String, State)> {
    let mut keys: Vec<_> = snapshot
        .into_iter()
        .map(|c| (c.provider, c.tenant, c.state))
        .collect();
    keys.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    keys
}

fn key(p: &str, t: &str, s: State) -> (String, String, State) {
    (p.to_owned(), t.to_owned(), s)
}

#[test]
fn filters_by_provider_state_both_or_neither() {
    let r = registry(&ManualClock::new());
    assert_eq!(keys(r.snapshot()).len(), 4);
    assert_eq!(keys(r.snapshot_filtered(None, None)).len(), 4);
    assert_eq!(
        keys(r.snapshot_filtered(Some("openai"), None)),
        [
            key("openai", "acme", State::Open),
            key("openai", "globex", State::Closed)
        ]
    );
    assert_eq!(
        keys(r.snapshot_filtered(None, Some(State::Open))),
        [
            key("anthropic", "acme", State::Open),
            key("openai", "acme", State::Open)
        ]
    );
    assert_eq!(
        keys(r.snapshot_filtered(Some("anthropic"), Some(State::ForcedOpen))),
        [key("anthropic", "initech", State::ForcedOpen)]
    );
    assert!(r.snapshot_filtered(Some("nobody"), None).is_empty());
}

#[test]
fn the_state_filter_sees_an_elapsed_open_period_as_half_open() {
    let clock = ManualClock::new();
    let r = registry(&clock);
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        keys(r.snapshot_filtered(Some("openai"), Some(State::HalfOpen))),
        [key("openai", "acme", State::HalfOpen)]
    );
}

#[cfg(feature = "serde")]
#[test]
fn snapshots_serialize_for_an_admin_endpoint() {
    let clock = ManualClock::new();
    let r = registry(&clock);
    clock.advance(Duration::from_millis(2_500));
    let open = r.snapshot_filtered(Some("openai"), Some(State::Open));
    assert_eq!(
        serde_json::to_value(&open).unwrap(),
        serde_json::json!([{
            "provider": "openai",
            "tenant": "acme",
            "state": "open",
            "metrics": {
                "state": "open",
                "failure_rate": 0.0,
                "slow_rate": 0.0,
                "calls_in_window": 0,
                "failures_in_window": 0,
                "slow_in_window": 0,
                "consecutive_failures": 0,
                "rejected": 0,
                "times_opened": 1,
                "retry_after_ms": 7500,
            }
        }])
    );
    let closed = r.snapshot_filtered(Some("openai"), Some(State::Closed));
    let json = serde_json::to_value(&closed).unwrap();
    assert_eq!(
        json[0]["metrics"]["retry_after_ms"],
        serde_json::Value::Null
    );
    assert_eq!(
        serde_json::to_string(&State::HalfOpen).unwrap(),
        "\"half_open\""
    );
}
