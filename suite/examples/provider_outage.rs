//! A provider that dies for everyone, learned once: 1,000 tenants behind
//! `#[circuit_breaker(consecutive_failures = 5)]`, with and without a provider-wide circuit
//! (`RegistryBuilder::provider_wide`), then one tenant whose key is revoked.
//!
//! Without it every tenant's circuit must learn the outage alone: 5 failing calls each, 5,000
//! in all, and in an LLM gateway each may hang for a client timeout. With it the pooled
//! outcomes of all tenants open the provider circuit after about 25 failing calls, and every
//! tenant is stopped. A revoked key, one tenant failing 100%, stays that tenant's: the provider
//! circuit never opens for it. `tests/provider_outage.rs` runs the same story and checks it.
//!
//! ```text
//! cargo run -p breaker-suite --example provider_outage
//! ```

// Shared with tests/provider_outage.rs; under a folder without `main.rs`, so Cargo does not take
// it for an example of its own.
#[path = "provider_outage/common.rs"]
mod common;

use common::{provider_wide, run, Report, REVOKED, TENANTS};

fn show(title: &str, r: &Report) {
    println!("{title}");
    println!(
        "  provider down for all {TENANTS} tenants: {} failing calls reached it before every \
         tenant was stopped ({}), {} rejections by the provider-wide circuit",
        r.outage_failing_calls,
        if r.everyone_stopped {
            "all stopped"
        } else {
            "NOT all stopped"
        },
        r.provider_wide_rejections,
    );
    if let Some(state) = r.wide_during {
        println!(
            "  provider circuit: {state} during the outage, {} after recovery",
            r.wide_after_recovery.map_or("-", |s| s.as_str())
        );
    }
    println!(
        "  revoked key of `{REVOKED}`: {} failing calls reached the provider, its circuit is \
         {}, the provider circuit {}, healthy tenants refused: {}",
        r.revoked_failing_calls,
        r.revoked_state,
        r.wide_after_revoked
            .map_or_else(|| "absent".to_owned(), |s| format!("stays {s}")),
        r.healthy_refused,
    );
}

fn main() {
    show("without provider-wide circuits:", &run(None));
    show(
        "with a provider-wide circuit (default settings, open 30s):",
        &run(Some(provider_wide())),
    );
}
