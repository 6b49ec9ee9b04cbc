//! `stream` on a function whose `Ok` is not a stream: one error at the return type that says so.
use breaker::{circuit_breaker, CircuitOpen};

#[derive(Debug)]
pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

#[circuit_breaker(provider = "p", stream)]
pub async fn answer() -> Result<String, Error> {
    Ok(String::new())
}

#[circuit_breaker(provider = "p", stream)]
pub fn numbers() -> Result<impl Iterator<Item = u32>, Error> {
    Ok(0..3)
}

fn main() {}
