//! `#[circuit_breaker(stream)]`: both return shapes, async and sync, `classify_item`, and a
//! method of an `#[async_trait]` impl; the signature as written, the future still `Send`.
use std::pin::Pin;

use breaker::stream::Stream;
use breaker::{circuit_breaker, CircuitOpen, Classify, Outcome};

#[derive(Debug)]
pub struct Error;
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

pub struct Tokens;
impl Stream for Tokens {
    type Item = Result<String, Error>;
    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(None)
    }
}

pub type BoxStream<'a, T> = Pin<Box<dyn Stream<Item = T> + Send + 'a>>;

#[circuit_breaker(provider = "p", stream, first_item_timeout = "10s", idle_timeout = "30s")]
pub async fn complete(prompt: &str) -> Result<impl Stream<Item = Result<String, Error>> + Send, Error> {
    let _ = prompt;
    Ok(Tokens)
}

#[circuit_breaker(provider = "p", stream, on_cancel = "failure")]
pub fn complete_sync<'a>(prompt: &'a str) -> Result<BoxStream<'a, Result<String, Error>>, Error> {
    let _ = prompt;
    Ok(Box::pin(Tokens))
}

pub fn by_kind(_: &Error) -> Outcome {
    Outcome::Ignored
}

#[circuit_breaker(provider = "p", stream, classify_item = by_kind)]
pub async fn classified() -> Result<Pin<Box<dyn Stream<Item = Result<String, Error>> + Send>>, Error> {
    Ok(Box::pin(Tokens))
}

#[async_trait::async_trait]
pub trait Provider {
    async fn stream(&self) -> Result<Pin<Box<dyn Stream<Item = Result<String, Error>> + Send>>, Error>;
}

pub struct Anthropic;

#[async_trait::async_trait]
impl Provider for Anthropic {
    #[circuit_breaker(provider = "anthropic", stream)]
    async fn stream(&self) -> Result<Pin<Box<dyn Stream<Item = Result<String, Error>> + Send>>, Error> {
        Ok(Box::pin(Tokens))
    }
}

fn send<T: Send>(_: T) {}

fn main() {
    send(complete("hi"));
    send(classified());
    send(Anthropic.stream());
    drop(complete_sync("hi"));
}
