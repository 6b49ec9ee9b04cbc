//! The provider outage of `examples/provider_outage.rs`, shared with `tests/provider_outage.rs`:
//! 1,000 tenants of one provider behind `#[circuit_breaker(consecutive_failures = 5)]`, a
//! simulated provider (no network: the point is counting which calls reach it), time on a
//! `ManualClock`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use breaker::{circuit_breaker, CircuitOpen, ManualClock, ProviderWide, Registry, State};

pub const PROVIDER: &str = "llm";
pub const TENANTS: usize = 1000;
pub const REVOKED: &str = "tenant-0042";

/// What the calls of a tenant get back.
#[derive(Debug)]
pub enum CallError {
    /// Rejected by a circuit; the call never reached the provider.
    Open(CircuitOpen),
    /// The provider failed it.
    Provider,
}

impl From<CircuitOpen> for CallError {
    fn from(open: CircuitOpen) -> Self {
        CallError::Open(open)
    }
}

/// A provider that answers until it is told to die, for everyone or for one revoked key, and
/// counts the failing calls that reached it.
#[derive(Default)]
pub struct Provider {
    down: AtomicBool,
    revoked: Mutex<HashSet<String>>,
    pub failing_calls: AtomicU64,
}

impl Provider {
    fn serve(&self, tenant: &str) -> Result<(), CallError> {
        let revoked = self.revoked.lock().unwrap().contains(tenant);
        if self.down.load(Ordering::Relaxed) || revoked {
            self.failing_calls.fetch_add(1, Ordering::Relaxed);
            return Err(CallError::Provider);
        }
        Ok(())
    }
}

/// The gateway: one annotated call, the registry's configuration decides the rest.
pub struct Gateway {
    pub registry: Registry,
    pub provider: Provider,
    pub clock: ManualClock,
}

impl Gateway {
    /// With `wide`, the registry puts a provider-wide circuit above the tenant circuits.
    pub fn new(wide: Option<ProviderWide>) -> Gateway {
        let clock = ManualClock::new();
        let mut builder = Registry::builder().clock(clock.clone());
        if let Some(wide) = wide {
            builder = builder.provider_wide(PROVIDER, wide);
        }
        Gateway {
            registry: builder.build(),
            provider: Provider::default(),
            clock,
        }
    }

    #[circuit_breaker(
        provider = "llm",
        tenant = tenant,
        registry = &self.registry,
        consecutive_failures = 5,
        open_for = "30s",
    )]
    pub fn complete(&self, tenant: &str) -> Result<(), CallError> {
        self.provider.serve(tenant)
    }

    /// Every tenant calls in turn, `rounds` times.
    pub fn round_robin(&self, rounds: usize) {
        for _ in 0..rounds {
            for t in 0..TENANTS {
                let _ = self.complete(&tenant(t));
            }
        }
    }

    fn failing(&self) -> u64 {
        self.provider.failing_calls.load(Ordering::Relaxed)
    }

    fn wide_state(&self) -> Option<State> {
        self.registry.provider_circuit(PROVIDER).map(|c| c.state())
    }
}

pub fn tenant(i: usize) -> String {
    format!("tenant-{i:04}")
}

/// What one run saw.
#[derive(Debug)]
pub struct Report {
    /// Failing calls that reached the provider while it was down for everyone, until every
    /// tenant was stopped.
    pub outage_failing_calls: u64,
    /// Whether every tenant's calls were rejected at the end of the outage.
    pub everyone_stopped: bool,
    /// How many rejections said the provider-wide circuit refused them.
    pub provider_wide_rejections: usize,
    /// The provider circuit's state after the outage, then after recovery.
    pub wide_during: Option<State>,
    pub wide_after_recovery: Option<State>,
    /// Failing calls of the revoked key that reached the provider.
    pub revoked_failing_calls: u64,
    /// The revoked tenant's circuit, and the provider circuit, after it.
    pub revoked_state: State,
    pub wide_after_revoked: Option<State>,
    /// Healthy tenants' calls that failed or were rejected while the key was revoked.
    pub healthy_refused: usize,
}

/// The default provider-wide settings, but for a 30 s open period like the tenant circuits'.
pub fn provider_wide() -> ProviderWide {
    ProviderWide::builder()
        .open_for(Duration::from_secs(30))
        .build()
        .expect("valid")
}

/// The whole story: healthy traffic, the provider dies for everyone, it comes back, then one
/// tenant's key is revoked.
pub fn run(wide: Option<ProviderWide>) -> Report {
    let g = Gateway::new(wide);
    g.round_robin(2);
    assert_eq!(g.failing(), 0);

    // The provider dies for everyone: every tenant keeps calling until all are stopped.
    g.provider.down.store(true, Ordering::Relaxed);
    let mut provider_wide_rejections = 0;
    let mut everyone_stopped = false;
    for _ in 0..10 {
        let mut rejected = 0;
        for t in 0..TENANTS {
            if let Err(CallError::Open(open)) = g.complete(&tenant(t)) {
                rejected += 1;
                provider_wide_rejections += usize::from(open.is_provider_wide());
            }
        }
        if rejected == TENANTS {
            everyone_stopped = true;
            break;
        }
    }
    let outage_failing_calls = g.failing();
    let wide_during = g.wide_state();

    // It comes back: after the open period (and the backoff of each failed probe) the probes
    // succeed and close the circuits.
    g.provider.down.store(false, Ordering::Relaxed);
    for _ in 0..4 {
        g.clock.advance(Duration::from_secs(300));
        g.round_robin(1);
    }
    let wide_after_recovery = g.wide_state();

    // One tenant's key is revoked; everyone else is fine.
    g.provider
        .revoked
        .lock()
        .unwrap()
        .insert(REVOKED.to_owned());
    let before = g.failing();
    let mut healthy_refused = 0;
    for round in 0..20 {
        if round % 5 == 4 {
            // Its open period passes: its circuit probes again.
            g.clock.advance(Duration::from_secs(300));
        }
        for t in 0..TENANTS {
            let name = tenant(t);
            if g.complete(&name).is_err() && name != REVOKED {
                healthy_refused += 1;
            }
        }
    }
    Report {
        outage_failing_calls,
        everyone_stopped,
        provider_wide_rejections,
        wide_during,
        wide_after_recovery,
        revoked_failing_calls: g.failing() - before,
        revoked_state: g.registry.circuit(PROVIDER, REVOKED).state(),
        wide_after_revoked: g.wide_state(),
        healthy_refused,
    }
}
