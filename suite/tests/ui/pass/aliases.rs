//! Type aliases for the return type, such as `io::Result<T>` or an anyhow-style alias.
use std::io;

use breaker::{circuit_breaker, CircuitOpen};

#[derive(Debug)]
pub struct AppError;
impl From<CircuitOpen> for AppError {
    fn from(_: CircuitOpen) -> Self {
        AppError
    }
}
pub type AppResult<T, E = AppError> = std::result::Result<T, E>;

#[circuit_breaker(provider = "p")]
pub async fn read() -> io::Result<Vec<u8>> {
    Err(io::Error::other("no"))
}

#[circuit_breaker(provider = "p")]
pub fn read_sync() -> io::Result<Vec<u8>> {
    Ok(Vec::new())
}

#[circuit_breaker(provider = "p")]
pub async fn app() -> AppResult<u8> {
    Ok(1)
}

fn main() {
    let _ = (read(), read_sync(), app());
}
