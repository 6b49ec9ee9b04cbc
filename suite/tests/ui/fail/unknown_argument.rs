use breaker::{circuit_breaker, CircuitOpen};

pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

#[circuit_breaker(provider = "p", timeout = "5s")]
async fn call() -> Result<(), Error> {
    Ok(())
}

fn main() {
    let _ = call();
}
