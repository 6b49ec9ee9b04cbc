use breaker::circuit_breaker;

#[derive(Debug)]
pub struct MyError;

#[circuit_breaker(provider = "p")]
async fn call() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {
    let _ = call();
}
