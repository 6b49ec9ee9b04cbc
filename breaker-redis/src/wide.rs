//! The provider-wide evidence this replica pools with the fleet (issue 23, item 6): for each
//! provider with a provider-wide circuit whose tenants failed lately, one report of its pooled
//! window (calls, failures, and the hashes of its distinct failing tenants, at most
//! `MAX_DISTINCT_TENANTS`), written beside the tenant circuits' reports (`evidence.rs`) under the
//! circuit `(provider, "*")`, so that a provider outage seen by many replicas is learned once by
//! the fleet. The store sums the windows and unions the tenant sets (`EVIDENCE_SCRIPT`).
//!
//! Nothing on the call path: the task is told of the provider's failures by the failures of its
//! tenants (`Fleet::failed`, which every pooled failure of a closed tenant circuit makes), and
//! reads the pooled window from its own task (`FleetLink::pooled`). A provider without a
//! provider-wide circuit is let go at its first read; one whose tenants stopped failing after
//! [`WATCH_FOR`]; one whose provider circuit is not closed at once (its opening is shared as
//! every opening is, and a new incident starts from its next failure). One entry per provider,
//! however many tenants fail.

use std::collections::HashMap;
use std::time::Instant;

use breaker_core::fleet::Pooled;
use breaker_core::{Metrics, State, Window, PROVIDER_WIDE_TENANT};

use crate::report::{Report, EVIDENCE_TTL, WATCH_FOR};

#[derive(Debug)]
struct Entry {
    /// The first failure this entry's reports count.
    since: Instant,
    last_failure: Instant,
    /// A failure came since the last report.
    dirty: bool,
    /// (calls, failures, failing tenants) as last reported.
    reported: Option<(u32, u32, Vec<u32>)>,
    /// The provider circuit's `times_opened` when last looked at.
    opened: Option<u32>,
}

/// The providers whose pooled windows this replica reports.
#[derive(Debug, Default)]
pub(crate) struct Providers {
    entries: HashMap<&'static str, Entry>,
}

impl Providers {
    /// A tenant of `provider` failed: its pooled window is due (if it has one).
    pub(crate) fn failed(&mut self, provider: &'static str, now: Instant) {
        let entry = self.entries.entry(provider).or_insert(Entry {
            since: now,
            last_failure: now,
            dirty: true,
            reported: None,
            opened: None,
        });
        entry.dirty = true;
        entry.last_failure = now;
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn all_dirty(&mut self) {
        for entry in self.entries.values_mut() {
            entry.dirty = true;
        }
    }

    /// The store baselined this replica's report of `provider` (the fleet's incident ended
    /// after its first failure): it counts from now.
    pub(crate) fn restart(&mut self, provider: &'static str, now: Instant) {
        if let Some(entry) = self.entries.get_mut(provider) {
            entry.since = now;
        }
    }

    /// The reports due at `now` (with `look`, also windows that moved without a failure told),
    /// reading each provider through `read` (its provider circuit's counters and its pooled
    /// window, `None` without a provider-wide circuit).
    pub(crate) fn due(
        &mut self,
        now: Instant,
        look: bool,
        mut read: impl FnMut(&str) -> Option<(Metrics, Pooled)>,
    ) -> Vec<Report> {
        let mut due = Vec::new();
        self.entries.retain(|provider, entry| {
            if now.saturating_duration_since(entry.last_failure) >= WATCH_FOR {
                return false;
            }
            if !look && !entry.dirty {
                return true;
            }
            let Some((metrics, pooled)) = read(provider) else {
                return false;
            };
            if metrics.state != State::Closed
                || entry.opened.is_some_and(|o| o != metrics.times_opened)
            {
                return false;
            }
            entry.opened = Some(metrics.times_opened);
            let mut tenants = pooled.failing_tenants.clone();
            tenants.sort_unstable();
            let window = (pooled.calls, pooled.failures, tenants);
            if !entry.dirty && entry.reported.as_ref() == Some(&window) {
                return true;
            }
            due.push(report(provider, &pooled, &window.2, now, entry.since));
            entry.dirty = false;
            entry.reported = Some(window);
            true
        });
        due
    }
}

/// The report of `provider`'s pooled window.
fn report(
    provider: &'static str,
    pooled: &Pooled,
    tenants: &[u32],
    now: Instant,
    since: Instant,
) -> Report {
    let settings = &pooled.settings;
    let window_ms = match settings.window() {
        Window::Time(d) => d,
        _ => EVIDENCE_TTL,
    };
    let tenants = tenants
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    Report {
        provider,
        tenant: PROVIDER_WIDE_TENANT.into(),
        streak: 0,
        success: false,
        calls: pooled.calls,
        failures: pooled.failures,
        age: now.saturating_duration_since(since),
        threshold: 0,
        rate: settings.failure_rate(),
        minimum_calls: settings.minimum_calls(),
        window_ms: u64::try_from(window_ms.min(EVIDENCE_TTL).as_millis()).unwrap_or(u64::MAX),
        open_for: settings.circuit_config().open_for(),
        tenants,
        distinct: settings.distinct_tenants(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use breaker_core::fleet::{Change, Fleet, FleetLink};
    use breaker_core::{ProviderWide, Registry};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[derive(Clone, Default)]
    struct Peek(Arc<Mutex<Option<FleetLink>>>);
    impl Fleet for Peek {
        fn attach(&self, link: FleetLink) {
            *self.0.lock().unwrap() = Some(link);
        }
        fn publish(&self, _: &Change<'_>) {}
    }

    #[test]
    fn one_report_per_provider_with_its_distinct_tenants_and_none_without_a_provider_circuit() {
        let peek = Peek::default();
        let wide = ProviderWide::builder()
            .minimum_calls(40)
            .distinct_tenants(5)
            .build()
            .unwrap();
        let registry = Registry::builder()
            .provider_wide("openai", wide)
            .fleet(peek.clone())
            .build();
        let link = peek.0.lock().unwrap().clone().unwrap();
        let read = |provider: &str| {
            Some((
                link.metrics(provider, PROVIDER_WIDE_TENANT)?,
                link.pooled(provider)?,
            ))
        };
        let mut providers = Providers::default();
        let now = Instant::now();
        for t in ["a", "b", "c", "a"] {
            registry.acquire("openai", t, None).unwrap().failure();
            providers.failed("openai", now);
        }
        registry.acquire("anthropic", "a", None).unwrap().failure();
        providers.failed("anthropic", now);
        let due = providers.due(now, false, read);
        assert_eq!(due.len(), 1, "{due:?}");
        let r = &due[0];
        assert_eq!((r.tenant.as_ref(), r.calls, r.failures), ("*", 4, 4));
        assert_eq!((r.distinct, r.threshold, r.minimum_calls), (5, 0, 40));
        assert_eq!(r.tenants.split(',').count(), 3, "{}", r.tenants);
        assert_eq!(Duration::from_millis(r.window_ms), EVIDENCE_TTL);
        assert_eq!(providers.len(), 1, "anthropic has no provider circuit");
        assert!(providers.due(now, true, read).is_empty(), "nothing moved");
        registry.acquire("openai", "d", None).unwrap().success();
        assert_eq!(providers.due(now, true, read).len(), 1, "a look finds it");
        registry.provider_circuit("openai").unwrap().force_open();
        providers.failed("openai", now);
        assert!(providers.due(now, false, read).is_empty());
        assert_eq!(
            providers.len(),
            0,
            "let go while the provider circuit is open"
        );
    }
}
