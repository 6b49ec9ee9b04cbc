//! Runtime of the [`breaker`](https://docs.rs/breaker) crate: a lock-free circuit state machine,
//! sliding windows, compounding backoff, error classification and a registry of circuits keyed by
//! (provider, tenant).
//!
//! Users depend on `breaker`, which re-exports everything here.
//!
//! ```
//! # use breaker_core as breaker;
//! use breaker::{Registry, Config};
//!
//! let registry = Registry::builder().default_config(Config::default()).build();
//! let circuit = registry.circuit("anthropic", "tenant-a");
//! match circuit.try_acquire() {
//!     Ok(permit) => permit.success(),
//!     Err(open) => println!("rejected: {open}"),
//! }
//! ```

mod backoff;
mod circuit;
mod classify;
#[cfg(any(feature = "io", feature = "http", feature = "reqwest"))]
mod client_errors;
mod clock;
mod config;
mod contain;
mod duration;
mod error;
mod event;
pub mod fleet;
mod flight;
mod http_response;
mod name;
mod once_box;
mod provider;
mod registry;
#[cfg(feature = "reqwest-0-12")]
mod reqwest_0_12;
#[cfg(feature = "serde")]
mod serde_impl;
mod state;
#[cfg(feature = "stream")]
pub mod stream;
mod stripe;
mod sync;
mod table;
mod window;

pub use circuit::{Circuit, Metrics, Permit, ScopedPermit};
pub use classify::{Classify, ErrorClass, Outcome};
#[cfg(feature = "http")]
pub use client_errors::retry_after_header;
#[cfg(feature = "tokio")]
pub use clock::TokioClock;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    Config, ConfigBuilder, ConfigError, Window, MAX_DURATION, MAX_IN_FLIGHT, MAX_PROBES,
    MAX_WINDOW_CALLS,
};
pub use duration::{parse_duration, DURATION_FORMAT};
pub use error::{retry_after_hint, CircuitOpen};
pub use event::{Event, Reason, WideEvidence};
pub use provider::settings::{
    ProviderConfig, ProviderWide, ProviderWideBuilder, MAX_DISTINCT_TENANTS,
};
pub use provider::wide::PROVIDER_WIDE_TENANT;
pub use registry::builder::{GlobalAlreadySet, RegistryBuilder};
pub use registry::cache::ProviderCache;
pub use registry::{CircuitSnapshot, Registry, DEFAULT_TENANT};
pub use state::{ParseStateError, State};

/// [`State`] under a name that does not clash with `axum::extract::State` (or any other `State`
/// a web framework brings into scope): `use breaker::CircuitState;`.
///
/// ```
/// # use breaker_core as breaker;
/// use breaker::{Circuit, CircuitState, Config};
///
/// assert_eq!(Circuit::new(Config::default()).state(), CircuitState::Closed);
/// ```
pub type CircuitState = State;

/// Not a public API: how many providers of call sites without `registry = ..` met a registry with
/// a fleet that was never installed as the global one (warned once), for the regression tests.
#[doc(hidden)]
pub fn __fleet_unused_warnings() -> usize {
    registry::builder::fleet_unused_warnings()
}

/// Not a public API: how many unlinked circuits and arrays wait to be freed, for the
/// regression tests of reclamation's bounds.
#[doc(hidden)]
pub fn __pending_frees() -> usize {
    table::epoch::pending()
}
