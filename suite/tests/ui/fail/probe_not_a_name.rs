use breaker::{circuit_breaker, CircuitOpen};

pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

// `probe` binds a name in the body: a path or a string is not one.
#[circuit_breaker(provider = "p", probe = self::is_probe)]
async fn path() -> Result<(), Error> {
    Ok(())
}

#[circuit_breaker(provider = "p", probe = "is_probe")]
async fn string() -> Result<(), Error> {
    Ok(())
}

fn main() {}
