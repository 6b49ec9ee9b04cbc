//! `impl Trait` in arguments and inside the `Ok` type.
use std::fmt::Display;

use breaker::{circuit_breaker, CircuitOpen};

#[derive(Debug)]
pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

#[circuit_breaker(provider = "p")]
pub async fn show(x: impl Display + Send) -> Result<String, Error> {
    Ok(x.to_string())
}

#[circuit_breaker(provider = "p")]
pub async fn evens(limit: u32) -> Result<impl Iterator<Item = u32>, Error> {
    Ok((0..limit).filter(|n| n % 2 == 0))
}

#[circuit_breaker(provider = "p")]
pub fn evens_sync(limit: u32) -> Result<Box<impl Iterator<Item = u32>>, Error> {
    if limit == 0 {
        return Err(Error);
    }
    Ok(Box::new((0..limit).filter(|n| n % 2 == 0)))
}

fn main() {
    let _ = show(1);
    let _ = evens(4);
    let _ = evens_sync(4).map(|i| i.count());
}
