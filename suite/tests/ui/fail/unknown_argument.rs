use breaker::{circuit_breaker, CircuitOpen};

pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

#[circuit_breaker(provider = "p", retries = 3)]
async fn call() -> Result<(), Error> {
    Ok(())
}

fn main() {
    let _ = call();
}
