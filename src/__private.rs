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
#[inline(always)]
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

/// The deadline of an async call passed (see [`bounded`]).
pub struct Late;

/// `call` raced against the permit's deadline ([`Permit::deadline`]), when its circuit's config
/// sets one and a tokio runtime (the `tokio` feature) can time it; otherwise `call` as is, its
/// output in `Ok`.
///
/// One future of its own, built in place where the annotated function awaits it, rather than a
/// `match` between awaiting the call and awaiting a timeout: with two await points the
/// function's future kept the call in a local and moved it into whichever was awaited, and its
/// drop glue grew (measured with callgrind: 38 instructions more a call, 201 → 239, on calls
/// without a deadline). The timer is made, boxed, on the first poll of a call with a deadline
/// only.
#[inline(always)]
pub fn bounded<F: core::future::Future>(permit: &Permit, call: F) -> Bounded<F> {
    #[cfg(not(feature = "tokio"))]
    let _ = permit;
    Bounded {
        call,
        #[cfg(feature = "tokio")]
        deadline: permit.deadline(),
        #[cfg(feature = "tokio")]
        timer: DeadlineTimer(None),
    }
}

/// See [`bounded`].
#[cfg(not(feature = "tokio"))]
pub struct Bounded<F> {
    call: F,
}

#[cfg(feature = "tokio")]
pin_project_lite::pin_project! {
    /// See [`bounded`].
    pub struct Bounded<F> {
        #[pin]
        call: F,
        deadline: Option<Duration>,
        timer: DeadlineTimer,
    }
}

/// The deadline's timer of a [`Bounded`] call, made on its first poll. Its own `Drop`, small
/// and inlined, with the timer's drop out of line: a call without a deadline (no timer) then
/// pays a test, not a call into the drop glue of tokio's `Sleep` (measured: 18 instructions a
/// call).
#[cfg(feature = "tokio")]
pub struct DeadlineTimer(Option<core::pin::Pin<Box<tokio::time::Sleep>>>);

#[cfg(feature = "tokio")]
impl Drop for DeadlineTimer {
    #[inline(always)]
    fn drop(&mut self) {
        if self.0.is_some() {
            drop_timer(self.0.take());
        }
    }
}

#[cfg(feature = "tokio")]
#[cold]
#[inline(never)]
fn drop_timer(timer: Option<core::pin::Pin<Box<tokio::time::Sleep>>>) {
    drop(timer);
}

impl<F: core::future::Future> core::future::Future for Bounded<F> {
    type Output = Result<F::Output, Late>;

    #[cfg(not(feature = "tokio"))]
    #[inline]
    fn poll(
        self: core::pin::Pin<&mut Self>,
        cx: &mut core::task::Context<'_>,
    ) -> core::task::Poll<Self::Output> {
        // SAFETY: `call` is structurally pinned: it is never moved out of a pinned `Bounded`
        // (no method takes it by value or `&mut` outside this projection), `Bounded` has no
        // `Drop` of its own and is `Unpin` only when `F` is.
        let call = unsafe { self.map_unchecked_mut(|b| &mut b.call) };
        call.poll(cx).map(Ok)
    }

    #[cfg(feature = "tokio")]
    #[inline]
    fn poll(
        self: core::pin::Pin<&mut Self>,
        cx: &mut core::task::Context<'_>,
    ) -> core::task::Poll<Self::Output> {
        let this = self.project();
        if let Some(deadline) = this.deadline.take() {
            // First poll of a call with a deadline. On another executor than tokio's there is no
            // timer to run it on (tokio would panic with "no reactor running"): the call then
            // runs unbounded, as without the `tokio` feature.
            if tokio::runtime::Handle::try_current().is_ok() {
                this.timer.0 = Some(Box::pin(tokio::time::sleep(deadline)));
            }
        }
        if let core::task::Poll::Ready(out) = this.call.poll(cx) {
            return core::task::Poll::Ready(Ok(out));
        }
        if let Some(timer) = this.timer.0.as_mut() {
            if timer.as_mut().poll(cx).is_ready() {
                return core::task::Poll::Ready(Err(Late));
            }
        }
        core::task::Poll::Pending
    }
}

/// What a call whose deadline passed returns: the timeout recorded as a failure, and
/// `Err(E::from(open))` with `open.is_timeout()`.
#[cold]
#[inline(never)]
pub fn timed_out<R>(permit: Permit) -> R
where
    R: BreakerResult,
    R::Error: FromCircuitOpen,
{
    reject(permit.time_out())
}

/// The timer `timeout = ..` needs: implemented only with the `tokio` feature, so a site that asks
/// for a deadline without it is one error at its `timeout` argument.
#[diagnostic::on_unimplemented(
    message = "`timeout` needs the `tokio` feature of `breaker`: the deadline runs on tokio's timer",
    label = "this deadline cannot be timed without it",
    note = "enable it: `breaker = {{ version = \"..\", features = [\"tokio\"] }}`"
)]
pub trait TimerAvailable {}

/// The timer of `timeout = ..` (see [`TimerAvailable`]).
pub struct Timer;

#[cfg(feature = "tokio")]
impl TimerAvailable for Timer {}

/// Checks that `T`, the timer, is available (see [`TimerAvailable`]).
#[inline(always)]
pub fn needs_timer<T: TimerAvailable>() {}

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
