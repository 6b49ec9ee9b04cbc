//! The outage demo (`examples/outage.rs`), shortened: the same server on the loopback, the same
//! `#[circuit_breaker]` client, with 200 ms open periods. Each phase drives a tenant's calls
//! until its circuit reaches a state (bounded loops, no wall-clock windows), and the checks are
//! on counts and states: the server received nothing while a circuit was open, apart from
//! probes.

#[path = "../examples/outage/common.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use breaker::{Config, Reason, Registry, State};
use common::{Client, Mode, Server, Timeline, PROVIDER, TENANTS};

/// Long enough that a healthy answer is not mistaken for a hang on a loaded machine, short
/// enough that the hang phase takes half a second.
const TIMEOUT: Duration = Duration::from_millis(250);
/// Pause between calls while waiting for an open period to end.
const PAUSE: Duration = Duration::from_millis(20);
/// Calls allowed to reach a state; far more than any phase needs.
const MAX_CALLS: usize = 500;

struct Demo {
    timeline: Arc<Timeline>,
    server: Server,
    registry: Arc<Registry>,
    client: Client,
}

impl Demo {
    fn state(&self, tenant: &str) -> State {
        self.registry
            .get(PROVIDER, tenant)
            .map_or(State::Closed, |c| c.state())
    }

    /// Calls for `tenant` until its circuit is in `want`, at most `MAX_CALLS` times.
    async fn until_state(&self, tenant: &str, want: State) {
        for _ in 0..MAX_CALLS {
            if self.state(tenant) == want {
                return;
            }
            let _ = self.client.call(tenant).await;
            tokio::time::sleep(PAUSE).await;
        }
        panic!(
            "{tenant}: still {} after {MAX_CALLS} calls",
            self.state(tenant)
        );
    }

    /// Calls for `tenant` until one call is rejected; every call the breaker let through
    /// meanwhile must have been a probe.
    async fn until_rejected(&self, tenant: &str) {
        let before = self.timeline.tally(tenant);
        for _ in 0..MAX_CALLS {
            let _ = self.client.call(tenant).await;
            let now = self.timeline.tally(tenant);
            assert_eq!(
                now.sent - before.sent,
                now.probes - before.probes,
                "{tenant}: a call got through an open circuit"
            );
            if now.rejected > before.rejected {
                return;
            }
        }
        panic!("{tenant}: no call rejected in {MAX_CALLS}");
    }

    /// Calls for `tenant` until a probe has gone out and failed.
    async fn until_probe_failed(&self, tenant: &str) {
        let probes = self.timeline.tally(tenant).probes;
        for _ in 0..MAX_CALLS {
            let _ = self.client.call(tenant).await;
            let tally = self.timeline.tally(tenant);
            if tally.probes > probes {
                assert_eq!(
                    tally.transitions.last(),
                    Some(&(State::HalfOpen, State::Open, Reason::ProbeFailed)),
                    "{tenant}"
                );
                return;
            }
            tokio::time::sleep(PAUSE).await;
        }
        panic!("{tenant}: no probe in {MAX_CALLS} calls");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_reaches_the_server_only_through_probes() {
    let timeline = Timeline::new();
    let server = Server::start().unwrap();
    let registry = Arc::new(timeline.registry());
    // Wins over the attribute's 1 s open periods, so the test takes about two seconds.
    registry.configure(
        PROVIDER,
        Config::builder()
            .consecutive_failures(2)
            .open_for(Duration::from_millis(200))
            .max_open_for(Duration::from_millis(400))
            .build()
            .unwrap(),
    );
    let client = Client::new(server.url(), registry.clone(), timeline.clone(), TIMEOUT).unwrap();
    let demo = Demo {
        timeline,
        server,
        registry,
        client,
    };
    let [acme, globex, initech] = TENANTS;

    for tenant in TENANTS {
        for _ in 0..3 {
            let _ = demo.client.call(tenant).await;
        }
    }

    demo.timeline.note("acme: 503s");
    demo.server.set_mode(acme, Mode::Unavailable);
    demo.until_state(acme, State::Open).await;
    demo.until_rejected(acme).await;
    demo.until_probe_failed(acme).await;
    demo.until_rejected(acme).await;

    demo.timeline.note("globex: hangs");
    demo.server.set_mode(globex, Mode::Hang);
    demo.until_state(globex, State::Open).await;
    demo.until_rejected(globex).await;

    demo.timeline.note("connections refused");
    demo.server.refuse().await;
    demo.until_state(initech, State::Open).await;
    demo.until_rejected(initech).await;

    demo.timeline.note("recovery");
    demo.server.heal();
    demo.server.listen_again().await.unwrap();
    for tenant in TENANTS {
        demo.until_state(tenant, State::Closed).await;
        let _ = demo.client.call(tenant).await;
    }
    demo.timeline.summary(&demo.server, &demo.registry);

    for tenant in TENANTS {
        let t = demo.timeline.tally(tenant);
        let received = demo.server.received(tenant);
        // Nothing reached the server while the circuit was open; probes did, at most one for
        // each time the circuit went half-open.
        assert_eq!(received.while_open, 0, "{tenant}: {received:?}");
        assert!(received.probes <= t.probes, "{tenant}: {received:?} {t:?}");
        let half_opened = t
            .transitions
            .iter()
            .filter(|&&(from, to, _)| (from, to) == (State::Open, State::HalfOpen))
            .count();
        assert_eq!(t.probes, half_opened as u64, "{tenant}: {t:?}");
        // The server's own count: no more than the calls the breaker let through (a timed-out
        // or refused one may not have arrived), at least those it answered.
        assert!(received.total() <= t.sent, "{tenant}: {received:?} {t:?}");
        assert!(
            received.total() >= t.answered,
            "{tenant}: {received:?} {t:?}"
        );
        assert_eq!(t.calls, t.sent + t.rejected, "{tenant}: {t:?}");
        assert_eq!(t.sent, t.answered + t.lost + t.refused, "{tenant}: {t:?}");
        // Every rejection came while open, with a retry-after.
        assert!(t.rejected >= 1, "{tenant}: {t:?}");
        assert_eq!(t.rejected_without_retry_after, 0, "{tenant}: {t:?}");
        // Tripped once, and the last probe closed the circuit.
        assert_eq!(
            t.transitions.first(),
            Some(&(State::Closed, State::Open, Reason::ConsecutiveFailures)),
            "{tenant}: {t:?}"
        );
        assert_eq!(
            t.transitions.last(),
            Some(&(State::HalfOpen, State::Closed, Reason::ProbesSucceeded)),
            "{tenant}: {t:?}"
        );
        assert_eq!(demo.state(tenant), State::Closed);
    }
    // Each tenant met its own failure: a hang is a timeout, a closed port a refusal.
    assert!(demo.timeline.tally(globex).lost >= 2);
    assert!(demo.timeline.tally(initech).refused >= 2);
}
