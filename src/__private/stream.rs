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

/// The `Ok` of a `#[circuit_breaker(stream)]` function that returns `impl Stream`, as its body
/// returns it.
#[diagnostic::on_unimplemented(
    message = "`#[circuit_breaker(stream)]` needs a function whose `Ok` is a `Stream`, not `{Self}`",
    label = "not a stream",
    note = "return `Result<impl Stream<Item = Result<T, E2>>, E>` or `Result<Pin<Box<dyn Stream<Item = Result<T, E2>> + Send + 'a>>, E>`",
    note = "or remove `stream`: the call is then judged when it returns"
)]
pub trait GuardedStream<C> {}

impl<S: Stream, C: ClassifyItem<S::Item>> GuardedStream<C> for S {}

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
/// (`futures::stream::BoxStream<'a, I>` is one), around the body's stream `S`.
#[diagnostic::on_unimplemented(
    message = "`#[circuit_breaker(stream)]` needs a function whose `Ok` is a `Stream`, not `{Self}`",
    label = "not `impl Stream<..>` nor `Pin<Box<dyn Stream<..>>>`",
    note = "return `Result<impl Stream<Item = Result<T, E2>>, E>` or `Result<Pin<Box<dyn Stream<Item = Result<T, E2>> + Send + 'a>>, E>`: the guard is boxed again around your stream",
    note = "or remove `stream`: the call is then judged when it returns"
)]
pub trait BoxedStream<S, C> {
    /// `stream`, guarded by `permit` and boxed.
    fn boxed(permit: Permit, stream: S, classify: C) -> Self;
}

impl<'a, S, C, I> BoxedStream<S, C> for Pin<Box<dyn Stream<Item = I> + Send + 'a>>
where
    S: Stream<Item = I> + Send + 'a,
    C: ClassifyItem<I> + Send + 'a,
{
    #[inline]
    fn boxed(permit: Permit, stream: S, classify: C) -> Self {
        Box::pin(Guarded::with_classifier(permit, stream, classify))
    }
}

impl<'a, S, C, I> BoxedStream<S, C> for Pin<Box<dyn Stream<Item = I> + Send + Sync + 'a>>
where
    S: Stream<Item = I> + Send + Sync + 'a,
    C: ClassifyItem<I> + Send + Sync + 'a,
{
    #[inline]
    fn boxed(permit: Permit, stream: S, classify: C) -> Self {
        Box::pin(Guarded::with_classifier(permit, stream, classify))
    }
}

impl<'a, S, C, I> BoxedStream<S, C> for Pin<Box<dyn Stream<Item = I> + 'a>>
where
    S: Stream<Item = I> + 'a,
    C: ClassifyItem<I> + 'a,
{
    #[inline]
    fn boxed(permit: Permit, stream: S, classify: C) -> Self {
        Box::pin(Guarded::with_classifier(permit, stream, classify))
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
    R: BoxedStream<S, C>,
{
    match ret {
        Ok(stream) => Ok(R::boxed(permit, stream, classify)),
        Err(e) => {
            permit.record(err.unwrap_or(Outcome::Failure));
            Err(e)
        }
    }
}
