//! Provider-wide circuits (issue 19): a provider that fails for every tenant is learned once from
//! the pooled outcomes of all its tenants, while one tenant's own trouble stays that tenant's.
//! Time is a `ManualClock`; the pool's buckets follow it exactly.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use breaker_core::{
    Config, Event, ManualClock, Outcome, ProviderWide, Reason, Registry, State, Window,
    PROVIDER_WIDE_TENANT,
};

const P: &str = "llm";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// 0.5 over 10 s, 20 calls, 3 tenants, open 30 s.
fn wide() -> ProviderWide {
    ProviderWide::builder()
        .failure_rate(0.5)
        .window(Window::Time(secs(10)))
        .minimum_calls(20)
        .distinct_tenants(3)
        .open_for(secs(30))
        .build()
        .unwrap()
}

fn registry(clock: &ManualClock, wide: Option<ProviderWide>) -> Registry {
    let mut b = Registry::builder()
        .clock(clock.clone())
        .default_config(Config::builder().consecutive_failures(5).build().unwrap());
    if let Some(w) = wide {
        b = b.provider_wide(P, w);
    }
    b.build()
}

/// Calls of `tenants` round robin that fail, until every call is rejected or `limit` calls
/// were made; returns how many reached the provider.
fn outage(r: &Registry, tenants: usize, limit: usize) -> usize {
    let mut reached = 0;
    let mut rejected_in_a_row = 0;
    for i in 0..limit {
        match r.acquire(P, &format!("t{}", i % tenants), None) {
            Ok(permit) => {
                reached += 1;
                rejected_in_a_row = 0;
                permit.failure();
            }
            Err(_) => {
                rejected_in_a_row += 1;
                if rejected_in_a_row == tenants {
                    break;
                }
            }
        }
    }
    reached
}

#[test]
fn a_provider_down_for_everyone_is_learned_once() {
    let clock = ManualClock::new();
    let without = registry(&clock, None);
    assert_eq!(
        outage(&without, 1000, 100_000),
        5000,
        "each tenant learns alone"
    );

    let r = registry(&clock, Some(wide()));
    assert_eq!(
        outage(&r, 1000, 100_000),
        20,
        "minimum_calls failures, then everyone stops"
    );
    let err = r.acquire(P, "t999", None).unwrap_err();
    assert!(err.is_provider_wide());
    assert_eq!(err.tenant(), "t999");
    assert_eq!(err.state(), State::Open);
    assert_eq!(err.retry_after(), Some(secs(30)));
    // A tenant that never called is stopped too.
    assert!(r
        .acquire(P, "newcomer", None)
        .unwrap_err()
        .is_provider_wide());
    // Other providers are not concerned.
    r.acquire("other", "t1", None).unwrap().success();
    // The tenant circuits did not trip.
    assert_eq!(r.circuit(P, "t0").state(), State::Closed);
    let wide = r.provider_circuit(P).unwrap();
    assert_eq!(wide.state(), State::Open);
    assert_eq!(wide.tenant(), PROVIDER_WIDE_TENANT);
    assert_eq!(wide.metrics().times_opened, 1);
    assert!(wide.metrics().rejected >= 3);
}

#[test]
fn one_tenant_failing_alone_never_opens_the_provider() {
    let clock = ManualClock::new();
    let r = registry(&clock, Some(wide()));
    for round in 0..200 {
        for t in 0..10 {
            if let Ok(p) = r.acquire(P, &format!("healthy{t}"), None) {
                p.success();
            }
        }
        // The revoked key: every call of it fails, until its own circuit stops it.
        if let Ok(p) = r.acquire(P, "revoked", None) {
            p.failure();
        }
        if round % 50 == 49 {
            clock.advance(secs(300)); // its circuit probes again, and fails again
        }
    }
    assert_eq!(r.provider_circuit(P).unwrap().state(), State::Closed);
    assert!(r.circuit(P, "revoked").metrics().times_opened >= 4);
    assert!(r.acquire(P, "healthy0", None).is_ok());
}

#[test]
fn fewer_failing_tenants_than_distinct_tenants_never_open_it() {
    let clock = ManualClock::new();
    let r = registry(
        &clock,
        Some(
            ProviderWide::builder()
                .window(Window::Time(secs(10)))
                .minimum_calls(10)
                .distinct_tenants(3)
                .build()
                .unwrap(),
        ),
    );
    // Two tenants failing 100% (each stopped by its circuit after 5): 10 failures, rate 1.0.
    for _ in 0..20 {
        for t in ["a", "b"] {
            if let Ok(p) = r.acquire(P, t, None) {
                p.failure();
            }
        }
    }
    assert_eq!(r.provider_wide_totals(P), Some((10, 10, 2)));
    assert_eq!(r.provider_circuit(P).unwrap().state(), State::Closed);
    // A third one makes it the provider's trouble.
    r.acquire(P, "c", None).unwrap().failure();
    assert_eq!(r.provider_circuit(P).unwrap().state(), State::Open);
}

#[test]
fn one_probe_for_the_whole_provider_decides_with_backoff() {
    let clock = ManualClock::new();
    let r = registry(&clock, Some(wide()));
    outage(&r, 100, 10_000);
    let wide = r.provider_circuit(P).unwrap();
    clock.advance(secs(30));
    assert_eq!(wide.state(), State::HalfOpen);

    // The first caller, of any tenant, probes; everyone else waits for it.
    assert_eq!(r.circuit(P, "t1").metrics().consecutive_failures, 1);
    let probe = r.acquire(P, "t1", None).unwrap();
    assert!(probe.is_probe());
    let busy = r.acquire(P, "t7", None).unwrap_err();
    assert!(busy.is_provider_wide());
    assert_eq!(busy.state(), State::HalfOpen);
    // It fails: open again, for twice as long.
    probe.failure();
    assert_eq!(wide.state(), State::Open);
    assert_eq!(wide.retry_after(), Some(secs(60)));
    assert_eq!(
        r.circuit(P, "t1").metrics().consecutive_failures,
        1,
        "the tenant circuit records nothing of the provider's probe"
    );

    clock.advance(secs(60));
    let probe = r.acquire(P, "t3", None).unwrap();
    assert!(probe.is_probe());
    probe.success();
    assert_eq!(wide.state(), State::Closed);
    // Closed with an empty pool: the old failures do not trip it again.
    r.acquire(P, "t1", None).unwrap().failure();
    assert_eq!(r.provider_wide_totals(P), Some((1, 1, 1)));
    assert_eq!(wide.state(), State::Closed);
    assert_eq!(wide.metrics().times_opened, 2);
}

#[test]
fn a_tenant_with_its_own_trouble_never_probes_for_the_provider() {
    let clock = ManualClock::new();
    let r = registry(&clock, Some(wide()));
    for _ in 0..5 {
        r.acquire(P, "revoked", None).unwrap().failure();
    }
    assert_eq!(r.circuit(P, "revoked").state(), State::Open);
    outage(&r, 100, 10_000);
    clock.advance(secs(30)); // both open periods are over
    let err = r.acquire(P, "revoked", None).unwrap_err();
    assert!(err.is_provider_wide());
    assert_eq!(r.provider_circuit(P).unwrap().state(), State::HalfOpen);
    // The slot is still free for a healthy tenant.
    assert!(r.acquire(P, "t1", None).unwrap().is_probe());
}

#[test]
fn tenant_windows_are_not_poisoned_by_the_outage() {
    let clock = ManualClock::new();
    let r = Registry::builder()
        .clock(clock.clone())
        .default_config(
            Config::builder()
                .failure_rate(0.5, Window::Calls(10))
                .minimum_calls(4)
                .build()
                .unwrap(),
        )
        .provider_wide(P, wide())
        .build();
    // Calls in flight when the provider dies.
    let in_flight: Vec<_> = (0..50)
        .map(|i| r.acquire(P, &format!("t{i}"), None).unwrap())
        .collect();
    for (i, p) in in_flight.into_iter().enumerate() {
        p.failure();
        if i == 30 {
            assert_eq!(r.provider_circuit(P).unwrap().state(), State::Open);
        }
    }
    // 20 failures were recorded before the trip, one per tenant; the 30 after it were not.
    let recorded: u32 = (0..50)
        .map(|i| r.circuit(P, &format!("t{i}")).metrics().failures_in_window)
        .sum();
    assert_eq!(recorded, 20);
    assert!((0..50).all(|i| r.circuit(P, &format!("t{i}")).state() == State::Closed));
}

#[test]
fn a_retry_after_wave_from_distinct_tenants_opens_it_for_that_time() {
    let clock = ManualClock::new();
    let r = registry(&clock, Some(wide()));
    // One tenant's 429s stay its own.
    for _ in 0..3 {
        if let Ok(p) = r.acquire(P, "greedy", None) {
            p.record(Outcome::RetryAfter(secs(20)));
        }
        clock.advance(secs(21));
    }
    assert_eq!(r.provider_circuit(P).unwrap().state(), State::Closed);
    assert_eq!(r.circuit(P, "greedy").metrics().times_opened, 3);
    // The provider's: three tenants within the window.
    for t in ["a", "b", "c"] {
        r.acquire(P, t, None)
            .unwrap()
            .record(Outcome::RetryAfter(secs(20)));
    }
    let wide = r.provider_circuit(P).unwrap();
    assert_eq!(wide.state(), State::Open);
    assert_eq!(wide.retry_after(), Some(secs(20)));
    let err = r.acquire(P, "d", None).unwrap_err();
    assert!(err.is_provider_wide());
    assert_eq!(err.retry_after(), Some(secs(20)));
}

#[test]
fn configured_and_turned_off_live() {
    let clock = ManualClock::new();
    let r = registry(&clock, None);
    assert!(r.provider_circuit(P).is_none());
    // Tenants exist before it is configured: their outcomes are pooled from then on.
    for i in 0..30 {
        r.acquire(P, &format!("t{i}"), None).unwrap().success();
    }
    r.configure_provider_wide(P, wide());
    assert_eq!(outage(&r, 30, 10_000), 20);
    let wide_circuit = r.provider_circuit(P).unwrap();
    assert_eq!(wide_circuit.state(), State::Open);

    // Retuned: state kept (the running period keeps its deadline); equal settings do nothing.
    clock.advance(secs(10));
    r.configure_provider_wide(
        P,
        ProviderWide::builder()
            .open_for(secs(5))
            .distinct_tenants(4)
            .build()
            .unwrap(),
    );
    r.configure_provider_wide(P, r.provider_wide(P).unwrap());
    assert_eq!(wide_circuit.state(), State::Open);
    assert_eq!(wide_circuit.retry_after(), Some(secs(20)));
    assert_eq!(wide_circuit.config().open_for(), secs(5));
    assert_eq!(r.provider_wide(P).unwrap().distinct_tenants(), 4);

    // Off: admitted by the tenant circuits alone, nothing pooled.
    assert!(r.remove_provider_wide(P));
    assert!(!r.remove_provider_wide(P));
    assert!(r.provider_circuit(P).is_none());
    assert_eq!(
        wide_circuit.state(),
        State::Open,
        "kept, but no longer consulted"
    );
    // Each tenant learns alone again (the 20 that failed once before need 4 more).
    assert_eq!(outage(&r, 30, 10_000), 20 * 4 + 10 * 5);
    assert_eq!(r.provider_wide_totals(P), None);

    // On again: its open period still runs; once over, tenants made while it was off pool too.
    r.configure_provider_wide(P, wide());
    assert!(r.acquire(P, "n0", None).unwrap_err().is_provider_wide());
    clock.advance(secs(300));
    r.acquire(P, "n0", None).unwrap().success(); // the probe
    assert_eq!(wide_circuit.state(), State::Closed);
    for i in 0..25 {
        if let Ok(p) = r.acquire(P, &format!("n{i}"), None) {
            p.failure();
        }
    }
    assert_eq!(r.provider_circuit(P).unwrap().state(), State::Open);
}

#[test]
fn successes_count_again_in_every_new_closed_stay() {
    // The call path counts a success in the pool itself only while the provider circuit is
    // closed in the stay the pool counts for; out of it, successes go to the slow path, which
    // starts the next stay with an empty pool.
    let clock = ManualClock::new();
    let r = registry(&clock, Some(wide()));
    for i in 0..10 {
        r.acquire(P, &format!("t{i}"), None).unwrap().success();
    }
    assert_eq!(r.provider_wide_totals(P), Some((10, 0, 0)));
    outage(&r, 100, 10_000);
    let wide = r.provider_circuit(P).unwrap();
    assert_eq!(wide.state(), State::Open);
    clock.advance(secs(30));
    r.acquire(P, "t1", None).unwrap().success();
    assert_eq!(wide.state(), State::Closed);
    // The probe was the provider circuit's own call: the new stay's pool starts empty.
    assert_eq!(r.provider_wide_totals(P), Some((0, 0, 0)));
    for i in 0..7 {
        r.acquire(P, &format!("t{i}"), None).unwrap().success();
    }
    assert_eq!(r.provider_wide_totals(P), Some((7, 0, 0)));

    // An operator's opening: calls in flight that succeed meanwhile are not this stay's.
    let in_flight = r.acquire(P, "t2", None).unwrap();
    wide.force_open();
    assert!(r.acquire(P, "t3", None).unwrap_err().is_provider_wide());
    assert_eq!(
        r.provider_wide_totals(P),
        Some((7, 0, 0)),
        "the evidence so far"
    );
    in_flight.success();
    wide.reset();
    assert_eq!(
        r.provider_wide_totals(P),
        Some((0, 0, 0)),
        "a reset starts afresh"
    );
    for i in 0..5 {
        r.acquire(P, &format!("t{i}"), None).unwrap().success();
    }
    assert_eq!(r.provider_wide_totals(P), Some((5, 0, 0)));
    for i in 0..3 {
        r.acquire(P, &format!("t{i}"), None).unwrap().failure();
    }
    assert_eq!(r.provider_wide_totals(P), Some((8, 3, 3)));
}

#[test]
fn operators_drive_it_like_any_circuit() {
    let clock = ManualClock::new();
    let r = registry(&clock, Some(wide()));
    let wide = r.provider_circuit(P).unwrap();
    wide.force_open();
    let err = r.acquire(P, "a", None).unwrap_err();
    assert!(err.is_provider_wide());
    assert_eq!(err.state(), State::ForcedOpen);
    assert!(err.to_string().contains("provider-wide"), "{err}");
    wide.reset();
    r.acquire(P, "a", None).unwrap().success();
    // Disabled: pooling stops, the tenants' own circuits still work.
    wide.disable();
    outage(&r, 100, 1_000);
    assert_eq!(wide.state(), State::Disabled);
    assert_eq!(r.circuit(P, "t1").state(), State::Open);
}

#[test]
fn a_count_window_trips_too() {
    let clock = ManualClock::new();
    let r = registry(
        &clock,
        Some(
            ProviderWide::builder()
                .window(Window::Calls(40))
                .minimum_calls(20)
                .build()
                .unwrap(),
        ),
    );
    for i in 0..1000 {
        r.acquire(P, &format!("h{}", i % 10), None)
            .unwrap()
            .success();
    }
    let reached = outage(&r, 1000, 100_000);
    assert!((20..=40).contains(&reached), "{reached}");
    assert_eq!(r.provider_circuit(P).unwrap().state(), State::Open);
}

#[test]
fn its_transitions_say_why() {
    let clock = ManualClock::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let r = Registry::builder()
        .clock(clock.clone())
        .provider_wide(P, wide())
        .listener(move |e: &Event<'_>| {
            if let Event::Transition {
                tenant, to, reason, ..
            } = e
            {
                log.lock().unwrap().push((tenant.to_string(), *to, *reason));
            }
        })
        .build();
    outage(&r, 1000, 100_000);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (tenant, to, reason) = &seen[0];
    assert_eq!((tenant.as_str(), *to), (PROVIDER_WIDE_TENANT, State::Open));
    let Reason::ProviderWide(evidence) = reason else {
        panic!("{reason:?}")
    };
    assert_eq!(reason.as_str(), "provider_wide");
    assert_eq!((evidence.calls, evidence.failures), (20, 20));
    assert_eq!(evidence.failing_tenants, 20);
    assert_eq!(evidence.failure_rate(), 1.0);
    assert_eq!(evidence.retry_after, None);
}

#[test]
fn its_rejections_say_they_are_the_providers() {
    let clock = ManualClock::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let r = Registry::builder()
        .clock(clock.clone())
        .default_config(Config::builder().consecutive_failures(1).build().unwrap())
        .provider_wide(P, wide())
        .listener(move |e: &Event<'_>| {
            if let Event::Rejected {
                tenant,
                state,
                provider_wide,
                ..
            } = e
            {
                log.lock()
                    .unwrap()
                    .push((tenant.to_string(), *state, *provider_wide));
            }
        })
        .build();
    // A tenant's own opening first: its rejection is its own.
    r.acquire(P, "own", None).unwrap().failure();
    assert!(r.acquire(P, "own", None).is_err());
    r.provider_circuit(P).unwrap().force_open();
    assert!(r.acquire(P, "other", None).unwrap_err().is_provider_wide());
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("own".to_string(), State::Open, false),
            ("other".to_string(), State::ForcedOpen, true),
        ]
    );
}

#[test]
fn bad_settings_name_their_field() {
    let err = ProviderWide::builder()
        .distinct_tenants(0)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "distinct_tenants");
    let err = ProviderWide::builder()
        .failure_rate(1.5)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "failure_rate");
    let err = ProviderWide::builder()
        .max_open_for(secs(1))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "max_open_for");
}

#[test]
fn the_snapshot_lists_provider_circuits() {
    let clock = ManualClock::new();
    let r = registry(&clock, Some(wide()));
    r.acquire(P, "a", None).unwrap().success();
    r.acquire("other", "a", None).unwrap().success();
    r.provider_circuit(P).unwrap().force_open();
    let all = r.snapshot();
    assert_eq!(all.len(), 3);
    let open = r.snapshot_filtered(Some(P), Some(State::ForcedOpen));
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].provider.as_str(), open[0].tenant.as_str()),
        (P, PROVIDER_WIDE_TENANT)
    );
    assert_eq!(r.len(), 2, "len counts tenant circuits");
}
