//! Idle circuits are evicted, informative ones never are, and a cap bounds the registry.

use std::time::Duration;

use breaker::{Circuit, Config, ManualClock, Registry, State};

const TTL: Duration = Duration::from_secs(60);

fn registry(clock: &ManualClock) -> Registry {
    Registry::builder()
        .default_config(Config::builder().consecutive_failures(1).build().unwrap())
        .clock(clock.clone())
        .idle_ttl(TTL)
        .build()
}

#[test]
fn idle_closed_circuits_are_evicted_after_the_ttl() {
    let clock = ManualClock::new();
    let r = registry(&clock);
    r.circuit("p", "idle").try_acquire().unwrap().success();
    r.evict_idle(); // first sweep: "idle" was used since creation, so it survives
    assert!(r.get("p", "idle").is_some());
    clock.advance(TTL);
    // Creating a circuit is what triggers a due sweep.
    r.circuit("p", "newcomer");
    assert!(r.get("p", "idle").is_none(), "unused for a whole TTL");
    assert!(r.get("p", "newcomer").is_some());
}

#[test]
fn a_used_circuit_survives_sweeps() {
    let clock = ManualClock::new();
    let r = registry(&clock);
    for i in 0..5 {
        r.circuit("p", "busy").try_acquire().unwrap().success();
        clock.advance(TTL);
        r.circuit("p", &format!("other-{i}"));
    }
    assert!(r.get("p", "busy").is_some());
}

#[test]
fn open_forced_and_disabled_circuits_are_never_evicted() {
    let clock = ManualClock::new();
    let r = registry(&clock);
    r.circuit("p", "open").try_acquire().unwrap().failure();
    r.circuit("p", "forced").force_open();
    r.circuit("p", "disabled").disable();
    for i in 0..4 {
        clock.advance(TTL);
        r.circuit("p", &format!("churn-{i}"));
    }
    // Its open period is long over (it reports half-open), but it has not probed yet.
    assert_eq!(r.get("p", "open").unwrap().state(), State::HalfOpen);
    assert_eq!(r.get("p", "forced").unwrap().state(), State::ForcedOpen);
    assert_eq!(r.get("p", "disabled").unwrap().state(), State::Disabled);
}

#[test]
fn circuits_held_by_a_caller_are_not_evicted() {
    let clock = ManualClock::new();
    let r = registry(&clock);
    let held = r.circuit("p", "held");
    // A permit alone does not hold its circuit (a handle's permit, like a registry permit,
    // keeps its memory, not its place): a call running across two sweeps reports to the
    // circuit it started on, which stays valid until the permit is gone.
    let permit = r.circuit("p", "in-flight").try_acquire().unwrap();
    for _ in 0..3 {
        r.evict_idle();
    }
    assert!(Circuit::ptr_eq(&held, &r.get("p", "held").unwrap()));
    assert!(r.get("p", "in-flight").is_none());
    permit.success();
}

#[test]
fn churn_of_a_million_tenants_stays_bounded() {
    let clock = ManualClock::new();
    let r = registry(&clock);
    let mut peak = 0;
    let mut name = String::new();
    for i in 0..1_000_000u32 {
        use std::fmt::Write;
        name.clear();
        write!(name, "tenant-{i}").unwrap();
        r.circuit("p", &name).try_acquire().unwrap().success();
        // 10,000 new tenants per minute of TTL.
        if i % 1000 == 999 {
            clock.advance(TTL / 10);
            peak = peak.max(r.len());
        }
    }
    // A circuit lives between one and two TTLs after its last use: at most 20,000 here.
    assert!(peak <= 21_000, "registry grew to {peak}");
    assert!(r.len() <= 21_000);
}

#[test]
fn cap_bounds_the_registry_and_never_displaces_open_circuits() {
    let clock = ManualClock::new();
    let r = Registry::builder()
        .default_config(Config::builder().consecutive_failures(1).build().unwrap())
        .clock(clock.clone())
        .max_circuits(100)
        .build();
    for i in 0..50 {
        r.circuit("p", &format!("open-{i}"))
            .try_acquire()
            .unwrap()
            .failure();
    }
    for i in 0..10_000 {
        let c = r.circuit("p", &format!("t-{i}"));
        // Detached or stored, a circuit over the cap still works.
        c.try_acquire().unwrap().success();
        assert!(r.len() <= 100);
    }
    for i in 0..50 {
        assert_eq!(
            r.get("p", &format!("open-{i}")).unwrap().state(),
            State::Open
        );
    }
}

#[test]
fn with_idle_ttl_none_nothing_is_evicted() {
    let clock = ManualClock::new();
    let r = Registry::builder()
        .clock(clock.clone())
        .idle_ttl(None)
        .build();
    r.circuit("p", "a");
    for day in 0..3 {
        clock.advance(Duration::from_secs(86_400));
        r.circuit("p", &format!("b{day}"));
    }
    assert_eq!(r.len(), 4);
}

#[test]
fn a_registry_with_defaults_kept_every_idle_circuit_forever() {
    let clock = ManualClock::new();
    let r = Registry::builder().clock(clock.clone()).build();
    assert_eq!(Registry::DEFAULT_IDLE_TTL, Duration::from_secs(3600));
    for i in 0..1_000 {
        r.circuit("p", &format!("seen-once-{i}"))
            .try_acquire()
            .unwrap()
            .success();
    }
    r.circuit("p", "steady");
    // Within the hour nothing goes.
    clock.advance(Registry::DEFAULT_IDLE_TTL - Duration::from_secs(1));
    r.circuit("p", "newcomer-0");
    assert_eq!(r.len(), 1_002);
    // Each new tenant's call runs the sweep once it is due, at most once an hour: the first
    // sweep marks, the next drops what stayed unused through a whole TTL.
    for hour in 1..=2 {
        clock.advance(Registry::DEFAULT_IDLE_TTL);
        r.circuit("p", "steady").try_acquire().unwrap().success();
        r.circuit("p", &format!("newcomer-{hour}"));
    }
    assert!(r.get("p", "seen-once-7").is_none(), "idle for two hours");
    assert!(r.get("p", "steady").is_some(), "used every hour");
    assert!(r.len() <= 4, "{} circuits kept", r.len());
}

#[test]
fn a_registry_permit_outliving_its_evicted_circuit_stays_valid() {
    let clock = ManualClock::new();
    let r = registry(&clock);
    // A call still running after two sweeps: its permit pins the circuit's memory, not its
    // place in the registry.
    r.acquire("p", "slow", None).unwrap().success();
    let permit = r.acquire("p", "slow", None).unwrap();
    r.evict_idle(); // used since the previous sweep: survives
    assert_eq!(r.evict_idle(), 1);
    assert!(r.get("p", "slow").is_none());
    // Other tenants come and go meanwhile, so the registry frees what it can.
    for round in 0..3 {
        for i in 0..1_000 {
            r.acquire("p", &format!("t{round}-{i}"), None)
                .unwrap()
                .success();
        }
        r.evict_idle();
        r.evict_idle();
    }
    permit.failure(); // recorded into the dropped circuit
    let fresh = r.circuit("p", "slow");
    assert_eq!(fresh.state(), State::Closed);
    assert_eq!(fresh.metrics().consecutive_failures, 0);
}
