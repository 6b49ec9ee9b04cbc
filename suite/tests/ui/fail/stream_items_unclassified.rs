//! A stream whose error items do not implement `Classify` and no `classify_item`: one error that
//! says how to classify them.
use breaker::stream::Stream;
use breaker::{circuit_breaker, CircuitOpen};

#[derive(Debug)]
pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

pub struct Opaque;

pub struct Tokens;
impl Stream for Tokens {
    type Item = Result<String, Opaque>;
    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(None)
    }
}

#[circuit_breaker(provider = "p", stream)]
pub fn tokens() -> Result<impl Stream<Item = Result<String, Opaque>>, Error> {
    Ok(Tokens)
}

fn main() {}
