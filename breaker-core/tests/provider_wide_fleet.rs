//! Provider-wide circuits in a fleet (issue 19, item 6): the provider circuit is shared like any
//! circuit, under the tenant `*`: its openings, closings and operators' switches reach the other
//! replicas, which then reject every tenant of the provider too. Two registries wired in one
//! process, no store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use breaker_core::fleet::{Change, Fleet, FleetLink};
use breaker_core::{ManualClock, ProviderWide, Registry, State, PROVIDER_WIDE_TENANT};

type Slot = Arc<Mutex<Option<FleetLink>>>;

/// One end of a wire: what one registry publishes, the other applies at once.
struct End {
    me: Slot,
    peer: Slot,
}

impl Fleet for End {
    fn attach(&self, link: FleetLink) {
        *self.me.lock().unwrap() = Some(link);
    }
    fn publish(&self, change: &Change<'_>) {
        let Some(peer) = self.peer.lock().unwrap().clone() else {
            return;
        };
        match *change {
            Change::Opened {
                provider,
                tenant,
                open_for,
                level,
                ..
            } => {
                peer.open(provider, tenant, open_for, level);
            }
            Change::Closed {
                provider, tenant, ..
            } => {
                peer.close(provider, tenant);
            }
            Change::Operator {
                provider,
                tenant,
                state,
                ..
            } => {
                peer.operate(provider, tenant, state);
            }
            _ => {}
        }
    }
}

fn pair(clock: &ManualClock) -> (Registry, Registry) {
    let (one, two) = (Slot::default(), Slot::default());
    let wide = ProviderWide::builder()
        .minimum_calls(4)
        .open_for(Duration::from_secs(30))
        .build()
        .unwrap();
    let a = Registry::builder()
        .clock(clock.clone())
        .provider_wide("llm", wide.clone())
        .fleet(End {
            me: one.clone(),
            peer: two.clone(),
        })
        .build();
    let b = Registry::builder()
        .clock(clock.clone())
        .provider_wide("llm", wide)
        .fleet(End { me: two, peer: one })
        .build();
    (a, b)
}

#[test]
fn an_opening_on_one_replica_rejects_every_tenant_on_the_other() {
    let clock = ManualClock::new();
    let (a, b) = pair(&clock);
    for t in ["t1", "t2", "t3", "t4"] {
        a.acquire("llm", t, None).unwrap().failure();
    }
    assert_eq!(a.provider_circuit("llm").unwrap().state(), State::Open);
    let on_b = b.provider_circuit("llm").unwrap();
    assert_eq!(on_b.state(), State::Open);
    assert_eq!(on_b.retry_after(), Some(Duration::from_secs(30)));
    // `b` never called these tenants, yet rejects them, provider-wide.
    let err = b.acquire("llm", "t9", None).unwrap_err();
    assert!(err.is_provider_wide());

    // One probe, on `a`; its success closes the provider circuit on `b` too.
    clock.advance(Duration::from_secs(30));
    let probe = a.acquire("llm", "t1", None).unwrap();
    assert!(probe.is_probe());
    probe.success();
    assert_eq!(on_b.state(), State::Closed);
    b.acquire("llm", "t9", None).unwrap().success();
}

#[test]
fn operators_switch_it_fleet_wide() {
    let clock = ManualClock::new();
    let (a, b) = pair(&clock);
    a.provider_circuit("llm").unwrap().force_open();
    assert_eq!(
        b.provider_circuit("llm").unwrap().state(),
        State::ForcedOpen
    );
    assert!(b.acquire("llm", "x", None).unwrap_err().is_provider_wide());
    b.provider_circuit("llm").unwrap().reset();
    assert_eq!(a.provider_circuit("llm").unwrap().state(), State::Closed);
    a.acquire("llm", "x", None).unwrap().success();
}

#[test]
fn an_opening_shared_before_it_was_configured_is_applied_when_it_is() {
    let clock = ManualClock::new();
    let (one, two) = (Slot::default(), Slot::default());
    let a = Registry::builder()
        .clock(clock.clone())
        .provider_wide("llm", ProviderWide::default())
        .fleet(End {
            me: one.clone(),
            peer: two.clone(),
        })
        .build();
    let b = Registry::builder()
        .clock(clock.clone())
        .fleet(End { me: two, peer: one })
        .build();
    a.provider_circuit("llm").unwrap().force_open();
    assert!(b.provider_circuit("llm").is_none());
    b.configure_provider_wide("llm", ProviderWide::default());
    let on_b = b.provider_circuit("llm").unwrap();
    assert_eq!(on_b.state(), State::ForcedOpen);
    assert_eq!(on_b.tenant(), PROVIDER_WIDE_TENANT);
}
