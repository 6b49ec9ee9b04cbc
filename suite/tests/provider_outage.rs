//! The provider outage demo (`examples/provider_outage.rs`) run as a test: with a provider-wide
//! circuit an outage for all 1,000 tenants costs at most 50 failing calls (5,000 without), and a
//! revoked key never opens the provider.

#[path = "../examples/provider_outage/common.rs"]
mod common;

use breaker::State;
use common::{provider_wide, run, TENANTS};

#[test]
fn without_provider_wide_each_tenant_learns_alone() {
    let r = run(None);
    assert!(r.everyone_stopped);
    assert_eq!(r.outage_failing_calls, 5 * TENANTS as u64);
    assert_eq!(r.provider_wide_rejections, 0);
    assert_eq!(r.wide_during, None);
}

#[test]
fn with_provider_wide_the_outage_is_learned_once() {
    let r = run(Some(provider_wide()));
    assert!(r.everyone_stopped);
    assert!(
        r.outage_failing_calls <= 50,
        "{} failing calls",
        r.outage_failing_calls
    );
    assert!(r.provider_wide_rejections >= TENANTS - 50);
    assert_eq!(r.wide_during, Some(State::Open));
    assert_eq!(r.wide_after_recovery, Some(State::Closed));
}

#[test]
fn a_revoked_key_never_opens_the_provider() {
    let r = run(Some(provider_wide()));
    assert_eq!(r.revoked_state, State::Open);
    assert_eq!(r.wide_after_revoked, Some(State::Closed));
    assert_eq!(r.healthy_refused, 0);
    // Its own circuit: 5 failures, then one failing probe per open period.
    assert!(
        r.revoked_failing_calls <= 5 + 4,
        "{}",
        r.revoked_failing_calls
    );
}
