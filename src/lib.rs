//! Keyed, lock-free circuit breakers for services that call many providers (LLM APIs, HTTP
//! backends) on behalf of many tenants: one circuit per (provider, tenant), created on first use,
//! so one tenant's failing provider never affects another tenant.
//!
//! ```toml
//! [dependencies]
//! breaker = { version = "0.1", features = ["reqwest", "tracing"] } # features: see below
//! ```
//!
//! # Guard a function
//!
//! [`#[circuit_breaker]`](macro@circuit_breaker) takes a permit from the circuit of (provider,
//! tenant) before each call, runs the body, and records how it went. While the circuit is open the
//! body does not run and the call returns `Err(E::from(CircuitOpen))` at once; the rejection says
//! when a probe may pass ([`CircuitOpen::retry_after`]).
//!
//! ```
//! use breaker::{circuit_breaker, CircuitOpen, Classify, ErrorClass, Outcome};
//!
//! #[derive(Debug)]
//! enum ApiError {
//!     Open(CircuitOpen),
//!     Status(u16),
//! }
//!
//! // Required: what a rejected call returns.
//! impl From<CircuitOpen> for ApiError {
//!     fn from(open: CircuitOpen) -> Self {
//!         ApiError::Open(open)
//!     }
//! }
//!
//! // Optional: only the provider's faults count (a 400 is the caller's); else every `Err` fails.
//! impl Classify for ApiError {
//!     fn classify(&self) -> Outcome {
//!         match self {
//!             ApiError::Open(_) => Outcome::Ignored,
//!             ApiError::Status(code) => ErrorClass::from_status(*code).outcome(),
//!         }
//!     }
//! }
//!
//! #[circuit_breaker(provider = "anthropic", tenant = tenant, consecutive_failures = 3, open_for = "30s")]
//! async fn complete(tenant: &str, prompt: &str) -> Result<String, ApiError> {
//!     // ... call the provider ...
//!     Ok(format!("{tenant}: {prompt}"))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! match complete("acme", "hello").await {
//!     Ok(answer) => println!("{answer}"),
//!     Err(ApiError::Open(open)) => println!("failing fast; retry after {:?}", open.retry_after()),
//!     Err(other) => println!("the provider failed: {other:?}"),
//! }
//! # }
//! ```
//!
//! # The registry
//!
//! Call sites without `registry = ..` share [`Registry::global()`]. Operations retune a provider
//! at run time ([`Registry::configure`], or a config file with the `serde` feature), look at
//! circuits ([`Registry::snapshot`]) and switch them by hand; listeners see every transition.
//!
//! ```
//! use std::time::Duration;
//! use breaker::{Config, Event, Registry, State, Window};
//!
//! let registry = Registry::builder()
//!     .listener(|event: &Event<'_>| {
//!         if let Event::Transition { provider, tenant, to, .. } = event {
//!             eprintln!("{provider}/{tenant} is now {to}");
//!         }
//!     })
//!     .build();
//! registry.configure(
//!     "anthropic",
//!     Config::builder()
//!         .failure_rate(0.5, Window::Calls(50))
//!         .open_for(Duration::from_secs(30))
//!         .build()?,
//! );
//!
//! // Without the attribute: take a permit, make the call, report it.
//! match registry.circuit("anthropic", "acme").try_acquire() {
//!     Ok(permit) => permit.failure(),
//!     Err(open) => eprintln!("rejected: {open}"),
//! }
//! assert_eq!(registry.circuit("anthropic", "acme").state(), State::Closed);
//! # Ok::<(), breaker::ConfigError>(())
//! ```
//!
//! # Where next
//!
//! - [`macro@circuit_breaker`]: every argument (`fallback`, `classify`, `registry`, policies).
//! - [`Config`] and [`ConfigBuilder`]: the policies and their defaults; invalid values are a
//!   [`ConfigError`] naming the field.
//! - [`Classify`], [`ErrorClass`]: what counts as the provider's failure.
//! - [`retry_after_hint`]: the rejection's retry-after for retry crates.
//! - [`ManualClock`]: deterministic tests of code under a breaker.
//! - Features (none by default): `tokio` (`TokioClock` follows paused time), `serde` (config
//!   files, snapshots as JSON), `io`, `http`, `reqwest` (0.13; `reqwest-0-12` for 0.12): those
//!   clients' errors implement [`Classify`]; `tracing`, `metrics` (listeners in `breaker::tracing`
//!   and `breaker::metrics`), `tower` (`breaker::tower::CircuitBreakerLayer`), `redis`
//!   (`breaker::fleet::RedisFleet`: replicas share circuit openings through Redis or Valkey),
//!   `redis-tls` (the same over `rediss://`), `redis-cluster` (the same on a Redis or Valkey
//!   Cluster), `dashboard` (`breaker::dashboard::router`: a live page of the circuits, with its
//!   JSON API, for an axum app).
//! - Examples: `cargo run --example quickstart` (also `fallback`, `classify`, `tenant_from_self`,
//!   `async_trait`), and the README.

#[doc(inline)]
pub use breaker_core::*;

#[doc(inline)]
pub use breaker_macros::circuit_breaker;

#[doc(hidden)]
pub mod __private;

#[cfg(feature = "dashboard")]
pub mod dashboard;
pub mod fleet;

#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(any(feature = "tower", feature = "dashboard"))]
mod registry_ref;
#[cfg(feature = "tower")]
pub mod tower;
#[cfg(feature = "tracing")]
pub mod tracing;

// The README's examples use the suite's dependencies (backon, tower, toml): they are doctests of
// `suite/`.

/// The examples of `#[circuit_breaker]`'s documentation, which lives in `breaker-macros` but can
/// only compile against this facade.
#[cfg(doctest)]
#[doc = include_str!("../breaker-macros/src/circuit_breaker.md")]
struct CircuitBreakerDocs;
