use breaker::{circuit_breaker, CircuitOpen};

pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

fn cached(_prompt: String, _open: CircuitOpen) -> Result<String, Error> {
    Ok(String::new())
}

#[circuit_breaker(provider = "p", fallback = cached)]
async fn complete(prompt: String) -> Result<String, Error> {
    Ok(prompt)
}

fn main() {
    let _ = complete(String::new());
}
