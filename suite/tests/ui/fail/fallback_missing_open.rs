use breaker::{circuit_breaker, CircuitOpen};

pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

pub struct Client;

async fn cached(_client: &Client, _prompt: String) -> Result<String, Error> {
    Ok(String::new())
}

impl Client {
    #[circuit_breaker(provider = "p", fallback = cached)]
    async fn complete(&self, prompt: String) -> Result<String, Error> {
        Ok(prompt)
    }
}

fn main() {
    let _ = Client.complete(String::new());
}
