//! The returned future is `Send` whenever the unannotated one is, and `'static` when its
//! arguments are.
use std::future::Future;

use breaker::{circuit_breaker, CircuitOpen};

#[derive(Debug)]
pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

pub struct Scope {
    pub tenant: String,
}

#[circuit_breaker(provider = "p", tenant = scope.tenant.as_str(), open_for = "1s")]
pub async fn complete(scope: &Scope, prompt: String) -> Result<String, Error> {
    tokio::task::yield_now().await;
    Ok(format!("{}{prompt}", scope.tenant))
}

#[circuit_breaker(provider = "p", tenant = tenant)]
pub async fn owned(tenant: String) -> Result<String, Error> {
    tokio::task::yield_now().await;
    Ok(tenant)
}

fn assert_send<F: Future + Send>(_: &F) {}
fn assert_static<F: Future + Send + 'static>(_: &F) {}

fn main() {
    let scope = Scope { tenant: "t".into() };
    let f = complete(&scope, String::new());
    assert_send(&f);
    let g = owned(String::new());
    assert_static(&g);
}
