//! The dashboard demo's parts, shared by `examples/dashboard.rs` and
//! `tests/dashboard_browser.rs`: a registry with a dashboard feed, tenants on three providers
//! (one of them named like markup), `openai` with a provider-wide circuit, the router nested at
//! `/breaker`, and a simulated outage.

#![allow(dead_code)] // each user takes the parts it needs

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use breaker::dashboard::{Dashboard, Feed};
use breaker::{Config, ProviderWide, Registry, Window};
use tokio::net::TcpListener;

/// The providers of the demo.
pub const PROVIDERS: [&str; 3] = ["anthropic", "openai", "mistral"];
/// A tenant whose name the page must show as text.
pub const MARKUP_TENANT: &str = "<script>";
/// Another one, that would run code if it were ever parsed as HTML.
pub const MARKUP_TENANT_2: &str = "<img src=x onerror=\"window.__pwned=1\">";

/// The demo's registry and the feed registered on it.
pub struct Demo {
    pub registry: Arc<Registry>,
    pub feed: Feed,
}

impl Demo {
    /// `tenants` tenants per provider (plus the two named like markup), all closed.
    pub fn new(tenants: usize) -> Demo {
        let feed = Feed::new();
        // Trips on 3 failures in a row, or on half of the last 20 calls failing (the page shows
        // the rate); open for 10 s, doubling on each failed probe.
        let config = Config::builder()
            .consecutive_failures(3)
            .failure_rate(0.5, Window::Calls(20))
            .open_for(Duration::from_secs(10))
            .build()
            .expect("a valid config");
        // `openai` also has a provider-wide circuit: it opens when half of its last 50 calls,
        // all tenants together, failed, from at least 3 tenants.
        let wide = ProviderWide::builder()
            .minimum_calls(20)
            .distinct_tenants(3)
            .open_for(Duration::from_secs(10))
            .build()
            .expect("valid provider-wide settings");
        let registry = Arc::new(
            Registry::builder()
                .default_config(config)
                .provider_wide("openai", wide)
                .listener(feed.listener())
                .build(),
        );
        for provider in PROVIDERS {
            for i in 0..tenants {
                registry.circuit(provider, &tenant(i));
            }
            registry.circuit(provider, MARKUP_TENANT);
            registry.circuit(provider, MARKUP_TENANT_2);
        }
        Demo { registry, feed }
    }

    /// The service: the dashboard at `/breaker` and `/breaker/` (`nest_service`; `nest` would
    /// serve `/breaker` only), read-only unless `actions`.
    pub fn router(&self, actions: bool) -> Router {
        let dashboard = Dashboard::new(self.registry.clone()).feed(self.feed.clone());
        let dashboard = if actions {
            // Demo only: anyone who reaches this loopback port may switch circuits. A service
            // checks its operators here (a header set by its auth proxy, a session).
            dashboard
                .actions(|_req: &http::request::Parts, _action: &breaker::dashboard::Action| true)
        } else {
            dashboard
        };
        Router::new().nest_service("/breaker", dashboard.router())
    }

    /// Fails `provider`/`tenant`'s calls until its circuit opens.
    pub fn trip(&self, provider: &str, tenant: &str) {
        let circuit = self.registry.circuit(provider, tenant);
        while let Ok(permit) = circuit.try_acquire() {
            permit.failure();
        }
    }

    /// Fails calls of `provider` from tenants `from..` (one call each, through the registry as
    /// an annotated call goes) until its provider-wide circuit rejects them.
    pub fn trip_provider_wide(&self, provider: &str, from: usize) {
        for i in from.. {
            match self.registry.acquire(provider, &tenant(i), None) {
                Ok(permit) => permit.failure(),
                Err(open) if open.is_provider_wide() => return,
                Err(_) => {}
            }
        }
    }

    /// Traffic forever: `anthropic` has an outage for every third tenant during 30 s of every
    /// minute, `openai` fails 2% of calls but every call during 10 s of every minute (its
    /// provider-wide circuit opens), `mistral` is healthy.
    pub async fn simulate(&self, tenants: usize) {
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let start = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let second = start.elapsed().as_secs() % 60;
            let outage = (5..35).contains(&second);
            let openai_down = (40..50).contains(&second);
            for _ in 0..50 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let provider = PROVIDERS[(rng % 3) as usize];
                let i = ((rng >> 8) % tenants.max(1) as u64) as usize;
                let fails = match provider {
                    "anthropic" => outage && i % 3 == 0,
                    "openai" => openai_down || (rng >> 32) % 50 == 0,
                    _ => false,
                };
                // Through the registry, as an annotated call: the provider-wide circuit admits too.
                if let Ok(permit) = self.registry.acquire(provider, &tenant(i), None) {
                    if fails {
                        permit.failure();
                    } else {
                        permit.success();
                    }
                }
            }
        }
    }
}

/// The name of tenant `i`.
pub fn tenant(i: usize) -> String {
    format!("tenant-{i:05}")
}

/// Serves `router` on a free loopback port; returns the dashboard's URL.
pub async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let url = format!("http://{}/breaker", listener.local_addr().expect("bound"));
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serving") });
    url
}
