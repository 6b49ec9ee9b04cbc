//! A registry with a fleet that is built but never installed leaves every call site without
//! `registry = ..` on a global registry of its own, without the fleet: an outage then looks
//! exactly like no fleet (issue 25). That is warned, once. Its own test binary: the global
//! registry is process-wide.

use breaker::fleet::{Change, Fleet, FleetLink};
use breaker::{circuit_breaker, CircuitOpen, Registry};

struct Quiet;

impl Fleet for Quiet {
    fn attach(&self, _: FleetLink) {}
    fn publish(&self, _: &Change<'_>) {}
}

#[derive(Debug)]
struct Error;

impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

#[circuit_breaker(provider = "unshared-a")]
async fn a() -> Result<(), Error> {
    Ok(())
}

#[circuit_breaker(provider = "unshared-b")]
async fn b() -> Result<(), Error> {
    Ok(())
}

#[tokio::test]
async fn a_fleet_registry_never_installed_is_warned_about_once() {
    // Without any fleet around, the global registry is fine as it is.
    a().await.unwrap();
    assert_eq!(breaker::__fleet_unused_warnings(), 0);

    // The README's mistake: built with a fleet, never installed.
    let registry = Registry::builder().fleet(Quiet).build();
    b().await.unwrap();
    assert_eq!(
        breaker::__fleet_unused_warnings(),
        1,
        "warned at the next provider's first call"
    );
    // It cannot be installed any more: the error says why and gives the registry back.
    let err = Registry::set_global(registry).unwrap_err();
    assert!(err.to_string().contains("already in place"), "{err}");
    let registry = err.into_registry();
    a().await.unwrap();
    b().await.unwrap();
    assert_eq!(
        breaker::__fleet_unused_warnings(),
        1,
        "known providers are not looked at again"
    );

    // Once the fleet's registry is gone, nothing more is said.
    drop(registry);
    #[circuit_breaker(provider = "unshared-c")]
    async fn c() -> Result<(), Error> {
        Ok(())
    }
    c().await.unwrap();
    assert_eq!(breaker::__fleet_unused_warnings(), 1);
}
