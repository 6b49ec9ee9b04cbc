//! The attribute's expansion adds no warning to the user's crate, whatever the body's shape: this
//! file denies every rustc warning and clippy's pedantic group (`.ci/run`'s clippy step checks it
//! with `-D warnings`), and every function in it is annotated. A one-line body once drew
//! "unnecessary braces around block return value", which `cargo fix` could not fix.
#![deny(warnings, clippy::all, clippy::pedantic)]

use std::future::Future;
use std::sync::Arc;

use breaker::{circuit_breaker, CircuitOpen, Classify, Outcome, Registry};

#[derive(Debug, PartialEq)]
enum Error {
    Open,
    Parse,
}

impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error::Open
    }
}

impl From<std::num::ParseIntError> for Error {
    fn from(_: std::num::ParseIntError) -> Self {
        Error::Parse
    }
}

impl Classify for Error {
    fn classify(&self) -> Outcome {
        match self {
            Error::Open => Outcome::Ignored,
            Error::Parse => Outcome::Failure,
        }
    }
}

static REGISTRY: std::sync::LazyLock<Registry> = std::sync::LazyLock::new(Registry::default);

#[circuit_breaker(provider = "lints")]
fn sync_one_expression(x: u32) -> Result<u32, Error> {
    Ok(x)
}

#[circuit_breaker(provider = "lints")]
async fn async_one_expression(x: u32) -> Result<u32, Error> {
    Ok(x)
}

// Bodies on one line, as written before rustfmt (which would spread them over three): rustc's
// `unused_braces` only looks at single-line blocks.
#[rustfmt::skip]
#[circuit_breaker(provider = "lints")]
fn sync_one_line(x: u32) -> Result<u32, Error> { Ok(x) }

#[rustfmt::skip]
#[circuit_breaker(provider = "lints")]
async fn async_one_line(x: u32) -> Result<u32, Error> { Ok(x) }

#[rustfmt::skip]
#[circuit_breaker(provider = "lints", fallback = sync_cached)]
fn sync_one_line_with_fallback(x: u32) -> Result<u32, Error> { Ok(x) }

#[rustfmt::skip]
#[circuit_breaker(provider = "lints")]
fn sync_one_line_unit() -> Result<(), Error> { Ok(()) }

#[circuit_breaker(provider = "lints")]
fn sync_inner_attribute(x: u32) -> Result<u32, Error> {
    #![allow(clippy::let_and_return)]
    let y = Ok(x);
    y
}

#[circuit_breaker(provider = "lints")]
async fn async_inner_attribute(x: u32) -> Result<u32, Error> {
    #![allow(clippy::let_and_return)]
    let y = Ok(x);
    y
}

#[circuit_breaker(provider = "lints")]
fn sync_block_expression(x: u32) -> Result<u32, Error> {
    {
        Ok(x)
    }
}

#[circuit_breaker(provider = "lints")]
fn sync_unit(x: u32) -> Result<(), Error> {
    if x > 1 {
        return Err(Error::Parse);
    }
    Ok(())
}

#[circuit_breaker(provider = "lints", registry = &REGISTRY, tenant = tenant)]
async fn async_question_mark(tenant: &str, s: &str) -> Result<u32, Error> {
    let n: u32 = s.parse()?;
    Ok(n)
}

#[circuit_breaker(provider = "lints")]
fn sync_match(s: &str) -> Result<u32, Error> {
    match s {
        "one" => Ok(1),
        _ => Err(Error::Parse),
    }
}

#[circuit_breaker(provider = "lints")]
fn sync_diverging(x: u32) -> Result<u32, Error> {
    assert!(x == 0, "unreachable in these tests");
    loop {
        std::hint::spin_loop();
    }
}

#[circuit_breaker(provider = "lints")]
async fn async_diverging(x: u32) -> Result<u32, Error> {
    panic!("never called: {x}")
}

#[circuit_breaker(provider = "lints")]
fn sync_impl_trait(n: u32) -> Result<impl Iterator<Item = u32>, Error> {
    Ok(0..n)
}

#[circuit_breaker(provider = "lints")]
fn sync_generic<T: std::str::FromStr>(s: &str) -> Result<T, Error> {
    s.parse().map_err(|_| Error::Parse)
}

fn classify_all_failures(r: &Result<u32, Error>) -> Outcome {
    if r.is_ok() {
        Outcome::Success
    } else {
        Outcome::Failure
    }
}

#[circuit_breaker(provider = "lints", classify = classify_all_failures)]
fn sync_classified(x: u32) -> Result<u32, Error> {
    Ok(x)
}

fn sync_cached(x: u32, open: CircuitOpen) -> Result<u32, Error> {
    if x == 0 {
        Err(open.into())
    } else {
        Ok(x)
    }
}

#[circuit_breaker(provider = "lints", fallback = sync_cached)]
fn sync_with_fallback(x: u32) -> Result<u32, Error> {
    Ok(x)
}

async fn async_cached(x: u32, open: CircuitOpen) -> Result<u32, Error> {
    tokio::task::yield_now().await;
    sync_cached(x, open)
}

#[circuit_breaker(provider = "lints", fallback = async_cached, open_for = "1s", window = 10)]
async fn async_with_fallback(x: u32) -> Result<u32, Error> {
    Ok(x)
}

struct Client {
    tenant: String,
    calls: u32,
}

impl Client {
    #[circuit_breaker(provider = "lints", tenant = self.tenant.as_str())]
    fn by_ref(&self) -> Result<u32, Error> {
        Ok(self.calls)
    }

    #[circuit_breaker(provider = "lints", tenant = self.tenant.as_str())]
    fn by_mut(&mut self) -> Result<u32, Error> {
        self.calls += 1;
        Ok(self.calls)
    }

    #[circuit_breaker(provider = "lints", tenant = self.tenant.clone())]
    async fn by_arc(self: Arc<Self>) -> Result<u32, Error> {
        Ok(self.calls)
    }

    #[circuit_breaker(provider = "lints")]
    async fn by_value(self) -> Result<String, Error> {
        Ok(self.tenant)
    }
}

trait Provider {
    fn complete(&self, prompt: String) -> impl Future<Output = Result<String, Error>> + Send;
}

impl Provider for Client {
    #[circuit_breaker(provider = "lints", tenant = self.tenant.as_str())]
    async fn complete(&self, prompt: String) -> Result<String, Error> {
        Ok(prompt)
    }
}

#[async_trait::async_trait]
trait Boxed {
    async fn boxed(&self, x: u32) -> Result<u32, Error>;
}

#[async_trait::async_trait]
impl Boxed for Client {
    #[circuit_breaker(provider = "lints")]
    async fn boxed(&self, x: u32) -> Result<u32, Error> {
        Ok(x + self.calls)
    }
}

#[tokio::test]
async fn every_shape_runs() {
    assert_eq!(sync_one_expression(1), Ok(1));
    assert_eq!(async_one_expression(2).await, Ok(2));
    assert_eq!(sync_block_expression(3), Ok(3));
    assert_eq!(sync_one_line(3), Ok(3));
    assert_eq!(async_one_line(3).await, Ok(3));
    assert_eq!(sync_one_line_with_fallback(3), Ok(3));
    assert_eq!(sync_one_line_unit(), Ok(()));
    assert_eq!(sync_inner_attribute(3), Ok(3));
    assert_eq!(async_inner_attribute(3).await, Ok(3));
    assert_eq!(sync_unit(0), Ok(()));
    assert_eq!(async_question_mark("t", "4").await, Ok(4));
    assert_eq!(sync_match("one"), Ok(1));
    assert_eq!(sync_impl_trait(3).map(Iterator::count), Ok(3));
    assert_eq!(sync_generic::<u8>("5"), Ok(5));
    assert_eq!(sync_classified(6), Ok(6));
    assert_eq!(sync_with_fallback(7), Ok(7));
    assert_eq!(async_with_fallback(8).await, Ok(8));
    let mut client = Client {
        tenant: "t".to_owned(),
        calls: 0,
    };
    assert_eq!(client.by_mut(), Ok(1));
    assert_eq!(client.by_ref(), Ok(1));
    assert_eq!(client.complete("hi".to_owned()).await, Ok("hi".to_owned()));
    assert_eq!(client.boxed(1).await, Ok(2));
    let client = Arc::new(client);
    assert_eq!(Arc::clone(&client).by_arc().await, Ok(1));
    let client = Arc::into_inner(client).expect("one owner");
    assert_eq!(client.by_value().await, Ok("t".to_owned()));
    // Kept as values, so the diverging shapes are compiled (and linted) without being run.
    let _ = (sync_diverging, async_diverging);
}
