use breaker::{circuit_breaker, CircuitOpen};

pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

fn missing_open(_prompt: String) -> Result<String, Error> {
    Ok(String::new())
}

fn wrong_return(_prompt: String, _open: CircuitOpen) -> Option<String> {
    None
}

#[circuit_breaker(provider = "p", fallback = missing_open)]
fn first(prompt: String) -> Result<String, Error> {
    Ok(prompt)
}

#[circuit_breaker(provider = "p", fallback = wrong_return)]
fn second(prompt: String) -> Result<String, Error> {
    Ok(prompt)
}

#[circuit_breaker(provider = "p", fallback = missing_open)]
fn destructured((a, _b): (String, u8)) -> Result<String, Error> {
    Ok(a)
}

fn main() {
    let _ = first(String::new());
    let _ = second(String::new());
    let _ = destructured((String::new(), 1));
}
