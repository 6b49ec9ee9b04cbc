//! Recursion through `Box::pin`.
use breaker::{circuit_breaker, CircuitOpen};

#[derive(Debug)]
pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

#[circuit_breaker(provider = "p")]
pub async fn countdown(n: u32) -> Result<u32, Error> {
    if n == 0 {
        return Ok(0);
    }
    Ok(1 + Box::pin(countdown(n - 1)).await?)
}

#[circuit_breaker(provider = "p")]
pub fn factorial(n: u64) -> Result<u64, Error> {
    if n <= 1 {
        return Ok(1);
    }
    Ok(n * factorial(n - 1)?)
}

fn main() {
    let _ = countdown(3);
    let _ = factorial(3);
}
