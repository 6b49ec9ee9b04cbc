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
    pub(crate) connected: AtomicBool,
    pub(crate) dropped: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) applied: AtomicU64,
    pub(crate) failures: AtomicU64,
    /// The `namespace` label of the fleet's metrics (feature `metrics`).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) namespace: String,
}

/// What [`Health::count`] counts.
#[derive(Clone, Copy)]
pub(crate) enum Count {
    Dropped,
    Published,
    Applied,
    Failure,
}

impl Health {
    /// Counts one `what`, in [`FleetHealth`] and, with feature `metrics`, as
    /// `breaker_fleet_changes_dropped_total`, `breaker_fleet_changes_published_total`,
    /// `breaker_fleet_facts_applied_total` or `breaker_fleet_store_failures_total` {namespace}.
    /// Returns the new count.
    pub(crate) fn count(&self, what: Count) -> u64 {
        let (counter, _name) = match what {
            Count::Dropped => (&self.dropped, "breaker_fleet_changes_dropped_total"),
            Count::Published => (&self.published, "breaker_fleet_changes_published_total"),
            Count::Applied => (&self.applied, "breaker_fleet_facts_applied_total"),
            Count::Failure => (&self.failures, "breaker_fleet_store_failures_total"),
        };
        #[cfg(feature = "metrics")]
        metrics::counter!(_name, "namespace" => self.namespace.clone()).increment(1);
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Records whether the fleet is connected (with feature `metrics`, the gauge
    /// `breaker_fleet_connected` {namespace}, 1 or 0); returns whether it was.
    pub(crate) fn set_connected(&self, connected: bool) -> bool {
        #[cfg(feature = "metrics")]
        metrics::gauge!("breaker_fleet_connected", "namespace" => self.namespace.clone())
            .set(if connected { 1.0 } else { 0.0 });
        self.connected.swap(connected, Ordering::AcqRel)
    }
}

impl FleetHealth {
    /// Whether the fleet is connected and resynced. `false` while degraded: circuits then run
    /// on what this replica sees alone.
    pub fn is_connected(&self) -> bool {
        self.0.connected.load(Ordering::Acquire)
    }

    /// Local changes not shared because the queue was full (or the task gone), or because the
    /// store failed while writing them.
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
}

impl fmt::Debug for FleetHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetHealth")
            .field("connected", &self.is_connected())
            .field("dropped", &self.dropped())
            .field("published", &self.published())
            .field("applied", &self.applied())
            .field("failures", &self.failures())
            .finish()
    }
}
