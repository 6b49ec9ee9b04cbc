//! `tenant = self.tenant.as_str()`: each client instance gets its own circuit for the same
//! provider, so one tenant's outage never rejects another tenant's calls.
//!
//! ```text
//! cargo run --example tenant_from_self
//! ```

use std::sync::LazyLock;

use breaker::{circuit_breaker, CircuitOpen, ManualClock, Registry};

/// A registry of our own (simulated time, no other code touches it).
static REGISTRY: LazyLock<Registry> =
    LazyLock::new(|| Registry::builder().clock(ManualClock::new()).build());

#[derive(Debug)]
enum Error {
    Rejected(CircuitOpen),
    Unavailable,
}

impl From<CircuitOpen> for Error {
    fn from(open: CircuitOpen) -> Self {
        Error::Rejected(open)
    }
}

/// One client per tenant, as a multi-tenant service would hold them.
struct Client {
    tenant: String,
    /// Simulates this tenant's dedicated provider endpoint being down.
    endpoint_down: bool,
}

impl Client {
    #[circuit_breaker(
        provider = "search",
        tenant = self.tenant.as_str(),
        registry = &REGISTRY,
        consecutive_failures = 2,
    )]
    async fn search(&self, query: &str) -> Result<String, Error> {
        if self.endpoint_down {
            Err(Error::Unavailable)
        } else {
            Ok(format!("{} results for {query:?}", query.len()))
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let clients = [
        Client {
            tenant: "acme".into(),
            endpoint_down: true,
        },
        Client {
            tenant: "globex".into(),
            endpoint_down: false,
        },
    ];
    for round in 1..=4 {
        for client in &clients {
            let outcome = match client.search("rust").await {
                Ok(found) => format!("ok: {found}"),
                Err(Error::Unavailable) => "error: provider unavailable".to_owned(),
                Err(Error::Rejected(open)) => format!("rejected without calling: {open}"),
            };
            println!("round {round}  {:<7} {outcome}", client.tenant);
        }
    }
}
