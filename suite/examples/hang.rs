//! A provider that accepts connections and never answers, seen by 64 patient clients (30 s
//! timeout) through `#[circuit_breaker(slow_call = "500ms", max_in_flight = 16, ..)]`.
//!
//! The upstream, on 127.0.0.1, answers at once for one second, then hangs: it reads each
//! request and never answers. No call completes during the hang, yet the circuit opens within
//! about a second of it: each admission looks at the calls in flight, and those out longer than
//! `slow_call` count as slow while they still hang. Meanwhile at most `max_in_flight` (16)
//! requests ever reach the hung upstream; every other call is refused at once, and once the
//! circuit is open, every call is. `tests/hang.rs` runs the same and checks both.
//!
//! ```text
//! cargo run -p breaker-suite --example hang
//! ```

// Shared with tests/hang.rs; under a folder without `main.rs`, so Cargo does not take it for an
// example of its own.
#[path = "hang/common.rs"]
mod common;

use std::time::Duration;

use common::{run, CLIENT_TIMEOUT, MAX_IN_FLIGHT};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let report = run(64, Duration::from_secs(1), Duration::from_secs(10)).await?;
    println!("healthy phase: {} calls answered", report.answered);
    match report.opened_after {
        Some(d) => println!(
            "the upstream hung; the circuit opened {} ms later (clients wait up to {} s)",
            d.as_millis(),
            CLIENT_TIMEOUT.as_secs()
        ),
        None => println!("the circuit did not open within 10 s of the hang"),
    }
    println!(
        "requests sent into the hang: {} (max_in_flight = {MAX_IN_FLIGHT}); calls refused at once \
         by the bulkhead: {}; hung calls found overdue: {}",
        report.sent_into_the_hang, report.refused_full, report.found_overdue
    );
    if let Some(e) = report.client_error {
        println!("a client failed: {e}");
    }
    Ok(())
}
