use breaker::{circuit_breaker, CircuitOpen};

pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

// The deadline runs on tokio's timer: without breaker's `tokio` feature, one error here.
#[circuit_breaker(provider = "p", timeout = "2s")]
async fn call() -> Result<(), Error> {
    Ok(())
}

fn main() {
    let _ = call();
}
