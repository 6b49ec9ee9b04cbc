use breaker::{circuit_breaker, CircuitOpen};

pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

pub trait Provider {
    #[circuit_breaker(provider = "p")]
    async fn complete(&self) -> Result<(), Error>;
}

fn main() {}
