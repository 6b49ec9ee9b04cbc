//! What one evidence report writes for one circuit (a tenant circuit's: `evidence.rs`; a
//! provider circuit's pooled window: `wide.rs`), and how long evidence counts.

use std::time::Duration;

/// How long a circuit is watched after its last failure: evidence older than this is never
/// written (a store that comes back after longer gets no burst of stale reports).
pub(crate) const WATCH_FOR: Duration = Duration::from_secs(10);
/// How long a replica's report counts in the store (the evidence key's TTL, refreshed by each
/// report): a streak or a count window's gauges older than this are no evidence.
pub(crate) const EVIDENCE_TTL: Duration = Duration::from_secs(30);

/// What one report writes for one circuit (a tenant's, or a provider circuit's: `wide.rs`).
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) provider: &'static str,
    pub(crate) tenant: Box<str>,
    pub(crate) streak: u32,
    pub(crate) success: bool,
    pub(crate) calls: u32,
    pub(crate) failures: u32,
    /// Time since the first failure it counts.
    pub(crate) age: Duration,
    /// The consecutive-failures threshold (0: none).
    pub(crate) threshold: u32,
    /// The failure-rate threshold (0: none).
    pub(crate) rate: f64,
    pub(crate) minimum_calls: u32,
    /// How long the window's gauges count in the store: a time window's length, else as long
    /// as the report.
    pub(crate) window_ms: u64,
    /// The open period of a trip.
    pub(crate) open_for: Duration,
    /// The hashes of the distinct failing tenants, comma-separated (a provider circuit's; empty
    /// for a tenant's).
    pub(crate) tenants: String,
    /// The fewest distinct failing tenants for a trip (0: no such condition).
    pub(crate) distinct: u32,
}
