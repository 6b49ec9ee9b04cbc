use breaker::{circuit_breaker, CircuitOpen};

pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

#[circuit_breaker(
    provider = 5,
    backoff = "x",
    half_open_probes = 1.5,
    on_abandoned = "maybe"
)]
async fn call() -> Result<(), Error> {
    Ok(())
}

fn main() {
    let _ = call();
}
