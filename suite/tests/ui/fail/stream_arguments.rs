//! `stream` is a flag, and `classify_item` needs it: errors at the arguments, the function kept.
use breaker::{circuit_breaker, CircuitOpen};

#[derive(Debug)]
pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

fn by_kind(_: &Error) -> breaker::Outcome {
    breaker::Outcome::Failure
}

#[circuit_breaker(provider = "p", stream = true)]
pub fn a() -> Result<u32, Error> {
    Ok(1)
}

#[circuit_breaker(provider = "p", classify_item = by_kind)]
pub fn b() -> Result<u32, Error> {
    Ok(1)
}

#[circuit_breaker(provider = "p", stream, on_cancel = "sometimes", idle_timeout = "0s")]
pub fn c() -> Result<u32, Error> {
    Ok(1)
}

fn main() {
    let _ = (a(), b(), c());
}
