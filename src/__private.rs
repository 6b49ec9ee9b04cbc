//! What `#[circuit_breaker]` expands to. Not a public API: only the macro of the same version
//! (pinned exactly) may use it, and it may change in any release.
//!
//! Everything that needs a type is done here through traits, not by the macro through syntax, so
//! that aliases such as `io::Result<T>` work and a wrong type meets a message written for humans.

pub use core::option::Option;
pub use std::sync::LazyLock;
pub use std::time::Duration;

pub use breaker_core::{
    CircuitOpen, Classify, Config, Outcome, Permit, ProviderCache, Registry, Window, DEFAULT_TENANT,
};

/// `#[circuit_breaker(stream)]`.
#[cfg(feature = "stream")]
#[path = "__private/stream.rs"]
pub mod stream;
/// `#[circuit_breaker(stream)]` without the feature: a clear error.
#[cfg(not(feature = "stream"))]
#[path = "__private/no_stream.rs"]
pub mod stream;

/// The values `tenant = ..` accepts: anything that is `AsRef<str>`.
#[diagnostic::on_unimplemented(
    message = "the `tenant` of `#[circuit_breaker]` must be a string (`AsRef<str>`), not `{Self}`",
    label = "not usable as a tenant name",
    note = "pass something like `self.tenant.as_str()`, `&tenant_id` or `tenant.to_string()`"
)]
pub trait TenantKey {
    /// The tenant's name.
    fn tenant_key(&self) -> &str;
}

impl<T: AsRef<str> + ?Sized> TenantKey for T {
    #[inline]
    fn tenant_key(&self) -> &str {
        self.as_ref()
    }
}

/// Takes a permit from the (provider, tenant) circuit of `registry`.
#[inline]
pub fn acquire<T: TenantKey + ?Sized>(
    cache: &ProviderCache,
    registry: &Registry,
    provider: &str,
    tenant: &T,
    site: Option<&'static Config>,
) -> Result<Permit, CircuitOpen> {
    registry.acquire_cached(cache, provider, tenant.tenant_key(), site)
}

/// The return types `#[circuit_breaker]` accepts: `Result<T, E>`, under any alias.
#[diagnostic::on_unimplemented(
    message = "`#[circuit_breaker]` functions must return `Result<T, E>`, not `{Self}`",
    label = "not a `Result`",
    note = "the circuit counts `Ok` and `Err` outcomes, and a rejected call returns `Err(E::from(CircuitOpen))`"
)]
pub trait BreakerResult {
    /// `T`.
    type Value;
    /// `E`.
    type Error;
    /// The value as a plain `Result`.
    fn as_result(&self) -> &Result<Self::Value, Self::Error>;
    /// `Err(e)`.
    fn from_err(e: Self::Error) -> Self;
}

impl<T, E> BreakerResult for Result<T, E> {
    type Value = T;
    type Error = E;
    #[inline]
    fn as_result(&self) -> &Result<T, E> {
        self
    }
    #[inline]
    fn from_err(e: E) -> Self {
        Err(e)
    }
}

/// Error types that can carry a rejection.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot hold the `CircuitOpen` rejection of `#[circuit_breaker]`",
    label = "this error type must be able to hold a `breaker::CircuitOpen`",
    note = "if `{Self}` is a type of your own crate, add `impl From<breaker::CircuitOpen> for {Self}`",
    note = "if it comes from another crate (`reqwest::Error`, say: the orphan rule forbids that impl), return an error of your own that wraps both: `enum CallError {{ Open(breaker::CircuitOpen), Upstream({Self}) }}`",
    note = "with `impl From<breaker::CircuitOpen> for CallError` and `impl From<{Self}> for CallError` (so `?` still works), and `Result<T, CallError>` as the return type",
    note = "or give the attribute a `fallback = ..` that answers rejected calls, and keep `{Self}`"
)]
pub trait FromCircuitOpen {
    /// Wraps the rejection.
    fn from_circuit_open(open: CircuitOpen) -> Self;
}

impl<E: From<CircuitOpen>> FromCircuitOpen for E {
    #[inline]
    fn from_circuit_open(open: CircuitOpen) -> Self {
        E::from(open)
    }
}

/// What a rejected call returns without a fallback: `Err(E::from(open))`.
#[inline]
pub fn reject<R>(open: CircuitOpen) -> R
where
    R: BreakerResult,
    R::Error: FromCircuitOpen,
{
    R::from_err(FromCircuitOpen::from_circuit_open(open))
}

/// Runs a sync function's body. Taking the closure as `FnOnce` lets the body move out of, and
/// return borrows through, the arguments it captured, as the function itself could.
#[inline(always)]
pub fn call_once<R>(body: impl FnOnce() -> R) -> R {
    body()
}

/// Checks the return type where nothing else does (a site with a `fallback` never calls
/// [`reject`]), so a wrong type is reported exactly once.
#[inline(always)]
pub fn returns_result<R: BreakerResult>(_: &R) {}

/// Classification by autoref specialisation: `(&&&&&Classifier(&ret)).__breaker_outcome()` finds
/// [`ViaBoth`] when the result is a `Result<T, E>` with `T: Classify` and `E: Classify`,
/// [`ViaClassify`] when only `E: Classify`, [`ViaOk`] when only `T: Classify` (an
/// `Ok(response)` with a 503 is the provider's failure, not a success), else [`ViaResult`] for
/// any other `Result`, so no bound beyond `From<CircuitOpen>` is demanded of `E`. [`ViaAny`]
/// only exists so that a non-`Result` return type is reported once, by the [`BreakerResult`]
/// bound, and not a second time here.
pub struct Classifier<'a, R>(pub &'a R);

/// `Result<T: Classify, E: Classify>`: `Ok(v)` is `v.classify()`, `Err(e)` is `e.classify()`.
pub trait ViaBoth {
    /// The outcome of the call.
    fn __breaker_outcome(&self) -> Outcome;
}

impl<T: Classify, E: Classify> ViaBoth for &&&&Classifier<'_, Result<T, E>> {
    #[inline]
    fn __breaker_outcome(&self) -> Outcome {
        match self.0 {
            Ok(v) => v.classify(),
            Err(e) => e.classify(),
        }
    }
}

/// `Result<T, E: Classify>`: `Ok` is a success, `Err(e)` is `e.classify()`.
pub trait ViaClassify {
    /// The outcome of the call.
    fn __breaker_outcome(&self) -> Outcome;
}

impl<T, E: Classify> ViaClassify for &&&Classifier<'_, Result<T, E>> {
    #[inline]
    fn __breaker_outcome(&self) -> Outcome {
        match self.0 {
            Ok(_) => Outcome::Success,
            Err(e) => e.classify(),
        }
    }
}

/// `Result<T: Classify, E>`: `Ok(v)` is `v.classify()`, every `Err` a failure.
pub trait ViaOk {
    /// The outcome of the call.
    fn __breaker_outcome(&self) -> Outcome;
}

impl<T: Classify, E> ViaOk for &&Classifier<'_, Result<T, E>> {
    #[inline]
    fn __breaker_outcome(&self) -> Outcome {
        match self.0 {
            Ok(v) => v.classify(),
            Err(_) => Outcome::Failure,
        }
    }
}

/// Any `Result`: `Ok` is a success, every `Err` a failure.
pub trait ViaResult {
    /// The outcome of the call.
    fn __breaker_outcome(&self) -> Outcome;
}

impl<T, E> ViaResult for &Classifier<'_, Result<T, E>> {
    #[inline]
    fn __breaker_outcome(&self) -> Outcome {
        match self.0 {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

/// Not a `Result`: rejected at compile time by the [`BreakerResult`] bound elsewhere in the
/// expansion; never runs.
pub trait ViaAny {
    /// The outcome of the call.
    fn __breaker_outcome(&self) -> Outcome;
}

impl<R> ViaAny for Classifier<'_, R> {
    #[inline]
    fn __breaker_outcome(&self) -> Outcome {
        Outcome::Ignored
    }
}
