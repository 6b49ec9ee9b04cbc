//! The evidence this replica pools with the fleet (issue 23): which circuits failed lately, kept
//! one entry per circuit (however many failures), and what is due to be written.
//!
//! A failure of a closed circuit reaches the task through a bounded channel (`Fleet::failed`,
//! never waited on), and marks its circuit here. What is written is not the failures themselves
//! but the circuit's gauges, read from it at write time: its failure streak and its window's
//! calls and failures. A gauge is idempotent (a report replaces this replica's last one), so
//! failures that arrive while a write is in flight merge into the next one, a report lost to a
//! store failure is made good by the next, and a store that restarted learns everything again
//! from one report per circuit. Successes are never told: the task looks at the circuits marked
//! here at a bounded interval ([`LOOK_EVERY`]) and reports a streak that went down (a success
//! came) or a window that moved. A circuit with no failure for [`WATCH_FOR`] is let go; a
//! healthy, clean circuit is never here, so it costs the store nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use breaker_core::{Config, Metrics, State, Window, PROVIDER_WIDE_TENANT};

pub(crate) use crate::report::{Report, EVIDENCE_TTL, WATCH_FOR};
use crate::wide::Providers;

/// How often the task looks at the circuits it watches, for successes and windows that moved.
pub(crate) const LOOK_EVERY: Duration = Duration::from_millis(100);
/// Most circuits watched at once: with 100,000 tenants failing while the store is dead, memory
/// stays bounded (their failures beyond are dropped and counted).
pub(crate) const MAX_WATCHED: usize = 1 << 16;

/// A closed circuit's failure, as queued by `RedisFleet::failed`.
#[derive(Debug)]
pub(crate) struct Failed {
    pub(crate) provider: &'static str,
    pub(crate) tenant: Box<str>,
    pub(crate) streak: u32,
}

/// (provider, tenant).
pub(crate) type Key = (&'static str, Box<str>);

#[derive(Debug)]
struct Entry {
    /// The first failure this entry's gauges count (for the store: did the fleet's incident end
    /// after it?).
    since: Instant,
    last_failure: Instant,
    /// The last streak told (by a failure) or seen going down (by a look): a failure whose
    /// streak is no longer than it means a success came in between.
    streak: u32,
    /// A success came since the last report.
    success: bool,
    /// A failure came since the last report.
    dirty: bool,
    /// (calls, failures) of the window as last reported.
    reported: Option<(u32, u32)>,
    /// The circuit's `times_opened` when last looked at: a trip in between restarts the entry.
    opened: Option<u32>,
}

impl Report {
    /// A tenant circuit's report, its thresholds from its config.
    fn of_tenant(
        (provider, tenant): (&'static str, Box<str>),
        (streak, success, calls, failures): (u32, bool, u32, u32),
        age: Duration,
        config: &Config,
    ) -> Report {
        let window = match config.window() {
            Window::Time(d) => d.min(EVIDENCE_TTL),
            _ => EVIDENCE_TTL,
        };
        Report {
            provider,
            tenant,
            streak,
            success,
            calls,
            failures,
            age,
            threshold: config.consecutive_failures().unwrap_or(0),
            rate: config.failure_rate().unwrap_or(0.0),
            minimum_calls: config.minimum_calls(),
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            open_for: config.open_for(),
            tenants: String::new(),
            distinct: 0,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Tally {
    entries: HashMap<Key, Entry>,
    /// The providers whose pooled windows are reported (`wide.rs`).
    pub(crate) wide: Providers,
}

impl Tally {
    /// Marks the circuit of `failed`; `false` when it could not be kept (the map is full of
    /// circuits that failed within [`WATCH_FOR`]): the caller counts it as dropped.
    pub(crate) fn failed(&mut self, failed: Failed, now: Instant) -> bool {
        // The provider's pooled window, if it has one, whether or not the tenant can be kept.
        self.wide.failed(failed.provider, now);
        let key = (failed.provider, failed.tenant);
        if let Some(entry) = self.entries.get_mut(&key) {
            if failed.streak != 0 && failed.streak <= entry.streak {
                entry.success = true;
            }
            entry.streak = failed.streak;
            entry.dirty = true;
            entry.last_failure = now;
            return true;
        }
        if self.entries.len() >= MAX_WATCHED {
            self.entries
                .retain(|_, e| now.saturating_duration_since(e.last_failure) < WATCH_FOR);
            if self.entries.len() >= MAX_WATCHED {
                return false;
            }
        }
        self.entries.insert(
            key,
            Entry {
                since: now,
                last_failure: now,
                streak: failed.streak,
                success: false,
                dirty: true,
                reported: None,
                opened: None,
            },
        );
        true
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.wide.len() == 0
    }

    /// Circuits watched: tenant circuits, and providers whose pooled windows are.
    pub(crate) fn len(&self) -> usize {
        self.entries.len() + self.wide.len()
    }

    /// After a (re)connection: every circuit watched is reported again (the store may have lost
    /// what it had, or never got it).
    pub(crate) fn all_dirty(&mut self) {
        for entry in self.entries.values_mut() {
            entry.dirty = true;
        }
        self.wide.all_dirty();
    }

    /// The store answered that the fleet's incident ended after this circuit's first failure
    /// counted: it baselined what this replica had, and counts from now.
    pub(crate) fn restart(&mut self, provider: &'static str, tenant: &str, now: Instant) {
        if tenant == PROVIDER_WIDE_TENANT {
            return self.wide.restart(provider, now);
        }
        if let Some(entry) = self.entries.get_mut(&(provider, Box::from(tenant))) {
            entry.since = now;
        }
    }

    /// The reports due at `now` (all with `look`, only those a failure marked without),
    /// reading each circuit through `read` (its counters and config, `None` when it is gone);
    /// lets go of circuits gone, not closed, or without a failure for [`WATCH_FOR`].
    pub(crate) fn due(
        &mut self,
        now: Instant,
        look: bool,
        mut read: impl FnMut(&str, &str) -> Option<(Metrics, Config)>,
    ) -> Vec<Report> {
        let mut due = Vec::new();
        self.entries.retain(|(provider, tenant), entry| {
            if now.saturating_duration_since(entry.last_failure) >= WATCH_FOR {
                return false;
            }
            if !look && !entry.dirty {
                return true;
            }
            let Some((metrics, config)) = read(provider, tenant) else {
                return false;
            };
            if metrics.state != State::Closed {
                // Open here or in the fleet: the evidence is spent (the store's with the
                // opening), and a new incident starts from its next failure.
                return false;
            }
            if entry.opened.is_some_and(|o| o != metrics.times_opened) {
                // It tripped and closed again since: what came before is no evidence (the
                // store's went with the incident), and its next failure starts anew.
                return false;
            }
            entry.opened = Some(metrics.times_opened);
            if metrics.consecutive_failures < entry.streak {
                entry.success = true;
            }
            if metrics.consecutive_failures <= entry.streak {
                entry.streak = metrics.consecutive_failures;
            }
            if trips_alone(&metrics, &config) {
                // This replica trips on its own evidence (its circuit opens as this is read):
                // the opening is shared as every opening is, not pooled as well.
                return true;
            }
            let window = config
                .failure_rate()
                .map(|_| (metrics.calls_in_window, metrics.failures_in_window));
            let moved = window.is_some() && window != entry.reported;
            if entry.dirty || entry.success || moved {
                let (calls, failures) = window.unwrap_or_default();
                due.push(Report::of_tenant(
                    (provider, tenant.clone()),
                    (metrics.consecutive_failures, entry.success, calls, failures),
                    now.saturating_duration_since(entry.since),
                    &config,
                ));
                entry.dirty = false;
                entry.success = false;
                entry.reported = window;
            }
            true
        });
        due
    }
}

/// Whether a circuit's own counters reach its config's thresholds.
fn trips_alone(metrics: &Metrics, config: &Config) -> bool {
    config
        .consecutive_failures()
        .is_some_and(|n| metrics.consecutive_failures >= n)
        || config.failure_rate().is_some_and(|rate| {
            metrics.calls_in_window >= config.minimum_calls() && metrics.failure_rate >= rate
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(tenant: &str, streak: u32) -> Failed {
        Failed {
            provider: "openai",
            tenant: tenant.into(),
            streak,
        }
    }

    #[test]
    fn failures_of_one_circuit_merge_into_one_report_and_a_shorter_streak_is_a_success() {
        let registry = breaker_core::Registry::builder()
            .default_config(Config::builder().consecutive_failures(100).build().unwrap())
            .build();
        let acme = registry.circuit("openai", "acme");
        let mut tally = Tally::default();
        let now = Instant::now();
        for streak in 1..=3 {
            acme.try_acquire().unwrap().failure();
            assert!(tally.failed(failed("acme", streak), now));
        }
        let read = |_: &str, _: &str| Some((acme.metrics(), acme.config().clone()));
        let due = tally.due(now, false, read);
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].streak, due[0].success), (3, false));
        assert!(tally.due(now, false, read).is_empty(), "nothing new");
        assert!(tally.due(now, true, read).is_empty(), "nothing moved");
        acme.try_acquire().unwrap().success();
        acme.try_acquire().unwrap().failure();
        assert!(tally.failed(failed("acme", 1), now));
        let due = tally.due(now, false, read);
        assert_eq!((due[0].streak, due[0].success), (1, true));
        acme.try_acquire().unwrap().success();
        let due = tally.due(now, true, read);
        assert_eq!(
            (due[0].streak, due[0].success),
            (0, true),
            "a look finds it"
        );
        let later = now + WATCH_FOR;
        assert!(tally.due(later, true, read).is_empty());
        assert!(tally.entries.is_empty(), "let go after WATCH_FOR");
    }

    #[test]
    fn the_map_is_bounded_and_makes_room_with_circuits_that_stopped_failing() {
        let mut tally = Tally::default();
        let now = Instant::now();
        for i in 0..MAX_WATCHED {
            assert!(tally.failed(failed(&format!("t{i}"), 1), now));
        }
        assert!(!tally.failed(failed("one-more", 1), now), "full");
        assert!(tally.failed(failed("t7", 2), now), "a circuit kept merges");
        assert!(tally.failed(failed("one-more", 1), now + WATCH_FOR));
        // The tenant, and its provider's pooled window (never read here).
        assert_eq!(tally.len(), 2);
    }
}
