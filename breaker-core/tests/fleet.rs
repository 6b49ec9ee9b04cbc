//! The fleet extension point (`breaker_core::fleet`), without any store: a recording fleet sees
//! what the registry publishes, and the link applies remote facts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use breaker_core::fleet::{Change, Fleet, FleetLink};
use breaker_core::{Config, Event, ManualClock, Reason, Registry, State};

/// What a registry published, in a form tests can compare.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Opened(String, Duration, u32, Reason),
    Closed(String),
    Operator(String, State),
}

#[derive(Clone, Default)]
struct Recorder {
    link: Arc<Mutex<Option<FleetLink>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    fn link(&self) -> FleetLink {
        self.link
            .lock()
            .unwrap()
            .clone()
            .expect("attached at build")
    }
    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Fleet for Recorder {
    fn attach(&self, link: FleetLink) {
        *self.link.lock().unwrap() = Some(link);
    }
    fn publish(&self, change: &Change<'_>) {
        let seen = match *change {
            Change::Opened {
                tenant,
                open_for,
                level,
                reason,
                ..
            } => Seen::Opened(tenant.into(), open_for, level, reason),
            Change::Closed { tenant, .. } => Seen::Closed(tenant.into()),
            Change::Operator { tenant, state, .. } => Seen::Operator(tenant.into(), state),
            _ => unreachable!("no other change exists yet"),
        };
        self.seen.lock().unwrap().push(seen);
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn setup() -> (Registry, Recorder, ManualClock) {
    let clock = ManualClock::new();
    let fleet = Recorder::default();
    let registry = Registry::builder()
        .default_config(
            Config::builder()
                .consecutive_failures(1)
                .open_for(secs(10))
                .backoff_multiplier(2.0)
                .max_open_for(secs(300))
                .build()
                .unwrap(),
        )
        .clock(clock.clone())
        .fleet(fleet.clone())
        .build();
    (registry, fleet, clock)
}

#[test]
fn local_openings_closings_and_operator_switches_are_published() {
    let (registry, fleet, clock) = setup();
    let circuit = registry.circuit("openai", "acme");
    circuit.try_acquire().unwrap().failure();
    clock.advance(secs(10));
    circuit.try_acquire().unwrap().failure(); // the probe fails: level 1, 20 s
    clock.advance(secs(20));
    circuit.try_acquire().unwrap().success();
    circuit.force_open();
    circuit.reset();
    assert_eq!(
        fleet.take(),
        [
            Seen::Opened("acme".into(), secs(10), 0, Reason::ConsecutiveFailures),
            Seen::Opened("acme".into(), secs(20), 1, Reason::ProbeFailed),
            Seen::Closed("acme".into()),
            Seen::Operator("acme".into(), State::ForcedOpen),
            Seen::Operator("acme".into(), State::Closed),
        ],
        "the move to half-open is each replica's own and is not published"
    );
}

#[test]
fn a_reset_of_a_closed_circuit_still_reaches_the_fleet_but_no_listener() {
    let transitions = Arc::new(Mutex::new(0));
    let fleet = Recorder::default();
    let seen = transitions.clone();
    let registry = Registry::builder()
        .listener(move |e| {
            if matches!(e, Event::Transition { .. }) {
                *seen.lock().unwrap() += 1;
            }
        })
        .fleet(fleet.clone())
        .build();
    let circuit = registry.circuit("openai", "acme");
    // Closed here, yet perhaps open elsewhere: the operator means the whole fleet.
    circuit.reset();
    circuit.try_acquire().unwrap().success();
    assert_eq!(fleet.take(), [Seen::Operator("acme".into(), State::Closed)]);
    assert_eq!(*transitions.lock().unwrap(), 0, "nothing moved here");
}

#[test]
fn a_remote_opening_rejects_for_what_is_left_at_its_level() {
    let (registry, fleet, clock) = setup();
    assert!(
        fleet.link().config("openai", "acme").is_none(),
        "no circuit yet"
    );
    let existing = registry.circuit("openai", "acme");
    assert_eq!(
        fleet.link().config("openai", "acme").map(|c| c.open_for()),
        Some(secs(10)),
        "the circuit's config, for the fleet's settings (probe_timeout)"
    );
    assert!(fleet.link().open("openai", "acme", secs(7), 2));
    assert_eq!(existing.state(), State::Open);
    let rejected = existing.try_acquire().unwrap_err();
    assert_eq!(rejected.retry_after(), Some(secs(7)));
    assert_eq!(registry.circuit("openai", "globex").state(), State::Closed);
    assert_eq!(registry.circuit("anthropic", "acme").state(), State::Closed);

    // The shared level: the probe after the period fails onto level 3 (10 s × 2³).
    clock.advance(secs(7));
    existing.try_acquire().unwrap().failure();
    assert_eq!(existing.retry_after(), Some(secs(80)));
}

#[test]
fn a_remote_opening_reaches_a_tenant_created_later() {
    let (registry, fleet, clock) = setup();
    // The provider has circuits, the tenant none; then a provider with none at all.
    registry.circuit("openai", "globex");
    fleet.link().open("openai", "acme", secs(5), 0);
    fleet.link().open("mistral", "acme", secs(5), 0);
    clock.advance(secs(2));
    for provider in ["openai", "mistral"] {
        let circuit = registry.circuit(provider, "acme");
        assert_eq!(circuit.state(), State::Open, "{provider}");
        assert_eq!(circuit.retry_after(), Some(secs(3)), "{provider}");
    }
    // Through the annotated path too.
    assert!(registry.acquire("openai", "acme", None).is_err());
}

#[test]
fn a_kept_opening_that_ended_makes_the_first_call_a_probe_at_its_level() {
    let (registry, fleet, clock) = setup();
    fleet.link().open("openai", "acme", secs(5), 1);
    clock.advance(secs(6));
    let circuit = registry.circuit("openai", "acme");
    assert_eq!(circuit.state(), State::HalfOpen);
    let probe = circuit.try_acquire().unwrap();
    assert!(probe.is_probe());
    assert!(circuit.try_acquire().is_err(), "one probe");
    probe.failure();
    assert_eq!(circuit.retry_after(), Some(secs(40)), "level 2: 10 s × 2²");
}

#[test]
fn remote_facts_are_not_published_back() {
    let (registry, fleet, _clock) = setup();
    let circuit = registry.circuit("openai", "acme");
    fleet.link().open("openai", "acme", secs(5), 0);
    fleet.link().close("openai", "acme");
    assert_eq!(circuit.state(), State::Closed);
    assert_eq!(fleet.take(), []);
}

#[test]
fn remote_facts_reach_listeners_with_reason_fleet() {
    let clock = ManualClock::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let fleet = Recorder::default();
    let registry = Registry::builder()
        .clock(clock)
        .fleet(fleet.clone())
        .listener(move |event: &Event<'_>| {
            if let Event::Transition {
                to,
                reason,
                open_for,
                level,
                ..
            } = *event
            {
                log.lock().unwrap().push((to, reason, open_for, level));
            }
        })
        .build();
    registry.circuit("openai", "acme");
    fleet.link().open("openai", "acme", secs(5), 1);
    fleet.link().close("openai", "acme");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (State::Open, Reason::Fleet, Some(secs(5)), 1),
            (State::Closed, Reason::Fleet, None, 0),
        ]
    );
}

#[test]
fn a_remote_opening_shortens_only_from_a_higher_level_and_never_overrides_an_operator() {
    let (registry, fleet, _clock) = setup();
    let open = registry.circuit("openai", "acme");
    open.try_acquire().unwrap().failure(); // 10 s
    fleet.link().open("openai", "acme", secs(3), 0);
    assert_eq!(open.retry_after(), Some(secs(10)));
    fleet.link().open("openai", "acme", secs(30), 1);
    assert_eq!(open.retry_after(), Some(secs(30)), "a longer one extends");
    fleet.link().open("openai", "acme", secs(2), 2);
    assert_eq!(
        open.retry_after(),
        Some(secs(2)),
        "a higher level is a newer opening (a probe failed since), even if shorter"
    );

    let disabled = registry.circuit("openai", "globex");
    disabled.disable();
    fleet.link().open("openai", "globex", secs(30), 0);
    assert_eq!(disabled.state(), State::Disabled);
    let forced = registry.circuit("openai", "initech");
    forced.force_open();
    fleet.link().close("openai", "initech");
    assert_eq!(forced.state(), State::ForcedOpen);
}

#[test]
fn a_remote_closing_closes_a_half_open_circuit_and_forgets_a_kept_opening() {
    let (registry, fleet, clock) = setup();
    let circuit = registry.circuit("openai", "acme");
    circuit.try_acquire().unwrap().failure();
    clock.advance(secs(10));
    let probe = circuit.try_acquire().unwrap();
    fleet.link().close("openai", "acme");
    assert_eq!(circuit.state(), State::Closed);
    probe.failure(); // of a stay that is over
    assert_eq!(circuit.state(), State::Closed);

    fleet.link().open("openai", "globex", secs(10), 0);
    fleet.link().close("openai", "globex");
    assert_eq!(registry.circuit("openai", "globex").state(), State::Closed);
}

#[test]
fn the_link_dies_with_its_registry() {
    let (registry, fleet, _clock) = setup();
    let link = fleet.link();
    assert!(link.is_alive());
    drop(registry);
    assert!(!link.is_alive());
    assert!(!link.open("openai", "acme", secs(1), 0));
    assert!(!link.close("openai", "acme"));
}

#[test]
fn a_panicking_fleet_never_reaches_the_call() {
    struct Panics;
    impl Fleet for Panics {
        fn attach(&self, _: FleetLink) {}
        fn publish(&self, _: &Change<'_>) {
            panic!("store integration bug");
        }
    }
    let registry = Registry::builder()
        .default_config(Config::builder().consecutive_failures(1).build().unwrap())
        .fleet(Panics)
        .build();
    let circuit = registry.circuit("openai", "acme");
    circuit.try_acquire().unwrap().failure();
    assert_eq!(circuit.state(), State::Open);
}

#[test]
fn remote_operator_switches_apply_without_echo_and_reach_later_tenants() {
    let (registry, fleet, _clock) = setup();
    let link = fleet.link();
    let circuit = registry.circuit("openai", "acme");
    circuit.try_acquire().unwrap().failure();
    fleet.take();

    assert!(link.operate("openai", "acme", State::ForcedOpen));
    assert_eq!(circuit.state(), State::ForcedOpen);
    link.operate("openai", "acme", State::Closed); // a reset
    assert_eq!(circuit.state(), State::Closed);
    link.operate("openai", "acme", State::Disabled);
    assert_eq!(circuit.state(), State::Disabled);
    link.operate("openai", "acme", State::Open); // not an operator's switch
    assert_eq!(circuit.state(), State::Disabled);
    assert_eq!(fleet.take(), [], "applied switches are not published back");

    // Kept for a tenant created later, not displaced by an opening, dropped by a reset.
    link.operate("openai", "globex", State::ForcedOpen);
    link.open("openai", "globex", secs(5), 0);
    link.close("openai", "globex");
    assert_eq!(
        registry.circuit("openai", "globex").state(),
        State::ForcedOpen
    );
    link.operate("openai", "initech", State::MetricsOnly);
    link.operate("openai", "initech", State::Closed);
    assert_eq!(registry.circuit("openai", "initech").state(), State::Closed);
}

#[test]
fn a_remote_opening_is_held_no_longer_than_the_circuits_own_longest_period() {
    // A store that says "8.9 years at level 4 billion" (hostile, or a bug): the circuit takes it
    // only as far as its own schedule goes, max_open_for (300 s here, no jitter).
    let (registry, fleet, clock) = setup();
    let circuit = registry.circuit("openai", "acme");
    let years = secs(281_474_976);
    assert!(fleet.link().open("openai", "acme", years, u32::MAX));
    assert_eq!(circuit.state(), State::Open);
    assert_eq!(circuit.retry_after(), Some(secs(300)));
    // The level too is the circuit's own at most: a failed probe opens for max_open_for again.
    clock.advance(secs(300));
    circuit.try_acquire().unwrap().failure();
    assert_eq!(circuit.retry_after(), Some(secs(300)));

    // A tenant met later takes the same bound, counted from when it is met.
    fleet.link().open("openai", "globex", years, 0);
    clock.advance(secs(3600));
    let later = registry.circuit("openai", "globex");
    assert_eq!(later.retry_after(), Some(secs(300)));
}

#[test]
fn the_bound_on_a_remote_opening_leaves_room_for_the_jitter_of_the_replica_that_opened() {
    // Another replica's opening at the cap may be up to 50% longer with this jitter: it is taken
    // whole (cutting it would let this replica probe before the fleet's race), never longer.
    let clock = ManualClock::new();
    let fleet = Recorder::default();
    let registry = Registry::builder()
        .default_config(
            Config::builder()
                .consecutive_failures(1)
                .max_open_for(secs(300))
                .jitter(0.5)
                .build()
                .unwrap(),
        )
        .clock(clock)
        .fleet(fleet.clone())
        .build();
    let circuit = registry.circuit("openai", "acme");
    fleet.link().open("openai", "acme", secs(400), 5);
    assert_eq!(circuit.retry_after(), Some(secs(400)));
    fleet.link().open("openai", "acme", secs(100_000), 6);
    assert_eq!(
        circuit.retry_after(),
        Some(secs(450)),
        "max_open_for × (1 + jitter)"
    );
}
