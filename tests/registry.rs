//! The registry: one circuit per (provider, tenant), isolated from each other.

use std::time::Duration;

use breaker::{Circuit, Config, ManualClock, Registry, State, DEFAULT_TENANT};

fn registry(clock: &ManualClock) -> Registry {
    Registry::builder()
        .default_config(Config::builder().consecutive_failures(2).build().unwrap())
        .clock(clock.clone())
        .build()
}

#[test]
fn same_key_same_circuit() {
    let r = registry(&ManualClock::new());
    let a = r.circuit("openai", "acme");
    let b = r.circuit("openai", "acme");
    assert!(Circuit::ptr_eq(&a, &b));
    assert!(Circuit::ptr_eq(&a, &r.get("openai", "acme").unwrap()));
    assert_eq!(r.len(), 1);
}

#[test]
fn tenants_are_isolated() {
    let r = registry(&ManualClock::new());
    for _ in 0..2 {
        r.circuit("openai", "acme").try_acquire().unwrap().failure();
    }
    assert_eq!(r.circuit("openai", "acme").state(), State::Open);
    assert_eq!(r.circuit("openai", "globex").state(), State::Closed);
    assert_eq!(
        r.circuit("openai", "globex").metrics().consecutive_failures,
        0
    );
}

#[test]
fn providers_are_isolated() {
    let r = registry(&ManualClock::new());
    for _ in 0..2 {
        r.circuit("openai", "acme").try_acquire().unwrap().failure();
    }
    assert_eq!(r.circuit("anthropic", "acme").state(), State::Closed);
    assert_eq!(r.len(), 2);
}

#[test]
fn get_does_not_create() {
    let r = registry(&ManualClock::new());
    assert!(r.get("openai", "acme").is_none());
    assert!(r.is_empty());
}

#[test]
fn configure_applies_to_circuits_created_before_and_after() {
    let clock = ManualClock::new();
    let r = registry(&clock);
    let before = r.circuit("openai", "acme");
    r.configure(
        "openai",
        Config::builder()
            .consecutive_failures(1)
            .open_for(Duration::from_secs(5))
            .build()
            .unwrap(),
    );
    assert_eq!(
        r.configured("openai").unwrap().consecutive_failures(),
        Some(1)
    );
    let after = r.circuit("openai", "globex");
    after.try_acquire().unwrap().failure();
    assert_eq!(after.state(), State::Open);
    assert_eq!(after.retry_after(), Some(Duration::from_secs(5)));
    before.try_acquire().unwrap().failure();
    assert_eq!(
        before.state(),
        State::Open,
        "the existing circuit is retuned too (tests/retune.rs)"
    );
    assert_eq!(
        r.circuit("anthropic", "acme")
            .config()
            .consecutive_failures(),
        Some(2)
    );
}

#[test]
fn registry_clock_drives_every_circuit() {
    let clock = ManualClock::new();
    let r = registry(&clock);
    for _ in 0..2 {
        r.circuit("openai", DEFAULT_TENANT)
            .try_acquire()
            .unwrap()
            .failure();
    }
    clock.advance(Duration::from_secs(30));
    r.circuit("openai", DEFAULT_TENANT)
        .try_acquire()
        .unwrap()
        .success();
    assert_eq!(r.circuit("openai", DEFAULT_TENANT).state(), State::Closed);
}

#[test]
fn odd_tenant_names_are_just_keys() {
    let r = registry(&ManualClock::new());
    let long = "t".repeat(1 << 20);
    for tenant in ["", "テナント", "a\0b", long.as_str()] {
        let c = r.circuit("openai", tenant);
        assert_eq!(c.tenant(), tenant);
        assert!(Circuit::ptr_eq(&c, &r.circuit("openai", tenant)));
    }
    assert_eq!(r.len(), 4);
}

#[test]
fn snapshot_lists_every_circuit() {
    let r = registry(&ManualClock::new());
    for _ in 0..2 {
        r.circuit("openai", "acme").try_acquire().unwrap().failure();
    }
    r.circuit("openai", "globex");
    r.circuit("anthropic", "acme");
    let mut snap: Vec<_> = r
        .snapshot()
        .into_iter()
        .map(|s| (s.provider, s.tenant, s.state))
        .collect();
    snap.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(
        snap,
        [
            ("anthropic".into(), "acme".into(), State::Closed),
            ("openai".into(), "acme".into(), State::Open),
            ("openai".into(), "globex".into(), State::Closed),
        ]
    );
}

#[test]
fn remove_forgets_the_circuit() {
    let r = registry(&ManualClock::new());
    let old = r.circuit("openai", "acme");
    assert!(r.remove("openai", "acme"));
    assert!(!r.remove("openai", "acme"));
    assert!(!Circuit::ptr_eq(&old, &r.circuit("openai", "acme")));
}

#[test]
fn global_registry_is_one_instance() {
    assert!(std::ptr::eq(Registry::global(), Registry::global()));
}

/// Regression: papaya's `HashSet::insert` replaced an equal key, so two racing first calls could
/// each keep their own circuit (seen once in CI). Many rounds with all threads released at once
/// make the race likely enough to catch.
#[test]
fn concurrent_first_use_creates_one_circuit() {
    let r = registry(&ManualClock::new());
    let threads = 4;
    for round in 0..300 {
        let tenant = format!("tenant-{round}");
        let barrier = std::sync::Barrier::new(threads);
        let circuits: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        r.circuit("openai", &tenant)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(
            circuits.iter().all(|c| Circuit::ptr_eq(c, &circuits[0])),
            "round {round}: racing first calls got different circuits"
        );
        assert!(Circuit::ptr_eq(
            &circuits[0],
            &r.get("openai", &tenant).unwrap()
        ));
    }
    assert_eq!(r.len(), 300);
}
