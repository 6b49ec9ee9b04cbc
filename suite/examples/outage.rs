//! A real outage, on a real HTTP server on 127.0.0.1, seen by three tenants through
//! `#[circuit_breaker]`.
//!
//! The server answers each tenant's requests as it is told at run time; the script:
//!
//! - 0 s: all healthy.
//! - 2 s: `acme`'s requests get 503s. Its circuit trips after 3 failures, rejects calls at once
//!   with a retry-after, lets one probe through after each open period (1 s, 2 s, 4 s) and
//!   re-opens while the probe fails.
//! - 4 s: `globex`'s requests hang; the client's 300 ms timeout turns each into a failure.
//! - 6.5 s: the server stops listening: connections are refused, and `initech`, healthy so far,
//!   trips too.
//! - 9.5 s: the server listens on the same port again, healthy for everyone: each circuit's next
//!   probe succeeds and closes it.
//!
//! It stops once every circuit has closed (about 15 s in all) and prints, per tenant, the calls
//! made, the requests the server received, and how many of those came while the circuit was
//! open: none, apart from the probes. `tests/outage.rs` runs a shortened version and checks
//! those counts.
//!
//! ```text
//! cargo run -p breaker-suite --example outage
//! ```

// Shared with tests/outage.rs; under a folder without `main.rs`, so Cargo does not take it for
// an example of its own.
#[path = "outage/common.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use breaker::State;
use common::{Client, Mode, Server, Timeline, PROVIDER, TENANTS};
use tokio::time::sleep;

/// How long the client waits for an answer.
const TIMEOUT: Duration = Duration::from_millis(300);
/// How often each tenant calls.
const PACE: Duration = Duration::from_millis(300);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let timeline = Timeline::new();
    let server = Server::start()?;
    let registry = Arc::new(timeline.registry());
    let client = Arc::new(Client::new(
        server.url(),
        registry.clone(),
        timeline.clone(),
        TIMEOUT,
    )?);
    timeline.note(&format!("server listening: {}", server.url()));

    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = TENANTS
        .into_iter()
        .map(|tenant| {
            let (client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _ = client.call(tenant).await;
                    sleep(PACE).await;
                }
            })
        })
        .collect();

    sleep(Duration::from_secs(2)).await;
    timeline.note("server: acme's requests now get 503");
    server.set_mode("acme", Mode::Unavailable);

    sleep(Duration::from_secs(2)).await;
    timeline.note("server: globex's requests now hang");
    server.set_mode("globex", Mode::Hang);

    sleep(Duration::from_millis(2500)).await;
    timeline.note("server: stops listening, connections are refused");
    server.refuse().await;

    sleep(Duration::from_secs(3)).await;
    timeline.note("server: listening again on the same port, healthy for everyone");
    server.heal();
    server.listen_again().await?;

    // Every circuit closes at its next probe; the longest open period is 4 s.
    let all_closed = || {
        TENANTS.iter().all(|tenant| {
            registry
                .get(PROVIDER, tenant)
                .is_some_and(|c| c.state() == State::Closed)
        })
    };
    for _ in 0..100 {
        if all_closed() {
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }
    sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await?;
    }

    timeline.summary(&server, &registry);
    Ok(())
}
