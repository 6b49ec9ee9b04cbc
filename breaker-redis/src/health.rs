//! [`FleetHealth`]: the fleet's connection state and counters, for operators (and, with feature
//! `metrics`, the same through the `metrics` facade).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// The connection state and counters of a [`RedisFleet`], from [`RedisFleet::health`]. Cheap to
/// clone.
///
/// [`RedisFleet`]: crate::fleet::RedisFleet
/// [`RedisFleet::health`]: crate::fleet::RedisFleet::health
#[derive(Clone)]
pub struct FleetHealth(pub(crate) Arc<Health>);

pub(crate) struct Health {
    /// A session is up and resynced.
    pub(crate) connected: AtomicBool,
    /// The store takes this replica's writes and announcements (see `access.rs`).
    pub(crate) publishing: AtomicBool,
    pub(crate) unannounced: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) applied: AtomicU64,
    pub(crate) failures: AtomicU64,
    /// The evidence this replica pools (`evidence.rs`, `pool.rs`).
    pub(crate) evidence: EvidenceCounts,
    /// The `namespace` label of the fleet's metrics (feature `metrics`).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) namespace: String,
}

/// The counters of the evidence a replica pools.
#[derive(Default)]
pub(crate) struct EvidenceCounts {
    pub(crate) reports: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) watched: AtomicU64,
}

/// What [`Health::count`] counts.
#[derive(Clone, Copy)]
pub(crate) enum Count {
    Dropped,
    Published,
    Applied,
    Failure,
    Unannounced,
    EvidenceReports,
    EvidenceDropped,
}

impl Health {
    /// Counts one `what`, in [`FleetHealth`] and, with feature `metrics`, as
    /// `breaker_fleet_changes_dropped_total`, `breaker_fleet_changes_published_total`,
    /// `breaker_fleet_facts_applied_total`, `breaker_fleet_store_failures_total`,
    /// `breaker_fleet_openings_unannounced_total`, `breaker_fleet_evidence_reports_total` or
    /// `breaker_fleet_evidence_dropped_total` {namespace}. Returns the new count.
    pub(crate) fn count(&self, what: Count) -> u64 {
        self.count_n(what, 1)
    }

    /// [`count`](Self::count) of `n` at once.
    pub(crate) fn count_n(&self, what: Count, n: u64) -> u64 {
        let (counter, _name) = match what {
            Count::Dropped => (&self.dropped, "breaker_fleet_changes_dropped_total"),
            Count::Published => (&self.published, "breaker_fleet_changes_published_total"),
            Count::Applied => (&self.applied, "breaker_fleet_facts_applied_total"),
            Count::Failure => (&self.failures, "breaker_fleet_store_failures_total"),
            Count::Unannounced => (
                &self.unannounced,
                "breaker_fleet_openings_unannounced_total",
            ),
            Count::EvidenceReports => (
                &self.evidence.reports,
                "breaker_fleet_evidence_reports_total",
            ),
            Count::EvidenceDropped => (
                &self.evidence.dropped,
                "breaker_fleet_evidence_dropped_total",
            ),
        };
        #[cfg(feature = "metrics")]
        metrics::counter!(_name, "namespace" => self.namespace.clone()).increment(n);
        counter.fetch_add(n, Ordering::Relaxed) + n
    }

    /// Records how many circuits the evidence task watches; with feature `metrics`, the gauge
    /// `breaker_fleet_evidence_watched` {namespace}.
    pub(crate) fn watching(&self, circuits: usize) {
        let n = u64::try_from(circuits).unwrap_or(u64::MAX);
        if self.evidence.watched.swap(n, Ordering::Relaxed) != n {
            #[cfg(feature = "metrics")]
            metrics::gauge!("breaker_fleet_evidence_watched", "namespace" => self.namespace.clone())
                .set(n as f64);
        }
    }

    /// Records whether a session is up and resynced; returns whether one was.
    pub(crate) fn set_connected(&self, connected: bool) -> bool {
        let was = self.connected.swap(connected, Ordering::AcqRel);
        self.gauge();
        was
    }

    /// Records whether the store takes this replica's writes and announcements; returns
    /// whether it did.
    pub(crate) fn set_publishing(&self, publishing: bool) -> bool {
        let was = self.publishing.swap(publishing, Ordering::AcqRel);
        self.gauge();
        was
    }

    /// Whether the store takes this replica's writes and announcements.
    pub(crate) fn is_publishing(&self) -> bool {
        self.publishing.load(Ordering::Acquire)
    }

    /// With feature `metrics`, the gauge `breaker_fleet_connected` {namespace}: 1 when
    /// [`FleetHealth::is_connected`], else 0.
    fn gauge(&self) {
        #[cfg(feature = "metrics")]
        metrics::gauge!("breaker_fleet_connected", "namespace" => self.namespace.clone()).set(
            if FleetHealth::connected_and_publishing(self) {
                1.0
            } else {
                0.0
            },
        );
    }
}

impl FleetHealth {
    /// Whether the fleet is connected and resynced, and the store takes this replica's changes.
    /// `false` while degraded (circuits then run on what this replica sees alone), and while
    /// the store refuses this replica's writes or announcements (see
    /// [`can_publish`](Self::can_publish)): the others then never learn what this replica's
    /// circuits do, though it still applies what theirs do.
    pub fn is_connected(&self) -> bool {
        Self::connected_and_publishing(&self.0)
    }

    fn connected_and_publishing(health: &Health) -> bool {
        health.connected.load(Ordering::Acquire) && health.publishing.load(Ordering::Acquire)
    }

    /// `false` while the store refuses what sharing takes: an ACL user without `EVAL` (every
    /// write is a script), without `PUBLISH` on the namespace's channel, or without write
    /// access to the namespace's keys. Checked at every (re)connection, by a script that
    /// deletes a key no circuit uses and publishes a message no replica acts on, and by every
    /// write; while refused, the check runs again every second, so an ACL fixed meanwhile is
    /// seen within a second or two. A `WARN` (target `breaker::fleet`) gives the store's
    /// error. `true` before the first check.
    pub fn can_publish(&self) -> bool {
        self.0.publishing.load(Ordering::Acquire)
    }

    /// Openings this replica wrote that the store took but refused to announce (an ACL user
    /// without `PUBLISH`: Lua does not roll back the write). The other replicas learn of them
    /// only when they resync (a reconnection, a start), not when they are made; each is also
    /// counted in [`dropped`](Self::dropped).
    pub fn unannounced(&self) -> u64 {
        self.0.unannounced.load(Ordering::Relaxed)
    }

    /// Local changes not shared because the queue was full (or the task gone), because the
    /// store failed while writing them, or because it refused them (see
    /// [`can_publish`](Self::can_publish)).
    pub fn dropped(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }

    /// Local changes written to the store.
    pub fn published(&self) -> u64 {
        self.0.published.load(Ordering::Relaxed)
    }

    /// Other replicas' facts applied to this replica (at start, on messages and on resyncs).
    pub fn applied(&self) -> u64 {
        self.0.applied.load(Ordering::Relaxed)
    }

    /// Connections that failed or were lost (each one a degraded spell, or part of one).
    pub fn failures(&self) -> u64 {
        self.0.failures.load(Ordering::Relaxed)
    }

    /// Evidence reports written to the store: one per circuit (a tenant's, or a provider's
    /// pooled window) per write, so that the fleet trips on the fleet's failures (see
    /// `RedisFleetBuilder::pool_evidence`). None while every circuit is healthy and clean.
    ///
    /// ```no_run
    /// # mod breaker { pub mod fleet { pub use breaker_redis::*; } }
    /// use breaker::fleet::RedisFleet;
    ///
    /// # async fn run() -> Result<(), breaker::fleet::FleetError> {
    /// let health = RedisFleet::builder("redis://127.0.0.1/").build().await?.health();
    /// println!(
    ///     "{} reports, {} failures not pooled, {} circuits watched",
    ///     health.evidence_reports(),
    ///     health.evidence_dropped(),
    ///     health.watched()
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub fn evidence_reports(&self) -> u64 {
        self.0.evidence.reports.load(Ordering::Relaxed)
    }

    /// Closed circuits' failures not pooled with the fleet: the queue to the background task was
    /// full (it is behind), or it already watched as many circuits as it may (65,536 that
    /// failed in the last 10 s, as when 100,000 tenants fail while the store is down). Each
    /// still counts on this replica's own circuit, which trips on it alone if it must.
    pub fn evidence_dropped(&self) -> u64 {
        self.0.evidence.dropped.load(Ordering::Relaxed)
    }

    /// Circuits whose evidence this replica watches now: tenant circuits that failed in the
    /// last 10 s while closed, and the providers of those tenants (for their provider-wide
    /// circuits' pooled windows; a provider without one is let go at the next write). Bounded
    /// (65,536 tenant circuits at most), it falls back to 0 once they recover; as of the
    /// task's last merge or look (every 100 ms while any is watched).
    pub fn watched(&self) -> u64 {
        self.0.evidence.watched.load(Ordering::Relaxed)
    }
}

/// With feature `serde`: the snapshot `Debug` shows, for an admin endpoint beside the registry's
/// ([`Registry::snapshot`](breaker_core::Registry::snapshot)):
/// `{"connected":true,"can_publish":true,"dropped":0,"published":3,"applied":5,"failures":0,"unannounced":0,"evidence_reports":0,"evidence_dropped":0,"watched":0}`.
#[cfg(feature = "serde")]
impl serde::Serialize for FleetHealth {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("FleetHealth", 10)?;
        s.serialize_field("connected", &self.is_connected())?;
        s.serialize_field("can_publish", &self.can_publish())?;
        s.serialize_field("dropped", &self.dropped())?;
        s.serialize_field("published", &self.published())?;
        s.serialize_field("applied", &self.applied())?;
        s.serialize_field("failures", &self.failures())?;
        s.serialize_field("unannounced", &self.unannounced())?;
        s.serialize_field("evidence_reports", &self.evidence_reports())?;
        s.serialize_field("evidence_dropped", &self.evidence_dropped())?;
        s.serialize_field("watched", &self.watched())?;
        s.end()
    }
}

impl fmt::Debug for FleetHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetHealth")
            .field("connected", &self.is_connected())
            .field("can_publish", &self.can_publish())
            .field("dropped", &self.dropped())
            .field("published", &self.published())
            .field("applied", &self.applied())
            .field("failures", &self.failures())
            .field("unannounced", &self.unannounced())
            .field("evidence_reports", &self.evidence_reports())
            .field("evidence_dropped", &self.evidence_dropped())
            .field("watched", &self.watched())
            .finish()
    }
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::*;

    /// `FleetHealth` was not `Serialize` (issue 25): an admin endpoint serving the registry's
    /// snapshot had to copy it field by field.
    #[test]
    fn health_serializes_as_the_snapshot_debug_shows() {
        let counter = |n| AtomicU64::new(n);
        let health = FleetHealth(Arc::new(Health {
            connected: AtomicBool::new(true),
            publishing: AtomicBool::new(true),
            unannounced: counter(1),
            dropped: counter(2),
            published: counter(3),
            applied: counter(4),
            failures: counter(5),
            evidence: EvidenceCounts {
                reports: counter(6),
                dropped: counter(7),
                watched: counter(8),
            },
            namespace: "checkout".into(),
        }));
        assert_eq!(
            serde_json::to_string(&health).unwrap(),
            r#"{"connected":true,"can_publish":true,"dropped":2,"published":3,"applied":4,"failures":5,"unannounced":1,"evidence_reports":6,"evidence_dropped":7,"watched":8}"#
        );
    }
}
