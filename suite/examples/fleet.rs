//! Three replicas of a service call one failing provider, first each on its own, then as a fleet
//! sharing their circuits through Redis (feature `redis`).
//!
//! The script, run twice (alone, then as a fleet):
//!
//! - 0 s: the provider (a real HTTP server on 127.0.0.1) answers one tenant's requests with 503s.
//!   Each replica calls for that tenant every 20 ms (the three spread over those 20 ms, as behind a
//!   load balancer); a circuit trips after 3 failures in a row and stays open 1 s, then 2 s, 4 s
//!   while probes fail.
//! - 3 s: the provider is healthy again; the next probe closes the circuits.
//!
//! Alone, every replica trips after its own 3 failures and every replica probes after each open
//! period. As a fleet, the first replica to trip opens all three within milliseconds (the others
//! then send no third failing call), one replica probes for the fleet, and its success closes all
//! three. A run here: 9 failing calls and 3 probes alone, 7 and 1 as a fleet. It prints the timeline of transitions
//! per replica and, at the end, how many failing calls and probes reached the provider each way.
//!
//! It starts its own `redis-server` on a free loopback port (it must be on `PATH`):
//!
//! ```text
//! cargo run -p breaker-suite --example fleet --features redis
//! ```

// The outage demo's HTTP server; under a folder without `main.rs`, so Cargo does not take it for
// an example of its own.
#[path = "outage/common.rs"]
#[allow(dead_code)] // the demo's client and timeline are not used here
mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use breaker::fleet::RedisFleet;
use breaker::{Config, Event, Registry};
use common::{Mode, Received, Server};

const PROVIDER: &str = "inference";
const REPLICAS: usize = 3;
const EVERY: Duration = Duration::from_millis(20);
const FAILING_FOR: Duration = Duration::from_secs(3);
const RECOVERING_FOR: Duration = Duration::from_millis(2500);

/// A `redis-server` of this demo's own, killed on drop.
struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn();
    let _redis = match child {
        Ok(child) => Redis(child),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "this demo starts a redis-server of its own, and none is on PATH: install one \
                 (Debian/Ubuntu: `apt-get install redis-server`, macOS: `brew install redis`) \
                 or a Valkey server named redis-server"
            );
            std::process::exit(2);
        }
        Err(e) => return Err(e.into()),
    };
    let url = format!("redis://127.0.0.1:{port}/");
    let provider = Server::start()?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .no_proxy()
        .build()?;

    let alone = run(&provider, &client, "acme", None).await?;
    let fleet = run(&provider, &client, "globex", Some(&url)).await?;

    println!("\nwhile the provider failed ({} s):", FAILING_FOR.as_secs());
    println!("                           alone  fleet");
    println!(
        "  failing calls it got      {:>5}  {:>5}",
        alone.closed, fleet.closed
    );
    println!(
        "  probes it got             {:>5}  {:>5}",
        alone.probes, fleet.probes
    );
    println!(
        "  calls while open          {:>5}  {:>5}   (must be 0)",
        alone.while_open, fleet.while_open
    );
    Ok(())
}

/// Runs the script for `tenant` with three replicas, sharing through the store at `redis` when
/// given; returns what the provider received while it failed.
async fn run(
    provider: &Server,
    client: &reqwest::Client,
    tenant: &'static str,
    redis: Option<&str>,
) -> Result<Received, Box<dyn std::error::Error>> {
    let title = if redis.is_some() {
        "as a fleet"
    } else {
        "alone"
    };
    println!("\n== three replicas {title} (tenant {tenant}) ==");
    let start = Instant::now();
    let mut replicas = Vec::new();
    for i in 0..REPLICAS {
        let mut builder = Registry::builder()
            .default_config(
                Config::builder()
                    .consecutive_failures(3)
                    .open_for(Duration::from_secs(1))
                    .max_open_for(Duration::from_secs(4))
                    .build()?,
            )
            .listener(move |event: &Event<'_>| {
                if let Event::Transition {
                    from, to, reason, ..
                } = *event
                {
                    let t = start.elapsed().as_secs_f64();
                    println!("t={t:>6.3}s  replica {i}  {from} -> {to} ({reason})");
                }
            });
        let mut health = None;
        if let Some(url) = redis {
            let fleet = RedisFleet::builder(url).namespace("demo").build().await?;
            health = Some(fleet.health());
            builder = builder.fleet(fleet);
        }
        replicas.push(Arc::new(builder.build()));
        // The fleet connects once its registry is built.
        while health.as_ref().is_some_and(|h| !h.is_connected()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    provider.set_mode(tenant, Mode::Unavailable);
    let running = Arc::new(AtomicBool::new(true));
    let mut tasks = Vec::new();
    for (i, registry) in replicas.iter().enumerate() {
        let (registry, client, running) = (registry.clone(), client.clone(), running.clone());
        let url = provider.url();
        tasks.push(tokio::spawn(async move {
            // Spread over the period, as a load balancer spreads requests over replicas.
            tokio::time::sleep(EVERY * i as u32 / REPLICAS as u32).await;
            while running.load(Ordering::Relaxed) {
                call(&registry, &client, &url, tenant).await;
                tokio::time::sleep(EVERY).await;
            }
        }));
    }
    tokio::time::sleep(FAILING_FOR).await;
    let failing = provider.received(tenant);
    provider.set_mode(tenant, Mode::Healthy);
    let t = start.elapsed().as_secs_f64();
    println!("t={t:>6.3}s  -- the provider is healthy again --");
    tokio::time::sleep(RECOVERING_FOR).await;
    running.store(false, Ordering::Relaxed);
    for task in tasks {
        task.await?;
    }
    Ok(failing)
}

/// One call for `tenant` through `registry`'s circuit; the request says whether it is a probe,
/// so the server counts probes apart.
async fn call(registry: &Registry, client: &reqwest::Client, url: &str, tenant: &str) {
    let Ok(permit) = registry.acquire(PROVIDER, tenant, None) else {
        return; // rejected at once: the provider never sees it
    };
    let state = if permit.is_probe() {
        "half_open"
    } else {
        "closed"
    };
    let sent = client
        .get(url)
        .header("x-tenant", tenant)
        .header("x-circuit-state", state)
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => permit.success(),
        _ => permit.failure(),
    }
}
