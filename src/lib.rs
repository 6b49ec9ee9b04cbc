//! Keyed, lock-free circuit breakers for services that call many providers on behalf of many
//! tenants.
//!
//! ```
//! use breaker::{Circuit, Config, State};
//!
//! let circuit = Circuit::new(Config::default());
//! let permit = circuit.try_acquire()?;
//! permit.success();
//! assert_eq!(circuit.state(), State::Closed);
//! # Ok::<(), breaker::CircuitOpen>(())
//! ```

#[doc(inline)]
pub use breaker_core::*;

#[doc(inline)]
pub use breaker_macros::circuit_breaker;

#[doc(hidden)]
pub mod __private;

pub mod fleet;

#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "tower")]
pub mod tower;
#[cfg(feature = "tracing")]
pub mod tracing;

/// The README's examples, compiled and run by the `--all-features` doc tests of `.ci/run` (some
/// of them use the `tracing` and `metrics` features).
#[cfg(all(doctest, feature = "tracing", feature = "metrics", feature = "serde"))]
#[doc = include_str!("../README.md")]
struct ReadmeDocs;

/// The examples of `#[circuit_breaker]`'s documentation, which lives in `breaker-macros` but can
/// only compile against this facade.
#[cfg(doctest)]
#[doc = include_str!("../breaker-macros/src/circuit_breaker.md")]
struct CircuitBreakerDocs;
