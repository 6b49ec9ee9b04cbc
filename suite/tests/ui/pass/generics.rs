//! Generic functions and methods with where-clauses; a generic error type.
use std::fmt::Debug;

use breaker::{circuit_breaker, CircuitOpen, Classify};

#[derive(Debug)]
pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

#[circuit_breaker(provider = "p")]
pub async fn first<T, I>(items: I) -> Result<Option<T>, Error>
where
    I: IntoIterator<Item = T>,
    T: Debug + Send,
{
    Ok(items.into_iter().next())
}

#[circuit_breaker(provider = "p")]
pub async fn generic_error<E>(fail: bool, make: fn() -> E) -> Result<(), E>
where
    E: From<CircuitOpen> + Classify,
{
    if fail {
        Err(make())
    } else {
        Ok(())
    }
}

pub struct Store<K> {
    keys: Vec<K>,
}

impl<K: Clone + PartialEq> Store<K> {
    #[circuit_breaker(provider = "p")]
    pub async fn find<'a, Q>(&'a self, q: &Q) -> Result<&'a K, Error>
    where
        Q: PartialEq<K> + ?Sized,
    {
        self.keys.iter().find(|k| q == *k).ok_or(Error)
    }

    #[circuit_breaker(provider = "p")]
    pub fn find_sync<const N: usize>(&self, extra: [K; N]) -> Result<usize, Error> {
        Ok(self.keys.len() + extra.len())
    }
}

fn main() {
    let s = Store { keys: vec![1u8] };
    let _ = s.find(&1u8);
    let _ = s.find_sync([1, 2]);
    let _ = first(vec![1]);
}
