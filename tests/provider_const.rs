//! `provider = SOME_CONST`: the circuit's provider name from a `&'static str` constant (a path,
//! an associated constant), as services keep their provider names in one place.

use std::sync::LazyLock;

use breaker::{circuit_breaker, CircuitOpen, ManualClock, Registry, State};

static REGISTRY: LazyLock<Registry> =
    LazyLock::new(|| Registry::builder().clock(ManualClock::new()).build());

#[derive(Debug)]
struct Error;

impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

mod providers {
    pub const SEARCH: &str = "search";
}

const BILLING: &str = "billing";

#[circuit_breaker(provider = BILLING, registry = &REGISTRY, consecutive_failures = 1)]
fn charge(fail: bool) -> Result<(), Error> {
    if fail {
        Err(Error)
    } else {
        Ok(())
    }
}

#[circuit_breaker(provider = providers::SEARCH, registry = &REGISTRY, tenant = tenant)]
async fn search(tenant: &str) -> Result<u32, Error> {
    Ok(u32::try_from(tenant.len()).unwrap_or(0))
}

struct Mailer;

impl Mailer {
    const PROVIDER: &'static str = "mail";

    #[circuit_breaker(provider = Self::PROVIDER, registry = &REGISTRY)]
    fn send(&self) -> Result<(), Error> {
        Ok(())
    }
}

#[tokio::test]
async fn constants_name_the_circuits_provider() {
    charge(false).unwrap();
    charge(true).unwrap_err();
    let open = charge(false).unwrap_err();
    assert!(matches!(open, Error));
    assert_eq!(
        REGISTRY.circuit("billing", breaker::DEFAULT_TENANT).state(),
        State::Open
    );

    assert_eq!(search("acme").await.unwrap(), 4);
    Mailer.send().unwrap();
    let mut providers: Vec<String> = REGISTRY
        .snapshot()
        .into_iter()
        .map(|c| c.provider.to_string())
        .collect();
    providers.sort();
    assert_eq!(providers, ["billing", "mail", "search"]);
}
