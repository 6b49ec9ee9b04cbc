//! Native `async fn` in a trait's impl.
use breaker::{circuit_breaker, CircuitOpen};

#[derive(Debug)]
pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

#[allow(async_fn_in_trait)] // only used in this program
pub trait Provider {
    fn complete(&self, prompt: &str) -> impl std::future::Future<Output = Result<String, Error>>;
    async fn count(&self) -> Result<usize, Error>;
}

pub struct Anthropic {
    tenant: String,
}

impl Provider for Anthropic {
    #[circuit_breaker(provider = "anthropic", tenant = self.tenant.as_str())]
    async fn complete(&self, prompt: &str) -> Result<String, Error> {
        Ok(prompt.to_owned())
    }

    #[circuit_breaker(provider = "anthropic", tenant = self.tenant.as_str())]
    async fn count(&self) -> Result<usize, Error> {
        Ok(1)
    }
}

fn main() {
    let a = Anthropic { tenant: "t".into() };
    let _ = a.complete("hi");
    let _ = a.count();
}
