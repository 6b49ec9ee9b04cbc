use breaker::{circuit_breaker, CircuitOpen};

pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

#[circuit_breaker(provider = "p", max_in_flight = 0)]
async fn bulkhead() -> Result<(), Error> {
    Ok(())
}

#[circuit_breaker(provider = "p", max_in_flight = "8")]
async fn quoted() -> Result<(), Error> {
    Ok(())
}

fn main() {
    let _ = (bulkhead(), quoted());
}
