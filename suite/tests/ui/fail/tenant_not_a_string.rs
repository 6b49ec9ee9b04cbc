use breaker::{circuit_breaker, CircuitOpen};

pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

#[circuit_breaker(provider = "p", tenant = id)]
async fn call(id: u64) -> Result<(), Error> {
    Ok(())
}

fn main() {
    let _ = call(1);
}
