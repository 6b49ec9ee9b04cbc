//! A [`Fleet`] on Redis or Valkey: the replicas of a service share their circuits' openings, and
//! no call ever waits on the store.
//!
//! Users reach it as `breaker::fleet::RedisFleet` (feature `redis` of `breaker`).
//!
//! ```no_run
//! # mod breaker { pub use breaker_core::*; pub mod fleet { pub use breaker_redis::*; } }
//! use breaker::fleet::RedisFleet;
//! use breaker::Registry;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let fleet = RedisFleet::builder("redis://127.0.0.1:6379/")
//!     .namespace("checkout") // replicas of one service share it, other services do not
//!     .build()
//!     .await?; // Err for an invalid URL or config; an unreachable store is a degraded start
//! let health = fleet.health();
//! let registry = Registry::builder().fleet(fleet).build();
//! # let _ = (registry, health); Ok(()) }
//! ```
//!
//! # How it works
//! When a circuit opens, the thread that tripped it queues the opening (a bounded queue: when
//! full, the change is dropped and counted, never waited for; while the store is away, the latest
//! change of each circuit is kept for its return). A background task writes it as a
//! key whose TTL is the open period plus a margin, and announces it on the namespace's pub/sub
//! channel. Every other replica reads the key's remaining TTL (`PTTL`, the store's clock, never a
//! replica's wall clock) and opens its circuit for what is left of that period, at the same
//! backoff level; a replica that has no circuit for that tenant yet keeps the fact for when it
//! creates one. A replica that starts, or reconnects, scans the namespace's openings first. A
//! success after the open period deletes the key and closes the circuit everywhere.
//!
//! Closed circuits' failures are pooled too (unless `pool_evidence(false)`): behind the call,
//! the task writes the failure streak and window of each circuit that failed lately, one field
//! per replica, and a script trips the fleet when their sum reaches the circuit's thresholds,
//! so the fleet trips on the fleet's failures (README: what each policy means for a fleet, the
//! lag, the overshoot). A healthy circuit writes nothing.
//!
//! With the store gone, calls run on local circuits as if no fleet were attached; the task
//! reconnects with backoff and resyncs by itself. [`FleetHealth`], `tracing` events (target
//! `breaker::fleet`: `WARN` when degraded, `INFO` when restored) and, with feature `metrics`,
//! the gauge `breaker_fleet_connected` and counters `breaker_fleet_changes_dropped_total`,
//! `breaker_fleet_changes_published_total`, `breaker_fleet_facts_applied_total`,
//! `breaker_fleet_store_failures_total` and `breaker_fleet_openings_unannounced_total` (all
//! labelled by `namespace`) tell operators. A store that refuses this replica's writes (an ACL
//! user without `EVAL` or `PUBLISH`) is no failure: health reads not connected, and a `WARN`
//! says why.
//!
//! # TLS
//! With feature `tls` (`redis-tls` of `breaker`), `rediss://` URLs connect through rustls, with
//! the system's roots or a private CA ([`RedisFleetBuilder::tls_root_certificate`]) and
//! optionally a client certificate ([`RedisFleetBuilder::tls_client_certificate`]); the store's
//! certificate is always checked (a `#insecure` URL is refused). Unless the
//! application installed a rustls `CryptoProvider` first, `build` installs ring's as the process
//! default: rustls panics when two providers are compiled in and none is installed.
//!
//! Keys are described in the `keys` module: `breaker:v1:<namespace>:{<provider>:<tenant>}:open`,
//! every name percent-encoded.
//!
//! [`Fleet`]: breaker_core::fleet::Fleet

mod access;
mod builder;
#[cfg(feature = "cluster")]
mod cluster;
mod error;
mod evidence;
mod fleet;
mod health;
mod inspect;
mod keys;
mod known;
mod pending;
mod pool;
mod probes;
mod race;
mod receive;
mod redact;
mod report;
mod restore;
mod scripts;
mod store;
mod task;
mod timeout;
mod tls;
mod wide;

pub use builder::RedisFleetBuilder;
pub use error::FleetError;
pub use fleet::RedisFleet;
pub use health::FleetHealth;
pub use inspect::{FleetCircuit, FleetInspector, MAX_INSPECTED};
