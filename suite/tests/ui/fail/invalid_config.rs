use breaker::{circuit_breaker, CircuitOpen};

pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

#[circuit_breaker(provider = "p", failure_rate = 1.5)]
async fn rate() -> Result<(), Error> {
    Ok(())
}

#[circuit_breaker(provider = "p", open_for = "10m", max_open_for = "1m")]
async fn backoff_cap() -> Result<(), Error> {
    Ok(())
}

#[circuit_breaker(provider = "p", slow_call_rate = 0.5)]
async fn rate_without_threshold() -> Result<(), Error> {
    Ok(())
}

fn main() {
    let _ = (rate(), backoff_cap(), rate_without_threshold());
}
