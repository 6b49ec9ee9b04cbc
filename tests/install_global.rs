//! `RegistryBuilder::install_global`: the fleet's registry (or any other) made the one that call
//! sites without `registry = ..` use, in one step (issue 25), and `Registry::set_global`'s error
//! is a `std::error::Error` (`?` works). Its own test binary: the global registry is process-wide.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use breaker::fleet::{Change, Fleet, FleetLink};
use breaker::{circuit_breaker, CircuitOpen, Config, Registry, State, DEFAULT_TENANT};

/// Counts what the registry shares with the fleet.
struct Counting(Arc<AtomicUsize>);

impl Fleet for Counting {
    fn attach(&self, _: FleetLink) {}
    fn publish(&self, _: &Change<'_>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Error;

impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

#[circuit_breaker(provider = "installed")]
async fn call(ok: bool) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(Error)
    }
}

#[tokio::test]
async fn an_installed_registrys_fleet_hears_the_call_sites(
) -> Result<(), Box<dyn std::error::Error>> {
    let published = Arc::new(AtomicUsize::new(0));
    let registry = Registry::builder()
        .default_config(Config::builder().consecutive_failures(1).build()?)
        .fleet(Counting(published.clone()))
        .install_global()?;
    assert!(std::ptr::eq(registry, Registry::global()));
    assert!(call(false).await.is_err());
    assert_eq!(
        registry.get("installed", DEFAULT_TENANT).unwrap().state(),
        State::Open
    );
    assert_eq!(
        published.load(Ordering::Relaxed),
        1,
        "the opening reached the fleet"
    );
    assert_eq!(breaker::__fleet_unused_warnings(), 0);
    // A second install fails with an error `?` can carry.
    let again = || -> Result<(), Box<dyn std::error::Error>> {
        Registry::builder().install_global()?;
        Ok(())
    };
    assert!(again().is_err());
    Ok(())
}
