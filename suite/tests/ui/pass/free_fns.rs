//! Free `async fn`s with any visibility, attributes and doc comments kept.
use breaker::{circuit_breaker, CircuitOpen};

#[derive(Debug)]
pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

/// Private.
#[circuit_breaker(provider = "p")]
async fn private(x: u32) -> Result<u32, Error> {
    Ok(x)
}

/// Crate-visible, with another attribute.
#[circuit_breaker(provider = "p")]
#[inline]
pub(crate) async fn crate_visible(s: String) -> Result<usize, Error> {
    Ok(s.len())
}

/// Public, with lifetimes in the arguments and the result.
#[circuit_breaker(provider = "p")]
pub async fn public<'a>(s: &'a str, _t: &str) -> Result<&'a str, Error> {
    Ok(s)
}

/// Elided lifetime in the result.
#[circuit_breaker(provider = "p")]
pub async fn elided(s: &str) -> Result<&str, Error> {
    Ok(s)
}

pub mod inner {
    use super::*;
    /// `pub(super)` in a module.
    #[circuit_breaker(provider = "p")]
    pub(super) async fn nested() -> Result<(), Error> {
        Ok(())
    }
}

fn main() {
    let _ = (
        private(1),
        crate_visible(String::new()),
        public("a", "b"),
        elided("x"),
        inner::nested(),
    );
}
