//! Non-async functions, including ones that return borrows of their arguments.
use breaker::{circuit_breaker, CircuitOpen};

#[derive(Debug)]
pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

pub struct Cache {
    items: Vec<String>,
}

impl Cache {
    #[circuit_breaker(provider = "p")]
    pub fn first_mut(&mut self) -> Result<&mut String, Error> {
        self.items.first_mut().ok_or(Error)
    }

    #[circuit_breaker(provider = "p")]
    pub fn take(self) -> Result<Vec<String>, Error> {
        Ok(self.items)
    }
}

#[circuit_breaker(provider = "p")]
pub fn head(v: &mut Vec<u8>) -> Result<&mut u8, Error> {
    v.first_mut().ok_or(Error)
}

#[circuit_breaker(provider = "p")]
pub unsafe fn raw(p: *const u8) -> Result<u8, Error> {
    // SAFETY: callers pass a valid pointer (this file only compiles it).
    Ok(unsafe { *p })
}

#[circuit_breaker(provider = "p")]
pub extern "Rust" fn explicit_abi() -> Result<(), Error> {
    Ok(())
}

fn main() {
    let mut c = Cache {
        items: vec!["a".into()],
    };
    let _ = c.first_mut();
    let _ = c.take();
    let mut v = vec![1];
    let _ = head(&mut v);
}
