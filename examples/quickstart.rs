//! A simulated provider outage, seen by two tenants.
//!
//! `acme` hits the provider while it is down: its circuit trips, rejects calls instantly with a
//! retry-after, probes while the provider is still down (and backs off longer), then probes again
//! after recovery and closes. `globex` only calls the healthy endpoint and never notices.
//!
//! The call is guarded by `#[circuit_breaker]`: one circuit per (provider, tenant), configured
//! by the attribute's arguments, with `ApiError: Classify` deciding what counts as a failure.
//!
//! Time is simulated with a `ManualClock`, so the demo runs instantly and prints the same
//! timeline every time.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use std::time::Duration;

use breaker::{
    circuit_breaker, Circuit, CircuitOpen, Classify, ErrorClass, ManualClock, Outcome, Registry,
    State,
};

/// The error of our pretend API client.
#[derive(Debug)]
enum ApiError {
    /// The breaker rejected the call: the provider was not called.
    Rejected(CircuitOpen),
    Status(u16),
}

/// A rejected call returns `Err(ApiError::from(open))`.
impl From<CircuitOpen> for ApiError {
    fn from(open: CircuitOpen) -> Self {
        ApiError::Rejected(open)
    }
}

/// Only provider faults count against the provider: a 400 is the caller's problem.
impl Classify for ApiError {
    fn classify(&self) -> Outcome {
        match self {
            ApiError::Rejected(_) => Outcome::Ignored,
            ApiError::Status(code) => ErrorClass::from_status(*code).outcome(),
        }
    }
}

/// A provider that is down (503) between t = 5 s and t = 70 s, for some endpoints only.
fn provider(now: Duration, tenant: &str) -> Result<&'static str, ApiError> {
    let outage = now >= Duration::from_secs(5) && now < Duration::from_secs(70);
    if outage && tenant == "acme" {
        Err(ApiError::Status(503))
    } else if tenant == "globex" && now.as_secs() % 30 == 10 {
        // A bad request from the caller: the provider answered, so it does not count against it.
        Err(ApiError::Status(400))
    } else {
        Ok("completion")
    }
}

/// The call, guarded by the (`llm`, tenant) circuit of `registry`: trips after 3 failures in a
/// row, stays open 20 s, then 40 s, capped at 60 s, while probes keep failing.
#[circuit_breaker(
    provider = "llm",
    tenant = tenant,
    registry = registry,
    consecutive_failures = 3,
    open_for = "20s",
    max_open_for = "1m",
)]
fn complete(registry: &Registry, now: Duration, tenant: &str) -> Result<&'static str, ApiError> {
    provider(now, tenant)
}

fn call(registry: &Registry, clock: &ManualClock, tenant: &str) {
    let now = clock.elapsed();
    let state = || registry.get("llm", tenant).map(|c| c.state());
    let before = state();
    let probe = if before == Some(State::HalfOpen) {
        " (probe)"
    } else {
        ""
    };
    let line = match complete(registry, now, tenant) {
        Err(ApiError::Rejected(open)) => format!("rejected: {open}"),
        Ok(body) => format!("ok: {body}{probe}"),
        Err(e) => format!("error: {e:?} -> {:?}{probe}", e.classify()),
    };
    println!("t={:>4}s  {tenant:<7} {line}", now.as_secs());
    if let (Some(before), Some(circuit)) = (before, registry.get("llm", tenant)) {
        report_transition(&circuit, tenant, before);
    }
}

fn report_transition(circuit: &Circuit, tenant: &str, before: State) {
    let after = circuit.state();
    if after != before {
        let m = circuit.metrics();
        let extra = match m.retry_after {
            Some(d) if after == State::Open => format!(" for {d:?}"),
            _ => String::new(),
        };
        println!("         {tenant:<7} == circuit {before} -> {after}{extra} ==");
    }
}

fn main() {
    let clock = ManualClock::new();
    let registry = Registry::builder().clock(clock.clone()).build();

    for _ in 0..24 {
        call(&registry, &clock, "acme");
        call(&registry, &clock, "globex");
        clock.advance(Duration::from_secs(5));
    }

    println!();
    for snap in registry.snapshot() {
        let m = snap.metrics;
        println!(
            "{:<7} state={:<6} times_opened={} rejected={}",
            snap.tenant, snap.state, m.times_opened, m.rejected
        );
    }
}
