//! `?` and early `return` in the body; the error type is converted as without the attribute.
use breaker::{circuit_breaker, CircuitOpen};

#[derive(Debug)]
pub enum Error {
    Open,
    Parse(std::num::ParseIntError),
}
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error::Open
    }
}
impl From<std::num::ParseIntError> for Error {
    fn from(e: std::num::ParseIntError) -> Self {
        Error::Parse(e)
    }
}

#[circuit_breaker(provider = "p")]
pub async fn parse(s: &str) -> Result<u32, Error> {
    if s.is_empty() {
        return Ok(0);
    }
    let n: u32 = s.parse()?;
    Ok(n)
}

#[circuit_breaker(provider = "p")]
pub fn parse_sync(s: &str) -> Result<u32, Error> {
    if s.is_empty() {
        return Ok(0);
    }
    let n: u32 = s.parse()?;
    Ok(n)
}

fn main() {
    let _ = parse("1");
    let _ = parse_sync("1");
}
