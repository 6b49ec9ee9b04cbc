use breaker::{circuit_breaker, CircuitOpen};

pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

#[circuit_breaker(tenant = "acme")]
async fn call() -> Result<(), Error> {
    Ok(())
}

#[circuit_breaker]
async fn bare() -> Result<(), Error> {
    Ok(())
}

fn main() {
    // The functions are still emitted beside the error: no follow-on "cannot find" errors.
    let _ = call();
    let _ = bare();
}
