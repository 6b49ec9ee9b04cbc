//! Circuits shared by every replica of a service: what one replica's circuit learns (it opened,
//! for how long, at which backoff level; it closed again), every replica applies, with no store
//! traffic on the call path.
//!
//! The extension point ([`Fleet`], [`FleetLink`], [`Change`]) is always here; with the `redis`
//! feature, [`RedisFleet`] implements it on Redis or Valkey (with `redis-tls`, over TLS:
//! `rediss://` URLs, a private CA, client certificates):
//!
//! ```no_run
//! # #[cfg(feature = "redis")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use breaker::Registry;
//!
//! let fleet = breaker::fleet::RedisFleet::builder("redis://127.0.0.1:6379/")
//!     .namespace("checkout") // key prefix: replicas of one service share it, others do not
//!     .build()
//!     .await?; // Err for an invalid URL or config; an unreachable store is a degraded start
//! // The global registry: `#[circuit_breaker]` sites without `registry = ..` use it.
//! let registry = Registry::builder().fleet(fleet).install_global()?;
//! # let _ = registry; Ok(()) }
//! ```
//!
//! With the `redis-cluster` feature, the same fleet runs on a Redis or Valkey Cluster, reached
//! through some of its nodes (every key of one circuit lives in one hash slot):
//!
//! ```no_run
//! # #[cfg(feature = "redis-cluster")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use breaker::fleet::RedisFleet;
//! use breaker::Registry;
//!
//! let fleet = RedisFleet::cluster_builder(["redis://10.0.0.1:6379/", "redis://10.0.0.2:6379/"])
//!     .namespace("checkout")
//!     .build()
//!     .await?; // Err for an invalid seed URL or config; no seed reachable is a degraded start
//! // The global registry: `#[circuit_breaker]` sites without `registry = ..` use it.
//! let registry = Registry::builder().fleet(fleet).install_global()?;
//! # let _ = registry; Ok(()) }
//! ```

#[doc(inline)]
pub use breaker_core::fleet::*;

#[cfg(feature = "redis")]
#[doc(inline)]
pub use breaker_redis::{
    FleetCircuit, FleetError, FleetHealth, FleetInspector, RedisFleet, RedisFleetBuilder,
    MAX_INSPECTED,
};
