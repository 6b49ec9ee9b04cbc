//! `#[circuit_breaker(stream)]`'s expansion adds no warning to the user's crate, for both return
//! shapes, async and sync, with and without `classify_item` (as `warning_free.rs` for calls).
#![cfg(feature = "stream")]
#![deny(warnings, clippy::all, clippy::pedantic)]

use std::pin::Pin;

use breaker::stream::Stream;
use breaker::{circuit_breaker, CircuitOpen, Classify, Outcome};

#[derive(Debug)]
struct Error;

impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

impl Classify for Error {
    fn classify(&self) -> Outcome {
        Outcome::Failure
    }
}

struct Empty;

impl Stream for Empty {
    type Item = Result<u8, Error>;
    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(None)
    }
}

fn by_kind(_: &Error) -> Outcome {
    Outcome::Ignored
}

#[circuit_breaker(provider = "stream-lints", stream)]
async fn async_impl() -> Result<impl Stream<Item = Result<u8, Error>> + Send, Error> {
    Ok(Empty)
}

#[rustfmt::skip]
#[circuit_breaker(provider = "stream-lints", stream)]
fn sync_impl_one_line() -> Result<impl Stream<Item = Result<u8, Error>>, Error> { Ok(Empty) }

// The signatures' own length is the user's (`type_complexity`), not the expansion's.
#[allow(clippy::type_complexity)]
#[circuit_breaker(provider = "stream-lints", stream, classify_item = by_kind)]
fn sync_boxed<'a>(
    x: &'a u8,
) -> Result<Pin<Box<dyn Stream<Item = Result<u8, Error>> + Send + 'a>>, Error> {
    let _ = x;
    Ok(Box::pin(Empty))
}

#[allow(clippy::type_complexity)]
#[circuit_breaker(provider = "stream-lints", stream, probe = is_probe)]
async fn async_boxed_early_return(
    fail: bool,
) -> Result<Pin<Box<dyn Stream<Item = Result<u8, Error>> + Send>>, Error> {
    if fail || is_probe {
        return Err(Error);
    }
    Ok(Box::pin(Empty))
}

#[test]
fn every_shape_compiles_without_warnings() {
    drop(sync_impl_one_line());
    drop(sync_boxed(&1));
    drop(async_impl());
    drop(async_boxed_early_return(true));
}
