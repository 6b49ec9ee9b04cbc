//! Attribute config applies when the circuit is created, unless the registry has a config for
//! the provider: `Registry::configure` wins, so operations can retune without recompiling.

use breaker::{circuit_breaker, CircuitOpen, Config, ManualClock, Registry, State};

#[derive(Debug)]
struct Down;

impl From<CircuitOpen> for Down {
    fn from(_: CircuitOpen) -> Self {
        Down
    }
}

#[circuit_breaker(provider = "tuned", tenant = tenant, registry = registry, consecutive_failures = 2, half_open_probes = 3)]
fn call(registry: &Registry, tenant: &str) -> Result<(), Down> {
    Err(Down)
}

#[test]
fn attribute_config_applies_to_new_circuits() {
    let registry = Registry::builder().clock(ManualClock::new()).build();
    let _ = call(&registry, "a");
    assert_eq!(registry.get("tuned", "a").unwrap().state(), State::Closed);
    let _ = call(&registry, "a");
    let circuit = registry.get("tuned", "a").unwrap();
    assert_eq!(circuit.state(), State::Open);
    assert_eq!(circuit.config().consecutive_failures(), Some(2));
    assert_eq!(circuit.config().half_open_probes(), 3);
}

#[test]
fn registry_configure_wins_over_the_attribute() {
    let registry = Registry::builder().clock(ManualClock::new()).build();
    registry.configure(
        "tuned",
        Config::builder().consecutive_failures(4).build().unwrap(),
    );
    for _ in 0..3 {
        let _ = call(&registry, "b");
    }
    let circuit = registry.get("tuned", "b").unwrap();
    assert_eq!(
        circuit.state(),
        State::Closed,
        "the configured 4 applies, not the site's 2"
    );
    assert_eq!(circuit.config().half_open_probes(), 1);
    let _ = call(&registry, "b");
    assert_eq!(circuit.state(), State::Open);
}

#[test]
fn circuits_looked_up_by_name_take_the_sites_config() {
    let registry = Registry::builder().clock(ManualClock::new()).build();
    let _ = call(&registry, "a");
    // Created by name before any annotated call for this tenant: still the site's config.
    let circuit = registry.circuit("tuned", "looked-up-first");
    assert_eq!(circuit.config().consecutive_failures(), Some(2));
    assert_eq!(circuit.config().half_open_probes(), 3);
    // A provider no annotated call has used keeps the registry default.
    assert_eq!(
        registry
            .circuit("other", "x")
            .config()
            .consecutive_failures(),
        Some(5)
    );
}
