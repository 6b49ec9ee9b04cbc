//! What `#[circuit_breaker(stream)]` expands to: the call's result, its `Ok` stream guarded by
//! the call's permit (judged when the stream ends), its `Err` recorded at once.
//!
//! The shapes are told apart by the macro only where syntax must (an `impl Stream` return is the
//! guard itself; any other `Ok` type is boxed again around it); everything else is checked here
//! through traits, with messages for humans.

use std::pin::Pin;

use breaker_core::stream::{ClassifyItem, Guarded, Stream};
use breaker_core::{Outcome, Permit};

pub use breaker_core::stream::ByClassify;

/// The `Ok` of a `#[circuit_breaker(stream)]` function, as its body returns it.
#[diagnostic::on_unimplemented(
    message = "`#[circuit_breaker(stream)]` needs a function whose `Ok` is a `Stream`, not `{Self}`",
    label = "not a stream",
    note = "return `Result<impl Stream<Item = Result<T, E2>>, E>` or `Result<Pin<Box<dyn Stream<Item = Result<T, E2>> + Send + 'a>>, E>`",
    note = "or remove `stream`: the call is then judged when it returns"
)]
pub trait GuardedStream<C> {
    /// The stream's items.
    type Item;
}

impl<S: Stream, C: ClassifyItem<S::Item>> GuardedStream<C> for S {
    type Item = S::Item;
}

/// `Err(e)`: records `err` (its classification) and returns it; `Ok(stream)`: the stream,
/// guarded by the permit.
#[inline]
pub fn guard<S, E, C>(
    permit: Permit,
    ret: Result<S, E>,
    err: Option<Outcome>,
    classify: C,
) -> Result<Guarded<S, C>, E>
where
    S: GuardedStream<C>,
{
    match ret {
        Ok(stream) => Ok(Guarded::with_classifier(permit, stream, classify)),
        Err(e) => {
            permit.record(err.unwrap_or(Outcome::Failure));
            Err(e)
        }
    }
}

/// The `Ok` types a guarded stream is boxed into when the function does not return
/// `impl Stream`: `Pin<Box<dyn Stream<Item = I> (+ Send) (+ Sync) + 'a>>`, under any alias
/// (`futures::stream::BoxStream<'a, I>` is one).
#[diagnostic::on_unimplemented(
    message = "`#[circuit_breaker(stream)]` cannot return its guarded stream as `{Self}`",
    label = "not `impl Stream<..>` nor `Pin<Box<dyn Stream<..>>>`",
    note = "return `Result<impl Stream<Item = Result<T, E2>>, E>` or `Result<Pin<Box<dyn Stream<Item = Result<T, E2>> + Send + 'a>>, E>`: the guard is boxed again around your stream",
    note = "or remove `stream`: the call is then judged when it returns"
)]
pub trait BoxedStream<G> {
    /// `guarded`, boxed.
    fn boxed(guarded: G) -> Self;
}

impl<'a, G, I> BoxedStream<G> for Pin<Box<dyn Stream<Item = I> + Send + 'a>>
where
    G: Stream<Item = I> + Send + 'a,
{
    #[inline]
    fn boxed(guarded: G) -> Self {
        Box::pin(guarded)
    }
}

impl<'a, G, I> BoxedStream<G> for Pin<Box<dyn Stream<Item = I> + Send + Sync + 'a>>
where
    G: Stream<Item = I> + Send + Sync + 'a,
{
    #[inline]
    fn boxed(guarded: G) -> Self {
        Box::pin(guarded)
    }
}

impl<'a, G, I> BoxedStream<G> for Pin<Box<dyn Stream<Item = I> + 'a>>
where
    G: Stream<Item = I> + 'a,
{
    #[inline]
    fn boxed(guarded: G) -> Self {
        Box::pin(guarded)
    }
}

/// [`guard`], boxed into the function's own `Ok` type `R`.
#[inline]
pub fn guard_boxed<S, E, C, R>(
    permit: Permit,
    ret: Result<S, E>,
    err: Option<Outcome>,
    classify: C,
) -> Result<R, E>
where
    S: GuardedStream<C>,
    R: BoxedStream<Guarded<S, C>>,
{
    guard(permit, ret, err, classify).map(R::boxed)
}
