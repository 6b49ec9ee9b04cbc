//! Patterns in arguments.
use breaker::{circuit_breaker, CircuitOpen};

#[derive(Debug)]
pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

pub struct Point {
    pub x: i32,
    pub y: i32,
}

#[circuit_breaker(provider = "p", tenant = a.to_string())]
pub async fn tuple((a, b): (u32, u32), mut x: u32) -> Result<u32, Error> {
    x += a + b;
    Ok(x)
}

#[circuit_breaker(provider = "p")]
pub fn structs(Point { x, y }: Point, _: u8, [first, ..]: [u8; 3]) -> Result<i32, Error> {
    Ok(x + y + i32::from(first))
}

fn main() {
    let _ = tuple((1, 2), 3);
    let _ = structs(Point { x: 1, y: 2 }, 0, [1, 2, 3]);
}
