//! A closed-circuit call loop, for instruction counts of the call path with and without a fleet
//! attached (issue 23: pooling evidence must cost a healthy circuit nothing). Run under
//! callgrind at two loop lengths and divide the difference:
//!
//! ```text
//! cargo build --release -p breaker-suite --example call_cost --features redis
//! valgrind --tool=callgrind target/release/examples/call_cost 100000 fleet
//! valgrind --tool=callgrind target/release/examples/call_cost 200000 fleet
//! ```
//!
//! `none` runs the same loop on a registry without a fleet; a third argument `rate` gives the
//! circuit a failure-rate window (every success is recorded into it) instead of a streak. The fleet's store is not reachable
//! (a degraded fleet, as during an outage): a healthy call never reaches it either way.

use std::hint::black_box;

use breaker::fleet::RedisFleet;
use breaker::{Config, Registry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().as_deref().unwrap_or("100000").parse()?;
    let fleet = args.next().as_deref() == Some("fleet");
    let config = if args.next().as_deref() == Some("rate") {
        Config::builder()
            .failure_rate(0.5, breaker::Window::Calls(100))
            .build()?
    } else {
        Config::builder().consecutive_failures(5).build()?
    };
    let builder = Registry::builder().default_config(config);
    let registry = if fleet {
        // Port 1: nothing listens; the fleet starts degraded.
        let fleet = RedisFleet::builder("redis://127.0.0.1:1/").build().await?;
        builder.fleet(fleet).build()
    } else {
        builder.build()
    };
    for _ in 0..n {
        let permit = registry.acquire(black_box("openai"), black_box("acme"), None)?;
        permit.success();
    }
    Ok(())
}
