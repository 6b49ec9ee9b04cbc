use breaker::{circuit_breaker, CircuitOpen};

pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

// A blocking call cannot be stopped at its deadline.
#[circuit_breaker(provider = "p", timeout = "2s")]
fn blocking() -> Result<(), Error> {
    Ok(())
}

fn cached(_: breaker::CircuitOpen) -> Result<(), Error> {
    Ok(())
}

// The fallback's arguments would be gone when the deadline passes.
#[circuit_breaker(provider = "p", timeout = "2s", fallback = cached)]
async fn with_fallback() -> Result<(), Error> {
    Ok(())
}

fn main() {
    let _ = blocking();
}
