//! Methods with every receiver; the tenant is read from `self` before the body moves it.
use std::sync::Arc;

use breaker::{circuit_breaker, CircuitOpen};

#[derive(Debug)]
pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

pub struct Client {
    tenant: String,
    calls: u32,
}

impl Client {
    #[circuit_breaker(provider = "p", tenant = self.tenant.as_str())]
    pub async fn by_ref(&self, prompt: &str) -> Result<usize, Error> {
        Ok(prompt.len() + self.tenant.len())
    }

    #[circuit_breaker(provider = "p", tenant = &self.tenant)]
    pub async fn by_mut(&mut self) -> Result<u32, Error> {
        self.calls += 1;
        Ok(self.calls)
    }

    #[circuit_breaker(provider = "p", tenant = self.tenant.clone())]
    pub async fn by_arc(self: Arc<Self>) -> Result<u32, Error> {
        Ok(self.calls)
    }

    #[circuit_breaker(provider = "p", tenant = self.tenant)]
    pub async fn by_value(self) -> Result<String, Error> {
        Ok(self.tenant)
    }

    #[circuit_breaker(provider = "p", tenant = self.tenant.as_str())]
    pub async fn borrowing(&self) -> Result<&str, Error> {
        Ok(&self.tenant)
    }

    #[circuit_breaker(provider = "p")]
    pub async fn associated(n: u32) -> Result<Self, Error> {
        Ok(Client {
            tenant: n.to_string(),
            calls: 0,
        })
    }
}

fn main() {
    let mut c = Client {
        tenant: "t".into(),
        calls: 0,
    };
    let _ = c.by_ref("x");
    let _ = c.by_mut();
    let _ = c.borrowing();
    let _ = Client::associated(1);
    let _ = Arc::new(Client {
        tenant: "t".into(),
        calls: 0,
    })
    .by_arc();
    let _ = c.by_value();
}
