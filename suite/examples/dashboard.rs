//! The dashboard on a simulated multi-tenant outage: 3 providers × 2,000 tenants, `anthropic`
//! failing for every third tenant during 30 s of every minute, `openai` failing 2% of calls.
//! Open the printed URL: the open tenants come first, turn half-open after 10 s, and close or
//! reopen as their probes go. Pass `--actions` to turn on the operator buttons (for anyone who
//! reaches the loopback port: a demo). `BREAKER_DEMO_TENANTS=100000` tries the page at scale.
//!
//! ```text
//! cargo run -p breaker-suite --example dashboard --features dashboard [-- --actions]
//! ```

// Shared with tests/dashboard_browser.rs; under a folder without `main.rs`, so Cargo does not
// take it for an example of its own.
#[path = "dashboard/app.rs"]
mod app;

#[tokio::main]
async fn main() {
    let actions = std::env::args().any(|a| a == "--actions");
    let tenants = std::env::var("BREAKER_DEMO_TENANTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let demo = app::Demo::new(tenants);
    let url = app::serve(demo.router(actions)).await;
    println!("dashboard: {url}");
    println!("JSON API:  {url}/circuits?state=open   events: {url}/events");
    println!(
        "actions:   {}",
        if actions {
            "on (anyone on this port)"
        } else {
            "off (read-only; pass --actions)"
        }
    );
    demo.simulate(tenants).await;
}
