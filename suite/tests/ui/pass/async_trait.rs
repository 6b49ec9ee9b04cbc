//! Methods of `#[async_trait]` impls: the boxed future async-trait writes is recognised and only
//! its async block is wrapped; the result stays `Send`.
use std::sync::Arc;

use async_trait::async_trait;
use breaker::{circuit_breaker, CircuitOpen};

#[derive(Debug)]
pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

#[async_trait]
pub trait Provider {
    async fn complete(&self, prompt: String) -> Result<String, Error>;
    async fn reset(&mut self, (a, b): (u32, u32)) -> Result<u32, Error>;
    async fn owned(self: Arc<Self>) -> Result<(), Error>;
    async fn cached(&self, prompt: String, open: CircuitOpen) -> Result<String, Error>;
}

pub struct Client {
    tenant: String,
    n: u32,
}

#[async_trait]
impl Provider for Client {
    #[circuit_breaker(provider = "p", tenant = self.tenant.as_str(), fallback = Self::cached)]
    async fn complete(&self, prompt: String) -> Result<String, Error> {
        if prompt.is_empty() {
            return Err(Error);
        }
        Ok(format!("{}: {prompt}", self.tenant))
    }

    #[circuit_breaker(provider = "p", tenant = &self.tenant)]
    async fn reset(&mut self, (a, b): (u32, u32)) -> Result<u32, Error> {
        self.n = a + b;
        Ok(self.n)
    }

    #[circuit_breaker(provider = "p", tenant = self.tenant.clone())]
    async fn owned(self: Arc<Self>) -> Result<(), Error> {
        Ok(())
    }

    async fn cached(&self, prompt: String, _open: CircuitOpen) -> Result<String, Error> {
        Ok(prompt)
    }
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    let c = Client {
        tenant: "t".into(),
        n: 0,
    };
    assert_send(c.complete(String::new()));
}
