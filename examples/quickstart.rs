//! A simulated provider outage, seen by two tenants.
//!
//! `acme` hits the provider while it is down: its circuit trips, rejects calls instantly with a
//! retry-after, probes while the provider is still down (and backs off longer), then probes again
//! after recovery and closes. `globex` only calls the healthy endpoint and never notices.
//!
//! Time is simulated with a `ManualClock`, so the demo runs instantly and prints the same
//! timeline every time.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use std::time::Duration;

use breaker::{Circuit, Classify, Config, ErrorClass, ManualClock, Outcome, Registry, State};

/// The error of our pretend API client.
#[derive(Debug)]
enum ApiError {
    Status(u16),
}

impl Classify for ApiError {
    fn classify(&self) -> Outcome {
        match self {
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

fn call(registry: &Registry, clock: &ManualClock, tenant: &str) {
    let now = clock.elapsed();
    let circuit = registry.circuit("llm", tenant);
    let before = circuit.state();
    let line = match circuit.try_acquire() {
        Err(open) => format!("rejected: {open}"),
        Ok(permit) => {
            let probe = if permit.is_probe() { " (probe)" } else { "" };
            let result = provider(now, tenant);
            let line = match &result {
                Ok(body) => format!("ok: {body}{probe}"),
                Err(e) => format!("error: {e:?} -> {:?}{probe}", e.classify()),
            };
            permit.record(
                result
                    .as_ref()
                    .map_or_else(Classify::classify, |_| Outcome::Success),
            );
            line
        }
    };
    println!("t={:>4}s  {tenant:<7} {line}", now.as_secs());
    report_transition(&circuit, tenant, before);
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

fn main() -> Result<(), breaker::ConfigError> {
    let clock = ManualClock::new();
    let registry = Registry::builder()
        .default_config(
            Config::builder()
                .consecutive_failures(3)
                .open_for(Duration::from_secs(20))
                .max_open_for(Duration::from_secs(60))
                .build()?,
        )
        .clock(clock.clone())
        .build();

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
    Ok(())
}
