use breaker::{circuit_breaker, CircuitOpen};

pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

#[circuit_breaker(provider = "p", open_for = "1s", provider = "q")]
async fn call() -> Result<(), Error> {
    Ok(())
}

fn main() {
    let _ = call();
}
