use breaker::{circuit_breaker, CircuitOpen};

pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

const PORT: u16 = 443;
const NOBODY: &str = "";

#[circuit_breaker(provider = PORT)]
fn not_a_name() -> Result<(), Error> {
    Ok(())
}

#[circuit_breaker(provider = NOBODY)]
fn empty_name() -> Result<(), Error> {
    Ok(())
}

#[circuit_breaker(provider = PORT + 1)]
fn an_expression() -> Result<(), Error> {
    Ok(())
}

fn main() {
    let _ = not_a_name();
    let _ = empty_name();
    let _ = an_expression();
}
